#!/usr/bin/env bash
# Installs what building and testing ingot needs, idempotently, on a fresh Debian machine:
# libclang (bindgen for RocksDB), a C/C++ toolchain and make (RocksDB, librdkafka), and
# for the Apache Kafka broker of the suite (scripts/kafka.sh) Java 17+ and Maven; Python 3
# with venv for schemathesis (scripts/schemathesis.sh). The nightly toolchain and
# cargo-fuzz (scripts/fuzz.sh) come from rustup and crates.io, installed by that script.
# The embedded broker and schema registry need no install: ingot embeds them (Tansu, and
# its own Confluent-compatible registry), compiled in by cargo.
set -euo pipefail
need=()
for pkg in libclang-dev build-essential make pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v python3 >/dev/null || need+=(python3)
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}"
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
