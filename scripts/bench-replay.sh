#!/usr/bin/env bash
# Full automation: replay of the generated events under the default model (target 4 of the
# performance issue).
#
#   scripts/bench-replay.sh ACCOUNTS [RUNS]     e.g. 90000 (≈10M events)
#
# Ingests the events of scripts/bench-vs-duckdb.sh (same generator, same seed) once under
# `demand-waterfall` (scores, coupling, timers, matching), then replays that database RUNS
# times from a fresh copy, and prints each run, the median and events per second. Also
# replays the history-only database once under the default model (the model switch: the
# matching facts are rebuilt and every decision is made again).
set -euo pipefail
# shellcheck source=scripts/bench-setup.sh
source "$(dirname "$0")/bench-setup.sh"
rm -f bench-data/replay-base.db* bench-data/replay-hist.db*
"$W" ingest -v --db bench-data/replay-base.db --model demand-waterfall "$EV"
"$W" ingest --db bench-data/replay-hist.db --model history-only "$EV" > /dev/null

run() { # database to copy, replay arguments... → prints seconds
  rm -f bench-data/replay.db*
  cp "$1" bench-data/replay.db
  shift
  local start end
  start=$(date +%s.%N)
  "$W" replay -v --db bench-data/replay.db "$@" >&2
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

declare -a T
for i in $(seq 1 "$RUNS"); do
  t=$(run bench-data/replay-base.db)
  T+=("$t")
  echo "run $i replay (default model): ${t}s, $(echo "$EVENTS / $t" | bc) events/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m=$(median "${T[@]}")
echo "median replay: ${m}s, $(echo "$EVENTS / $m" | bc) events/s"
t=$(run bench-data/replay-hist.db --model demand-waterfall)
echo "model switch (history-only database replayed under the default model): ${t}s, $(echo "$EVENTS / $t" | bc) events/s"
rm -f bench-data/replay*.db*
