#!/usr/bin/env bash
# Sets up and runs every check: formatting, clippy, unit/property tests, and the end-to-end
# tests against real peers (sipp, baresip) on 127.0.0.1. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
