#!/usr/bin/env bash
# Regenerates all code generated from proto/ (the single source of truth for the wire).
#
#   scripts/gen_proto.sh                  Python -> npc_runtime/_proto/ (committed)
#   scripts/gen_proto.sh --cpp-out DIR    also C++ messages + gRPC stubs -> DIR
#   scripts/gen_proto.sh --python-out DIR Python -> DIR instead (tests regenerate into a temp dir
#                                         and compare with the committed files)
#   scripts/gen_proto.sh --no-python      skip Python (with --cpp-out: C++ only)
#
# Python uses the protoc bundled with grpcio-tools (so the output depends only on the pinned
# Python packages, not on the machine). C++ uses the system protoc and grpc_cpp_plugin (Debian
# protobuf-compiler + protobuf-compiler-grpc), because generated C++ must match the installed
# libprotobuf / libgrpc++ headers it is compiled against.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PROTO_DIR="$ROOT/proto"
PY_OUT="$ROOT/npc_runtime/_proto"
CPP_OUT=""
DO_PY=1
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3

while [ $# -gt 0 ]; do
  case "$1" in
    --python-out) PY_OUT="$2"; shift 2 ;;
    --cpp-out) CPP_OUT="$2"; shift 2 ;;
    --no-python) DO_PY=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "gen_proto.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# Paths relative to proto/ so descriptors are named npc_runtime/v1/<file>.proto in every language.
mapfile -t PROTOS < <(cd "$PROTO_DIR" && find npc_runtime -name '*.proto' | LC_ALL=C sort)

if [ "$DO_PY" = 1 ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$PROTO_DIR" && "$PYTHON" -m grpc_tools.protoc -I . \
      --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" "${PROTOS[@]}")
  mkdir -p "$PY_OUT"
  # protoc writes npc_runtime/v1/x_pb2.py importing "from npc_runtime.v1 import ..."; the modules
  # live flat in npc_runtime._proto, so point those imports there.
  for f in "$tmp"/npc_runtime/v1/*.py "$tmp"/npc_runtime/v1/*.pyi; do
    sed -e 's/^from npc_runtime\.v1 import /from npc_runtime._proto import /' "$f" \
      > "$PY_OUT/$(basename "$f")"
  done
  cat > "$PY_OUT/__init__.py" <<'PYEOF'
"""Generated gRPC/protobuf modules for the npc_runtime.v1 wire protocol.

Do not edit: regenerate with scripts/gen_proto.sh from proto/ (tests check they are current).
"""
PYEOF
  echo "[gen_proto] Python -> $PY_OUT"
fi

if [ -n "$CPP_OUT" ]; then
  command -v protoc >/dev/null || { echo "gen_proto.sh: protoc not found (apt install protobuf-compiler)" >&2; exit 1; }
  PLUGIN="$(command -v grpc_cpp_plugin || true)"
  [ -n "$PLUGIN" ] || { echo "gen_proto.sh: grpc_cpp_plugin not found (apt install protobuf-compiler-grpc)" >&2; exit 1; }
  mkdir -p "$CPP_OUT"
  (cd "$PROTO_DIR" && protoc -I . --cpp_out="$CPP_OUT" --grpc_out="$CPP_OUT" \
      --plugin=protoc-gen-grpc="$PLUGIN" "${PROTOS[@]}")
  echo "[gen_proto] C++ -> $CPP_OUT"
fi
