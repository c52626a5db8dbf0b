#!/usr/bin/env bash
# Prepares the scriptable test softphone (idempotent): PJSUA2 from PyPI (`pjsua2-python`,
# prebuilt pjproject bindings) in a private virtual environment, .venv-peers. The tests
# use it as an agent that consults a colleague and completes an attended transfer (REFER
# with Replaces), which baresip 1.0 cannot do.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-peers
if ! "$venv/bin/python" -c 'import pjsua2' >/dev/null 2>&1; then
  echo "peers: preparing $venv (pjsua2-python)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'pjsua2-python==2.15.1'
  "$venv/bin/python" -c 'import pjsua2' ||
    { echo "peers: $venv is incomplete (pip failed?); remove it and run again" >&2; exit 1; }
fi
echo "peers: ok (pjsua2-python $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pjsua2-python"))'))"
