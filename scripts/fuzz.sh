#!/usr/bin/env bash
# Runs the cargo-fuzz targets (SIP message parser + validator, SDP parser + answerer, digest
# credentials, RTP/RTCP/RFC 4733/jitter buffer, the HTTP API) for a
# while each. cargo-fuzz needs nightly features; with the stable toolchain only,
# RUSTC_BOOTSTRAP=1 enables them. Usage: scripts/fuzz.sh [seconds per target, default 60]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for t in sip_message sdp auth media; do
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- -max_total_time="$secs"
done
# The HTTP API (builds all of voxdesk, whisper.cpp included: minutes the first time).
cd ..
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz-api api -- -max_total_time="$secs"
