#!/usr/bin/env python3
"""Runs the workspace's test binaries side by side (make test).

`cargo test` runs one test binary after another; most of ours wait on real
Envoys, TLS handshakes and timers rather than on the CPU, so running a few
binaries at once shortens `make test` without changing any test. This
builds every test binary once (`cargo test --no-run`), then runs them
JOBS at a time, each in its package's directory as cargo would, and prints
each binary's whole output when it ends (never interleaved), so the
`test result:` lines `.ci/run` counts are all there. Doc tests run last.

Usage: run-tests.py [--jobs N] [--native NAME,...] -- CARGO_TEST_ARGS...
  --native: e2e test binaries to run a second time with
            JWT_SCOPES_FILTER=native (the filter's other build).
Exit status 1 when any binary fails (each failure is listed at the end).
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def build(cargo, args):
    """Builds the test binaries; returns (name, executable, directory)."""
    command = [cargo, "test", *args, "--no-run", "--message-format=json-render-diagnostics"]
    process = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if process.returncode != 0:
        sys.exit(f"run-tests: `{' '.join(command)}` failed")
    binaries = []
    for line in process.stdout.splitlines():
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if message.get("reason") != "compiler-artifact" or not message.get("executable"):
            continue
        if not message.get("profile", {}).get("test"):
            continue
        target = message["target"]
        package = os.path.dirname(message["manifest_path"])
        name = f"{os.path.basename(package)}::{target['name']}"
        binaries.append((name, target["name"], message["executable"], package))
    return binaries


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--native", default="")
    parser.add_argument("cargo_args", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    args = [a for a in options.cargo_args if a != "--"]
    cargo = os.environ.get("CARGO", "cargo")
    native = {n for n in options.native.split(",") if n}

    jobs = []
    found = set()
    for name, target, executable, directory in build(cargo, args):
        jobs.append((name, executable, directory, {}))
        if target in native and os.path.basename(directory) == "tests":
            found.add(target)
            jobs.append((f"{name} (JWT_SCOPES_FILTER=native)", executable, directory, {"JWT_SCOPES_FILTER": "native"}))
    missing = native - found
    if missing:
        sys.exit(f"run-tests: no test binary named {', '.join(sorted(missing))}")
    # The integration tests (real Envoys, seconds each) first, so the quick
    # unit tests fill in around them.
    jobs.sort(key=lambda job: os.path.basename(job[2]) != "tests")

    lock = threading.Lock()
    results = []

    def run(job):
        name, executable, directory, extra = job
        env = dict(os.environ, **extra)
        started = time.monotonic()
        process = subprocess.run(
            [executable], cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
        )
        seconds = time.monotonic() - started
        with lock:
            print(f"\n=== {name}: {'ok' if process.returncode == 0 else 'FAILED'} in {seconds:.1f}s", flush=True)
            sys.stdout.write(process.stdout.decode("utf-8", "replace"))
            sys.stdout.flush()
            results.append((name, process.returncode, seconds))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        list(pool.map(run, jobs))
    doc = subprocess.run([cargo, "test", *args, "--doc"], check=False)
    elapsed = time.monotonic() - started

    failed = [(name, code) for name, code, _ in results if code != 0]
    print(f"\nrun-tests: {len(results)} test binaries, {options.jobs} at a time, and the doc tests: {elapsed:.0f}s")
    for name, _, seconds in sorted(results, key=lambda r: -r[2])[:5]:
        print(f"  slowest: {name} {seconds:.1f}s")
    for name, code in failed:
        print(f"  FAILED: {name} (exit status {code})")
    if doc.returncode != 0:
        print("  FAILED: the doc tests")
    sys.exit(1 if failed or doc.returncode != 0 else 0)


if __name__ == "__main__":
    main()
