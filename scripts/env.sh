# Sourced by the scripts: one shared target directory outside the clone, so the demo and
# the tests build the heavy C/C++ dependencies (RocksDB, librdkafka, Tansu) once per machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ingot/target}"
export CARGO_TERM_PROGRESS_WHEN="${CARGO_TERM_PROGRESS_WHEN:-never}"
[ -f /work/tree-guard.sh ] && . /work/tree-guard.sh
