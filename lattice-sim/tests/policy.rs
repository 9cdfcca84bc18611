//! Table tests of auth-policy evaluation: every condition operator, the
//! Lattice condition keys, explicit and implicit deny, auth type NONE and
//! anonymous callers, through the same `authorize` the server uses.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use lattice_sim::config::Config;
use lattice_sim::lattice::{authorize, RequestInfo};
use lattice_sim::policy::{wildcard, Caller, Policy, PolicyError, PolicyKind};
use serde_json::{json, Value};
use std::path::Path;

const ACCOUNT: &str = "111122223333";

fn frontend() -> Caller {
    Caller {
        org_id: Some("o-exampleorg".into()),
        tags: [("team".to_string(), "web".to_string())].into_iter().collect(),
        ..Caller::new(&format!("arn:aws:sts::{ACCOUNT}:assumed-role/frontend/envoy-1"), None).unwrap()
    }
}

fn other() -> Caller {
    Caller::new("arn:aws:sts::444455556666:assumed-role/intruder/x", None).unwrap()
}

/// A network (auth type given) and one service `app` whose policy is one
/// Allow statement with `condition` (or the given statements).
fn config(
    network_auth: &str,
    network_policy: Option<Value>,
    service_auth: &str,
    service_policy: Option<Value>,
) -> Config {
    let mut doc = json!({
        "region": "us-west-2",
        "account": ACCOUNT,
        "service_network": {"name": "net", "id": "sn-0123456789abcdef0", "auth_type": network_auth, "source_vpc": "vpc-0aaa"},
        "services": [{"name": "app", "id": "svc-0123456789abcdef0", "host": "app.lattice.test", "auth_type": service_auth, "target": "http://127.0.0.1:9"}],
    });
    if let Some(p) = network_policy {
        doc["service_network"]["policy"] = p;
    }
    if let Some(p) = service_policy {
        doc["services"][0]["policy"] = p;
    }
    Config::parse(&doc.to_string(), Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn allow_all() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]})
}

fn allow_if(condition: Value) -> Value {
    json!({"Statement": [{"Sid": "Cond", "Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*", "Condition": condition}]})
}

struct Req<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: Vec<(&'a str, &'a str)>,
}

impl Default for Req<'_> {
    fn default() -> Self {
        Req {
            method: "GET",
            path: "/orders/7",
            query: "",
            headers: vec![],
        }
    }
}

fn decide(cfg: &Config, caller: Option<Caller>, req: &Req<'_>) -> lattice_sim::lattice::Verdict {
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    let info = RequestInfo {
        method: req.method,
        path: req.path,
        query: req.query,
        headers: &headers,
        port: 443,
    };
    authorize(cfg, &cfg.services[0], caller.as_ref(), &info)
}

fn allowed_by(condition: Value, caller: Option<Caller>, req: &Req<'_>) -> bool {
    let cfg = config("NONE", None, "AWS_IAM", Some(allow_if(condition)));
    decide(&cfg, caller, req).allowed
}

#[test]
fn condition_operators() {
    let scoped = Req {
        headers: vec![
            ("x-jwt-scope-orders.read", "true"),
            ("x-jwt-subject", "Alice@Example.com"),
        ],
        ..Req::default()
    };
    let none = Req::default();
    let h = |k: &str| format!("vpc-lattice-svcs:RequestHeader/{k}");
    let cases: Vec<(&str, Value, &Req, bool)> = vec![
        (
            "StringEquals match",
            json!({"StringEquals": {h("x-jwt-scope-orders.read"): "true"}}),
            &scoped,
            true,
        ),
        (
            "StringEquals missing key",
            json!({"StringEquals": {h("x-jwt-scope-orders.read"): "true"}}),
            &none,
            false,
        ),
        (
            "StringEquals header name is case-insensitive",
            json!({"StringEquals": {h("X-JWT-Scope-Orders.Read"): "true"}}),
            &scoped,
            true,
        ),
        (
            "StringEquals value is case-sensitive",
            json!({"StringEquals": {h("x-jwt-subject"): "alice@example.com"}}),
            &scoped,
            false,
        ),
        (
            "StringEqualsIgnoreCase",
            json!({"StringEqualsIgnoreCase": {h("x-jwt-subject"): "alice@example.com"}}),
            &scoped,
            true,
        ),
        (
            "StringNotEquals",
            json!({"StringNotEquals": {h("x-jwt-subject"): "mallory"}}),
            &scoped,
            true,
        ),
        (
            "StringNotEquals on a matching value",
            json!({"StringNotEquals": {h("x-jwt-subject"): "Alice@Example.com"}}),
            &scoped,
            false,
        ),
        (
            "StringNotEquals with missing key is true",
            json!({"StringNotEquals": {h("x-jwt-subject"): "mallory"}}),
            &none,
            true,
        ),
        (
            "StringNotEqualsIgnoreCase",
            json!({"StringNotEqualsIgnoreCase": {h("x-jwt-subject"): "ALICE@EXAMPLE.COM"}}),
            &scoped,
            false,
        ),
        (
            "StringLike",
            json!({"StringLike": {h("x-jwt-subject"): "*@Example.com"}}),
            &scoped,
            true,
        ),
        (
            "StringLike ?",
            json!({"StringLike": {h("x-jwt-subject"): "Alic?@*"}}),
            &scoped,
            true,
        ),
        (
            "StringLike miss",
            json!({"StringLike": {h("x-jwt-subject"): "*@evil.com"}}),
            &scoped,
            false,
        ),
        (
            "StringNotLike",
            json!({"StringNotLike": {h("x-jwt-subject"): "*@evil.com"}}),
            &scoped,
            true,
        ),
        (
            "any of several values",
            json!({"StringEquals": {h("x-jwt-subject"): ["bob", "Alice@Example.com"]}}),
            &scoped,
            true,
        ),
        (
            "several keys are ANDed",
            json!({"StringEquals": {h("x-jwt-subject"): "Alice@Example.com", h("x-jwt-scope-admin"): "true"}}),
            &scoped,
            false,
        ),
        (
            "IfExists with missing key",
            json!({"StringEqualsIfExists": {h("x-jwt-scope-admin"): "true"}}),
            &scoped,
            true,
        ),
        (
            "IfExists with present key",
            json!({"StringEqualsIfExists": {h("x-jwt-subject"): "bob"}}),
            &scoped,
            false,
        ),
        (
            "Null true: key absent",
            json!({"Null": {h("x-jwt-scope-admin"): "true"}}),
            &scoped,
            true,
        ),
        (
            "Null false: key present",
            json!({"Null": {h("x-jwt-subject"): "false"}}),
            &scoped,
            true,
        ),
        (
            "Null true on a present key",
            json!({"Null": {h("x-jwt-subject"): "true"}}),
            &scoped,
            false,
        ),
        (
            "Bool",
            json!({"Bool": {h("x-jwt-scope-orders.read"): "true"}}),
            &scoped,
            true,
        ),
        (
            "Bool false",
            json!({"Bool": {h("x-jwt-scope-orders.read"): "false"}}),
            &scoped,
            false,
        ),
        (
            "NumericEquals on Port",
            json!({"NumericEquals": {"vpc-lattice-svcs:Port": 443}}),
            &none,
            true,
        ),
        (
            "NumericNotEquals",
            json!({"NumericNotEquals": {"vpc-lattice-svcs:Port": "80"}}),
            &none,
            true,
        ),
        (
            "NumericLessThan",
            json!({"NumericLessThan": {"vpc-lattice-svcs:Port": "443"}}),
            &none,
            false,
        ),
        (
            "NumericLessThanEquals",
            json!({"NumericLessThanEquals": {"vpc-lattice-svcs:Port": "443"}}),
            &none,
            true,
        ),
        (
            "NumericGreaterThan",
            json!({"NumericGreaterThan": {"vpc-lattice-svcs:Port": "80"}}),
            &none,
            true,
        ),
        (
            "NumericGreaterThanEquals",
            json!({"NumericGreaterThanEquals": {"vpc-lattice-svcs:Port": "444"}}),
            &none,
            false,
        ),
        (
            "ArnEquals ServiceArn",
            json!({"ArnEquals": {"vpc-lattice-svcs:ServiceArn": format!("arn:aws:vpc-lattice:us-west-2:{ACCOUNT}:service/svc-0123456789abcdef0")}}),
            &none,
            true,
        ),
        (
            "ArnLike ServiceNetworkArn",
            json!({"ArnLike": {"vpc-lattice-svcs:ServiceNetworkArn": "arn:aws:vpc-lattice:*:*:servicenetwork/sn-*"}}),
            &none,
            true,
        ),
        (
            "ArnNotEquals",
            json!({"ArnNotEquals": {"vpc-lattice-svcs:ServiceArn": "arn:aws:vpc-lattice:us-west-2:1:service/svc-x"}}),
            &none,
            true,
        ),
        (
            "ArnNotLike",
            json!({"ArnNotLike": {"vpc-lattice-svcs:ServiceArn": "arn:aws:vpc-lattice:*:*:service/*"}}),
            &none,
            false,
        ),
        (
            "RequestMethod",
            json!({"StringEquals": {"vpc-lattice-svcs:RequestMethod": "GET"}}),
            &none,
            true,
        ),
        (
            "RequestMethod miss",
            json!({"StringEquals": {"vpc-lattice-svcs:RequestMethod": "POST"}}),
            &none,
            false,
        ),
        (
            "RequestPath",
            json!({"StringLike": {"vpc-lattice-svcs:RequestPath": "/orders/*"}}),
            &none,
            true,
        ),
        (
            "SourceVpc",
            json!({"StringEquals": {"vpc-lattice-svcs:SourceVpc": "vpc-0aaa"}}),
            &none,
            true,
        ),
        (
            "SourceVpcOwnerAccount",
            json!({"StringEquals": {"vpc-lattice-svcs:SourceVpcOwnerAccount": ACCOUNT}}),
            &none,
            true,
        ),
    ];
    for (name, condition, req, expected) in cases {
        assert_eq!(allowed_by(condition, Some(frontend()), req), expected, "{name}");
    }
}

#[test]
fn query_string_and_principal_keys() {
    let req = Req {
        query: "tenant=acme&flag&name=a%20b",
        ..Req::default()
    };
    let q = |k: &str| format!("vpc-lattice-svcs:RequestQueryString/{k}");
    assert!(allowed_by(
        json!({"StringEquals": {q("tenant"): "acme"}}),
        Some(frontend()),
        &req
    ));
    assert!(allowed_by(
        json!({"StringEquals": {q("name"): "a b"}}),
        Some(frontend()),
        &req
    ));
    assert!(allowed_by(
        json!({"StringEquals": {q("flag"): ""}}),
        Some(frontend()),
        &req
    ));
    assert!(!allowed_by(
        json!({"StringEquals": {q("tenant"): "other"}}),
        Some(frontend()),
        &req
    ));
    let plain = Req::default();
    assert!(allowed_by(
        json!({"StringEquals": {"aws:PrincipalType": "AssumedRole"}}),
        Some(frontend()),
        &plain
    ));
    assert!(allowed_by(
        json!({"StringEquals": {"aws:PrincipalType": "Anonymous"}}),
        None,
        &plain
    ));
    assert!(allowed_by(
        json!({"StringEquals": {"aws:PrincipalOrgID": "o-exampleorg"}}),
        Some(frontend()),
        &plain
    ));
    assert!(!allowed_by(
        json!({"StringEquals": {"aws:PrincipalOrgID": "o-exampleorg"}}),
        Some(other()),
        &plain
    ));
    assert!(allowed_by(
        json!({"StringEquals": {"aws:PrincipalTag/team": "web"}}),
        Some(frontend()),
        &plain
    ));
    assert!(!allowed_by(
        json!({"StringEquals": {"aws:PrincipalTag/team": "web"}}),
        Some(other()),
        &plain
    ));
}

#[test]
fn set_qualifiers() {
    // A multi-valued key: the same query parameter twice.
    let req = Req {
        query: "g=a&g=b",
        ..Req::default()
    };
    let key = "vpc-lattice-svcs:RequestQueryString/g";
    assert!(allowed_by(
        json!({"ForAnyValue:StringEquals": {key: ["b", "z"]}}),
        Some(frontend()),
        &req
    ));
    assert!(!allowed_by(
        json!({"ForAnyValue:StringEquals": {key: ["z"]}}),
        Some(frontend()),
        &req
    ));
    assert!(allowed_by(
        json!({"ForAllValues:StringEquals": {key: ["a", "b", "c"]}}),
        Some(frontend()),
        &req
    ));
    assert!(!allowed_by(
        json!({"ForAllValues:StringEquals": {key: ["a"]}}),
        Some(frontend()),
        &req
    ));
    // The documented pitfall: ForAllValues with a missing key is true; ForAnyValue is false.
    let none = Req::default();
    assert!(allowed_by(
        json!({"ForAllValues:StringEquals": {key: ["a"]}}),
        Some(frontend()),
        &none
    ));
    assert!(!allowed_by(
        json!({"ForAnyValue:StringEquals": {key: ["a"]}}),
        Some(frontend()),
        &none
    ));
}

#[test]
fn principals_actions_and_resources() {
    let arn_svc = format!("arn:aws:vpc-lattice:us-west-2:{ACCOUNT}:service/svc-0123456789abcdef0");
    let policy = |statement: Value| json!({"Statement": [statement]});
    let cases: Vec<(&str, Value, Option<Caller>, &str, bool)> = vec![
        (
            "role ARN names its sessions",
            json!({"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/frontend")}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}),
            Some(frontend()),
            "/",
            true,
        ),
        (
            "a role with a path names the sessions of the role with that path",
            json!({"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/teams/web/frontend")}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}),
            Some(
                Caller::new(
                    &frontend().arn,
                    Some(&format!("arn:aws:iam::{ACCOUNT}:role/teams/web/frontend")),
                )
                .unwrap(),
            ),
            "/",
            true,
        ),
        (
            "the same role name under another path is another role",
            json!({"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/teams/web/frontend")}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}),
            Some(frontend()),
            "/",
            false,
        ),
        (
            "another role",
            json!({"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/backend")}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}),
            Some(frontend()),
            "/",
            false,
        ),
        (
            "same role name, other account",
            json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:role/frontend"}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}),
            Some(frontend()),
            "/",
            false,
        ),
        (
            "account root",
            json!({"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}),
            Some(frontend()),
            "/",
            true,
        ),
        (
            "bare account id",
            json!({"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}),
            Some(frontend()),
            "/",
            true,
        ),
        (
            "exact session ARN",
            json!({"Effect": "Allow", "Principal": {"AWS": frontend().arn}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}),
            Some(frontend()),
            "/",
            true,
        ),
        (
            "anonymous matches only *",
            json!({"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}),
            None,
            "/",
            false,
        ),
        (
            "anonymous with *",
            json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}),
            None,
            "/",
            true,
        ),
        (
            "Action wildcard",
            json!({"Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:*", "Resource": "*"}),
            Some(frontend()),
            "/",
            true,
        ),
        (
            "Action is case-insensitive",
            json!({"Effect": "Allow", "Principal": "*", "Action": "VPC-LATTICE-SVCS:invoke", "Resource": "*"}),
            Some(frontend()),
            "/",
            true,
        ),
        (
            "NotAction",
            json!({"Effect": "Allow", "Principal": "*", "NotAction": "vpc-lattice-svcs:Invoke", "Resource": "*"}),
            Some(frontend()),
            "/",
            false,
        ),
        (
            "other service's action",
            json!({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}),
            Some(frontend()),
            "/",
            false,
        ),
        (
            "Resource path wildcard",
            json!({"Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": format!("{arn_svc}/orders/*")}),
            Some(frontend()),
            "/orders/7",
            true,
        ),
        (
            "Resource path miss",
            json!({"Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": format!("{arn_svc}/orders/*")}),
            Some(frontend()),
            "/billing",
            false,
        ),
        (
            "root path has a trailing slash",
            json!({"Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": format!("{arn_svc}/")}),
            Some(frontend()),
            "/",
            true,
        ),
        (
            "NotResource",
            json!({"Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "NotResource": format!("{arn_svc}/admin*")}),
            Some(frontend()),
            "/admin/x",
            false,
        ),
    ];
    for (name, statement, caller, path, expected) in cases {
        let cfg = config("NONE", None, "AWS_IAM", Some(policy(statement)));
        let verdict = decide(&cfg, caller, &Req { path, ..Req::default() });
        assert_eq!(verdict.allowed, expected, "{name}: {verdict:?}");
    }
}

#[test]
fn network_and_service_decisions_with_lattice_messages() {
    let resource = format!("arn:aws:vpc-lattice:us-west-2:{ACCOUNT}:service/svc-0123456789abcdef0/orders/7");
    let role_only = json!({"Statement": [{"Sid": "FrontendOnly", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/frontend")}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]});
    let deny_admin = json!({"Statement": [
        {"Sid": "All", "Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"},
        {"Sid": "NoAdmin", "Effect": "Deny", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*",
         "Condition": {"StringEquals": {"vpc-lattice-svcs:RequestHeader/x-jwt-scope-admin": "true"}}},
    ]});

    // Anonymous against an AWS_IAM network that only allows the role.
    let cfg = config("AWS_IAM", Some(role_only.clone()), "NONE", None);
    let v = decide(&cfg, None, &Req::default());
    assert!(!v.allowed);
    assert_eq!(v.message, format!("AccessDeniedException: User: anonymous is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {resource} because no network-based policy allows the vpc-lattice-svcs:Invoke action"));
    assert!(decide(&cfg, Some(frontend()), &Req::default()).allowed);

    // Explicit deny in the service policy wins over its allow.
    let cfg = config("AWS_IAM", Some(allow_all()), "AWS_IAM", Some(deny_admin));
    let admin = Req {
        headers: vec![("x-jwt-scope-admin", "true")],
        ..Req::default()
    };
    let v = decide(&cfg, Some(frontend()), &admin);
    assert_eq!(
        (v.allowed, v.policy, v.statement.as_deref()),
        (false, "service", Some("NoAdmin"))
    );
    assert_eq!(v.message, format!("AccessDeniedException: User: {} is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {resource} with an explicit deny in a service-based policy", frontend().arn));
    assert!(decide(&cfg, Some(frontend()), &Req::default()).allowed);

    // AWS_IAM without a policy denies everything; NONE allows everything.
    let cfg = config("NONE", None, "AWS_IAM", None);
    let v = decide(&cfg, Some(frontend()), &Req::default());
    assert!(
        v.message
            .ends_with("because no service-based policy allows the vpc-lattice-svcs:Invoke action"),
        "{v:?}"
    );
    let cfg = config("NONE", None, "NONE", None);
    assert!(decide(&cfg, None, &Req::default()).allowed);

    // Both must allow: network allows, service allows only another role.
    let backend_only = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/backend")}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]});
    let cfg = config("AWS_IAM", Some(allow_all()), "AWS_IAM", Some(backend_only));
    let v = decide(&cfg, Some(frontend()), &Req::default());
    assert_eq!((v.allowed, v.policy, v.statement), (false, "service", None));
}

#[test]
fn malformed_policies_are_refused_with_a_reason() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"Statement": []}), "Statement: must not be empty"),
        (
            json!({"Version": "2020-01-01", "Statement": {"Effect": "Allow"}}),
            "Version: `2020-01-01` is not 2012-10-17",
        ),
        (
            json!({"Statement": [{"Effect": "Permit", "Principal": "*", "Action": "*", "Resource": "*"}]}),
            "Statement[0].Effect: must be \"Allow\" or \"Deny\"",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Resource": "*"}]}),
            "Statement[0]: needs Action or NotAction",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*", "Condition": {"StringEqualz": {"a:b": "c"}}}]}),
            "Statement[0].Condition: unsupported condition operator `StringEqualz`",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*", "Condition": {"NumericEquals": {"vpc-lattice-svcs:Port": "x"}}}]}),
            "Statement[0].Condition.NumericEquals.vpc-lattice-svcs:Port: NumericEquals takes numbers",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*", "Extra": 1}]}),
            "Statement[0]: unknown element `Extra`",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": {"Users": "x"}, "Action": "*", "Resource": "*"}]}),
            "Statement[0].Principal: unknown principal type `Users`",
        ),
    ];
    for (doc, expected) in cases {
        assert_eq!(
            Policy::from_value(&doc, PolicyKind::Resource),
            Err(PolicyError(expected.into())),
            "{doc}"
        );
    }
    // In a configuration, the error names the service and nothing starts.
    let doc = json!({
        "region": "us-west-2", "account": ACCOUNT,
        "service_network": {"name": "n", "auth_type": "NONE"},
        "services": [{"name": "app", "host": "app.test", "auth_type": "AWS_IAM", "target": "http://127.0.0.1:9",
                      "policy": {"Statement": [{"Effect": "Allow"}]}}],
    });
    let err = Config::parse(&doc.to_string(), Path::new(".")).unwrap_err();
    assert_eq!(
        err,
        "services[0] (app): malformed policy: Statement[0]: needs Action or NotAction"
    );
}

#[test]
fn wildcards() {
    assert!(wildcard("*", "", false));
    assert!(wildcard("a*c", "abbbc", false));
    assert!(wildcard("a?c", "abc", false));
    assert!(!wildcard("a?c", "ac", false));
    assert!(wildcard("*.read", "orders.read", false));
    assert!(!wildcard("*.read", "orders.write", false));
    assert!(wildcard("a*b*c", "a-b-x-c", false));
    assert!(!wildcard("a*b*c", "a-x-c", false));
    assert!(wildcard("ABC", "abc", true));
}
