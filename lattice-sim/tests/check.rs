//! `lattice-sim check`: decisions without any network, as a CI step would
//! run them against the example configuration.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lattice-sim"))
        .arg("check")
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo.yaml"))
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
