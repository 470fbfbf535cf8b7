#!/usr/bin/env bash
# The paper-scale pipeline on one GPU, each stage for a bounded time: tokenizer (16k), DINOv2-large-shaped
# features (random weights: no download), the paper preset's initial checkpoint, then text-only and multimodal
# training through `accelerate launch` in bf16 with the configs text.yaml and multimodal.yaml (paths and
# max_steps overridden). Prints each stage's wall time and the trainer's measured throughput; README.md here
# holds a run's figures.
#
#   bash benchmarks/paper_scale/gpu_run.sh TEXT_DIR CAPTIONS_TXT WORK_DIR
#
# TEXT_DIR: BabyLM .train files; CAPTIONS_TXT: Flickr8k-format captions.txt beside images/.
# Environment: DEVICE (cuda), STEPS (300), RUNS (text multimodal multimodal_grouped text_big;
# also multimodal_grouped_big), BIG_BATCH (128; a list for several), LAYERS (24, the backbone's), LAUNCH (accelerate
# launch options; default one process, bf16), EXTRA (more
# babymerge train flags, e.g. a small --batch-size for a CPU check).
set -uo pipefail
TEXT=$1 CAPTIONS=$2 WORK=$3
DEVICE=${DEVICE:-cuda} STEPS=${STEPS:-300} BIG_BATCH=${BIG_BATCH:-128} LAYERS=${LAYERS:-24}
LAUNCH=${LAUNCH:---num_processes 1 --num_machines 1 --mixed_precision bf16 --dynamo_backend no}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$WORK"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

stage() {  # stage NAME command...: runs it, logs to WORK/NAME.log, prints its wall time and exit status
  local name=$1; shift
  local start=$(date +%s.%N)
  "$@" >"$WORK/$name.log" 2>&1
  local rc=$?
  awk -v n="$name" -v s="$start" -v e="$(date +%s.%N)" -v r="$rc" 'BEGIN { printf "%-22s %8.1f s  rc=%d\n", n, e - s, r }'
  [ $rc -eq 0 ] || tail -n 25 "$WORK/$name.log"
  return $rc
}

throughput() {  # throughput NAME BATCH: steps/s and words/s from the trainer's own log lines
  python3 - "$WORK/$1.log" "$2" <<'EOF'
import ast, re, sys
log, batch = open(sys.argv[1]).read(), int(sys.argv[2])
metrics = [ast.literal_eval(m) for m in re.findall(r"\{'train_runtime'.*?\}", log)][-1]
words = int(re.findall(r"checkpoints/final \((\d+) words seen\)", log)[-1])
runtime = float(metrics["train_runtime"])
steps = float(metrics["train_steps_per_second"]) * runtime
print(f"  {steps:.0f} steps of {batch} rows, {words:,} words in {runtime:.1f} s (trainer): "
      f"{steps / runtime:.2f} steps/s, {words / runtime:,.0f} words/s, train loss {metrics['train_loss']}")
EOF
}

bm() { python3 -m babymerge "$@"; }
TRAIN=(python3 -m accelerate.commands.launch $LAUNCH -m babymerge train --device "$DEVICE" --max-steps "$STEPS" --logging-steps 50
       --init "$WORK/init" --text "$TEXT" --no-progress ${EXTRA:-})

stage tokenizer bm tokenizer "$TEXT" --out "$WORK/tokenizer" --vocab-size 16000 --no-progress || exit 1
stage backbone python3 "$HERE/random_backbone.py" "$WORK/dinov2-large-random" --layers "$LAYERS" || exit 1
stage features bm features "$CAPTIONS" --out "$WORK/features.safetensors" --backbone "$WORK/dinov2-large-random" \
  --device "$DEVICE" --batch-size 64 --no-progress || exit 1
stage init bm init --tokenizer "$WORK/tokenizer" --features "$WORK/features.safetensors" --preset paper \
  --out "$WORK/init" || exit 1
grouped() {  # the multimodal config with batches of similar lengths (captions apart from 256-token text blocks)
  sed 's/^trainer_args:/trainer_args:\n  train_sampling_strategy: group_by_length/' "$HERE/multimodal.yaml" >"$WORK/multimodal_grouped.yaml"
  echo "$WORK/multimodal_grouped.yaml"
}
MULTIMODAL=(--captions "$CAPTIONS" --features "$WORK/features.safetensors")
for run in ${RUNS:-text multimodal multimodal_grouped text_big}; do
  case $run in
    text) stage text "${TRAIN[@]}" --config "$HERE/text.yaml" --out "$WORK/text" && throughput text 32 ;;
    multimodal) stage multimodal "${TRAIN[@]}" --config "$HERE/multimodal.yaml" --out "$WORK/multimodal" \
      "${MULTIMODAL[@]}" && throughput multimodal 32 ;;
    multimodal_grouped) stage multimodal_grouped "${TRAIN[@]}" --config "$(grouped)" \
      --out "$WORK/multimodal_grouped" "${MULTIMODAL[@]}" && throughput multimodal_grouped 32 ;;
    text_big) for batch in $BIG_BATCH; do
      stage "text_batch$batch" "${TRAIN[@]}" --config "$HERE/text.yaml" --out "$WORK/text_batch$batch" \
        --batch-size "$batch" && throughput "text_batch$batch" "$batch"; done ;;
    multimodal_grouped_big) for batch in $BIG_BATCH; do
      stage "multimodal_grouped_batch$batch" "${TRAIN[@]}" --config "$(grouped)" \
        --out "$WORK/multimodal_grouped_batch$batch" "${MULTIMODAL[@]}" --batch-size "$batch" \
        && throughput "multimodal_grouped_batch$batch" "$batch"; done ;;
  esac
done
true
