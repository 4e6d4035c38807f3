#!/usr/bin/env bash
# Run tinycaffe under emulated ARM (user-mode QEMU) and check it behaves as on x86.
#
#   sudo bash tools/arm_check.sh [aarch64|armv7|all]      (default: all; root needed)
#
# For each architecture it
#   1. installs qemu-user-static, debootstrap and binfmt-support (Debian packages) and
#      registers the architecture with binfmt_misc, mounting binfmt_misc if needed;
#   2. bootstraps a Debian bookworm root (arm64 or armhf) from the mirror this machine's
#      apt sources already use, once: later runs reuse it (ARM_CHECK_ROOTS, default
#      /var/cache/tinycaffe-arm);
#   3. installs tinycaffe from this working tree as a user of that platform would:
#      aarch64: a venv and PyPI's aarch64 wheels (not the dev extra: plyvel has no aarch64
#      wheel and the root has no compiler; its tests skip); armv7: Debian's python3-numpy,
#      python3-lmdb and python3-pil (and python3-numba where Debian has it: PyPI has
#      no armv7l wheels for any of them), then pip for the pure-Python rest,
#      which, without numba, leaves the NumPy kernels;
#   4. runs the checks: machine name, the README's main job (same accuracy and loss as
#      on x86), one batch's blobs against an x86 run (1e-5 relative), tests/layers and
#      tests/kernels (fewer hypothesis examples), the Numba cache (the second start is
#      faster), and that `tinycaffe test` says which kernels ran;
#   5. prints a summary and writes bench/results/arm_<arch>.md.
# Timings under emulation say nothing about a real board's speed.
# Mounts made inside the roots are undone on exit, on Ctrl-C and on failure.
# ARM_CHECK_SETUP_ONLY=1 stops after the install (to prepare the roots ahead of time);
# ARM_CHECK_SUITE=full runs the whole default test suite instead of tests/layers + kernels
# (about 30 minutes under emulation on a 2-core host).
set -uo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
ROOTS="${ARM_CHECK_ROOTS:-/var/cache/tinycaffe-arm}"
SUITE=bookworm
WHAT="${1:-all}"
STEP_LIMIT="${ARM_CHECK_STEP_LIMIT:-5400}"   # seconds any one emulated step may take

case "$WHAT" in
  aarch64) ARCHES=(aarch64) ;;
  armv7) ARCHES=(armv7) ;;
  all) ARCHES=(aarch64 armv7) ;;
  *) echo "usage: $0 [aarch64|armv7|all]" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
  echo "arm_check: needs root (debootstrap, chroot, binfmt_misc)" >&2
  exit 2
fi

MOUNTED=()
cleanup() {
  local i
  for ((i=${#MOUNTED[@]}-1; i>=0; i--)); do
    umount -l "${MOUNTED[$i]}" 2>/dev/null || true
  done
  MOUNTED=()
}
trap cleanup EXIT
trap 'echo "arm_check: interrupted" >&2; exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }

mirror() {
  # The first Debian archive this machine's apt already uses (deb822 or one-line format).
  local uri=""
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    uri=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $2 !~ /^\[/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list)
  fi
  if [ -z "$uri" ]; then
    echo "arm_check: no Debian mirror found in /etc/apt/sources.list{,.d}" >&2
    return 1
  fi
  echo "$uri"
}

host_tools() {
  say "host tools (qemu-user-static, debootstrap, binfmt-support)"
  if ! command -v debootstrap >/dev/null || ! [ -e /usr/bin/qemu-aarch64-static ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      qemu-user-static debootstrap binfmt-support >/dev/null || return 1
  fi
  if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || return 1
  fi
}

register_binfmt() {  # $1: qemu name (qemu-aarch64 / qemu-arm)
  update-binfmts --enable "$1" 2>/dev/null || true
  local entry=/proc/sys/fs/binfmt_misc/$1
  if ! [ -e "$entry" ]; then
    echo "arm_check: binfmt entry $1 missing after update-binfmts" >&2
    return 1
  fi
  # With flag F the kernel opens the interpreter at registration, so the root needs no copy.
  grep -q '^flags:.*F' "$entry" || echo "note: $1 registered without flag F; copying the interpreter into the root"
}

mount_root() {  # $1: root
  local r=$1 d
  for d in proc sys dev dev/pts; do
    mkdir -p "$r/$d"
    mountpoint -q "$r/$d" && continue
    case $d in
      proc) mount -t proc proc "$r/proc" ;;
      sys) mount -t sysfs sys "$r/sys" ;;
      dev) mount --bind /dev "$r/dev" ;;
      dev/pts) mount --bind /dev/pts "$r/dev/pts" ;;
    esac && MOUNTED+=("$r/$d")
  done
}

in_root() {  # $1: root; rest: a shell command run inside it under a time limit
  local r=$1; shift
  timeout "$STEP_LIMIT" chroot "$r" /usr/bin/env -i HOME=/root PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" PIP_CERT=/etc/ssl/certs/host-ca.crt \
    PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/var/cache/numba TINYCAFFE_TEST_SLOW=30 \
    /bin/bash -c "$*"
}

RESULTS=()
record() { RESULTS+=("$1|$2|$3"); printf '   %-28s %-4s %s\n' "$1" "$2" "$3"; }

check_arch() {
  local arch=$1 deb qemu machine
  case $arch in
    aarch64) deb=arm64; qemu=qemu-aarch64; machine=aarch64; QEMU_CPU=cortex-a72 ;;
    armv7) deb=armhf; qemu=qemu-arm; machine=armv7l; QEMU_CPU=cortex-a7 ;;
  esac
  local root="$ROOTS/$arch" t0 setup_s
  RESULTS=()
  t0=$(date +%s)
  register_binfmt "$qemu" || return 1
  if ! grep -q '^flags:.*F' "/proc/sys/fs/binfmt_misc/$qemu"; then
    mkdir -p "$root/usr/bin" && cp "/usr/bin/$qemu-static" "$root/usr/bin/"
  fi
  if ! [ -e "$root/.tinycaffe-bootstrapped" ]; then
    say "$arch: bootstrapping Debian $SUITE ($deb) into $root"
    rm -rf "$root" && mkdir -p "$root"
    debootstrap --arch="$deb" --variant=minbase \
      --include=python3,python3-venv,python3-pip,ca-certificates "$SUITE" "$root" "$(mirror)" \
      >"$ROOTS/$arch-debootstrap.log" 2>&1 || { echo "debootstrap failed: $ROOTS/$arch-debootstrap.log" >&2; return 1; }
    touch "$root/.tinycaffe-bootstrapped"
  else
    say "$arch: reusing $root"
  fi
  mount_root "$root"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca.crt"

  say "$arch: installing tinycaffe from the working tree"
  rm -rf "$root/opt/tinycaffe" && mkdir -p "$root/opt/tinycaffe"
  (cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -C "$root/opt/tinycaffe" -xf -
  local kernels_expected=numba
  if [ "$arch" = aarch64 ]; then
    in_root "$root" '[ -x /opt/venv/bin/python ] || python3 -m venv /opt/venv;
      pip install -q /opt/tinycaffe pytest hypothesis h5py && pip install -q --force-reinstall --no-deps /opt/tinycaffe' \
      >"$ROOTS/$arch-install.log" 2>&1 || { echo "install failed: $ROOTS/$arch-install.log" >&2; return 1; }
  else
    # 32-bit Pi OS users: numpy, lmdb and Pillow from Debian (PyPI has no armv7l wheels), numba too
    # where Debian builds it; pip adds the pure-Python rest.
    in_root "$root" 'export DEBIAN_FRONTEND=noninteractive;
      dpkg -s python3-numpy python3-lmdb python3-pil >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-numpy python3-lmdb python3-pil; };
      dpkg -s python3-numba >/dev/null 2>&1 || apt-get install -y -qq python3-numba || echo "no python3-numba for this architecture";
      [ -x /opt/venv/bin/python ] || python3 -m venv --system-site-packages /opt/venv;
      pip install -q pytest hypothesis && pip install -q /opt/tinycaffe && pip install -q --force-reinstall --no-deps /opt/tinycaffe' \
      >"$ROOTS/$arch-install.log" 2>&1 || { echo "install failed: $ROOTS/$arch-install.log" >&2; return 1; }
  fi
  # What tinycaffe itself will run: it leaves a missing or too-old Numba unused.
  in_root "$root" 'python -c "from tinycaffe.backend import kernel_summary; print(kernel_summary())"' \
    2>/dev/null | grep -q "kernels: numba" || kernels_expected=numpy
  setup_s=$(( $(date +%s) - t0 ))
  if [ -n "${ARM_CHECK_SETUP_ONLY:-}" ]; then
    say "$arch: set up in $setup_s s (ARM_CHECK_SETUP_ONLY: no checks run)"
    cleanup
    return 0
  fi
  local versions
  versions=$(in_root "$root" 'python -c "import sys, numpy; v=[\"python \"+sys.version.split()[0], \"numpy \"+numpy.__version__]
try:
    import numba; v.append(\"numba \"+numba.__version__)
except ImportError:
    v.append(\"numba absent\")
print(\", \".join(v))"' 2>&1 | tail -1)

  say "$arch: checks"
  local got
  got="$(in_root "$root" 'uname -m; python -c "import platform; print(platform.machine())"' 2>&1 | tr '\n' ' ')"
  if [ "$got" = "$machine $machine " ]; then record "machine name" PASS "$got"; else record "machine name" FAIL "$got"; fi

  local job="tinycaffe test prototxt/cifar10_full_sample.prototxt --weights weights/study/full_iter_5000.caffemodel --iterations 10 --quiet"
  local ts1 ts2 out1 out2
  in_root "$root" 'rm -rf /var/cache/numba' >/dev/null 2>&1
  ts1=$(date +%s); out1=$(in_root "$root" "cd /opt/tinycaffe && $job" 2>&1); ts1=$(( $(date +%s) - ts1 ))
  ts2=$(date +%s); out2=$(in_root "$root" "cd /opt/tinycaffe && $job" 2>&1); ts2=$(( $(date +%s) - ts2 ))
  local mine theirs
  mine=$(echo "$out2" | grep -E '^(accuracy|loss) = ' | tr '\n' ' ')
  theirs=$(echo "$HOST_JOB" | grep -E '^(accuracy|loss) = ' | tr '\n' ' ')
  if [ -n "$mine" ] && [ "$mine" = "$theirs" ]; then record "main job = x86" PASS "$mine"
  else record "main job = x86" FAIL "here: ${mine:-$(echo "$out2" | tail -3 | tr '\n' ' ')} x86: $theirs"; fi
  if echo "$out1" | grep -qi "kernels"; then
    record "says which kernels ran" PASS "$(echo "$out1" | grep -i -m1 kernels)"
  else record "says which kernels ran" FAIL "no line naming the kernels"; fi
  if [ "$kernels_expected" = numba ]; then
    if (( ts2 < ts1 )); then record "numba cache" PASS "first run ${ts1} s, second ${ts2} s (emulated)"
    else record "numba cache" FAIL "first run ${ts1} s, second ${ts2} s (emulated)"; fi
  else
    record "numba cache" "n/a" "NumPy kernels (numba absent or too old); main job ${ts2} s (emulated)"
  fi

  cp "$REF_NPZ" "$root/tmp/x86_blobs.npz"
  got=$(in_root "$root" 'cd /opt/tinycaffe && python tools/arm_blobs.py check /tmp/x86_blobs.npz' 2>&1)
  if [ $? = 0 ]; then record "blobs = x86 (1e-5 rel)" PASS "$(echo "$got" | tail -1)"
  else record "blobs = x86 (1e-5 rel)" FAIL "$(echo "$got" | tail -1)"; fi

  local tt=$(date +%s) summary
  local which="tests/layers tests/kernels" label="tests/layers + kernels"
  if [ "${ARM_CHECK_SUITE:-}" = full ]; then which="tests"; label="whole default suite"; fi
  got=$(in_root "$root" "cd /opt/tinycaffe && python -m pytest -q -p no:cacheprovider -o addopts='' -m 'not slow and not gpu and not crosscheck and not cluster' $which" 2>&1)
  local rc=$?
  summary=$(echo "$got" | grep -E '(passed|failed|error)' | tail -1)
  if [ $rc = 0 ]; then record "$label" PASS "$summary in $(( $(date +%s) - tt )) s (emulated)"
  else record "$label" FAIL "${summary:-exit $rc} (log: $ROOTS/$arch-tests.log)"; fi
  echo "$got" >"$ROOTS/$arch-tests.log"

  local report="$REPO/bench/results/arm_$arch.md" r
  {
    echo "# tinycaffe under emulated $arch ($deb, QEMU user mode, QEMU_CPU=$QEMU_CPU)"
    echo
    echo "Written by \`sudo bash tools/arm_check.sh $arch\` on $(date -u '+%Y-%m-%d %H:%M UTC'), host $(uname -m)."
    echo "Emulated timings say nothing about a real board's speed."
    echo
    echo "- root: Debian $SUITE $deb; $versions; kernels expected: $kernels_expected"
    echo "- setup (bootstrap when not cached, install): $setup_s s"
    echo
    echo "| check | result | detail |"
    echo "|---|---|---|"
    for r in "${RESULTS[@]}"; do IFS='|' read -r a b c <<<"$r"; echo "| $a | $b | ${c//|//} |"; done
  } >"$report"
  say "$arch summary (also in ${report#$REPO/})"
  cat "$report"
  cleanup
  for r in "${RESULTS[@]}"; do [[ "$r" == *"|FAIL|"* ]] && return 1; done
  return 0
}

host_tools || { echo "arm_check: could not set up the host tools" >&2; exit 1; }

REF_NPZ=""
if [ -z "${ARM_CHECK_SETUP_ONLY:-}" ]; then
say "x86 reference run on this host"
HOSTPY="$REPO/.venv/bin/python"
if ! [ -x "$HOSTPY" ]; then
  (cd "$REPO" && python3 -m venv .venv && .venv/bin/pip install -q .) || exit 1
fi
HOST_JOB=$(cd "$REPO" && "$REPO/.venv/bin/tinycaffe" test prototxt/cifar10_full_sample.prototxt \
  --weights weights/study/full_iter_5000.caffemodel --iterations 10 --quiet 2>&1)
echo "$HOST_JOB" | grep -E '^(accuracy|loss) = '
REF_NPZ=$(mktemp --suffix=.npz)
(cd "$REPO" && "$HOSTPY" tools/arm_blobs.py dump "$REF_NPZ") || exit 1
fi

status=0
for arch in "${ARCHES[@]}"; do
  check_arch "$arch" || status=1
done
[ -n "$REF_NPZ" ] && rm -f "$REF_NPZ"
exit $status
