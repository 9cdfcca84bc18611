//! `envoy-gen validate` from the outside: a configuration rendered for
//! another host (`tests/validate/for-another-host.yaml` names the filter,
//! a certificate, its key and a CA under /etc/envoy) is checked here with
//! `--map` and the local build of the filter, missing files are named with
//! their field before Envoy runs, and Envoy runs with no credentials and no
//! network. The user's file is never written.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate/for-another-host.yaml")
}

fn validate(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
        .arg("validate")
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A directory standing for the other host's /etc/envoy: a real
/// certificate, its key and a CA (no filter: that is the local build's).
fn etc_envoy(dir: &Path) -> PathBuf {
    let etc = dir.join("etc-envoy");
    std::fs::create_dir_all(etc.join("tls")).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["frontend.example.com".into()]).unwrap();
    std::fs::write(etc.join("tls/frontend.crt"), cert.cert.pem()).unwrap();
    std::fs::write(etc.join("tls/frontend.key"), cert.signing_key.serialize_pem()).unwrap();
    std::fs::write(etc.join("ca.pem"), cert.cert.pem()).unwrap();
    etc
}

/// A stand-in for Envoy that records what it was given (arguments,
/// environment, network interfaces, the configuration) into `dir` and
/// accepts the configuration as Envoy would say it.
fn recording_envoy(dir: &Path) -> PathBuf {
    let script = dir.join("envoy");
    let out = dir.display();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             printf '%s\\n' \"$@\" > {out}/args\n\
             env > {out}/env\n\
             cat /proc/self/net/dev > {out}/net\n\
             for config; do :; done\n\
             cp \"$config\" {out}/config\n\
             echo \"configuration '$config' OK\"\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn a_configuration_for_another_host_is_validated_by_envoy_with_the_local_build() {
    let wasm = root().join("target/wasm32-wasip1/release/jwt_scopes.wasm");
    assert!(wasm.is_file(), "{} is missing: run `make build`", wasm.display());
    let dir = tempfile::tempdir().unwrap();
    let etc = etc_envoy(dir.path());
    let file = dir.path().join("envoy.yaml");
    let original = std::fs::read_to_string(fixture()).unwrap();
    std::fs::write(&file, &original).unwrap();
    let tls_map = format!("/etc/envoy/tls={}", etc.join("tls").display());
    let ca_map = format!("/etc/envoy/ca.pem={}", etc.join("ca.pem").display());
    // From the workspace: the filter is the local build.
    let out = validate(
        &[file.to_str().unwrap(), "--map", &tls_map, "--map", &ca_map],
        &root(),
        &[],
    );
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let f = file.display();
    assert_eq!(
        text(&out.stdout),
        format!(
            "{f}: /etc/envoy/ca.pem read from {ca}\n\
             {f}: /etc/envoy/jwt_scopes.wasm read from {wasm}\n\
             {f}: /etc/envoy/tls/frontend.crt read from {tls}/frontend.crt\n\
             {f}: /etc/envoy/tls/frontend.key read from {tls}/frontend.key\n\
             {f}: OK (Envoy --mode validate)\n",
            ca = etc.join("ca.pem").display(),
            wasm = wasm.display(),
            tls = etc.join("tls").display(),
        )
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);

    // Envoy reads what the maps point at: a CA that is not one is refused,
    // and the refusal names the user's file, not the copy.
    std::fs::write(etc.join("ca.pem"), "not a certificate\n").unwrap();
    let out = validate(
        &[file.to_str().unwrap(), "--map", &tls_map, "--map", &ca_map],
        &root(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: {f}: Envoy refused the configuration:\n")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error initializing configuration '{f}': Failed to load trusted CA certificates from {}",
            etc.join("ca.pem").display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
}

#[test]
fn every_missing_file_is_named_with_its_field_and_envoy_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let etc = etc_envoy(dir.path());
    std::fs::remove_file(etc.join("tls/frontend.key")).unwrap();
    let envoy = recording_envoy(dir.path());
    let file = dir.path().join("envoy.yaml");
    std::fs::copy(fixture(), &file).unwrap();
    // Outside the workspace: no local build of the filter either.
    let map = format!("/etc/envoy={}", etc.display());
    let out = validate(
        &["envoy.yaml", "--map", &map, "--envoy", envoy.to_str().unwrap()],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(!dir.path().join("args").exists(), "Envoy ran");
    let etc = etc.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: envoy.yaml:20:39: static_resources.listeners[frontend].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].private_key.filename: /etc/envoy/tls/frontend.key (read from {etc}/tls/frontend.key): no such file\n   \
             |\n\
             20 |               private_key: {{filename: \"/etc/envoy/tls/frontend.key\"}}\n   \
             |                                       ^\n\
             error: envoy.yaml:42:44: static_resources.listeners[frontend].filter_chains[0].filters[envoy.filters.network.http_connection_manager].typed_config.http_filters[envoy.filters.http.wasm].typed_config.config.vm_config.code.local.filename: /etc/envoy/jwt_scopes.wasm (read from {etc}/jwt_scopes.wasm): no such file\n   \
             |\n\
             42 |                   code: {{local: {{filename: /etc/envoy/jwt_scopes.wasm}}}}\n   \
             |                                            ^\n\
             error: 2 files missing; Envoy was not run: give each with --map FROM=TO (e.g. --map /etc/envoy=./etc-envoy)\n"
        )
    );

    // A directory is not a file.
    let ca_map = format!("/etc/envoy/ca.pem={etc}/tls");
    let out = validate(
        &[
            "envoy.yaml",
            "--map",
            &map,
            "--map",
            &ca_map,
            "--envoy",
            envoy.to_str().unwrap(),
        ],
        dir.path(),
        &[],
    );
    let expected = format!("trusted_ca.filename: /etc/envoy/ca.pem (read from {etc}/tls): not a file\n");
    assert!(text(&out.stderr).contains(&expected), "{}", text(&out.stderr));
    assert!(text(&out.stderr).ends_with(
        "error: 3 files missing; Envoy was not run: give each with --map FROM=TO (e.g. --map /etc/envoy=./etc-envoy)\n"
    ));

    // Without a map, the files are named as written.
    let out = validate(&["envoy.yaml", "--envoy", envoy.to_str().unwrap()], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for expected in [
        "certificate_chain.filename: /etc/envoy/tls/frontend.crt: no such file\n",
        "private_key.filename: /etc/envoy/tls/frontend.key: no such file\n",
        "code.local.filename: /etc/envoy/jwt_scopes.wasm: no such file; envoy-gen reads it from target/wasm32-wasip1/release/jwt_scopes.wasm (`make build`) when run in the workspace\n",
        "trusted_ca.filename: /etc/envoy/ca.pem: no such file\n",
        "error: 4 files missing; Envoy was not run",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in\n{stderr}");
    }
    assert!(!dir.path().join("args").exists(), "Envoy ran");
}

#[test]
fn envoy_checks_a_copy_without_credentials_in_a_network_namespace_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let etc = etc_envoy(dir.path());
    std::fs::write(etc.join("jwt_scopes.wasm"), "\0asm").unwrap();
    let envoy = recording_envoy(dir.path());
    let file = dir.path().join("envoy.yaml");
    let original = std::fs::read_to_string(fixture()).unwrap();
    std::fs::write(&file, &original).unwrap();
    let map = format!("/etc/envoy={}", etc.display());
    let credentials = [
        ("AWS_ACCESS_KEY_ID", "AKIAVALIDATETEST0001"),
        ("AWS_SECRET_ACCESS_KEY", "validate/test/secret"),
        ("AWS_SESSION_TOKEN", "validate-test-token"),
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://169.254.170.2/v2/credentials",
        ),
        ("AWS_PROFILE", "validate-test"),
    ];
    let out = validate(
        &["envoy.yaml", "--map", &map, "--envoy", envoy.to_str().unwrap()],
        dir.path(),
        &credentials,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().last(),
        Some("envoy.yaml: OK (Envoy --mode validate)")
    );

    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let args: Vec<String> = read("args").lines().map(String::from).collect();
    assert_eq!(
        args[..5],
        ["--mode", "validate", "--log-level", "error", "--config-path"]
    );
    // A copy elsewhere, with the mapped paths; the user's file as it was.
    let copy = Path::new(args.last().unwrap());
    assert_ne!(copy.parent(), Some(dir.path()));
    assert_eq!(copy.file_name().unwrap(), "envoy.yaml");
    assert!(!copy.exists(), "the copy is left behind");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    let expected = original
        .replace(
            "{filename: /etc/envoy/tls/frontend.crt}",
            &format!("{{filename: \"{}/tls/frontend.crt\"}}", etc.display()),
        )
        .replace(
            "{filename: \"/etc/envoy/tls/frontend.key\"}",
            &format!("{{filename: \"{}/tls/frontend.key\"}}", etc.display()),
        )
        .replace(
            "{filename: /etc/envoy/jwt_scopes.wasm}",
            &format!("{{filename: \"{}/jwt_scopes.wasm\"}}", etc.display()),
        )
        .replace(
            "{filename: /etc/envoy/ca.pem}",
            &format!("{{filename: \"{}/ca.pem\"}}", etc.display()),
        );
    assert_ne!(expected, original);
    assert_eq!(read("config"), expected);

    // No credentials of any kind, and the metadata address disabled.
    let env = read("env");
    for (name, value) in credentials {
        assert!(
            !env.contains(name) && !env.contains(value),
            "{name} reached Envoy:\n{env}"
        );
    }
    assert!(env.lines().any(|l| l == "AWS_EC2_METADATA_DISABLED=true"), "{env}");
    // Only a loopback interface: nothing Envoy sends leaves the machine.
    let interfaces: Vec<String> = read("net")
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|i| i.trim().to_string()))
        .collect();
    assert_eq!(interfaces, ["lo"]);
}

#[test]
fn without_a_network_namespace_envoy_runs_only_with_allow_dns() {
    let dir = tempfile::tempdir().unwrap();
    let etc = etc_envoy(dir.path());
    std::fs::write(etc.join("jwt_scopes.wasm"), "\0asm").unwrap();
    let envoy = recording_envoy(dir.path());
    std::fs::copy(fixture(), dir.path().join("envoy.yaml")).unwrap();
    let map = format!("/etc/envoy={}", etc.display());
    // No `unshare` on PATH.
    let empty = dir.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let path = [("PATH", empty.to_str().unwrap())];
    let args = ["envoy.yaml", "--map", &map, "--envoy", envoy.to_str().unwrap()];
    let out = validate(&args, dir.path(), &path);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: Envoy cannot have a network namespace of its own here (unshare is not on PATH), and its validation sends DNS queries for the clusters' hosts: run envoy-gen validate as root or where user namespaces are allowed, or pass --allow-dns to let those queries reach the system resolver\n"
    );
    assert!(!dir.path().join("args").exists(), "Envoy ran");

    let mut allowed = args.to_vec();
    allowed.push("--allow-dns");
    let out = validate(&allowed, dir.path(), &path);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("args").exists());
}

#[test]
fn an_envoy_that_is_not_there_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let etc = etc_envoy(dir.path());
    std::fs::write(etc.join("jwt_scopes.wasm"), "\0asm").unwrap();
    std::fs::copy(fixture(), dir.path().join("envoy.yaml")).unwrap();
    let map = format!("/etc/envoy={}", etc.display());
    let out = validate(
        &["envoy.yaml", "--map", &map],
        dir.path(),
        &[("ENVOY_BIN", "/no/such/envoy")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "error: ENVOY_BIN=/no/such/envoy: no such file\n");
    let out = validate(&["missing.yaml"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "error: missing.yaml: no such file\n");
}
