//! `envoy-gen validate FILE`: the real Envoy's opinion of a configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Envoy binary: the flag, $ENVOY_BIN, the project's virtualenv, then PATH.
fn envoy_binary(flag: Option<&Path>) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    if let Some(path) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(".venv/bin/envoy");
    if venv.is_file() {
        return venv;
    }
    PathBuf::from("envoy")
}

pub fn run(file: &Path, envoy: Option<&Path>) -> Result<(), String> {
    if !file.is_file() {
        return Err(format!("error: {}: no such file\n", file.display()));
    }
    let binary = envoy_binary(envoy);
    let output = Command::new(&binary)
        .args(["--mode", "validate", "--log-level", "error", "--config-path"])
        .arg(file)
        // Validation must not look for AWS credentials anywhere real.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .map_err(|e| {
            format!(
                "error: cannot run {}: {e} (install Envoy with `make envoy`, or pass --envoy)\n",
                binary.display()
            )
        })?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Envoy's verdict is its "configuration '<file>' OK" line (it may exit 0
    // after logging a critical error).
    let ok_line = format!("configuration '{}' OK", file.display());
    if output.status.success() && log.lines().any(|l| l.trim() == ok_line) {
        println!("{}: OK (Envoy --mode validate)", file.display());
        Ok(())
    } else {
        Err(format!(
            "error: {}: Envoy refused the configuration:\n{log}",
            file.display()
        ))
    }
}
