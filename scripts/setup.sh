#!/usr/bin/env bash
# Installs everything npc_runtime needs on a fresh Debian machine: system packages (espeak-ng for
# the synthetic world's speech, the gRPC/C++ toolchain for the native bridge, Mono for the C#
# bridge tests, ffmpeg for MP4 output), a virtual environment in .venv, and the package itself.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(espeak-ng libespeak-ng-dev ffmpeg cmake g++ pkg-config libgrpc++-dev libprotobuf-dev
              protobuf-compiler protobuf-compiler-grpc mono-mcs mono-runtime)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" 2>/dev/null; then
  # No CUDA here: take the CPU wheel (a loose requirement would pull GBs of CUDA packages).
  # On a GPU machine install your CUDA torch into .venv first; this step is then skipped.
  echo "[setup] installing torch==2.13.0 (CPU)"
  "$VPY" -m pip install -q torch==2.13.0
fi
stamp=.venv/.npc_runtime_installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing npc_runtime and test dependencies"
  "$VPY" -m pip install -q -e '.[test]'
  touch "$stamp"
fi
