#!/usr/bin/env bash
# The generator pool of the shipped cnn detector (issue 16: diversity of generators is the
# strongest known lever for transfer to generators a detector never saw). Six generators
# beside the bundled two, each of another shape, palette or codebook, on other photos:
#
#   px64    pixel-GPT, 64-color palette, mini, builtin photos
#   px256d  pixel-GPT, 256-color palette, mini, Debian photos
#   px128   pixel-GPT, 128-color palette, tiny, builtin + Debian
#   vq64    VQ: 64 codes, 32x32 -> 8x8, 32 channels; mini GPT; builtin
#   vq1024  VQ: 1024 codes, 64 channels; mini GPT; builtin + Debian
#   vq16x   VQ: 512 codes, 32x32 -> 4x4 (downsample 8), 48 channels; mini GPT; Debian
#
# Each ends as a compact package (export-model --half) under $OUTDIR/NAME. A killed run
# resumes with the same command. Made on one H200 in minutes (make pool-generators
# DEVICE=cuda); on 2 CPU cores it takes hours. SCALE=0.002 is a smoke test of the recipe.
#
#   IGPT=".venv/bin/igpt-forensics" DEB=data/debian-photos.tsv OUTDIR=runs/pool2 \
#       bash benchmarks/pool_generators.sh
set -euo pipefail
IGPT=${IGPT:-.venv/bin/igpt-forensics}
DEB=${DEB:-data/debian-photos.tsv}
O=${OUTDIR:-runs/pool2}
DEVICE=${DEVICE:-auto}
SCALE=${SCALE:-1}
ONLY=${ONLY:-}  # names to make (space-separated); default all
n() { python3 -c "print(max(2, int($1 * $SCALE)))"; }
resume() { test -f "$1/train_config.json" && echo --resume || true; }
want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
done_() { test -f "$O/$1/SHA256SUMS"; }

pixel() {  # name colors preset steps batch seed data...
  local name=$1 colors=$2 preset=$3 steps=$4 batch=$5 seed=$6; shift 6
  want "$name" && ! done_ "$name" || return 0
  $IGPT train-generator --out "$O/runs/$name" "$@" --size 32 --colors "$colors" \
    --preset "$preset" --steps "$(n "$steps")" --batch-size "$batch" --lr 3e-3 --min-lr 1e-4 \
    --warmup "$(n 100)" --train-patches 20000 --eval-every "$(n 500)" --eval-patches 256 \
    --checkpoint-every "$(n 500)" --precision bf16 --seed "$seed" --device "$DEVICE" \
    $(resume "$O/runs/$name")
  $IGPT export-model "$O/runs/$name" "$O/$name" --half
}

vq() {  # name codes downsample channels tok_steps gpt_preset gpt_steps seed data...
  local name=$1 codes=$2 down=$3 ch=$4 tsteps=$5 preset=$6 gsteps=$7 seed=$8; shift 8
  want "$name" && ! done_ "$name" || return 0
  $IGPT train-tokenizer --out "$O/runs/$name-tok" "$@" --codes "$codes" --downsample "$down" \
    --channels "$ch" --steps "$(n "$tsteps")" --batch-size 32 --lr 2e-3 --train-patches 20000 \
    --eval-every "$(n 500)" --checkpoint-every "$(n 500)" --seed "$seed" --device "$DEVICE" \
    $(resume "$O/runs/$name-tok")
  $IGPT train-generator --family vq --tokenizer "$O/runs/$name-tok" --out "$O/runs/$name" "$@" \
    --size 32 --preset "$preset" --steps "$(n "$gsteps")" --batch-size 64 --lr 3e-3 \
    --min-lr 1e-4 --warmup "$(n 100)" --train-patches 20000 --eval-every "$(n 1000)" \
    --eval-patches 256 --checkpoint-every "$(n 1000)" --precision bf16 --seed "$seed" \
    --device "$DEVICE" $(resume "$O/runs/$name")
  $IGPT export-model "$O/runs/$name" "$O/$name" --half
}

pixel px64 64 mini 1500 32 11 --data builtin
vq vq64 64 4 32 1000 mini 2500 21 --data builtin
pixel px256d 256 mini 1500 32 12 --data "$DEB"
vq vq1024 1024 4 64 1200 mini 2500 22 --data builtin --data "$DEB"
pixel px128 128 tiny 2000 64 13 --data builtin --data "$DEB"
vq vq16x 512 8 48 1200 mini 2500 23 --data "$DEB"
echo "pool done: $(ls "$O" | grep -v runs | tr '\n' ' ')"
