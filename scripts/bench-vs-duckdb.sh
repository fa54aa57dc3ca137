#!/usr/bin/env bash
# Waterfall vs the DuckDB peer on the same generated events, in the same run.
#
#   scripts/bench-vs-duckdb.sh ACCOUNTS [RUNS] [ORDER]   e.g. 10000 (≈1.1M events), 90000 (≈10M)
#
# ORDER is `generated` (default: the generator writes each account's events together) or
# `time` (the same events sorted by instant, as a CRM export usually is).
#
# Generates shared/bench data (kept in bench-data/, not committed), runs each side once
# unmeasured, then alternates both sides RUNS times: Waterfall = ingest (history-only model)
# + flow + cohort + snapshot reports; peer = DuckDB load + the same three reports. Checks the
# reports agree and prints medians, peak RSS and ratios. Needs python3 with duckdb, and GNU
# time (/usr/bin/time).
set -euo pipefail
# shellcheck source=scripts/bench-setup.sh
source "$(dirname "$0")/bench-setup.sh"
T=$(command -v /usr/bin/time || true)

measure() { # label, command... → prints "seconds maxrss_kb"
  local out; out=$(mktemp)
  local start end
  start=$(date +%s.%N)
  if [ -n "$T" ]; then /usr/bin/time -f "%M" -o "$out" "$@" > /dev/null; else "$@" > /dev/null; echo 0 > "$out"; fi
  end=$(date +%s.%N)
  echo "$(echo "$end - $start" | bc -l) $(tail -1 "$out")"
  rm -f "$out"
}

declare -a WT WM PT PM
# One unmeasured round of each side first: the first run after a build, or after the machine
# sat idle, pays for memory the VM has not touched lately (see docs/benchmarks.md).
rm -f bench-data/w.db* bench-data/peer.duckdb*
"$W" ingest --db bench-data/w.db --model history-only "$EV" > /dev/null
python3 "$SHARED/bench/peer_duckdb.py" "$EV" load --db bench-data/peer.duckdb > /dev/null
for i in $(seq 1 "$RUNS"); do
  rm -f bench-data/w.db* bench-data/peer.duckdb*
  read -r ti mi < <(measure "$W" ingest --db bench-data/w.db --model history-only "$EV")
  read -r tf _ < <(measure "$W" report flow --period month --format json --db bench-data/w.db)
  read -r tc _ < <(measure "$W" report cohort --stage MQL --period month --format json --db bench-data/w.db)
  read -r ts _ < <(measure "$W" report snapshot --as-of 2030-01-01 --format json --db bench-data/w.db)
  WT+=("$(echo "$ti + $tf + $tc + $ts" | bc -l)"); WM+=("$mi")
  echo "run $i waterfall: ingest ${ti}s (peak ${mi} KB) flow ${tf}s cohort ${tc}s snapshot ${ts}s"
  read -r pl ml < <(measure python3 "$SHARED/bench/peer_duckdb.py" "$EV" load --db bench-data/peer.duckdb)
  read -r pf _ < <(measure python3 "$SHARED/bench/peer_duckdb.py" "$EV" flow --period month --db bench-data/peer.duckdb --reuse)
  read -r pc _ < <(measure python3 "$SHARED/bench/peer_duckdb.py" "$EV" cohort --stage MQL --period month --db bench-data/peer.duckdb --reuse)
  read -r ps _ < <(measure python3 "$SHARED/bench/peer_duckdb.py" "$EV" snapshot --as-of 2030-01-01T00:00:00Z --db bench-data/peer.duckdb --reuse)
  PT+=("$(echo "$pl + $pf + $pc + $ps" | bc -l)"); PM+=("$ml")
  echo "run $i duckdb:    load ${pl}s (peak ${ml} KB) flow ${pf}s cohort ${pc}s snapshot ${ps}s"
done
for r in "flow --period month" "cohort --stage MQL --period month" "snapshot --as-of 2030-01-01T00:00:00Z"; do
  # shellcheck disable=SC2086
  python3 "$SHARED/bench/peer_duckdb.py" "$EV" $r --db bench-data/peer.duckdb --reuse > bench-data/expected.json
  # shellcheck disable=SC2086
  "$W" report $r --format json --db bench-data/w.db > bench-data/actual.json
  python3 "$SHARED/bench/compare_reports.py" bench-data/expected.json bench-data/actual.json | tail -1
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wt=$(median "${WT[@]}"); pt=$(median "${PT[@]}")
echo "median end-to-end: waterfall ${wt}s, duckdb ${pt}s, ratio $(echo "$wt / $pt" | bc -l | cut -c1-5)"
echo "median peak RSS: waterfall ingest $(median "${WM[@]}") KB, duckdb load $(median "${PM[@]}") KB"
