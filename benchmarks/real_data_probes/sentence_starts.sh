#!/usr/bin/env bash
# CPU probe: blocks cut anywhere with a tokenizer that adds no space before a string's first word (babymerge up
# to 7b80aee) against blocks that open at sentence starts with a tokenizer that adds it (the defaults since
# da83d11). Both runs are text-only, 3.0M words seen, one epoch's cosine schedule, one torch thread each, side by
# side, from one real-data study's initial checkpoint; then BLiMP fast with per-item samples, and the accuracy by
# the position of the first token where a pair's two sentences differ.
#
#   bash benchmarks/real_data_probes/sentence_starts.sh STUDY_OUT WORK      # from the repository root
#
# STUDY_OUT: a real-data study's output folder (its init/ and evaluation_data/). WORK: a fresh folder.
set -euo pipefail
STUDY=$(realpath "$1") WORK=$(realpath -m "$2") SHARED=$(realpath "${SHARED:-../shared/data}")/babylm_text/train_600k
mkdir -p "$WORK/text"
for f in "$SHARED"/*.train; do case $f in *_dev.train) ;; *) ln -sfn "$f" "$WORK/text/" ;; esac; done
for variant in anywhere sentence; do
  rm -rf "$WORK/init_$variant" && cp -r "$STUDY/init" "$WORK/init_$variant"
  python "$(dirname "$0")/leading_space.py" "$WORK/init_$variant/tokenizer.json" "$([ $variant = sentence ] && echo on || echo off)"
  # 1.0 epoch of 3.00M words cut anywhere; 0.877 of 3.42M words (heads seen twice) at sentence starts: 3.0M each
  epochs=$([ $variant = anywhere ] && echo 1.0 || echo 0.877)
  cat >"$WORK/$variant.yaml" <<YAML
mode: text
init: $WORK/init_$variant
text: $WORK/text
out: $WORK/run_$variant
block_start: $variant
seed: 0
max_length: 128
epochs: $epochs
batch_size: 32
learning_rate: 0.003
logging_steps: 250
save_steps: 100000
milestone_unit: 1000000
progress: false
cache_dir: $WORK/cache
YAML
  OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 babymerge train --config "$WORK/$variant.yaml" >"$WORK/train_$variant.log" 2>&1 &
done
wait
for variant in anywhere sentence; do
  OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 babymerge eval "$WORK/run_$variant/checkpoints/final" --tasks babylm_blimp_fast \
    --data-dir "$STUDY/evaluation_data" --out "$WORK/eval_$variant" --lm-eval --log_samples >"$WORK/eval_$variant.log" 2>&1 &
done
wait
python "$(dirname "$0")/first_difference.py" "$WORK"
