#!/usr/bin/env bash
# The GPU check of the training-throughput work, prepared for a lent GPU machine: the speed settings side by
# side at the paper preset (speed_settings.py, one run after another, each row printed as it ends; up to 8
# min, torch.compile compiling each compiled setting), then the paper configs through the
# Trainer on one GPU at 64 rows per step, the configs' own (gpu_run.sh: text.yaml and multimodal.yaml, packed,
# compiled; capped at 7.5 min), then their projection (cost.py reading each run's throughput.json). Everything it
# prints also lands in OUT_DIR.
#
#   bash benchmarks/paper_scale/gpu_check.sh [TEXT_DIR CAPTIONS_TXT OUT_DIR]
#
# Defaults: .gpu_data/text (the five BabyLM train_600k .train files), .gpu_data/flickr8k_1k/captions.txt and
# $OUT (the device tool's folder) or /tmp/gpu_check. Made here once, in the repository root, ignored by git:
#   mkdir -p .gpu_data/text && cp ../shared/data/babylm_text/train_600k/{bnc_spoken,childes,gutenberg,open_subtitles,simple_wiki}.train .gpu_data/text/
#   cp -r ../shared/data/flickr8k_1k .gpu_data/ && echo /.gpu_data/ >> .git/info/exclude
# and .whl/ with the wheels the machine lacks (transformers 5.24.0, pydantic 2.12.5, pydantic-core 2.41.5,
# annotated-types, typing-inspection; device README). Device calls, each within one call's 10 minutes:
# `PARTS=speed bash benchmarks/paper_scale/gpu_check.sh`, then `PARTS=trainer bash ...`, carry [".whl", ".gpu_data"].
# Environment: PARTS (speed trainer), STEPS (Trainer steps per run, 600: torch.compile's first steps are timed
# too), SPEED_STEPS (40).
set -uo pipefail
cd "$(dirname "$0")/../.."
TEXT=${1:-.gpu_data/text} CAPTIONS=${2:-.gpu_data/flickr8k_1k/captions.txt} RESULTS=${3:-${OUT:-/tmp/gpu_check}}
mkdir -p "$RESULTS"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
{
  date -u +"start %FT%TZ"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
} 2>&1 | tee "$RESULTS/machine.txt"
for part in ${PARTS:-speed trainer}; do
  case $part in
    speed) timeout 480 python3 benchmarks/paper_scale/speed_settings.py --device cuda --preset paper --sequential \
      --batch-size 32 --steps "${SPEED_STEPS:-40}" --warmup 8 --threads 8 --peak-tflops 989 \
      --settings attn=sdpa,fused attn=sdpa,fused,compile attn=flex_attention,fused,compile \
      attn=flash_attention_2,fused,compile attn=sdpa,fused,compile,batch=2x \
      2>"$RESULTS/speed_settings.log" | tee "$RESULTS/speed_settings.txt" ;;
    trainer) rm -rf /tmp/gpu_work  # fresh runs: a warm machine's earlier ones would resume
      # milestones at 1B words: no checkpoint writes inside the timed steps
      RUNS="text_big multimodal_big" BIG_BATCH=64 STEPS=${STEPS:-600} EXTRA="--milestone-unit 1000000000" \
        timeout 450 bash benchmarks/paper_scale/gpu_run.sh "$TEXT" "$CAPTIONS" /tmp/gpu_work 2>&1 \
        | tee "$RESULTS/gpu_run.txt"
      runs=()
      for run in text_batch64 multimodal_batch64; do
        if [ -f "/tmp/gpu_work/$run/throughput.json" ]; then
          cp "/tmp/gpu_work/$run/throughput.json" "$RESULTS/${run}_throughput.json" && runs+=(--run "/tmp/gpu_work/$run")
        else
          echo "$run: no throughput.json (see gpu_run.txt)"
        fi
      done
      [ ${#runs[@]} -gt 0 ] && python3 benchmarks/paper_scale/cost.py "${runs[@]}" --gpu-peak-tflops 989 2>&1 \
        | tee "$RESULTS/cost.txt" ;;
  esac
done
date -u +"end %FT%TZ" | tee -a "$RESULTS/machine.txt"
