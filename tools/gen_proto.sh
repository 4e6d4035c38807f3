#!/usr/bin/env bash
# Regenerate tinycaffe/proto/caffe_pb2.py from tinycaffe/proto/caffe.proto.
#
#   tools/gen_proto.sh
#
# Why a pinned protoc: the generated module refuses to import under a protobuf
# runtime older than the protoc that wrote it.  tinycaffe supports
# protobuf>=6.30, so the module must be written by protoc 30.x (gencode 6.30.0),
# which ships in grpcio-tools 1.72.x.  The script uses $PROTOC_PYTHON if set
# (an interpreter that has grpcio-tools 1.72.x), else builds a throwaway venv
# with it under ${TMPDIR:-/tmp} (needs PyPI once), so the project's own venv
# keeps whatever protobuf it has.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
want_tools="1.72"

py="${PROTOC_PYTHON:-}"
if [[ -z "$py" ]]; then
  venv="${TMPDIR:-/tmp}/tinycaffe-protoc-${want_tools}"
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "grpcio-tools==${want_tools}.*"
  fi
  py="$venv/bin/python"
fi

have="$("$py" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))')"
if [[ "$have" != ${want_tools}.* ]]; then
  echo "gen_proto.sh: $py has grpcio-tools $have, need ${want_tools}.x" >&2
  exit 1
fi

cd "$root"
"$py" -m grpc_tools.protoc -I tinycaffe/proto --python_out=tinycaffe/proto tinycaffe/proto/caffe.proto
grep -m1 "Protobuf Python Version" tinycaffe/proto/caffe_pb2.py
echo "wrote tinycaffe/proto/caffe_pb2.py"
# Check it imports under the project's own protobuf runtime, when there is one.
if [[ -x .venv/bin/python ]]; then
  .venv/bin/python -W error -c "from tinycaffe.proto import caffe_pb2; print('imports under protobuf', __import__('google.protobuf').protobuf.__version__)"
fi
