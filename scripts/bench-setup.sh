# Shared by the bench scripts (sourced, not run): builds the release binary into $W and
# generates the events for ACCOUNTS (argument 1) into $EV, once, under bench-data/.
# Sets ACCOUNTS, RUNS (argument 2), SHARED, W, EV and EVENTS (the number of lines).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ACCOUNTS="${1:-10000}"; RUNS="${2:-3}"
SHARED="${SHARED:-../shared}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/waterfall-target}"
cargo build --release --quiet
W="$CARGO_TARGET_DIR/release/waterfall"
mkdir -p bench-data
EV="bench-data/events-$ACCOUNTS.jsonl"
[ -s "$EV" ] || python3 "$SHARED/bench/gen_events.py" --accounts "$ACCOUNTS" --seed 7 > "$EV"
EVENTS=$(wc -l < "$EV")
echo "events: $EVENTS lines, $(du -h "$EV" | cut -f1)"
