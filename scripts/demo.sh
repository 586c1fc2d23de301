#!/usr/bin/env bash
# The README's main job: install what is missing, then run the sidecar on a default NPC, play a
# dialogue line and some player audio into it, and write out/demo.mp4 (+ report and reference).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/npc-runtime demo --out "${1:-out/demo.mp4}"
