#!/usr/bin/env bash
# The full test command (README, CI): installs what is missing, then runs every test that is not
# marked slow. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -m "not slow" -q "$@"
