#!/usr/bin/env bash
# The test suite: install build needs, then every crate's tests, the golden tests on the
# shared fixtures (../shared/fixtures or $INGOT_FIXTURES_DIR; skipped with a message when
# absent), and the end-to-end tests against the embedded broker and registry.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. scripts/env.sh
cargo fmt --all -- --check
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads 2
