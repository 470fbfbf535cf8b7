#!/usr/bin/env bash
# The paper-scale pipeline on one GPU, each stage for a bounded time: tokenizer (16k), DINOv2-large-shaped
# features (random weights: no download), the paper preset's initial checkpoint, then text-only and multimodal
# training through `accelerate launch` in bf16 with the configs text.yaml and multimodal.yaml (paths and
# max_steps overridden). Prints each stage's wall time and each run's throughput.json; README.md here holds a
# run's figures.
#
#   bash benchmarks/paper_scale/gpu_run.sh TEXT_DIR CAPTIONS_TXT WORK_DIR
#
# TEXT_DIR: BabyLM .train files; CAPTIONS_TXT: Flickr8k-format captions.txt beside images/.
# Environment: DEVICE (cuda), STEPS (300), RUNS (text multimodal text_big; also multimodal_big, and
# multimodal_grouped and multimodal_grouped_big, the pre-packing workaround), BIG_BATCH (64: one GPU with the configs' 64 rows per step;
# a list for several), LAYERS (24, the backbone's), LAUNCH (accelerate launch options; default one process,
# bf16), EXTRA (more babymerge train flags, e.g. a small --batch-size for a CPU check).
set -uo pipefail
TEXT=$1 CAPTIONS=$2 WORK=$3
DEVICE=${DEVICE:-cuda} STEPS=${STEPS:-300} BIG_BATCH=${BIG_BATCH:-64} LAYERS=${LAYERS:-24}
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

throughput() {  # throughput NAME: the run's own throughput.json (whole train() timed, compile included)
  python3 - "$WORK/$1/throughput.json" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
print(f"  {run['words']:,} words, {run['tokens']:,} tokens in {run['seconds']:.1f} s: "
      f"{run['words_per_s']:,.0f} words/s, {run['tokens_per_s']:,.0f} tokens/s, padding {run['padding_fraction']:.2%}, "
      f"{run['achieved_tflops']:.1f} TFLOP/s = {run['achieved_tflops'] / 9.89:.1f}% of 989")
if steady := run.get("steady"):
    print(f"  after the first {steady['after_steps']} steps: {steady['words_per_s']:,.0f} words/s, "
          f"{steady['tokens_per_s']:,.0f} tokens/s, {steady['achieved_tflops']:.1f} TFLOP/s = "
          f"{steady['achieved_tflops'] / 9.89:.1f}% of 989")
print("  settings: " + ", ".join(f"{k} {v}" for k, v in run.get("settings", {}).items()))
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
for run in ${RUNS:-text multimodal text_big}; do
  case $run in
    text) stage text "${TRAIN[@]}" --config "$HERE/text.yaml" --out "$WORK/text" && throughput text ;;
    multimodal) stage multimodal "${TRAIN[@]}" --config "$HERE/multimodal.yaml" --out "$WORK/multimodal" \
      "${MULTIMODAL[@]}" && throughput multimodal ;;
    multimodal_grouped) stage multimodal_grouped "${TRAIN[@]}" --config "$(grouped)" \
      --out "$WORK/multimodal_grouped" "${MULTIMODAL[@]}" && throughput multimodal_grouped ;;
    text_big) for batch in $BIG_BATCH; do
      stage "text_batch$batch" "${TRAIN[@]}" --config "$HERE/text.yaml" --out "$WORK/text_batch$batch" \
        --batch-size "$batch" && throughput "text_batch$batch"; done ;;
    multimodal_big) for batch in $BIG_BATCH; do
      stage "multimodal_batch$batch" "${TRAIN[@]}" --config "$HERE/multimodal.yaml" --out "$WORK/multimodal_batch$batch" \
        "${MULTIMODAL[@]}" --batch-size "$batch" && throughput "multimodal_batch$batch"; done ;;
    multimodal_grouped_big) for batch in $BIG_BATCH; do
      stage "multimodal_grouped_batch$batch" "${TRAIN[@]}" --config "$(grouped)" \
        --out "$WORK/multimodal_grouped_batch$batch" "${MULTIMODAL[@]}" --batch-size "$batch" \
        && throughput "multimodal_grouped_batch$batch"; done ;;
  esac
done
true
