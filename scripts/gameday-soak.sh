#!/usr/bin/env bash
# A long game day, scripted through the `brownout gameday` subcommands as a facilitator would type
# them: MINUTES at RATE requests per second, three faults injected and healed by hand (a slow
# payments upstream, a held database lock, the payments upstream down), a note at each. Samples
# the harness's resident memory every 10 s, then checks the report's windows against what was
# injected and that nothing was left behind. Usage: scripts/gameday-soak.sh [MINUTES] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-30}
RATE=${2:-100}
B=target/release/brownout
[ -x "$B" ] || { echo "build first: cargo build --workspace --bins --release" >&2; exit 3; }
command -v python3 >/dev/null || { echo "gameday-soak reads the report with python3: apt-get install python3" >&2; exit 3; }
OUT=reports/gameday-soak/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
export BROWNOUT_REPORTS="$OUT/reports"
# The game day's run dir, mounts and processes live under a TMPDIR of its own, so the leftover
# check below counts only what this game day started, not another run on the same machine.
export TMPDIR="$(cd "$OUT" && pwd)/tmp"
mkdir -p "$TMPDIR"
TOTAL=$((MINUTES * 60))
"$B" gameday scenarios/systems/checkout.toml --load scenarios/slow-upstream.toml \
  --cap "$((MINUTES + 10))m" --max-rate "$RATE" >"$OUT/gameday.log" 2>&1 &
PID=$!
for _ in $(seq 1 60); do [ -f "$BROWNOUT_REPORTS/gameday/session.json" ] && break; sleep 1; done
until "$B" gameday status >/dev/null 2>&1 && "$B" gameday status | grep -q '^running'; do
  kill -0 $PID 2>/dev/null || { echo "the game day died:"; cat "$OUT/gameday.log"; exit 1; }
  sleep 1
done
T0=$(date +%s)
echo "t_s	rss_mb	hwm_mb" >"$OUT/rss.tsv"
( while kill -0 $PID 2>/dev/null; do
    awk -v t=$(( $(date +%s) - T0 )) '/VmRSS/{r=$2} /VmHWM/{h=$2} END{printf "%d\t%.1f\t%.1f\n", t, r/1024, h/1024}' /proc/$PID/status >>"$OUT/rss.tsv" 2>/dev/null || true
    sleep 10
  done ) &
SAMPLER=$!
at() { # wait until second $1 of the game day
  local now=$(( $(date +%s) - T0 )); [ "$now" -lt "$1" ] && sleep $(( $1 - now )); true; }
"$B" gameday rate "$RATE"
"$B" gameday note "soak: $MINUTES min at $RATE/s"
faults=(slow-pay db-lock payments-down)
specs=('{"kind":"proxy","proxy":"payments","toxic":{"kind":"latency","latency":"6s"}}'
       '{"kind":"pool-exhaustion"}'
       '{"kind":"proxy","proxy":"payments","toxic":{"kind":"down"}}')
for i in 0 1 2; do
  at $(( TOTAL * (2 + 3 * i) / 10 ))
  "$B" gameday inject --name "${faults[$i]}" "${specs[$i]}"
  "$B" gameday note "${faults[$i]} injected"
  at $(( TOTAL * (3 + 3 * i) / 10 ))
  "$B" gameday heal "${faults[$i]}"
  "$B" gameday note "${faults[$i]} healed"
done
at "$TOTAL"
"$B" gameday status | tee "$OUT/status-at-end.txt"
"$B" gameday stop
set +e
wait $PID
RC=$?
set -e
kill $SAMPLER 2>/dev/null || true
REPORT=$(ls -d "$BROWNOUT_REPORTS"/gameday-checkout/2*/ | tail -1)
echo "exit $RC; report $REPORT"
python3 - "$REPORT/report.json" "$OUT/rss.tsv" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rss = [l.split("\t") for l in open(sys.argv[2]).read().split("\n")[1:] if l]
print("verdict", r["verdict"], "wall", round(r["wall_time_s"]), "s; max RSS (report)", r["load"]["harness_max_rss_mb"], "MB; max VmHWM sampled", max(float(x[2]) for x in rss) if rss else "-", "MB")
for p in r["phases"]:
    print(f'  {p["name"]:<16} {p["start_ms"]/1000:>7.1f}–{p["end_ms"]/1000:>7.1f} s  sent {p["sent"]:>6}  5xx {p["client_5xx"]:>6}  no answer {p["no_response"]:>5}  p99 {p["latency_ms"]["p99"]} ms')
names = [p["name"] for p in r["phases"]]
want = ["steady", "slow-pay", "steady-2", "db-lock", "steady-3", "payments-down", "steady-4"]
print("windows match the injected faults:", names == want, names)
print("notes:", len(r["notes"]))
PY
sleep 2
LEFT=0
for p in /proc/[0-9]*; do
  case "$(readlink "$p/cwd" 2>/dev/null)" in "$TMPDIR"*) LEFT=$((LEFT + 1)) ;; esac
done
DIRS=$( (ls -d "${TMPDIR:-/tmp}"/brownout-run-* 2>/dev/null || true) | wc -l)
MOUNTS=$( (grep -c brownout-run /proc/mounts || true) )
echo "left behind: $LEFT processes, $DIRS run dirs, $MOUNTS mounts"
