#!/usr/bin/env bash
# One call on a lent GPU machine with no network (what the 2026-12-04 evening session ran on
# the H200): rebuild the detector pool side by side (benchmarks/pool_parallel.sh), pack it,
# then leave-one-generator-out trainings (benchmarks/logo_pool.py) until a deadline, and pack
# those. Everything packed lands in $OUT as xz tar pieces of 15 MiB (a transfer limit of 16
# MiB per file); unpack here with: cat pool.tar.xz.* | xz -d | tar -xf -
#
# Needs, copied along: the Debian photos with a list whose root is their folder
# (PHOTOS=runs/gpu/photos/debian-photos.tsv, "# root: ."), as the machine cannot apt-get; and
# runs/prev-gen (make prev-pool's first step) if the checkout there has no git history.
#
#   POOL_LIMIT=380 END=570 OUT=/tmp/out bash benchmarks/device_pool_logo.sh
#
# POOL_LIMIT: seconds for the pool; END: seconds after the start by which trainings stop;
# HELD: the held-out groups to train first; VARIANTS: "name=options" lines for logo_pool.py.
set -u
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
OUT=${OUT:?set OUT to the folder to pack into}
PY=${PY:-python3}
PHOTOS=${PHOTOS:-runs/gpu/photos/debian-photos.tsv}
HELD=${HELD:-t1,px64,px128,px256d,prev,vq16x,vq,vqc,vqb,vq64,vq1024,all}
VARIANTS=${VARIANTS:-"npr=--inputs npr"}
$PY -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/pip.log" 2>&1 ||
  tail -3 "$OUT/pip.log"
[ -d runs/gpu/prev-gen ] && [ ! -d runs/prev-gen ] && cp -r runs/gpu/prev-gen runs/prev-gen
IGPT="$PY -m igpt_forensics" DEB=$PHOTOS DEVICE=cuda LOGS=runs/pool-logs \
  timeout "${POOL_LIMIT:-330}" bash benchmarks/pool_parallel.sh
echo "pool: exit $? at $(el) s"
DS="studies/runs/default-study/t1 studies/runs/default-study/topp09
studies/runs/default-study/vq runs/pool/vqc runs/unseen/prev runs/unseen/vqb
runs/pool2-data/px64 runs/pool2-data/px128 runs/pool2-data/px256d runs/pool2-data/vq64
runs/pool2-data/vq1024 runs/pool2-data/vq16x"
: > runs/logo-pool.txt
for d in $DS; do  # the finished datasets only
  [ -f "$d/dataset.json" ] && echo "$(basename "$d") $d" >> runs/logo-pool.txt
done
# shellcheck disable=SC2046
tar -cf - $(cut -d' ' -f2 runs/logo-pool.txt) runs/pool-logs runs/logo-pool.txt |
  xz -T8 -3 | split -b 15M -d -a 1 - "$OUT/pool.tar.xz."
echo "pool packed at $(el) s: $(wc -l < runs/logo-pool.txt) datasets"
LEFT=$(( ${END:-545} - $(el) ))
if [ "$LEFT" -gt 100 ]; then
  groups=$($PY -c "import sys; sys.path.insert(0, 'benchmarks'); from logo_pool import *
gs = groups(read_pool(__import__('pathlib').Path('runs/logo-pool.txt')))
print(','.join(h for h in '$HELD'.split(',') if h in gs or h == 'all'))")
  args=()
  while IFS= read -r v; do [ -n "$v" ] && args+=(--variant "$v"); done <<< "$VARIANTS"
  $PY benchmarks/logo_pool.py train --pool runs/logo-pool.txt --out runs/logo --jobs 16 \
    --device cuda --deadline "$LEFT" --held "$groups" "${args[@]}"
fi
echo "trained at $(el) s"
tar -cf - runs/logo | xz -T16 -1 | split -b 15M -d -a 1 - "$OUT/logo.tar.xz."
ls -la "$OUT"
echo "done at $(el) s"
