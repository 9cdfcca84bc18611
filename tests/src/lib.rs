//! Test harness of the integration tests: the tools a user runs
//! (`dev-idp`, `echo-app`, the local stack) re-exported under the names the
//! tests use, and the helpers only tests use (a Lattice stub, a frontend
//! fixture). Everything listens on 127.0.0.1 only.

pub use dev_idp::{http, idp, jwt, tls};
pub use echo_app::{app, echo};
pub use local_stack::{deployment, envoy, frontend, stack};

pub mod fixture;
pub mod lattice_stub;

/// The `dev-idp` binary of this build, beside the test binaries
/// (`target/<profile>/dev-idp`): `cargo test --workspace` builds it with the
/// dev-idp crate's own tests (`make test` does); alone, `cargo build -p dev-idp`.
pub fn dev_idp_binary() -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/<test binary> -> target/<profile>/dev-idp
    let path = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(|profile| profile.join("dev-idp"))
        .ok_or_else(|| format!("{} has no target directory", exe.display()))?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build -p dev-idp` (make test builds it)",
            path.display()
        ))
    }
}
