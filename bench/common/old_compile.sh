#!/usr/bin/env bash
# The compile step kfp-ci replaces: one `kfp dsl compile` process per pipeline file.
#
# Usage: old_compile.sh DIR OUTDIR
#   Compiles every *_pipeline.py below DIR (sorted, recursive, skipping hidden dirs)
#   to OUTDIR/<file stem>.yaml. Keeps going past failures; exits 1 if any failed.
#   Environment: KFP (default: `kfp` on PATH) is the kfp CLI to use, e.g. /tmp/kfpvenv/bin/kfp.
#   Prints "old_compile: N files, F failed, S.SSS s" on stderr.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 DIR OUTDIR" >&2
    exit 2
fi
dir=$1
outdir=$2
kfp_cli=${KFP:-kfp}
if ! command -v "$kfp_cli" >/dev/null 2>&1; then
    echo "old_compile: kfp CLI '$kfp_cli' not found; set KFP=/path/to/venv/bin/kfp" >&2
    exit 2
fi
mkdir -p "$outdir"

start=$(date +%s.%N)
total=0
failed=0
while IFS= read -r -d '' file; do
    total=$((total + 1))
    stem=$(basename "$file" .py)
    if ! "$kfp_cli" dsl compile --py "$file" --output "$outdir/$stem.yaml" >/dev/null 2>"$outdir/$stem.err"; then
        failed=$((failed + 1))
        echo "old_compile: FAILED $file (see $outdir/$stem.err)" >&2
    else
        rm -f "$outdir/$stem.err"
    fi
done < <(find "$dir" -name '.*' -prune -o -type f -name '*_pipeline.py' -print0 | sort -z)
end=$(date +%s.%N)

elapsed=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
echo "old_compile: $total files, $failed failed, $elapsed s" >&2
[ "$failed" -eq 0 ]
