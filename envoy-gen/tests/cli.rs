//! The CLI from the outside: the real binary, exact error output (with
//! file, line, column and a caret), and nothing written on failure.
//! Cases are `tests/cases/err_*.yaml` with the expected stderr beside them
//! (`UPDATE_GOLDEN=1` rewrites those).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn envoy_gen(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn cases_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases"))
}

#[test]
fn error_cases_report_every_problem_with_its_location() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut names: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("err_") && n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 7);
    for name in names {
        let out = envoy_gen(&["frontend", "--spec", &name], cases_dir());
        assert_eq!(out.status.code(), Some(1), "{name} should fail");
        assert!(out.stdout.is_empty(), "{name} printed a configuration");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let expected_path = cases_dir().join(name.replace(".yaml", ".stderr"));
        if update {
            std::fs::write(&expected_path, &stderr).unwrap();
        } else {
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            assert_eq!(stderr, expected, "{name}");
        }
    }
}

#[test]
fn flag_errors_name_the_flag() {
    let out = envoy_gen(
        &[
            "frontend",
            "--region",
            "us-west-2",
            "--no-oauth",
            "--service",
            "app1=bad_host",
            "--service",
            "app2",
            "--listen",
            "1.2.3.4",
            "--issuer",
            "https://x.example.com",
        ],
        cases_dir(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: --listen: `1.2.3.4` is not ADDR:PORT\n\
         error: --service: `bad_host` is not a DNS name\n\
         error: --service: service `app2` has no host: give `host` or a `domain`\n\
         error: --issuer: makes no sense without OAuth (--no-oauth or `oauth: false`)\n\
         error: 4 problems; nothing was written\n"
    );
}

#[test]
fn nothing_is_written_when_rendering_fails() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("envoy.yaml");
    std::fs::write(&target, "previous contents\n").unwrap();
    let spec = cases_dir().join("err_many_problems.yaml");
    let out = envoy_gen(
        &[
            "frontend",
            "--spec",
            spec.to_str().unwrap(),
            "-o",
            target.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "previous contents\n");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "a temporary file was left behind"
    );
}

#[test]
fn flags_alone_render_the_reference_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("envoy.yaml");
    let out = envoy_gen(
        &[
            "frontend",
            "--issuer",
            "https://dev-1.okta.com/oauth2/default",
            "--jwks-uri",
            "https://dev-1.okta.com/oauth2/default/v1/keys",
            "--audience",
            "api://default",
            "--domain",
            "example.internal",
            "--region",
            "us-west-2",
            "-o",
            target.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o644);
    let text = std::fs::read_to_string(&target).unwrap();
    for expected in [
        "host_rewrite_literal: \"app1.example.internal\"",
        "path_separated_prefix: \"/app2\"",
        "path_separated_prefix: \"/app3\"",
        "issuer: \"https://dev-1.okta.com/oauth2/default\"",
        "audiences: [\"api://default\"]",
        "region: \"us-west-2\"",
    ] {
        assert!(text.contains(expected), "missing {expected}");
    }
    // The default credential chain (for ECS/EC2) unless --credentials env.
    assert!(!text.contains("environment_credential_provider"));
}

#[test]
fn spec_values_cannot_inject_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let out = envoy_gen(
        &[
            "frontend",
            "--region",
            "us-west-2",
            "--domain",
            "example.internal",
            "--no-oauth",
            "--wasm",
            "/x.wasm\"\n  admin: {evil: true}\n#",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(r#"filename: "/x.wasm\"\n  admin: {evil: true}\n#""#),
        "{text}"
    );
}
