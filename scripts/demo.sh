#!/usr/bin/env bash
# The main job on a fresh machine: install build needs, build, run `ingot demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. scripts/env.sh
cargo build -p ingot --bin ingot
exec "$CARGO_TARGET_DIR/debug/ingot" demo "$@"
