#!/bin/bash
# The default demo with two installs of babymerge, alternating old/new twice in fresh folders, one after the other:
#   OLD=/path/to/old-venv/bin/babymerge NEW=.venv/bin/babymerge OUT=/tmp/ab bash benchmarks/demo_before_after.sh
# Prints wall time and load per run; each OUT/<side><round>/stage_seconds.json has the stages.
set -u
: "${OLD:?path of the old install of babymerge}" "${NEW:=babymerge}" "${OUT:=/tmp/ab}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
rm -rf "$OUT" && mkdir -p "$OUT"
for round in 1 2; do
  for side in old new; do
    if [ "$side" = old ]; then B=$OLD; else B=$NEW; fi
    start=$(date +%s.%N)
    (cd "$OUT" && "$B" demo --out "$OUT/$side$round" --no-progress > "$OUT/$side$round.log" 2>&1)
    rc=$?
    end=$(date +%s.%N)
    wall=$(echo "$end - $start" | bc)
    load=$(cut -d " " -f 1-3 /proc/loadavg)
    echo "$side round $round rc=$rc wall=$wall load=$load at $(date -u +%H:%M:%S)"
  done
done
