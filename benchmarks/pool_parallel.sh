#!/usr/bin/env bash
# The detector pool (`make pool-all`: 12 datasets of 11 generators) as chains that run side
# by side, one process each: `study` (the default study's three datasets, from its recipes in
# studies/default.toml), vqc, vqb, prev, and the six of benchmarks/pool_generators.sh (vq64
# vq1024 vq16x px128 px64 px256d), each trained then sampled. On a GPU machine with 16 cores
# the pool is made in minutes instead of the sum of its parts. The Makefile's pool targets run
# their chains here (ONLY="vqc prev"); each chain resumes when killed, and a finished
# generator or dataset is kept. SCALE=0.002 is a smoke test (not of `study`).
#
#   IGPT=".venv/bin/igpt-forensics" DEVICE=cuda bash benchmarks/pool_parallel.sh
#
# Logs: $LOGS/NAME.log, one per chain; the last line says how each chain ended.
set -uo pipefail
IGPT=${IGPT:-.venv/bin/igpt-forensics}
DEB=${DEB:-data/debian-photos.tsv}
DEVICE=${DEVICE:-auto}
SCALE=${SCALE:-1}
POOL=${POOL:-runs/pool2}
LOGS=${LOGS:-runs/pool-logs}
PREV_COMMIT=${PREV_COMMIT:-e310765}
ONLY=${ONLY:-}  # chain names to run (space-separated); default all
n() { python3 -c "print(max(2, int($1 * $SCALE)))"; }
resume() { test -f "$1/train_config.json" && echo --resume || true; }
G="$IGPT --threads 1"
mkdir -p "$LOGS"

chain() {  # name command...: run in the background, log, and record how it ended
  local name=$1; shift
  [ -z "$ONLY" ] || [[ " $ONLY " == *" $name "* ]] || return 0
  ( "$@"; echo "chain $name: exit $?" ) > "$LOGS/$name.log" 2>&1 &
}

generate() {  # items out model options...
  local items=$1 out=$2 model=$3; shift 3
  $G generate --model "$model" --n "$(n "$items")" "$@" --device "$DEVICE" --out "$out"
}

pool_gen() {  # name, then its dataset's options: pool_generators.sh for one name
  local name=$1; shift
  ONLY=$name IGPT="$G" DEB=$DEB OUTDIR=$POOL DEVICE=$DEVICE SCALE=$SCALE \
    bash benchmarks/pool_generators.sh &&
    generate 600 "$POOL-data/$name" "$POOL/$name" "$@"
}

vqc() {
  $G train-tokenizer --out runs/vqc-tok --data builtin --codes 128 --channels 32 \
    --steps "$(n 800)" --batch-size 32 --lr 2e-3 --train-patches 20000 \
    --eval-every "$(n 100)" --checkpoint-every "$(n 50)" --seed 2 --device "$DEVICE" \
    $(resume runs/vqc-tok) &&
  $G train-generator --family vq --tokenizer runs/vqc-tok --out runs/vqc-gen --data builtin \
    --size 32 --preset tiny --steps "$(n 1500)" --batch-size 64 --lr 3e-3 --min-lr 1e-4 \
    --warmup "$(n 100)" --train-patches 20000 --eval-patches 256 --eval-every "$(n 250)" \
    --checkpoint-every "$(n 50)" --seed 2 --device "$DEVICE" $(resume runs/vqc-gen) &&
  generate 900 runs/pool/vqc runs/vqc-gen --masks top-half,box,full,recon --seed 7
}

vqb() {
  $G train-tokenizer --out runs/vqb-tok --data "$DEB" --codes 256 --channels 48 \
    --steps "$(n 1000)" --batch-size 32 --lr 2e-3 --train-patches 20000 --seed 1 \
    --device "$DEVICE" $(resume runs/vqb-tok) &&
  $G train-generator --family vq --tokenizer runs/vqb-tok --out runs/vqb-gen --data "$DEB" \
    --preset tiny --steps "$(n 2000)" --batch-size 64 --lr 3e-3 --train-patches 20000 \
    --seed 1 --device "$DEVICE" $(resume runs/vqb-gen) &&
  generate 300 runs/unseen/vqb runs/vqb-gen --masks top-half,box,full,recon --seed 6
}

prev() {  # the bundled pixel-GPT of 2026-11, from git (or a runs/prev-gen copied here)
  if [ ! -f runs/prev-gen/SHA256SUMS ]; then
    mkdir -p runs/prev-gen
    for f in config.json model.safetensors SHA256SUMS; do
      git show "$PREV_COMMIT:igpt_forensics/assets/default-generator/$f" > "runs/prev-gen/$f" \
        || return 1
    done
  fi
  generate 300 runs/unseen/prev runs/prev-gen --masks top-half,box,full --seed 5
}

chain study $G bench --config studies/default.toml --datasets-only
chain vqc vqc
chain vqb vqb
chain prev prev
chain vq64 pool_gen vq64 --masks top-half,box,full,recon --seed 31
chain vq1024 pool_gen vq1024 --masks top-half,box,full,recon --top-p 0.9 --seed 32
chain vq16x pool_gen vq16x --masks top-half,box,full,recon --temperature 0.9 --seed 33
chain px128 pool_gen px128 --masks top-half,box,full --temperature 0.9 --top-k 40 --seed 34
chain px64 pool_gen px64 --masks top-half,box,full --seed 35
chain px256d pool_gen px256d --masks top-half,box,full --top-p 0.9 --seed 36
wait
names=$(for f in "$LOGS"/*.log; do n=$(basename "$f" .log)
  { [ -z "$ONLY" ] || [[ " $ONLY " == *" $n "* ]]; } && echo "$f"; done)
# shellcheck disable=SC2086
tail -qn1 $names
# shellcheck disable=SC2086
! grep -L "exit 0$" $names | grep -q .
