#!/usr/bin/env bash
# One prepared run for a lent GPU machine (the device tool): GPU tests and GPU timing.
#
# The device has CuPy, NumPy, Numba, protobuf and hypothesis, but not pytest, lmdb or
# threadpoolctl. Before the run, on the dev machine, in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl pytest pluggy iniconfig packaging lmdb threadpoolctl
# then: run(command="bash bench/gpu_check.sh", carry=[".whl"], timeout_s=540)
# Logs go under $OUT (or ./gpu_out when OUT is unset).
set -uo pipefail
out="${OUT:-gpu_out}"; mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"  # the package from this tree, no build step
{
  nvidia-smi -L
  python3 -c "import cupy; print('cupy', cupy.__version__, cupy.cuda.runtime.getDeviceCount(), 'device(s)')"
  python3 -m pytest -q -m gpu -p no:cacheprovider tests/kernels tests/gpu 2>&1 | tail -25
  for dev in cpu gpu; do
    echo "== tinycaffe time cifar10_full, batch 100, device $dev"
    python3 -m tinycaffe.cli time prototxt/cifar10_full.prototxt --iterations 50 --device "$dev" | tail -3
  done
} 2>&1 | tee "$out/gpu_check.log"
