#!/usr/bin/env bash
# One prepared run for a lent GPU machine (device tool): install, GPU tests, GPU timing.
#   run(command="bash bench/gpu_check.sh", timeout_s=540)
# Writes its logs under $OUT (or ./gpu_out when OUT is unset).
set -uo pipefail
out="${OUT:-gpu_out}"; mkdir -p "$out"
{
  nvidia-smi -L; python3 -c "import cupy; print('cupy', cupy.__version__, cupy.cuda.runtime.getDeviceCount(), 'device(s)')"
  python3 -m pip install -q --no-deps -e . 2>&1 | tail -2
  python3 -m pytest -q -m gpu -p no:cacheprovider 2>&1 | tail -25
  for dev in cpu gpu; do
    echo "== tinycaffe time cifar10_full, batch 100, device $dev"
    python3 -m tinycaffe.cli time prototxt/cifar10_full.prototxt --iterations 50 --device "$dev" | tail -3
  done
} 2>&1 | tee "$out/gpu_check.log"
