#!/usr/bin/env bash
# Installs what voxdesk needs to build, run and test on Debian 12 (idempotent):
#   - a C toolchain (the bundled SQLite is compiled from source),
#   - the real SIP peers the tests drive: sipp (Debian sip-tester) and baresip,
#   - libespeak-ng (phonemes for the Piper text-to-speech voices; linked into voxdesk), and
#     the espeak-ng program (the Mandarin end-to-end test speaks its question with it),
#   - cmake (whisper.cpp, the speech-to-text engine, is compiled from source by whisper-rs),
#   - ALSA headers + pkg-config (`voxdesk talk` uses the microphone and speaker via cpal),
#   - python3-venv (scripts/fetch-models.sh converts the Whisper weights with numpy in a venv).
# The Rust toolchain itself comes from rustup (https://rustup.rs).
set -euo pipefail

need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
dpkg -s libespeak-ng-dev >/dev/null 2>&1 || need+=(libespeak-ng-dev)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s libasound2-dev >/dev/null 2>&1 || need+=(libasound2-dev)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)

if ((${#need[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "setup: installing Debian packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found. Install Rust with rustup first (https://rustup.rs)." >&2
  exit 1
fi
echo "setup: ok ($(cargo --version), $(sipp -v 2>/dev/null | grep -o 'SIPp v[0-9.]*' | head -1), baresip $(baresip -h 2>&1 | head -1 | grep -o 'v[0-9.]*'))"
