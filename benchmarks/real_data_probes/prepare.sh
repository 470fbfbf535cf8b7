#!/usr/bin/env bash
# Builds .gpudata/ (git-ignored) for one round of GPU probes: BabyLM text copied from ../shared/data (the device
# sees only the checkout), wheels the device lacks, the study's init and features, the round's configs.
#
#   bash benchmarks/real_data_probes/prepare.sh ROUND STUDY_OUT     # from the repository root
#
# STUDY_OUT: a real-data study's output folder (its init/ and features.safetensors; the probes used
# /work/study15/out). Rounds 1 and 2 ran at commit 1946206, round 3 at 5674227, from earlier drafts of these
# scripts (same configs and initialisations). Round 1 trains its 2,000 / 8,000 vocabularies here; rounds 2 and 3
# switch the prefix space on in the study init's tokenizer (vocabulary unchanged), and round 3 also uses it as is.
# The configs set block_start: anywhere, the packing of that time (blocks open at sentence starts since da83d11).
set -euo pipefail
ROUND=$1 STUDY=$2 HERE=benchmarks/real_data_probes SHARED=${SHARED:-../shared/data}/babylm_text G=.gpudata
grep -qx "/$G/" .git/info/exclude || echo "/$G/" >>.git/info/exclude
rm -rf $G && mkdir -p $G/text_all $G/text_base $G/probes $G/whl
for f in "$SHARED"/train_600k/*.train; do
  b=$(basename "$f" .train)
  case $b in
    *_dev) cp "$f" "$G/text_all/${b%_dev}_heldout.train" ;;
    *) cp "$f" "$G/text_all/$b.train"; ln -s "../text_all/$b.train" "$G/text_base/$b.train" ;;
  esac
done
cp "$SHARED/train_10M/switchboard.train" $G/text_all/
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d $G/whl \
  transformers==5.24.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
cp "$STUDY/features.safetensors" $G/
cp $HERE/probe_inits.py $HERE/probe.sh $G/ && cp $HERE/round$ROUND/*.yaml $G/probes/
if [ "$ROUND" = 1 ]; then
  cp -r "$STUDY/init" $G/init_v4000
  for v in 2000 8000; do babymerge tokenizer $G/text_base --out $G/tok_v$v --vocab-size $v --no-progress; done
else
  if [ "$ROUND" = 3 ]; then cp -r "$STUDY/init" $G/init_v4000; fi
  cp -r "$STUDY/init" $G/init_ps
  python $HERE/leading_space.py $G/init_ps/tokenizer.json on
fi
du -sh $G
