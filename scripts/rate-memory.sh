#!/usr/bin/env bash
# The harness's memory against the rate: runs `slow-upstream` (its phases, fault and expectations;
# its load's catalog reads only, which this 2-core machine's stack can serve at 2,000 req/s — its
# checkouts cannot, and then the run measures the rate x timeout requests in flight, not the records)
# at RATE requests per second for SECONDS in all (a fifth baseline, three fifths slow payments, a
# fifth recovery), samples the harness's resident memory every second, and prints one line:
#   rate, seconds, responses recorded, peak RSS (VmHWM), RSS at the end of the load, responses.jsonl size.
# Usage: scripts/rate-memory.sh RATE [SECONDS]   (e.g. 40 300, then 2000 300; compare the two lines)
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:?rate}
SECONDS_ALL=${2:-300}
B=target/release/brownout
[ -x "$B" ] || { echo "build first: cargo build --workspace --bins --release" >&2; exit 3; }
OUT=reports/rate-memory/$(date -u +%Y%m%dT%H%M%SZ)-$RATE
mkdir -p "$OUT/scenarios"
cp -r scenarios/systems scenarios/alerts "$OUT/scenarios/"
fifth=$((SECONDS_ALL / 5))
sed -e "s/^rate = 40$/rate = $RATE/" \
    -e "0,/^for = \"10s\"/s//for = \"${fifth}s\"/" \
    -e "0,/^for = \"20s\"/s//for = \"$((fifth * 3))s\"/" \
    -e "0,/^for = \"20s\"/s//for = \"${fifth}s\"/" \
    -e 's/^name = "slow-upstream"/name = "rate-memory"/' \
    scenarios/slow-upstream.toml |
  python3 -c 'import re,sys; t=sys.stdin.read(); print(re.sub(r"\[\[load\.requests\]\]\nname = \"checkout\".*?(?=\[\[load\.requests\]\])", "", t, flags=re.S))' \
    >"$OUT/scenarios/rate-memory.toml"
grep -q '"checkout"' "$OUT/scenarios/rate-memory.toml" && { echo "could not drop the checkout request" >&2; exit 3; }
grep -q "^rate = $RATE$" "$OUT/scenarios/rate-memory.toml" || { echo "could not set the rate" >&2; exit 3; }
export BROWNOUT_REPORTS="$OUT/reports"
"$B" run "$OUT/scenarios/rate-memory.toml" --scenarios-dir "$OUT/scenarios" >"$OUT/run.log" 2>&1 &
PID=$!
echo "t_s	rss_mb	hwm_mb" >"$OUT/rss.tsv"
T0=$(date +%s)
HWM=0
while kill -0 $PID 2>/dev/null; do
  line=$(awk -v t=$(( $(date +%s) - T0 )) '/VmRSS/{r=$2} /VmHWM/{h=$2} END{if (r) printf "%d\t%.1f\t%.1f\n", t, r/1024, h/1024}' /proc/$PID/status 2>/dev/null || true)
  [ -n "$line" ] && echo "$line" >>"$OUT/rss.tsv" && HWM=$(echo "$line" | cut -f3)
  sleep 1
done
wait $PID || true
report=$(ls -d "$BROWNOUT_REPORTS"/rate-memory/*/ | grep -v latest | tail -1)
n=$(wc -l <"$report/responses.jsonl")
size=$(du -m "$report/responses.jsonl" | cut -f1)
printf 'rate %s/s\t%s s\tresponses %s\tpeak RSS %s MB\tresponses.jsonl %s MB\tout %s\n' "$RATE" "$SECONDS_ALL" "$n" "$HWM" "$size" "$OUT"
