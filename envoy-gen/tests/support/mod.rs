//! What the tests that run the image's entrypoint share.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `deploy/entrypoint.sh` run with `environment` and `true` for Envoy,
/// rendering into `run`, under bash (the script's interpreter: the image
/// runs it through its `#!/bin/bash`), with this build's envoy-gen.
pub fn entrypoint(environment: &BTreeMap<String, String>, run: &Path, envoy_gen: &str) -> Output {
    let mut env = environment.clone();
    env.insert("ENVOY_RUN_DIR".into(), run.display().to_string());
    env.insert("ENVOY_BIN".into(), "true".into());
    env.insert("ENVOY_GEN_BIN".into(), envoy_gen.into());
    env.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
    Command::new("bash")
        .arg(root().join("deploy/entrypoint.sh"))
        .env_clear()
        .envs(&env)
        .output()
        .unwrap()
}
