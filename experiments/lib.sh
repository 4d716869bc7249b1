# Shared by the experiment scripts (sourced, not run): where bnni and the outputs are, and how a script replaces its
# section of docs/experiments.md. Run the scripts from the repository root, after `make`.
set -euo pipefail

BNNI=${BNNI:-./bnni}
# Runs, checkpoints and sweep folders (not committed); the plots go to docs/experiments/.
OUT=${OUT:-experiments/out}
IMG=docs/experiments
DOC=docs/experiments.md
# One thread by default: on this shared 2-core machine two threads waited on each other (docs/runtime.md,
# "Waiting threads"); results are the same at any thread count.
THREADS=${THREADS:-1}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

mkdir -p "$OUT" "$IMG"
[ -x "$BNNI" ] || { echo "$0: $BNNI is missing: run make first" >&2; exit 1; }

# The values of a 1-D or [T, 3] HDF5 dataset, one per line: h5vals FILE /trace/test_acc
h5vals() {
    h5dump -y -w 0 -d "$2" "$1" | sed -n '/DATA {/,/}/p' | sed '1d;$d' | tr ',' '\n' | awk 'NF { print $1 }'
}

# Row N (1-based) of a [T, 3] dataset as "a b c": h5row FILE /trace/layers/dense_3 N
h5row() {
    h5vals "$1" "$2" | awk -v n="$3" 'NR > 3 * (n - 1) && NR <= 3 * n { printf "%s%s", sep, $1; sep = " " } END { print "" }'
}

# A CSV as a Markdown table, the statistics (numbers of 5 or more decimals, as bnni sweep writes them) to 4 decimals,
# settings as written: csv_md FILE [COLUMNS, e.g. 1,2,5]
csv_md() {
    awk -F, -v cols="${2:-}" '
        BEGIN { n = split(cols, want, ",") }
        function pick(   i, s) { s = "|"; if (n == 0) for (i = 1; i <= NF; i++) s = s " " fmt($i) " |";
                                 else for (i = 1; i <= n; i++) s = s " " fmt($(want[i])) " |"; return s }
        function fmt(v) { return (v ~ /^-?[0-9]+\.[0-9][0-9][0-9][0-9][0-9]+$/) ? sprintf("%.4f", v) : (v == "" ? "-" : v) }
        NR == 1 { print pick(); s = "|"; for (i = 1; i <= (n ? n : NF); i++) s = s " --- |"; print s; next }
        { print pick() }' "$1"
}

# Replaces the text between "<!-- BEGIN name -->" and "<!-- END name -->" in docs/experiments.md with stdin.
md_section() {
    local name=$1 body
    body=$(mktemp)
    cat > "$body"
    awk -v name="$name" -v body="$body" '
        $0 == "<!-- BEGIN " name " -->" { print; while ((getline line < body) > 0) print line; skip = 1; next }
        $0 == "<!-- END " name " -->" { skip = 0 }
        !skip { print }' "$DOC" > "$DOC.tmp"
    mv "$DOC.tmp" "$DOC"
    rm -f "$body"
}

# "LOSS ACC" of a checkpoint on the 60,000 training images in eval mode (moving statistics, no dropout), as bnni eval
# gives them for the test set: through a folder whose test files are the training files.
train_eval() {
    local d=$OUT/train_as_test src=${DATA:-/usr/share/datasets/fashion-mnist}
    if [ ! -e $d/t10k-labels-idx1-ubyte.gz ]; then
        mkdir -p $d
        ln -sf $src/train-images-idx3-ubyte.gz $d/t10k-images-idx3-ubyte.gz
        ln -sf $src/train-labels-idx1-ubyte.gz $d/t10k-labels-idx1-ubyte.gz
        ln -sf $src/train-images-idx3-ubyte.gz $d/train-images-idx3-ubyte.gz
        ln -sf $src/train-labels-idx1-ubyte.gz $d/train-labels-idx1-ubyte.gz
    fi
    $BNNI eval "$1" --data $d --threads $THREADS | awk '/^test loss/ { print $3, $5 }'
}

# What the machine was doing, for the record: "2 CPUs, load 3.5".
machine() {
    echo "$(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg) at the start"
}
