#!/usr/bin/env bash
# The test suite: install build needs, then every crate's tests, the golden tests on the
# shared fixtures (../shared/fixtures or $INGOT_FIXTURES_DIR; skipped with a message when
# absent), and the end-to-end tests against the embedded broker and registry.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. scripts/env.sh
fixtures="${INGOT_FIXTURES_DIR:-$(cd .. && pwd)/shared/fixtures}"
if [ -f "$fixtures/MANIFEST.md" ]; then
  echo "test: shared 3PA fixtures at $fixtures (golden and fixture end-to-end tests run)"
else
  echo "test: shared 3PA fixtures NOT found at $fixtures: the golden and fixture end-to-end"
  echo "      tests pass without checking anything (they print 'skipped'); set INGOT_FIXTURES_DIR"
fi
cargo fmt --all -- --check
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads 2
