#!/usr/bin/env bash
# GPU probes (device side): text-only runs of one round side by side on one GPU; each final checkpoint, its log
# and loss.jsonl are tarred to $OUT. Run as: ROUND=N bash .gpudata/probe.sh (carry .gpudata).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpudata/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.is_available())"
python3 .gpudata/probe_inits.py ${ROUND:-2} 2>&1 | grep -v Loading || exit 1
mkdir -p /tmp/logs
start=$(date +%s)
for p in .gpudata/probes/*.yaml; do
  n=$(basename $p .yaml)
  ( timeout ${PROBE_LIMIT:-420} python3 -m babymerge train --config $p > /tmp/logs/$n.log 2>&1; echo "$n rc=$? $(( $(date +%s) - start )) s" ) &
done
wait
for p in .gpudata/probes/*.yaml; do
  n=$(basename $p .yaml)
  grep -E "train_runtime|words seen|Error|error" /tmp/logs/$n.log | tail -3
  mkdir -p /tmp/pack/$n && cp /tmp/logs/$n.log /tmp/pack/$n/ && last=$(ls -d /tmp/runs/$n/checkpoints/final 2>/dev/null || ls -td /tmp/runs/$n/checkpoints/*/ 2>/dev/null | head -1); [ -n "$last" ] && cp -r $last /tmp/pack/$n/
  cp /tmp/runs/$n/loss.jsonl /tmp/pack/$n/ 2>/dev/null
  tar -C /tmp/pack -cf $OUT/$n.tar $n
done
ls -la $OUT
