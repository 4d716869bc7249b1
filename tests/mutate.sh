#!/usr/bin/env bash
# `make mutate`: the mutation check of tests/mutants.txt. Copies the tree (the tracked files as they are now, edits
# included) to a scratch directory, builds it and runs the suite once unmutated (it must pass), then, for each
# mutant in turn, replaces its original text in its file, rebuilds (only that file recompiles), runs the suite
# until its first failure (Criterion's --fail-fast; the unit suites first, the end-to-end ones after) and
# restores the file. A mutant is "killed" when the suite
# fails; it "survived" when the suite passes; "does not apply" when its original text is not in its file, or is
# there more than once; "does not build" when the mutated tree does not compile. Anything but killed fails the
# run (exit 1). Prints one line per mutant, the test that killed it, and a summary.
#
# Environment: MUTANTS (the list, default tests/mutants.txt), MUTANT (run only the mutants whose description
# matches this extended regular expression, e.g. 'resume|trainer'), MUTATE_DIR (the scratch directory, default a new /tmp/bnni-mutate-XXXXXX, removed at the
# end unless MUTATE_KEEP=1), MUTATE_CHECK=1 (only check that every mutant applies, without building),
# MUTATE_TIMEOUT (seconds per suite run, default 1800). Takes 40 to 60 minutes for the whole list on 2 cores.
set -uo pipefail
shopt -u patsub_replacement 2>/dev/null # bash 5.2: '&' in a replacement would otherwise mean the matched text
cd "$(dirname "$0")/.." || exit 1

LIST=${MUTANTS:-tests/mutants.txt}
ONLY=${MUTANT:-}
TIMEOUT=${MUTATE_TIMEOUT:-1800}
ROOT=$PWD

# ---------------------------------------------------------------- the list

desc=() file=() build=() orig=() repl=()
parse_list() {
    local line state=none n=-1 o r
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line == "=== "* ]]; then
            n=$((n + 1)) state=head
            desc[n]=${line#=== } file[n]="" build[n]=normal orig[n]="" repl[n]=""
            continue
        fi
        case $state in
        none | head)
            if [[ $line == "--- original" && $state == head ]]; then
                state=orig o=""
            elif [[ $line == "file: "* && $state == head ]]; then
                file[n]=${line#file: }
            elif [[ $line == "build: "* && $state == head ]]; then
                build[n]=${line#build: }
            elif [[ -n $line && $line != "#"* ]]; then
                echo "mutate: $LIST: unexpected line: $line" >&2
                exit 2
            fi
            ;;
        orig)
            if [[ $line == "--- replacement" ]]; then
                orig[n]=$o state=repl r=""
            else
                o+=${o:+$'\n'}$line
            fi
            ;;
        repl)
            # A replacement ends at the next mutant, or at a comment or blank line followed by one.
            if [[ -z $line || $line == "#"* ]]; then
                repl[n]=$r state=none
            else
                r+=${r:+$'\n'}$line
                repl[n]=$r
            fi
            ;;
        esac
    done <"$LIST"
    for i in "${!desc[@]}"; do
        if [[ -z ${file[i]} || -z ${orig[i]} || -z ${repl[i]} ]]; then
            echo "mutate: $LIST: mutant '${desc[i]}' lacks its file, original or replacement" >&2
            exit 2
        fi
        if [[ ${build[i]} != normal && ${build[i]} != sanitize && ${build[i]} != mpi ]]; then
            echo "mutate: $LIST: mutant '${desc[i]}': build must be sanitize or mpi" >&2
            exit 2
        fi
    done
}

# ---------------------------------------------------------------- applying one

# Prints how many times the original text of mutant i is in its file under directory $1 (0, 1 or 2 = several).
occurrences() {
    local path="$1/${file[$2]}" content rest
    [[ -f $path ]] || { echo 0; return; }
    content=$(cat "$path"; printf x)
    content=${content%x}
    rest=${content#*"${orig[$2]}"}
    if [[ $rest == "$content" ]]; then echo 0; elif [[ $rest == *"${orig[$2]}"* ]]; then echo 2; else echo 1; fi
}

# Writes the file of mutant i under directory $1 with its original text replaced.
apply() {
    local path="$1/${file[$2]}" content
    content=$(cat "$path"; printf x)
    content=${content%x}
    printf '%s' "${content/"${orig[$2]}"/"${repl[$2]}"}" >"$path"
}

# ---------------------------------------------------------------- building and running

# make in the scratch tree for build kind $1 (normal, sanitize, or mpi: the plain build and ./bnni-mpi, for the
# data-parallel tests); output in $SCRATCH/build.log.
build_tree() {
    local flags=()
    [[ $1 == sanitize ]] && flags=(SANITIZE=1)
    (cd "$SCRATCH" && nice make -j2 "${flags[@]}" "$(bin "$1")" "$(bdir "$1")/run_tests" &&
        if [[ $1 == mpi ]]; then nice make -j2 MPI=1 bnni-mpi; fi) >"$SCRATCH/build.log" 2>&1
}

bdir() { if [[ $1 == sanitize ]]; then echo build-san; else echo build; fi; }
bin() { if [[ $1 == sanitize ]]; then echo build-san/bnni; else echo bnni; fi; }

# The suites that run bnni end to end and take most of the suite's time run second, so that a mutant the unit
# suites catch costs them nothing.
SLOW='crash|limits|resume|train'

# Runs the suite of build kind $1 in the scratch tree, stopping at the first failure ($2 = fail-fast or all):
# every suite but $SLOW, then those; output in $SCRATCH/run.log. Returns its status; sanitizer reports count as a
# failure, as in `make run-tests`.
run_suite() {
    local d b rc=0 ff=() filter
    d=$(bdir "$1") b=$(bin "$1")
    [[ $2 == fail-fast ]] && ff=(--fail-fast)
    rm -rf "$SCRATCH/$d/sanitizer" && mkdir -p "$SCRATCH/$d/sanitizer"
    : >"$SCRATCH/run.log"
    local filters=("!($SLOW)/*" "@($SLOW)/*") jobs=-j2 mpi=
    [[ $1 == mpi ]] && filters=("dist/*") jobs=-j1 mpi=./bnni-mpi # each test starts up to 3 ranks
    for filter in "${filters[@]}"; do
        (cd "$SCRATCH" && BNNI=./$b BNNI_MPI_BIN=$mpi OMP_WAIT_POLICY=passive \
            LSAN_OPTIONS=suppressions=$SCRATCH/tests/lsan.supp:log_path=$SCRATCH/$d/sanitizer/report \
            timeout -s KILL "$TIMEOUT" nice "./$d/run_tests" $jobs "${ff[@]}" --filter "$filter") \
            >>"$SCRATCH/run.log" 2>&1 || rc=1
        if ls "$SCRATCH/$d/sanitizer/report."* >/dev/null 2>&1; then
            echo "[FAIL] sanitizer report: $(grep -m1 -h 'ERROR: ' "$SCRATCH/$d/sanitizer/report."*)" \
                >>"$SCRATCH/run.log"
            rc=1
        fi
        ((rc == 0)) || [[ $2 == all ]] || break
    done
    return $rc
}

# The first failing test of the last run (or why it stopped), for the report.
first_failure() {
    local f
    f=$(grep -m1 -E '^\[FAIL\]' "$SCRATCH/run.log" | sed -E 's/^\[FAIL\] //; s/: \(.*//')
    [[ -n $f ]] || f=$(grep -m1 -E 'CRASH|Timed out|Killed' "$SCRATCH/run.log")
    [[ -n $f ]] || f="exit status only (see $SCRATCH/run.log)"
    echo "$f"
}

# ---------------------------------------------------------------- main

parse_list
selected=()
for i in "${!desc[@]}"; do
    [[ -z $ONLY || ${desc[i]} =~ $ONLY ]] && selected+=("$i")
done
if ((${#selected[@]} == 0)); then
    echo "mutate: no mutant in $LIST matches '$ONLY'" >&2
    exit 2
fi

if [[ ${MUTATE_CHECK:-0} == 1 ]]; then
    bad=0
    for i in "${selected[@]}"; do
        k=$(occurrences "$ROOT" "$i")
        case $k in
        1) printf 'applies         %s\n' "${desc[i]}" ;;
        0) printf 'DOES NOT APPLY  %s (its original text is not in %s)\n' "${desc[i]}" "${file[i]}"; bad=1 ;;
        *) printf 'DOES NOT APPLY  %s (its original text is in %s more than once)\n' "${desc[i]}" "${file[i]}"; bad=1 ;;
        esac
    done
    exit $bad
fi

SCRATCH=${MUTATE_DIR:-$(mktemp -d /tmp/bnni-mutate-XXXXXX)}
mkdir -p "$SCRATCH"
chmod 755 "$SCRATCH" # mktemp -d makes it 0700: tests that run bnni as another user (nobody) must reach it
[[ ${MUTATE_KEEP:-0} == 1 ]] || trap 'rm -rf "$SCRATCH"' EXIT
echo "mutate: ${#selected[@]} mutants of $LIST, in $SCRATCH"
# The tracked files as they are in the working tree (uncommitted edits included).
git ls-files -z | (cd "$ROOT" && xargs -0 cp --parents -t "$SCRATCH") || {
    echo "mutate: cannot copy the tree to $SCRATCH" >&2
    exit 2
}
# onnxruntime-node is not tracked (make deps installs it into tests/ort/node_modules): the export tests run it.
[[ -d $ROOT/tests/ort/node_modules ]] && ln -s "$ROOT/tests/ort/node_modules" "$SCRATCH/tests/ort/node_modules"
mkdir -p "$SCRATCH/.pristine"
t0=$SECONDS

# Every build kind the selected mutants need, built and passing unmutated first.
for kind in normal sanitize mpi; do
    need=0
    for i in "${selected[@]}"; do [[ ${build[i]} == "$kind" ]] && need=1; done
    ((need)) || continue
    if ! build_tree "$kind"; then
        echo "mutate: the unmutated tree does not build ($kind); see $SCRATCH/build.log" >&2
        tail -20 "$SCRATCH/build.log" >&2
        exit 2
    fi
    # The sanitizer suite takes several minutes: unmutated, it only has to build (make test runs it).
    if [[ $kind != sanitize ]] && ! run_suite "$kind" all; then
        echo "mutate: the unmutated suite fails ($(first_failure)); fix that first" >&2
        exit 2
    fi
    echo "mutate: unmutated $kind build ready ($((SECONDS - t0)) s)"
done

killed=0 survived=0 unapplied=0 unbuilt=0
for i in "${selected[@]}"; do
    t1=$SECONDS
    k=$(occurrences "$SCRATCH" "$i")
    if [[ $k != 1 ]]; then
        printf 'DOES NOT APPLY  %s (%s in %s)\n' "${desc[i]}" \
            "$([[ $k == 0 ]] && echo "its original text is not" || echo "its original text is more than once")" \
            "${file[i]}"
        unapplied=$((unapplied + 1))
        continue
    fi
    cp "$SCRATCH/${file[i]}" "$SCRATCH/.pristine/file"
    apply "$SCRATCH" "$i"
    if ! build_tree "${build[i]}"; then
        printf 'DOES NOT BUILD  %s (%s; see the log with MUTATE_KEEP=1)\n' "${desc[i]}" "${file[i]}"
        unbuilt=$((unbuilt + 1))
    elif run_suite "${build[i]}" fail-fast; then
        printf 'SURVIVED        %s (%s, %d s)\n' "${desc[i]}" "${file[i]}" $((SECONDS - t1))
        survived=$((survived + 1))
    else
        printf 'killed          %s -- by %s (%d s)\n' "${desc[i]}" "$(first_failure)" $((SECONDS - t1))
        killed=$((killed + 1))
    fi
    cp "$SCRATCH/.pristine/file" "$SCRATCH/${file[i]}"
    touch "$SCRATCH/${file[i]}" # older than the objects the mutant built: make must rebuild them
done

total=${#selected[@]}
printf 'mutate: %d mutants: %d killed, %d survived, %d do not apply, %d do not build (%d min)\n' "$total" "$killed" \
    "$survived" "$unapplied" "$unbuilt" $(((SECONDS - t0 + 59) / 60))
((killed == total))
