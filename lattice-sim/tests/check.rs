//! `lattice-sim check`: decisions without any network, as a CI step would
//! run them against the example configuration.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn check(args: &[&str]) -> (i32, String) {
    check_with(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo.yaml")),
        args,
    )
}

/// `lattice-sim check --config CONFIG ARGS...`: exit status, stdout then stderr.
fn check_with(config: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lattice-sim"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn allow_names_the_statements() {
    let (code, out) = check(&[
        "--service",
        "app1",
        "--access-key",
        "ASIADEMOFRONTEND0001",
        "--path",
        "/app1/x",
        "--header",
        "x-jwt-scope-test.all: true",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "ALLOW arn:aws:sts::111122223333:assumed-role/frontend/envoy GET /app1/x on app1: network: CallersFromThisAccount; service: FrontendWithTestAll\n");
}

#[test]
fn deny_says_which_policy_and_why() {
    let (code, out) = check(&[
        "--service",
        "app2",
        "--principal",
        "arn:aws:sts::111122223333:assumed-role/frontend/envoy",
        "--path",
        "/app2/admin/users",
        "--header",
        "x-jwt-scope-orders.read:true",
    ]);
    assert_eq!(code, 1, "{out}");
    let arn = lattice_arn(&out);
    assert_eq!(
        out,
        format!("DENY arn:aws:sts::111122223333:assumed-role/frontend/envoy GET /app2/admin/users on app2: service policy, statement NeverAdminPaths denies\nAccessDeniedException: User: arn:aws:sts::111122223333:assumed-role/frontend/envoy is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {arn}/app2/admin/users with an explicit deny in a service-based policy\n")
    );
    let (code, out) = check(&["--service", "app1", "--path", "/", "--expect", "deny"]);
    assert_eq!(code, 0, "--expect deny on a denied request succeeds: {out}");
    assert!(out.contains("because no network-based policy allows"), "{out}");
}

#[test]
fn bad_configuration_is_an_error_not_a_decision() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "region: us-west-2\naccount: \"111122223333\"\nservice_network: {name: n, auth_type: AWS_IAM, policy: {Statement: [{Effect: Allow, Action: '*'}]}}\nservices: [{name: a, host: a.test, auth_type: NONE, target: 'http://127.0.0.1:1'}]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lattice-sim"))
        .args(["check", "--config"])
        .arg(&bad)
        .args(["--service", "a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "error: {}: service_network: malformed policy: Statement[0]: needs Resource or NotResource\n",
            bad.display()
        )
    );
}

/// The service ARN of app2 from a message (its id is derived from the name).
fn lattice_arn(out: &str) -> String {
    let start = out.find("arn:aws:vpc-lattice:").unwrap();
    let rest = &out[start..];
    let end = rest.find("/app2").unwrap();
    rest[..end].to_string()
}

const CALLER: &str = "arn:aws:sts::111122223333:assumed-role/frontend/envoy";
const OTHER_ARN: &str = "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0fedcba987654321f";

/// A directory with `sim.yaml` (network and services `app` and `other` allow
/// everyone; access key `ASIAWITHROLEPOLICY01` carries `role.json`), and
/// `role.json`, an identity policy that allows invoking `app` only.
fn identity_fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let allow_all = |sid: &str| {
        format!("{{Statement: [{{Sid: {sid}, Effect: Allow, Principal: '*', Action: 'vpc-lattice-svcs:Invoke', Resource: '*'}}]}}")
    };
    std::fs::write(
        dir.path().join("role.json"),
        r#"{"Version": "2012-10-17", "Statement": [{"Sid": "InvokeApp", "Effect": "Allow", "Action": "vpc-lattice-svcs:Invoke",
            "Resource": "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0/*"}]}"#,
    )
    .unwrap();
    let config = dir.path().join("sim.yaml");
    std::fs::write(
        &config,
        format!(
            "region: us-west-2\naccount: \"111122223333\"\n\
             service_network: {{name: n, auth_type: AWS_IAM, policy: {}}}\n\
             services:\n\
             - {{name: app, id: svc-0123456789abcdef0, host: app.test, auth_type: AWS_IAM, target: 'http://127.0.0.1:9', policy: {}}}\n\
             - {{name: other, id: svc-0fedcba987654321f, host: other.test, auth_type: AWS_IAM, target: 'http://127.0.0.1:9', policy: {}}}\n\
             credentials:\n\
             - {{access_key_id: ASIAWITHROLEPOLICY01, secret_access_key: s, principal: '{CALLER}', identity_policy_file: role.json}}\n",
            allow_all("NetAll"),
            allow_all("SvcAll"),
            allow_all("SvcAll"),
        ),
    )
    .unwrap();
    (dir, config)
}

fn identity_denial() -> String {
    format!(
        "DENY {CALLER} GET / on other: identity policy, no statement allows\n\
         AccessDeniedException: User: {CALLER} is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {OTHER_ARN}/ because no identity-based policy allows the vpc-lattice-svcs:Invoke action\n"
    )
}

#[test]
fn an_access_key_brings_its_identity_policy() {
    let (_dir, config) = identity_fixture();
    let (code, out) = check_with(&config, &["--service", "app", "--access-key", "ASIAWITHROLEPOLICY01"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!("ALLOW {CALLER} GET / on app: network: NetAll; service: SvcAll; identity: InvokeApp\n")
    );
    let (code, out) = check_with(&config, &["--service", "other", "--access-key", "ASIAWITHROLEPOLICY01"]);
    assert_eq!((code, out), (1, identity_denial()));
}

#[test]
fn a_principal_takes_its_identity_policy_from_a_file() {
    let (dir, config) = identity_fixture();
    let role = dir.path().join("role.json");
    let role = role.to_str().unwrap();
    let (code, out) = check_with(
        &config,
        &["--service", "other", "--principal", CALLER, "--identity-policy", role],
    );
    assert_eq!((code, out), (1, identity_denial()));
    // Without --identity-policy, identity policies are not modelled for it.
    let (code, out) = check_with(&config, &["--service", "other", "--principal", CALLER]);
    assert_eq!(
        (code, out),
        (
            0,
            format!("ALLOW {CALLER} GET / on other: network: NetAll; service: SvcAll\n")
        )
    );
    // Anonymous callers and access keys have no --identity-policy.
    let (code, out) = check_with(&config, &["--service", "other", "--identity-policy", role]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--principal"), "{out}");
}

#[test]
fn an_identity_policy_file_with_a_principal_is_an_error() {
    let (dir, config) = identity_fixture();
    let bad = dir.path().join("bad-role.json");
    std::fs::write(
        &bad,
        r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "*", "Resource": "*"}]}"#,
    )
    .unwrap();
    let (code, out) = check_with(
        &config,
        &[
            "--service",
            "app",
            "--principal",
            CALLER,
            "--identity-policy",
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(
        (code, out),
        (
            2,
            format!(
                "error: --identity-policy {}: malformed identity_policy: Statement[0]: an identity-based policy cannot have Principal (it applies to the user or role it is attached to)\n",
                bad.display()
            )
        )
    );
}

#[test]
fn check_decides_on_the_path_the_server_would_forward() {
    // `/app2/x/../admin/users` reaches the target as `/app2/admin/users`, so
    // the RequestPath Deny fires, as it does in `serve`.
    let (code, out) = check(&[
        "--service",
        "app2",
        "--principal",
        "arn:aws:sts::111122223333:assumed-role/frontend/envoy",
        "--path",
        "//app2/x/../%61dmin/users",
        "--header",
        "x-jwt-scope-orders.read:true",
        "--expect",
        "deny",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("DENY arn:aws:sts::111122223333:assumed-role/frontend/envoy GET /app2/admin/users on app2: service policy, statement NeverAdminPaths denies"),
        "{out}"
    );
}

#[test]
fn principals_paths_and_methods_are_validated() {
    for (args, expected) in [
        (
            vec!["--principal", "frontend"],
            "error: --principal `frontend` is not an assumed-role session ARN (arn:aws:sts::<account>:assumed-role/<role>/<session>) or an IAM user ARN (arn:aws:iam::<account>:user/<name>)\n",
        ),
        (
            vec!["--principal", "arn:aws:iam::111122223333:role/frontend"],
            "error: --principal `arn:aws:iam::111122223333:role/frontend` is not an assumed-role session ARN (arn:aws:sts::<account>:assumed-role/<role>/<session>) or an IAM user ARN (arn:aws:iam::<account>:user/<name>)\n",
        ),
        (
            vec!["--principal", CALLER, "--role-arn", "arn:aws:iam::111122223333:role/team/backend"],
            "error: --principal role_arn `arn:aws:iam::111122223333:role/team/backend` is not role `frontend` of account 111122223333 (arn:aws:iam::111122223333:role/<path/>frontend)\n",
        ),
        (
            vec!["--path", "app1/x"],
            "error: --path: the path `app1/x` does not start with `/`\n",
        ),
        (
            vec!["--path", "/app1%2Fx"],
            "error: --path: the path encodes a slash or a backslash, which targets read differently\n",
        ),
        (
            vec!["--method", "get"],
            "error: --method `get` is not an HTTP method (GET, POST, ...)\n",
        ),
    ] {
        let mut all = vec!["--service", "app1"];
        all.extend(args.iter().copied());
        let (code, out) = check(&all);
        assert_eq!((code, out.as_str()), (2, expected), "{args:?}");
    }
    // With --role-arn the session belongs to `team/frontend`, another role
    // than the `role/frontend` app1's policy names.
    let (code, out) = check(&[
        "--service",
        "app1",
        "--principal",
        CALLER,
        "--role-arn",
        "arn:aws:iam::111122223333:role/team/frontend",
        "--path",
        "/app1/x",
        "--header",
        "x-jwt-scope-test.all: true",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("because no service-based policy allows"), "{out}");
}
