# Shared by the bench scripts (sourced, not run): builds the release binary into $W and
# generates the events for ACCOUNTS (argument 1) into $EV, once, under bench-data/.
# Sets ACCOUNTS, RUNS (argument 2), SHARED, W, EV and EVENTS (the number of lines).
# ORDER (argument 3): `generated` (the generator's order: each account's events together) or
# `time` (the same events sorted by instant, as a CRM export usually is).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ACCOUNTS="${1:-10000}"; RUNS="${2:-3}"; ORDER="${3:-generated}"
SHARED="${SHARED:-../shared}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/waterfall-target}"
cargo build --release --quiet
W="$CARGO_TARGET_DIR/release/waterfall"
mkdir -p bench-data
EV="bench-data/events-$ACCOUNTS.jsonl"
[ -s "$EV" ] || python3 "$SHARED/bench/gen_events.py" --accounts "$ACCOUNTS" --seed 7 > "$EV"
case "$ORDER" in
  generated) ;;
  time)
    SORTED="bench-data/sorted-$ACCOUNTS.jsonl"
    # Stable sort on each line's `"at":"…"` (the same events, in the order of their instants).
    [ -s "$SORTED" ] || python3 -c '
import sys
lines = open(sys.argv[1]).read().splitlines()
def at(line):
    i = line.index("\"at\":\"") + 6
    return line[i:i + 20]
lines.sort(key=at)
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
' "$EV" "$SORTED"
    EV="$SORTED" ;;
  *) echo "ORDER must be generated or time, not $ORDER" >&2; exit 2 ;;
esac
EVENTS=$(wc -l < "$EV")
echo "events: $EVENTS lines, $(du -h "$EV" | cut -f1)"
