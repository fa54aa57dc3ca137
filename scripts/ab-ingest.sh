#!/usr/bin/env bash
# A/B two or more waterfall binaries on the same events, alternating, so that the machine's
# drift hits each alike: median wall and CPU seconds (user + system) of a fresh ingest.
#
#   scripts/ab-ingest.sh RUNS EVENTS BINARY...   e.g. 5 bench-data/events-90000.jsonl old new
#
# On a saturated 2-core VM, CPU seconds move less than wall seconds: compare both.
set -euo pipefail
RUNS=$1
EVENTS=$2
shift 2
DB=$(mktemp -d)/ab.db
declare -A WALL CPU
for i in $(seq 1 "$RUNS"); do
  for b in "$@"; do
    rm -f "$DB"*
    read -r e u s m < <(/usr/bin/time -f "%e %U %S %M" "$b" ingest --db "$DB" --model history-only "$EVENTS" 2>&1 >/dev/null | tail -1)
    WALL[$b]+="$e "
    CPU[$b]+="$(echo "$u + $s" | bc) "
    echo "run $i $b: wall ${e}s cpu $(echo "$u + $s" | bc)s peak ${m} KB"
  done
done
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for b in "$@"; do
  echo "median $b: wall $(median "${WALL[$b]}")s cpu $(median "${CPU[$b]}")s"
done
rm -f "$DB"*
