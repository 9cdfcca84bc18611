#!/usr/bin/env bash
# Runs every fuzz target (the cargo-fuzz projects in filter/core/fuzz,
# envoy-gen/fuzz and lattice-sim/fuzz) for FUZZ_SECONDS each (default 60),
# one at a time, and prints how long each ran clean and how many inputs it
# executed. Needs a nightly toolchain (FUZZ_TOOLCHAIN, default nightly);
# installs cargo-fuzz when it is missing.
#
#   scripts/fuzz.sh                     every target
#   FUZZ_SECONDS=600 scripts/fuzz.sh claims spec    the targets named
#
# The committed seeds (<crate>/fuzz/corpus/<target>) are only read: what a
# run finds goes to target/fuzz-corpus/<crate>/<target>. To keep an input,
# minimise (cargo +nightly fuzz cmin) and copy it into the seed directory;
# `make test` then replays it on stable. A crash stops the script; the input
# is in <crate>/fuzz/artifacts/<target>/, the full log in target/fuzz-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
crates=(filter/core envoy-gen lattice-sim)

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  rustup toolchain install "$toolchain" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

wanted() {
  [ $# -eq 1 ] && return 0
  local target=$1; shift
  for name in "$@"; do [ "$name" = "$target" ] && return 0; done
  return 1
}

root=$PWD
mkdir -p target/fuzz-logs
summary=()
for crate in "${crates[@]}"; do
  for target in $(cd "$crate" && cargo +"$toolchain" fuzz list); do
    wanted "$target" "$@" || continue
    scratch="$root/target/fuzz-corpus/$crate/$target"
    log="$root/target/fuzz-logs/${crate//\//-}-$target.log"
    mkdir -p "$scratch"
    echo "fuzzing $crate: $target for ${seconds}s"
    if ! (cd "$crate" && cargo +"$toolchain" fuzz run "$target" "$scratch" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1) >"$log" 2>&1; then
      tail -n 40 "$log"
      echo "$crate: $target FAILED; input in $crate/fuzz/artifacts/$target/, log in $log" >&2
      exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    ran=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
    summary+=("$(printf '%-12s %-20s %6ss %12s executions, clean' "$crate" "$target" "$ran" "$runs")")
  done
done
printf '%s\n' "${summary[@]}"
