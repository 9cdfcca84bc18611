#!/bin/sh
# Optimises a wasm module in place with binaryen's wasm-opt (Debian package
# `binaryen`, installed with apt-get when missing). `cargo build` leaves
# jwt_scopes.wasm at 276 KB; wasm-opt -O3 takes it to about 240 KB, the
# size Envoy compiles in every worker's V8 (bench/REPORT.md measures the
# effect on CPU and memory).
#
#   scripts/wasm-opt.sh target/wasm32-wasip1/release/jwt_scopes.wasm
set -eu
module=$1
if ! command -v wasm-opt >/dev/null 2>&1; then
    echo "wasm-opt missing: installing binaryen with apt-get" >&2
    { apt-get update -qq && apt-get install -y -qq binaryen >/dev/null; } || {
        echo "scripts/wasm-opt.sh: could not install binaryen (apt-get install binaryen)" >&2
        exit 1
    }
fi
# The features rustc's wasm32-wasip1 target emits (wasm-opt 108 enables
# none by default and would refuse the module).
wasm-opt --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
    --enable-nontrapping-float-to-int -O3 --strip-debug --strip-producers \
    "$module" -o "$module.opt"
# A new file, not a rewrite: cargo hard-links the module into target/.../deps.
mv "$module.opt" "$module"
