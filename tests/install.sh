#!/usr/bin/env bash
# What a user gets from `make install` (docs/library.md), checked in a staging tree: the file list; examples/classify.c
# built through `pkg-config --cflags --libs bnni` against it (shared and static) and agreeing with `bnni predict`
# on a PGM and a PNG; only bnni_* exported by libbnni.so (nm -D) and its soname; the man pages lint clean and
# render; the bash completion and the vim syntax load; `make uninstall` removes every file. Run by `make test`.
# Usage: tests/install.sh (from the top of the tree, after `make`).
set -euo pipefail
# Every grep after a pipe reads its whole input (no -q): a writer killed by SIGPIPE fails the pipeline (pipefail).
top=$(pwd)
stage=$(mktemp -d "${TMPDIR:-/tmp}/bnni-install.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$stage"' EXIT   # KEEP=1 keeps the staging tree to look at
fail() { echo "install.sh: $*" >&2; exit 1; }
prefix=/usr/local
root=$stage/root

make --no-print-directory install DESTDIR="$root" PREFIX=$prefix >"$stage/install.log" 2>&1 ||
    { cat "$stage/install.log" >&2; fail "make install failed"; }
for f in bin/bnni include/bnni.h lib/libbnni.so lib/libbnni.so.0 lib/libbnni.a lib/pkgconfig/bnni.pc \
         share/man/man1/bnni.1 share/man/man5/bnn.5 share/bash-completion/completions/bnni \
         share/vim/vimfiles/syntax/bnn.vim share/vim/vimfiles/ftdetect/bnn.vim; do
    [ -e "$root$prefix/$f" ] || fail "make install did not install $prefix/$f"
done

# The library: its soname and version, and nothing but bnni_* in its dynamic symbols.
so=$(readlink -f "$root$prefix/lib/libbnni.so")
readelf -d "$so" | grep 'SONAME.*\[libbnni\.so\.0\]' >/dev/null || fail "libbnni.so has no soname libbnni.so.0"
others=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ && $3 !~ /^bnni_/ {print $3}')
[ -z "$others" ] || fail "libbnni.so exports more than bnni_*: $others"
nm -D --defined-only "$so" | grep ' T bnni_predict' >/dev/null || fail "libbnni.so does not export bnni_predict"
# The locks of named `#pragma omp critical(NAME)` sections are common symbols .gomp_critical_user_NAME that libgomp
# needs global (every object naming the section shares its lock): they are the only other names allowed.
others=$(nm -g --defined-only "$root$prefix/lib/libbnni.a" |
    awk 'NF == 3 && $3 !~ /^bnni_/ && $3 !~ /^\.gomp_critical_user_/ {print $3}')
[ -z "$others" ] || fail "libbnni.a defines more than bnni_*: $others"

# examples/classify.c through pkg-config, as a user of the installed tree builds it.
# The staged bnni.pc says prefix=/usr/local: --define-variable points it at the staging tree instead.
export PKG_CONFIG_PATH=$root$prefix/lib/pkgconfig
pkg-config() { command pkg-config --define-variable=prefix="$root$prefix" "$@"; }
png=$(command pkg-config --cflags --libs libpng)
cc -std=c11 -Wall -Wextra -Werror -o "$stage/classify" examples/classify.c $(pkg-config --cflags --libs bnni) $png ||
    fail "examples/classify.c does not build with pkg-config --cflags --libs bnni"
cc -std=c11 -o "$stage/classify-static" examples/classify.c $(pkg-config --cflags bnni) \
    $(pkg-config --static --libs bnni | sed 's/-lbnni/-Wl,-Bstatic -lbnni -Wl,-Bdynamic/') $png ||
    fail "examples/classify.c does not link libbnni.a statically"

# A checkpoint, and two test images as PGM and PNG (the PNG written with zlib by python3).
"$root$prefix/bin/bnni" train models/lenet_bn.bnn --epochs 1 --limit 2000 --test-limit 200 --threads 1 --quiet \
    --out "$stage/ck.h5"
python3 - "$stage" <<'PY'
import gzip, struct, sys, zlib
d = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()[16:]
a, b = d[:784], d[784:2 * 784]
open(f"{sys.argv[1]}/a.pgm", "wb").write(b"P5\n# test image 0\n28 28\n255\n" + a)
chunk = lambda t, x: struct.pack(">I", len(x)) + t + x + struct.pack(">I", zlib.crc32(t + x))
raw = b"".join(b"\0" + b[r * 28:(r + 1) * 28] for r in range(28))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
open(f"{sys.argv[1]}/b.png", "wb").write(png + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
open(f"{sys.argv[1]}/b.pgm", "wb").write(b"P5 28 28 255\n" + b)
PY
"$root$prefix/bin/bnni" predict "$stage/ck.h5" "$stage/a.pgm" "$stage/b.pgm" | tail -n +2 |
    awk -F, '{print $2 "," $3 "," $4}' >"$stage/want.txt"
for prog in classify classify-static; do
    LD_LIBRARY_PATH=$root$prefix/lib "$stage/$prog" "$stage/ck.h5" "$stage/a.pgm" "$stage/b.png" |
        awk -F, '{print $2 "," $3 "," $4}' >"$stage/got.txt"
    cmp -s "$stage/want.txt" "$stage/got.txt" ||
        fail "$prog disagrees with bnni predict: $(paste -d' ' "$stage/want.txt" "$stage/got.txt" | tr '\n' ';')"
done
LD_LIBRARY_PATH=$root$prefix/lib ldd "$stage/classify" | grep "libbnni.so.0 => $root" >/dev/null ||
    fail "classify is not linked against the installed libbnni.so.0"

# The man pages: installed as they are in man/, lint clean there (mandoc finds the pages they refer to beside them,
# as bnn.5 beside bnni.1) and rendered from the staging tree.
cmp -s man/bnni.1 "$root$prefix/share/man/man1/bnni.1" && cmp -s man/bnn.5 "$root$prefix/share/man/man5/bnn.5" ||
    fail "the installed man pages differ from man/"
(cd man && mandoc -Tlint bnni.1 bnn.5) || fail "mandoc -Tlint finds problems in the man pages"
for page in man1/bnni.1 man5/bnn.5; do
    MANWIDTH=80 man -l "$root$prefix/share/man/$page" 2>"$stage/man.err" >"$stage/man.txt" || fail "man -l $page fails"
    [ ! -s "$stage/man.err" ] || fail "man -l $page warns: $(cat "$stage/man.err")"
    grep -q 'SEE ALSO' "$stage/man.txt" || fail "man -l $page renders no SEE ALSO"
done
for cmd in check train eval inspect predict export fmt sweep plot; do
    grep -q "bnni $cmd" "$stage/man.txt" 2>/dev/null || MANWIDTH=80 man -l "$root$prefix/share/man/man1/bnni.1" |
        grep -q "bnni $cmd" || fail "bnni(1) does not document bnni $cmd"
    help=$(./bnni help "$cmd") || fail "./bnni help $cmd fails"
    for opt in $(grep -o -- '--[a-z-]*' <<<"$help" | sort -u); do
        MANWIDTH=80 man -l "$root$prefix/share/man/man1/bnni.1" | grep -- "$opt" >/dev/null ||
            fail "bnni(1) does not document $opt of bnni $cmd"
    done
done

# The bash completion: commands, options and files.
reply=$(cd "$stage" && bash -c "source '$root$prefix/share/bash-completion/completions/bnni'
    COMP_WORDS=(bnni ex); COMP_CWORD=1; _bnni; echo \${COMPREPLY[*]}
    COMP_WORDS=(bnni export --k); COMP_CWORD=2; _bnni; echo \${COMPREPLY[*]}
    COMP_WORDS=(bnni eval ''); COMP_CWORD=2; _bnni; echo \${COMPREPLY[*]}")
[ "$reply" = "$(printf 'export\n--keep-bn\nck.h5 root')" ] || fail "bash completion: $reply"

# The vim syntax: .bnn files get it, and `data` is a statement.
if command -v vim >/dev/null; then
    vim -Nu NONE -i NONE -es -c "set rtp^=$root$prefix/share/vim/vimfiles" -c 'filetype on' -c 'syntax on' \
        -c 'e models/lenet_bn.bnn' -c 'call cursor(4, 1)' \
        -c 'if &ft !=# "bnn" || synIDattr(synID(4, 1, 1), "name") !=# "bnnStatement" | cquit | endif' -c 'qa!' \
        </dev/null || fail "vim does not highlight .bnn files with editors/vim/syntax/bnn.vim"
fi

# Another PREFIX goes into bnni.pc too.
make --no-print-directory install DESTDIR="$stage/opt" PREFIX=/opt/bnni >"$stage/install2.log" 2>&1 || fail "make install PREFIX=/opt/bnni failed"
grep -qx 'prefix=/opt/bnni' "$stage/opt/opt/bnni/lib/pkgconfig/bnni.pc" || fail "bnni.pc does not name PREFIX=/opt/bnni"

make --no-print-directory uninstall DESTDIR="$root" PREFIX=$prefix >"$stage/uninstall.log" 2>&1 || fail "make uninstall failed"
left=$(find "$root" -not -type d)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "install.sh: make install/uninstall, classify.c through pkg-config (shared and static), man pages, completion, vim: ok"
