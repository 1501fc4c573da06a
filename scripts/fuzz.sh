#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of ingot's pure decoders: every
# provider's mapping on arbitrary topics and payloads, and the values ingot reads back from
# its own state and topics (stored versions, sealed secrets, dead-letter sources).
#
#   ./scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 30; ./scripts/test.sh runs 20)
#
# Installs what it needs, idempotently: the nightly toolchain (rustup) and cargo-fuzz
# (crates.io). The mappings' corpus is seeded from the shared 3PA fixtures when present
# (../shared/fixtures or $INGOT_FIXTURES_DIR) and kept, growing, in
# ~/.cache/ingot/fuzz/corpus. A crash fails the run and leaves its input in
# fuzz/artifacts/<target>/ (reproduce: cargo +nightly fuzz run <target> <that file>).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
cache="$HOME/.cache/ingot/fuzz"
mkdir -p "$cache"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain (rustup)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz 0.13.2 (crates.io)"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

fixtures="${INGOT_FIXTURES_DIR:-$(cd .. && pwd)/shared/fixtures}"
mkdir -p "$cache/corpus/mappings" "$cache/corpus/stored_values"
if [ -d "$fixtures" ]; then
  # one seed per fixture: <provider index in Provider::ALL> <topic> NUL <payload>
  python3 - "$fixtures" "$cache/corpus/mappings" <<'PY'
import pathlib, re, sys
fixtures, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def topic(provider, stem):
    if provider == "shopify":
        m = re.match(r"webhook_([a-z_]+?)_(create|update|updated|delete)$", stem)
        if m: return f"{m[1]}/{m[2]}"
        m = re.match(r"rest_([a-z]+?)s?_", stem)
        return f"{m[1]}s/rest" if m else ""
    if provider == "woocommerce":
        m = re.match(r"webhook_([a-z_]+)_(created|updated|deleted)$", stem)
        if m: return f"{m[1]}.{m[2]}"
        m = re.match(r"rest_v3_([a-z]+?)s?_", stem)
        return f"{m[1]}.rest" if m else ""
    m = re.match(r"rest_([a-z]+)_", stem)
    return {"salesorder": "salesOrder.rest"}.get(m[1], f"{m[1]}.rest") if m else "salesorder.suiteql"
for index, provider in enumerate(["shopify", "woocommerce", "netsuite"]):
    for f in sorted((fixtures / provider).glob("*.json")):
        seed = bytes([index]) + topic(provider, f.stem).encode() + b"\0" + f.read_bytes()
        (out / f"seed-{provider}-{f.stem}").write_bytes(seed)
PY
  echo "fuzz: mappings corpus seeded from $fixtures"
else
  echo "fuzz: shared fixtures not found at $fixtures: the mappings start from an empty corpus"
fi

target_dir="$HOME/.cache/ingot/fuzz-target"
cd fuzz
# the fuzz targets are a workspace of their own: lint them as the main one is
if ! rustup run nightly cargo clippy --version >/dev/null 2>&1; then
  rustup component add clippy --toolchain nightly
fi
cargo +nightly clippy --target-dir "$target_dir/clippy" --all-targets -q -- -D warnings
echo "fuzz: targets pass clippy"
for target in mappings stored_values; do
  echo "fuzz: $target for ${seconds} s"
  log="$cache/$target.log"
  if ! cargo +nightly fuzz run "$target" "$cache/corpus/$target" --target-dir "$target_dir" \
      -- -max_total_time="$seconds" -print_final_stats=1 -close_fd_mask=1 >"$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz: $target FAILED (input in fuzz/artifacts/$target/)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  corpus=$(ls "$cache/corpus/$target" | wc -l)
  echo "fuzz: $target: ${runs:-?} executions (${rate:-?}/s), ${cov:-cov: ?} edges, corpus ${corpus} inputs, no crash"
done
