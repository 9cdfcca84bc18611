//! Replays every committed fuzz corpus (`fuzz/corpus/<target>/*`) through
//! the check its fuzz target runs (`jwt_scopes_core::fuzzing`), on stable
//! Rust, so `make test` keeps checking what the fuzzers found interesting.
#![allow(clippy::unwrap_used, clippy::panic)]

use jwt_scopes_core::fuzzing::TARGETS;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The entries of `dir`, sorted.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let read = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = read.map(|entry| entry.unwrap().path()).collect();
    paths.sort();
    paths
}

fn stems(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_committed_corpus_passes_its_targets_check() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut checks: Vec<String> = TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    checks.sort();
    assert_eq!(
        stems(&entries(&fuzz.join("fuzz_targets"))),
        checks,
        "fuzz targets and checks"
    );
    assert_eq!(
        stems(&entries(&fuzz.join("corpus"))),
        checks,
        "corpus directories and checks"
    );

    let mut failures = Vec::new();
    for (name, check) in TARGETS {
        let files = entries(&fuzz.join("corpus").join(name));
        assert!(!files.is_empty(), "fuzz/corpus/{name} is empty");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            match catch_unwind(AssertUnwindSafe(|| check(&data))) {
                Ok(Ok(())) => {}
                Ok(Err(violation)) => failures.push(format!("{}: {violation}", file.display())),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("(no message)");
                    failures.push(format!("{}: panicked: {message}", file.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
