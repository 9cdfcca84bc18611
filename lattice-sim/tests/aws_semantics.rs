//! lattice-sim decides as AWS documents it: each test takes its cases from
//! the wording and examples of the IAM User Guide and the VPC Lattice User
//! Guide pages cited beside it.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use lattice_sim::config::Config;
use lattice_sim::lattice::{authorize, context, request_path, BadPath, RequestInfo, Verdict};
use lattice_sim::policy::{Caller, Policy, PolicyError, PolicyKind, CONDITION_KEYS, CONDITION_KEY_PREFIXES};
use serde_json::{json, Value};
use std::path::Path;

const ACCOUNT: &str = "111122223333";
/// The account, role and session of the IAM User Guide's NotPrincipal example.
const CALLER_ACCOUNT: &str = "444455556666";
const ROLE: &str = "arn:aws:iam::444455556666:role/cross-account-read-only-role";
const SESSION: &str = "arn:aws:sts::444455556666:assumed-role/cross-account-read-only-role/session-name";
const OTHER_SESSION: &str = "arn:aws:sts::444455556666:assumed-role/cross-account-read-only-role/other-session";
const OTHER_ROLE_SESSION: &str = "arn:aws:sts::444455556666:assumed-role/another-role/session-name";
const OTHER_ACCOUNT_SESSION: &str = "arn:aws:sts::777788889999:assumed-role/cross-account-read-only-role/session-name";
const USER: &str = "arn:aws:iam::444455556666:user/alice";

fn caller(arn: &str) -> Caller {
    Caller::new(arn, None).unwrap()
}

fn invoke(statement: Value) -> Value {
    let mut statement = statement;
    statement["Action"] = "vpc-lattice-svcs:Invoke".into();
    statement["Resource"] = "*".into();
    statement
}

fn allow_everyone() -> Value {
    invoke(json!({"Sid": "Everyone", "Effect": "Allow", "Principal": "*"}))
}

/// A NONE network and one AWS_IAM service `app` whose auth policy has `statements`.
fn config_with(statements: Vec<Value>) -> Result<Config, String> {
    let doc = json!({
        "region": "us-west-2",
        "account": ACCOUNT,
        "service_network": {"name": "net", "auth_type": "NONE"},
        "services": [{"name": "app", "id": "svc-0123456789abcdef0", "host": "app.lattice.test",
                      "auth_type": "AWS_IAM", "target": "http://127.0.0.1:9",
                      "policy": {"Version": "2012-10-17", "Statement": statements}}],
    });
    Config::parse(&doc.to_string(), Path::new("."))
}

fn decide_at(cfg: &Config, who: Option<&Caller>, path: &str) -> Verdict {
    let info = RequestInfo {
        method: "GET",
        path,
        query: "",
        headers: &[],
        port: 443,
    };
    authorize(cfg, &cfg.services[0], who, &info)
}

fn allowed(statements: Vec<Value>, who: Option<&Caller>) -> bool {
    let cfg = config_with(statements).unwrap_or_else(|e| panic!("{e}"));
    decide_at(&cfg, who, "/").allowed
}

/// Point 1. "aws:PrincipalArn ... For IAM roles, the request context returns
/// the ARN of the role, not the ARN of the user that assumed the role."
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn>
#[test]
fn principal_arn_of_a_session_is_its_role_arn() {
    let session = caller(SESSION);
    assert_eq!(session.principal_arn, ROLE);
    let if_principal_arn = |operator: &str, value: &str| {
        invoke(json!({"Sid": "ByArn", "Effect": "Allow", "Principal": "*",
                      "Condition": {operator: {"aws:PrincipalArn": value}}}))
    };
    // A policy keyed on the role's ARN lets its sessions in...
    assert!(allowed(vec![if_principal_arn("ArnEquals", ROLE)], Some(&session)));
    assert!(allowed(vec![if_principal_arn("StringEquals", ROLE)], Some(&session)));
    assert!(allowed(
        vec![if_principal_arn(
            "ArnLike",
            "arn:aws:iam::444455556666:role/cross-account-*"
        )],
        Some(&session)
    ));
    // ...and one keyed on the session's ARN matches nothing.
    assert!(!allowed(vec![if_principal_arn("ArnEquals", SESSION)], Some(&session)));
    assert!(!allowed(
        vec![if_principal_arn("ArnLike", "arn:aws:sts::444455556666:assumed-role/*")],
        Some(&session)
    ));
    // A Deny keyed on a session pattern never fires in AWS, so it does not here.
    let deny_sessions = invoke(json!({"Sid": "NoSessions", "Effect": "Deny", "Principal": "*",
        "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:sts::444455556666:assumed-role/*"}}}));
    assert!(allowed(vec![allow_everyone(), deny_sessions], Some(&session)));
    // A Deny keyed on the role's ARN does.
    let deny_role = invoke(json!({"Sid": "NoRole", "Effect": "Deny", "Principal": "*",
        "Condition": {"ArnEquals": {"aws:PrincipalArn": ROLE}}}));
    let cfg = config_with(vec![allow_everyone(), deny_role]).unwrap();
    let verdict = decide_at(&cfg, Some(&session), "/");
    assert_eq!((verdict.allowed, verdict.statement.as_deref()), (false, Some("NoRole")));

    // A role with a path: the session ARN does not carry it, the role ARN does.
    let with_path = "arn:aws:iam::444455556666:role/teams/web/cross-account-read-only-role";
    let pathed = Caller::new(SESSION, Some(with_path)).unwrap();
    assert_eq!(pathed.principal_arn, with_path);
    assert!(allowed(vec![if_principal_arn("ArnEquals", with_path)], Some(&pathed)));
    assert!(!allowed(vec![if_principal_arn("ArnEquals", ROLE)], Some(&pathed)));
    for wrong in [
        "arn:aws:iam::444455556666:role/teams/web/another-role",
        "arn:aws:iam::777788889999:role/cross-account-read-only-role",
        "arn:aws:iam::444455556666:user/cross-account-read-only-role",
    ] {
        assert!(Caller::new(SESSION, Some(wrong)).is_err(), "{wrong}");
    }

    // An IAM user is its own principal ARN.
    let user = caller(USER);
    assert_eq!(user.principal_arn, USER);
    assert!(allowed(vec![if_principal_arn("ArnEquals", USER)], Some(&user)));

    // aws:PrincipalType and aws:PrincipalAccount.
    let if_key = |key: &str, value: &str| {
        invoke(json!({"Effect": "Allow", "Principal": "*", "Condition": {"StringEquals": {key: value}}}))
    };
    assert!(allowed(
        vec![if_key("aws:PrincipalType", "AssumedRole")],
        Some(&session)
    ));
    assert!(allowed(vec![if_key("aws:PrincipalType", "User")], Some(&user)));
    assert!(allowed(
        vec![if_key("aws:PrincipalAccount", CALLER_ACCOUNT)],
        Some(&session)
    ));

    // A role ARN in Principal names the role's sessions; a session ARN names only itself.
    let principal = |arn: &str| invoke(json!({"Effect": "Allow", "Principal": {"AWS": arn}}));
    assert!(allowed(vec![principal(ROLE)], Some(&session)));
    assert!(allowed(vec![principal(ROLE)], Some(&caller(OTHER_SESSION))));
    assert!(!allowed(vec![principal(ROLE)], Some(&caller(OTHER_ACCOUNT_SESSION))));
    assert!(allowed(vec![principal(SESSION)], Some(&session)));
    assert!(!allowed(vec![principal(SESSION)], Some(&caller(OTHER_SESSION))));
}

/// Point 2. "NotPrincipal must be used with "Effect":"Deny". Using it with
/// "Effect":"Allow" is not supported." and "If an assumed-role user (someone
/// who is using a role) is being evaluated, AWS might validate the account
/// first, then the role, and then the assumed-role user. ... we strongly
/// recommend that you explicitly include the ARN for a user's account, or
/// include both the ARN for a role and the ARN for the account containing
/// that role." Its example lists the session, the role and the account.
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html>
#[test]
fn not_principal_compares_exact_arns_and_only_denies() {
    let deny_all_but =
        |sid: &str, spared: Vec<&str>| invoke(json!({"Sid": sid, "Effect": "Deny", "NotPrincipal": {"AWS": spared}}));
    let account_root = format!("arn:aws:iam::{CALLER_ACCOUNT}:root");

    // The documentation's example: session, role and account listed.
    let example = deny_all_but("DenyAllButSession", vec![SESSION, ROLE, &account_root]);
    let cfg = config_with(vec![allow_everyone(), example]).unwrap();
    assert!(decide_at(&cfg, Some(&caller(SESSION)), "/").allowed);
    for (who, name) in [
        (Some(caller(OTHER_SESSION)), "another session of the role"),
        (
            Some(caller(OTHER_ROLE_SESSION)),
            "a session of another role in the account",
        ),
        (Some(caller(OTHER_ACCOUNT_SESSION)), "the same names in another account"),
        (Some(caller(USER)), "a user of the account"),
        (None, "anonymous"),
    ] {
        let verdict = decide_at(&cfg, who.as_ref(), "/");
        assert_eq!(
            (verdict.allowed, verdict.statement.as_deref()),
            (false, Some("DenyAllButSession")),
            "{name}"
        );
    }

    // Listing the role and its account does not spare the role's sessions,
    // and listing the account root does not spare the account's principals.
    for (spared, name) in [
        (vec![ROLE, account_root.as_str()], "role and account"),
        (vec![account_root.as_str()], "account root"),
        (vec![CALLER_ACCOUNT], "account id"),
        (vec![SESSION, ROLE], "session and role without the account"),
        (vec![SESSION], "the session alone"),
    ] {
        let cfg = config_with(vec![allow_everyone(), deny_all_but("Deny", spared)]).unwrap();
        assert!(!decide_at(&cfg, Some(&caller(SESSION)), "/").allowed, "{name}");
    }
    // An account id works as well as the root ARN when all three are listed.
    assert!(allowed(
        vec![
            allow_everyone(),
            deny_all_but("Deny", vec![CALLER_ACCOUNT, ROLE, SESSION])
        ],
        Some(&caller(SESSION))
    ));
    // A user is spared when the user and its account are listed.
    assert!(allowed(
        vec![allow_everyone(), deny_all_but("Deny", vec![USER, &account_root])],
        Some(&caller(USER))
    ));
    assert!(!allowed(
        vec![allow_everyone(), deny_all_but("Deny", vec![USER])],
        Some(&caller(USER))
    ));

    // Allow with NotPrincipal is refused at start, naming the statement.
    let err = config_with(vec![invoke(
        json!({"Sid": "AllowAllBut", "Effect": "Allow", "NotPrincipal": {"AWS": ROLE}}),
    )])
    .unwrap_err();
    assert_eq!(
        err,
        "services[0] (app): malformed policy: Statement[0] (Sid \"AllowAllBut\"): NotPrincipal must be used with \"Effect\": \"Deny\"; IAM does not support it with \"Allow\" (use \"Principal\" with a Condition on aws:PrincipalArn)"
    );
    // So are "*" in NotPrincipal and patterns in any principal.
    let refused = |statement: Value, expected: &str| {
        assert_eq!(
            Policy::from_value(&json!({"Statement": [invoke(statement)]}), PolicyKind::Resource),
            Err(PolicyError(expected.into()))
        );
    };
    refused(
        json!({"Effect": "Deny", "NotPrincipal": "*"}),
        "Statement[0].NotPrincipal: \"*\" would exempt everyone; NotPrincipal lists the principals a Deny spares",
    );
    refused(
        json!({"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:sts::444455556666:assumed-role/cross-account-read-only-role/*"}}),
        "Statement[0].NotPrincipal.AWS: `arn:aws:sts::444455556666:assumed-role/cross-account-read-only-role/*`: a principal cannot be a pattern (IAM compares principal ARNs exactly; use a Condition on aws:PrincipalArn with ArnLike instead)",
    );
    refused(
        json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:role/*"}}),
        "Statement[0].Principal.AWS: `arn:aws:iam::444455556666:role/*`: a principal cannot be a pattern (IAM compares principal ARNs exactly; use a Condition on aws:PrincipalArn with ArnLike instead)",
    );
    refused(
        json!({"Effect": "Allow", "Principal": {"AWS": "frontend"}}),
        "Statement[0].Principal.AWS: `frontend` is not \"*\", an account id or an IAM role, user, root or STS session ARN",
    );
}

/// Point 3. The path a `RequestPath` condition (and the resource ARN) sees
/// is the path the target receives: dot segments, repeated slashes and
/// encoded unreserved characters cannot slip past a Deny.
#[test]
fn a_request_path_deny_sees_the_normalised_path() {
    let deny_admin = invoke(json!({"Sid": "NoAdmin", "Effect": "Deny", "Principal": "*",
        "Condition": {"StringLike": {"vpc-lattice-svcs:RequestPath": "/admin*"}}}));
    let cfg = config_with(vec![allow_everyone(), deny_admin]).unwrap();
    for raw in [
        "/admin",
        "//admin",
        "/./admin",
        "/x/../admin",
        "/x/%2E%2E/admin",
        "/%2e/admin",
        "/%61dmin/users",
        "///admin//users/",
        "/x/y/../../admin",
        "/../admin",
    ] {
        let path = request_path(raw).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
        assert!(path.starts_with("/admin"), "{raw} -> {path}");
        let verdict = decide_at(&cfg, None, &path);
        assert_eq!(
            (verdict.allowed, verdict.statement.as_deref()),
            (false, Some("NoAdmin")),
            "{raw}"
        );
    }
    assert_eq!(request_path("/a/./b/../c//d/").unwrap(), "/a/c/d/");
    assert_eq!(request_path("/").unwrap(), "/");
    assert_eq!(request_path("/caf%c3%a9").unwrap(), "/caf%C3%A9");
    // Encoded slashes and backslashes mean different paths to different targets: refused.
    for raw in ["/x%2Fadmin", "/x%2fadmin", "/x%5Cadmin", "/x\\admin", "admin", "*"] {
        assert!(matches!(request_path(raw), Err(BadPath(_))), "{raw}");
    }
}

/// Point 7. Condition keys Lattice does not define are an error at start,
/// naming the statement; every key lattice-sim puts in a request context is
/// accepted.
/// <https://docs.aws.amazon.com/vpc-lattice/latest/ug/auth-policies.html> ("Condition keys")
#[test]
fn unknown_condition_keys_are_refused_at_start() {
    let with_key = |key: &str| {
        invoke(json!({"Sid": "Scoped", "Effect": "Allow", "Principal": "*",
                      "Condition": {"StringEquals": {key: "true"}}}))
    };
    let err = config_with(vec![with_key("vpc-lattice-svcs:RequestHeaders/x-jwt-scope-admin")]).unwrap_err();
    assert!(
        err.starts_with("services[0] (app): malformed policy: Statement[0] (Sid \"Scoped\").Condition.StringEquals.vpc-lattice-svcs:RequestHeaders/x-jwt-scope-admin: `vpc-lattice-svcs:RequestHeaders/x-jwt-scope-admin` is not a condition key VPC Lattice defines"),
        "{err}"
    );
    for key in [
        "vpc-lattice-svcs:RequestHeader/",
        "vpc-lattice-svcs:Method",
        "lattice:RequestPath",
        "RequestPath",
        "aws:SourceIp",
        "aws:PrincipalTag/",
    ] {
        assert!(config_with(vec![with_key(key)]).is_err(), "{key}");
    }
    // Case does not matter in keys, as in IAM.
    for key in [
        "vpc-lattice-svcs:RequestHeader/x-jwt-scope-admin",
        "VPC-LATTICE-SVCS:requestpath",
        "aws:PrincipalTag/team",
        "vpc-lattice-svcs:RequestQueryString/q",
    ] {
        config_with(vec![with_key(key)]).unwrap_or_else(|e| panic!("{key}: {e}"));
    }

    // Every key of a full request context is one the parser accepts, and
    // every fixed key the parser accepts is in that context.
    let doc = json!({
        "region": "us-west-2", "account": ACCOUNT,
        "service_network": {"name": "net", "auth_type": "AWS_IAM"},
        "services": [{"name": "app", "host": "app.lattice.test", "auth_type": "AWS_IAM", "target": "http://127.0.0.1:9"}],
    });
    let cfg = Config::parse(&doc.to_string(), Path::new(".")).unwrap();
    let who = Caller {
        org_id: Some("o-example".into()),
        tags: [("team".to_string(), "web".to_string())].into_iter().collect(),
        ..caller(SESSION)
    };
    let headers = vec![("x-jwt-scope-admin".to_string(), b"true".to_vec())];
    let info = RequestInfo {
        method: "GET",
        path: "/x",
        query: "q=1",
        headers: &headers,
        port: 443,
    };
    let ctx = context(&cfg, &cfg.services[0], Some(&who), &info);
    for key in ctx.keys.keys() {
        Policy::from_value(
            &json!({"Statement": [invoke(json!({"Effect": "Allow", "Principal": "*", "Condition": {"Null": {key: "false"}}}))]}),
            PolicyKind::Resource,
        )
        .unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    for key in CONDITION_KEYS {
        assert!(ctx.keys.contains_key(key), "{key} is accepted but never in a context");
    }
    for prefix in CONDITION_KEY_PREFIXES {
        assert!(ctx.keys.keys().any(|k| k.starts_with(prefix)), "{prefix}");
    }
}

/// The IAM evaluation logic, pinned as a table: "An explicit deny in any
/// policy overrides any allows" and "For authorization to succeed, both auth
/// policies and identity-based policies need to have explicit allow
/// statements" (<https://docs.aws.amazon.com/vpc-lattice/latest/ug/auth-policies.html>,
/// "How authorization works"); a request no statement allows is implicitly
/// denied (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>).
#[test]
fn explicit_deny_implicit_deny_and_allow_at_every_level() {
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Says {
        Allow,
        Deny,
        Nothing,
    }
    let policy = |says: Says, sid: &str| match says {
        Says::Allow => json!({"Statement": [invoke(json!({"Sid": sid, "Effect": "Allow", "Principal": "*"}))]}),
        Says::Deny => json!({"Statement": [
            invoke(json!({"Sid": format!("{sid}Allow"), "Effect": "Allow", "Principal": "*"})),
            invoke(json!({"Sid": sid, "Effect": "Deny", "Principal": "*"})),
        ]}),
        // A statement for somebody else: nothing applies to this caller.
        Says::Nothing => {
            json!({"Statement": [invoke(json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}}))]})
        }
    };
    let identity = |says: Says| match says {
        Says::Allow => json!({"Statement": [invoke(json!({"Sid": "Id", "Effect": "Allow"}))]}),
        Says::Deny => {
            json!({"Statement": [invoke(json!({"Sid": "IdAllow", "Effect": "Allow"})), invoke(json!({"Sid": "Id", "Effect": "Deny"}))]})
        }
        Says::Nothing => {
            json!({"Statement": [{"Sid": "Id", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
        }
    };
    let all = [Says::Allow, Says::Deny, Says::Nothing];
    let mut checked = 0;
    for network in all {
        for service in all {
            for id in all.iter().map(|s| Some(*s)).chain([None]) {
                let mut credential =
                    json!({"access_key_id": "ASIATABLE00000000001", "secret_access_key": "s", "principal": SESSION});
                if let Some(id) = id {
                    credential["identity_policy"] = identity(id);
                }
                let doc = json!({
                    "region": "us-west-2", "account": ACCOUNT,
                    "service_network": {"name": "net", "auth_type": "AWS_IAM", "policy": policy(network, "Net")},
                    "services": [{"name": "app", "host": "app.lattice.test", "auth_type": "AWS_IAM",
                                  "target": "http://127.0.0.1:9", "policy": policy(service, "Svc")}],
                    "credentials": [credential],
                });
                let cfg = Config::parse(&doc.to_string(), Path::new(".")).unwrap();
                let who = cfg.credentials["ASIATABLE00000000001"].caller.clone();
                let verdict = decide_at(&cfg, Some(&who), "/");
                // The expectation, from the documented rules alone.
                let levels = [
                    ("network", Some(network), "Net"),
                    ("service", Some(service), "Svc"),
                    ("identity", id, "Id"),
                ];
                let first = |wanted: Says| levels.iter().find(|(_, says, _)| *says == Some(wanted));
                let expected = match (first(Says::Deny), first(Says::Nothing)) {
                    (Some((policy, _, sid)), _) => (false, *policy, Some(sid.to_string())),
                    (None, Some((policy, _, _))) => (false, *policy, None),
                    (None, None) => (
                        true,
                        if id.is_some() { "identity" } else { "service" },
                        verdict.statement.clone(),
                    ),
                };
                assert_eq!(
                    (verdict.allowed, verdict.policy, verdict.statement.clone()),
                    expected,
                    "network {network:?}, service {service:?}, identity {id:?}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 3 * 4);
}
