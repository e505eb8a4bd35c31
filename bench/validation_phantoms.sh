#!/usr/bin/env bash
# sins validate on N phantoms: the tool (fed the phantoms' truth label maps) against their truth.json.
#   bash bench/validation_phantoms.sh [N] [SEED]   -> bench/results/validation_phantoms/validation.{json,html}
set -euo pipefail
N=${1:-50}
SEED=${2:-1000}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
sins phantom --out "$WORK/phantoms" --n "$N" --seed "$SEED" --quiet
for case in "$WORK"/phantoms/*/; do
  id=$(basename "$case")
  clinical=()
  [ -f "$case/clinical.csv" ] && clinical=(--clinical "$case/clinical.csv")
  sins analyze "$case/ct.nii.gz" --labels "$case/anatomy.nii.gz" --lesions "$case/lesions.nii.gz" \
    --case-id "$id" "${clinical[@]}" --out "$WORK/run/$id" > /dev/null
done
sins validate --auto "$WORK/run" --manual "$WORK/phantoms" --out bench/results/validation_phantoms
