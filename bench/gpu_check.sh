#!/usr/bin/env bash
# The GPU checks of issue #4, as one script for a lent GPU machine (the `device` tool): the model stage
# on CUDA (target <= 3 s), fp16-on-CUDA against fp32-on-CPU agreement, `sins analyze --device cuda`
# end to end (median of 3) and the sample case on CUDA. Results go to $OUT (default bench/results/gpu).
#
# The machine has PyTorch with CUDA but not all of our dependencies and no network. Prepare, here:
#   echo /.devcarry/ >> .git/info/exclude; mkdir -p .devcarry
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .devcarry monai==1.6.1 nibabel==5.4.2 connected-components-3d==4.1.1 simpleitk==2.5.7
#   (SimpleITK's wheel is 53 MB: unpack it and carry it as .devcarry/sitk.tar.xz, 29 MB, instead)
# and run there: bash bench/gpu_check.sh   (carry: .devcarry; QUICK=1 for the model stage alone)
set -u
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .devcarry ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .devcarry/*.whl || exit 1
    [ -f .devcarry/sitk.tar.xz ] && tar xJf .devcarry/sitk.tar.xz -C /tmp/site
    export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, monai, SimpleITK, cc3d, nibabel; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'monai', monai.__version__)" || exit 1
CT=/tmp/ct_512x512x400.nii.gz
if [ "${QUICK:-0}" = 1 ]; then  # a re-check of the model stage only: no batch sweep, no end-to-end runs
    python3 bench/model_stage_speed.py --device cuda --ct "$CT" --repeats 3 --compare-cpu \
        --out "$OUT/model_stage_cuda.json" 2>&1 | tail -n 60
else
    python3 bench/model_stage_speed.py --device cuda --ct "$CT" --repeats 5 --sw-batch 2 4 32 --compare-cpu \
        --out "$OUT/model_stage_cuda.json" 2>&1 | tail -n 60
    python3 bench/analyze_speed.py --device cuda --ct "$CT" --repeats 3 --out "$OUT/analyze_speed_cuda.json" 2>&1 | tail -n 8
fi
python3 -m pipeline.cli analyze sample_cases/unstable_T12_lytic_collapse/ct.nii.gz --pain mechanical --device cuda \
    --out /tmp/unstable_T12_cuda 2>&1 | tail -n 5
cp /tmp/unstable_T12_cuda/sins.json "$OUT/unstable_T12_cuda_sins.json" 2>/dev/null
python3 -m pytest -q -p no:cacheprovider tests/test_model.py 2>&1 | tail -n 5
