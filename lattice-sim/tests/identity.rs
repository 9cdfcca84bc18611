//! IAM identity-based policies next to the auth policies: the caller needs
//! an Allow in its own policy too, an explicit Deny anywhere wins, and
//! configurations without identity policies decide as before.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use lattice_sim::config::Config;
use lattice_sim::lattice::{authorize, RequestInfo, Verdict};
use lattice_sim::policy::{Caller, Policy, PolicyError, PolicyKind};
use serde_json::{json, Value};
use std::path::Path;

const ACCOUNT: &str = "111122223333";
const KEY: &str = "ASIAIDENTITYTEST0001";
const CALLER: &str = "arn:aws:sts::111122223333:assumed-role/frontend/envoy";
const APP_ARN: &str = "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0";
const OTHER_ARN: &str = "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0fedcba987654321f";

fn allow_all(sid: &str) -> Value {
    json!({"Statement": [{"Sid": sid, "Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]})
}

/// Invoke on `app` only, as a role's identity policy grants it.
fn invoke_app_only() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "InvokeApp", "Effect": "Allow", "Action": "vpc-lattice-svcs:Invoke", "Resource": format!("{APP_ARN}/*")}]})
}

/// A network and two services (`app`, `other`), with these auth types and
/// policies, and one credential with `identity` (a `credentials:` entry's
/// extra keys).
fn config(auth_type: &str, network_policy: Value, service_policy: Value, identity: Value) -> Config {
    let mut credential = json!({"access_key_id": KEY, "secret_access_key": "s", "principal": CALLER});
    if let (Value::Object(entry), Value::Object(extra)) = (&mut credential, identity) {
        entry.extend(extra);
    }
    let doc = json!({
        "region": "us-west-2",
        "account": ACCOUNT,
        "service_network": {"name": "net", "auth_type": auth_type, "policy": network_policy},
        "services": [
            {"name": "app", "id": "svc-0123456789abcdef0", "host": "app.lattice.test", "auth_type": auth_type,
             "target": "http://127.0.0.1:9", "policy": service_policy.clone()},
            {"name": "other", "id": "svc-0fedcba987654321f", "host": "other.lattice.test", "auth_type": auth_type,
             "target": "http://127.0.0.1:9", "policy": service_policy},
        ],
        "credentials": [credential],
    });
    Config::parse(&doc.to_string(), Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

/// Both auth policies allow everyone; the credential has `identity_policy`.
fn with_identity_policy(policy: Value) -> Config {
    config(
        "AWS_IAM",
        allow_all("NetAll"),
        allow_all("SvcAll"),
        json!({"identity_policy": policy}),
    )
}

fn caller(cfg: &Config) -> Caller {
    cfg.credentials[KEY].caller.clone()
}

fn decide(cfg: &Config, service: &str, caller: Option<&Caller>, path: &str) -> Verdict {
    let service = cfg.services.iter().find(|s| s.name == service).unwrap();
    let info = RequestInfo {
        method: "GET",
        path,
        query: "",
        headers: &[],
        port: 443,
    };
    authorize(cfg, service, caller, &info)
}

fn denial(resource: &str, why: &str) -> String {
    format!("AccessDeniedException: User: {CALLER} is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {resource} {why}")
}

#[test]
fn an_identity_policy_allowing_the_service_lets_the_caller_in() {
    let cfg = with_identity_policy(invoke_app_only());
    let v = decide(&cfg, "app", Some(&caller(&cfg)), "/orders/7");
    assert_eq!(
        (v.allowed, v.policy, v.statement.as_deref(), v.message.as_str()),
        (
            true,
            "identity",
            Some("network: NetAll; service: SvcAll; identity: InvokeApp"),
            ""
        )
    );
}

#[test]
fn an_identity_policy_for_another_service_refuses_with_the_aws_text() {
    let cfg = with_identity_policy(invoke_app_only());
    let v = decide(&cfg, "other", Some(&caller(&cfg)), "/orders/7");
    assert_eq!((v.allowed, v.policy, v.statement), (false, "identity", None));
    assert_eq!(
        v.message,
        denial(
            &format!("{OTHER_ARN}/orders/7"),
            "because no identity-based policy allows the vpc-lattice-svcs:Invoke action"
        )
    );
}

#[test]
fn an_identity_deny_beats_the_auth_policies_allow() {
    let cfg = with_identity_policy(json!({"Statement": [
        {"Sid": "InvokeAll", "Effect": "Allow", "Action": "vpc-lattice-svcs:*", "Resource": "*"},
        {"Sid": "NoAdmin", "Effect": "Deny", "Action": "vpc-lattice-svcs:Invoke", "Resource": "arn:aws:vpc-lattice:*:*:service/*/admin/*"},
    ]}));
    let caller = caller(&cfg);
    let v = decide(&cfg, "app", Some(&caller), "/admin/users");
    assert_eq!(
        (v.allowed, v.policy, v.statement.as_deref()),
        (false, "identity", Some("NoAdmin"))
    );
    assert_eq!(
        v.message,
        denial(
            &format!("{APP_ARN}/admin/users"),
            "with an explicit deny in an identity-based policy"
        )
    );
    assert!(decide(&cfg, "app", Some(&caller), "/users").allowed);
}

#[test]
fn an_explicit_deny_anywhere_wins_then_the_first_implicit_deny() {
    let backend_only = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/backend")}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]});
    let deny_all =
        json!({"Statement": [{"Sid": "DenyAll", "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}]});
    let resource = format!("{APP_ARN}/");

    // The network implicitly denies; the identity policy explicitly denies.
    let cfg = config(
        "AWS_IAM",
        backend_only.clone(),
        allow_all("SvcAll"),
        json!({"identity_policy": {"Statement": [{"Sid": "Never", "Effect": "Deny", "Action": "*", "Resource": "*"}]}}),
    );
    let v = decide(&cfg, "app", Some(&caller(&cfg)), "/");
    assert_eq!((v.policy, v.statement.as_deref()), ("identity", Some("Never")));
    assert_eq!(
        v.message,
        denial(&resource, "with an explicit deny in an identity-based policy")
    );

    // The network implicitly denies; the service explicitly denies.
    let cfg = config("AWS_IAM", backend_only.clone(), deny_all, json!({}));
    let v = decide(&cfg, "app", Some(&caller(&cfg)), "/");
    assert_eq!((v.policy, v.statement.as_deref()), ("service", Some("DenyAll")));
    assert_eq!(
        v.message,
        denial(&resource, "with an explicit deny in a service-based policy")
    );

    // No explicit deny: the network's implicit deny is reported before the
    // identity policy's.
    let cfg = config(
        "AWS_IAM",
        backend_only,
        allow_all("SvcAll"),
        json!({"identity_policy": {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}}),
    );
    let v = decide(&cfg, "app", Some(&caller(&cfg)), "/");
    assert_eq!((v.policy, v.statement), ("network", None));
    assert_eq!(
        v.message,
        denial(
            &resource,
            "because no network-based policy allows the vpc-lattice-svcs:Invoke action"
        )
    );
}

#[test]
fn without_identity_policies_the_auth_policies_decide_as_before() {
    let cfg = config("AWS_IAM", allow_all("NetAll"), allow_all("SvcAll"), json!({}));
    let caller = caller(&cfg);
    assert_eq!(caller.identity_policy, None);
    for service in ["app", "other"] {
        let v = decide(&cfg, service, Some(&caller), "/");
        assert_eq!(
            (v.allowed, v.policy, v.statement.as_deref()),
            (true, "service", Some("network: NetAll; service: SvcAll"))
        );
    }
    // Anonymous callers have no identity policy: the auth policies alone decide.
    let cfg = with_identity_policy(invoke_app_only());
    assert!(decide(&cfg, "other", None, "/").allowed);
}

#[test]
fn identity_policies_are_part_of_iam_authorization_only() {
    // Auth type NONE on the network and the service: Lattice authorizes
    // nothing, so even an identity policy that denies everything is not consulted.
    let never = json!({"identity_policy": {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}});
    let everyone = allow_all("Everyone");
    let cfg = config("NONE", everyone.clone(), everyone.clone(), never.clone());
    let v = decide(&cfg, "app", Some(&caller(&cfg)), "/");
    assert_eq!(
        (v.allowed, v.statement.as_deref()),
        (true, Some("network: auth type NONE; service: auth type NONE"))
    );
    // With AWS_IAM the same identity policy refuses.
    let cfg = config("AWS_IAM", everyone.clone(), everyone, never);
    let v = decide(&cfg, "app", Some(&caller(&cfg)), "/");
    assert_eq!((v.allowed, v.policy), (false, "identity"));
}

#[test]
fn an_identity_policy_has_no_principal() {
    let statement = |extra: Value| {
        let mut s = json!({"Effect": "Allow", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"});
        if let (Value::Object(s), Value::Object(extra)) = (&mut s, extra) {
            s.extend(extra);
        }
        s
    };
    let with_principal = json!({"Statement": [statement(json!({})), statement(json!({"Principal": "*"}))]});
    let with_not_principal =
        json!({"Statement": [statement(json!({"Effect": "Deny", "NotPrincipal": {"AWS": ACCOUNT}}))]});
    assert_eq!(
        Policy::from_value(&with_principal, PolicyKind::Identity),
        Err(PolicyError("Statement[1]: an identity-based policy cannot have Principal (it applies to the user or role it is attached to)".into()))
    );
    assert_eq!(
        Policy::from_value(&with_not_principal, PolicyKind::Identity),
        Err(PolicyError("Statement[0]: an identity-based policy cannot have NotPrincipal (it applies to the user or role it is attached to)".into()))
    );
    // The same documents are valid auth policies.
    assert!(Policy::from_value(&with_principal, PolicyKind::Resource).is_ok());
    assert!(Policy::from_value(&with_not_principal, PolicyKind::Resource).is_ok());

    // In a configuration, the error names the credential and the statement.
    let doc = json!({
        "region": "us-west-2", "account": ACCOUNT,
        "service_network": {"name": "n", "auth_type": "NONE"},
        "services": [{"name": "app", "host": "app.test", "auth_type": "NONE", "target": "http://127.0.0.1:9"}],
        "credentials": [{"access_key_id": KEY, "secret_access_key": "s", "principal": CALLER, "identity_policy": with_principal}],
    });
    assert_eq!(
        Config::parse(&doc.to_string(), Path::new(".")).unwrap_err(),
        format!("credentials[0] ({KEY}): malformed identity_policy: Statement[1]: an identity-based policy cannot have Principal (it applies to the user or role it is attached to)")
    );
}

#[test]
fn a_statement_without_principal_is_about_the_identity_only_in_an_identity_policy() {
    let doc = json!({"Statement": [{"Effect": "Allow", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]});
    // As an auth policy it names nobody (as before): the service denies.
    let cfg = config("AWS_IAM", allow_all("NetAll"), doc.clone(), json!({}));
    let v = decide(&cfg, "app", Some(&caller(&cfg)), "/");
    assert_eq!((v.allowed, v.policy), (false, "service"));
    // As the caller's identity policy it is about the caller: allowed.
    let cfg = with_identity_policy(doc);
    let v = decide(&cfg, "app", Some(&caller(&cfg)), "/");
    assert_eq!(
        (v.allowed, v.statement.as_deref()),
        (true, Some("network: NetAll; service: SvcAll; identity: #0"))
    );
}

#[test]
fn a_policy_is_given_inline_or_as_a_file_not_both() {
    let doc = json!({
        "region": "us-west-2", "account": ACCOUNT,
        "service_network": {"name": "n", "auth_type": "NONE"},
        "services": [{"name": "app", "host": "app.test", "auth_type": "AWS_IAM", "target": "http://127.0.0.1:9",
                      "policy": allow_all("A"), "policy_file": "app.json"}],
        "credentials": [{"access_key_id": KEY, "secret_access_key": "s", "principal": CALLER,
                         "identity_policy": invoke_app_only(), "identity_policy_file": "role.json"}],
    });
    assert_eq!(
        Config::parse(&doc.to_string(), Path::new(".")).unwrap_err(),
        format!(
            "services[0] (app): give `policy` or `policy_file`, not both\n\
             credentials[0] ({KEY}): give `identity_policy` or `identity_policy_file`, not both"
        )
    );
}

#[test]
fn an_identity_policy_file_is_relative_to_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("role.json"), invoke_app_only().to_string()).unwrap();
    std::fs::write(
        dir.path().join("bad-role.json"),
        json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}}).to_string(),
    )
    .unwrap();
    let write_config = |file: &str| {
        let path = dir.path().join("sim.yaml");
        std::fs::write(
            &path,
            format!(
                "region: us-west-2\naccount: \"{ACCOUNT}\"\n\
                 service_network: {{name: n, auth_type: AWS_IAM, policy: {}}}\n\
                 services:\n\
                 - {{name: app, id: svc-0123456789abcdef0, host: app.test, auth_type: NONE, target: 'http://127.0.0.1:9'}}\n\
                 - {{name: other, id: svc-0fedcba987654321f, host: other.test, auth_type: NONE, target: 'http://127.0.0.1:9'}}\n\
                 credentials:\n\
                 - {{access_key_id: {KEY}, secret_access_key: s, principal: '{CALLER}', identity_policy_file: {file}}}\n",
                allow_all("NetAll")
            ),
        )
        .unwrap();
        path
    };

    let cfg = Config::load(&write_config("role.json")).unwrap();
    let caller = caller(&cfg);
    assert!(decide(&cfg, "app", Some(&caller), "/").allowed);
    let v = decide(&cfg, "other", Some(&caller), "/");
    assert_eq!((v.allowed, v.policy), (false, "identity"));

    let path = write_config("bad-role.json");
    assert_eq!(
        Config::load(&path).unwrap_err(),
        format!(
            "{}: credentials[0] ({KEY}): {}: malformed identity_policy: Statement[0]: an identity-based policy cannot have Principal (it applies to the user or role it is attached to)",
            path.display(),
            dir.path().join("bad-role.json").display()
        )
    );
}
