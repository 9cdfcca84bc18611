//! The whole system on one machine: a client with a token -> the generated
//! frontend (real Envoy, jwt_authn, the filter, SigV4 with environment
//! credentials) -> lattice-sim (SigV4 verification, network and service
//! auth policies) -> the service's target. The right role with the right
//! scope gets through; the wrong role, a missing scope, a service that
//! trusts another role, and an explicit deny are refused by Lattice's rules.

use e2e::echo::{echoed_headers, EchoServer};
use e2e::envoy::{AwsCredentials, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN};
use e2e::http::Request;
use lattice_sim::config::Config;
use serde_json::json;

const ACCOUNT: &str = "111122223333";
const DOMAIN: &str = "lattice.test";
const REGION: &str = "us-west-2";
const INTRUDER_KEY: &str = "ASIAINTRUDER00000001";

fn sim_config(target_port: u16) -> Config {
    let role = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/{name}");
    let doc = json!({
        "region": REGION,
        "account": ACCOUNT,
        "service_network": {
            "name": "demo-network",
            "auth_type": "AWS_IAM",
            "policy": {"Statement": [{"Sid": "AccountCallers", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                                       "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]},
        },
        "services": [
            {"name": "app1", "host": format!("app1.{DOMAIN}"), "auth_type": "AWS_IAM", "target": format!("http://127.0.0.1:{target_port}"),
             "policy": {"Statement": [
                {"Sid": "FrontendWithScope", "Effect": "Allow", "Principal": {"AWS": role("frontend")}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*",
                 "Condition": {"StringEquals": {"vpc-lattice-svcs:RequestHeader/x-jwt-scope-test.all": "true"}}},
                {"Sid": "NoSuspended", "Effect": "Deny", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*",
                 "Condition": {"StringEquals": {"vpc-lattice-svcs:RequestHeader/x-jwt-scope-suspended": "true"}}},
             ]}},
            {"name": "app2", "host": format!("app2.{DOMAIN}"), "auth_type": "AWS_IAM", "target": format!("http://127.0.0.1:{target_port}"),
             "policy": {"Statement": [{"Sid": "BackendOnly", "Effect": "Allow", "Principal": {"AWS": role("backend")}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]}},
            {"name": "app3", "host": format!("app3.{DOMAIN}"), "auth_type": "NONE", "target": format!("http://127.0.0.1:{target_port}")},
        ],
        "credentials": [
            {"access_key_id": TEST_ACCESS_KEY_ID, "secret_access_key": TEST_SECRET_ACCESS_KEY, "session_token": TEST_SESSION_TOKEN,
             "principal": format!("arn:aws:sts::{ACCOUNT}:assumed-role/frontend/envoy")},
            {"access_key_id": INTRUDER_KEY, "secret_access_key": "intruder-secret", "session_token": "intruder-token",
             "principal": "arn:aws:sts::444455556666:assumed-role/frontend/elsewhere"},
        ],
    });
    Config::parse(&doc.to_string(), std::path::Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

struct System {
    system: e2e::stack::System,
    target: EchoServer,
}

impl System {
    fn start(credentials: &AwsCredentials) -> System {
        let target = EchoServer::start().unwrap();
        let sim = lattice_sim::front::start(sim_config(target.addr.port()), "127.0.0.1:0").unwrap();
        let system = e2e::stack::System::start(sim, DOMAIN, REGION, "lattice-demo", credentials)
            .unwrap_or_else(|e| panic!("{e}"));
        System { system, target }
    }

    fn get(&self, path: &str, scopes: &[&str]) -> e2e::http::Response {
        let token = self
            .system
            .idp
            .token(json!({"sub": "alice@example.com", "scp": scopes}));
        Request::get(path)
            .bearer(&token)
            .send(("127.0.0.1", self.system.envoy.port("frontend")))
            .unwrap()
    }
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

#[test]
fn the_right_role_with_the_right_scope_reaches_the_service() {
    let system = System::start(&AwsCredentials::test());
    let response = system.get("/app1/orders", &["test.all"]);
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = echoed_headers(&response.json());
    assert_eq!(
        header(&seen, "x-amzn-lattice-identity").as_deref(),
        Some(
            format!("Principal=arn:aws:sts::{ACCOUNT}:assumed-role/frontend/envoy; SessionName=envoy; Type=AWS_IAM")
                .as_str()
        )
    );
    assert!(header(&seen, "x-amzn-lattice-target").unwrap().starts_with(&format!(
        "ServiceArn=arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/svc-"
    )));
    assert_eq!(header(&seen, "x-jwt-subject").as_deref(), Some("alice@example.com"));
    assert_eq!(header(&seen, "x-jwt-scope-test.all").as_deref(), Some("true"));
    assert_eq!(header(&seen, "x-forwarded-proto").as_deref(), Some("https"));

    // A service with auth type NONE lets anyone in, and still says who called.
    let response = system.get("/app3", &[]);
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn lattice_policies_refuse_what_they_do_not_allow() {
    let system = System::start(&AwsCredentials::test());
    let served = system.target.requests_served();

    // The right role without the scope: no statement of app1's policy allows it.
    let response = system.get("/app1/orders", &["openid"]);
    assert_eq!(response.status, 403);
    assert!(
        response
            .text()
            .contains("because no service-based policy allows the vpc-lattice-svcs:Invoke action"),
        "{}",
        response.text()
    );

    // An explicit deny wins over the allow.
    let response = system.get("/app1/orders", &["test.all", "suspended"]);
    assert_eq!(response.status, 403);
    assert!(
        response
            .text()
            .contains("with an explicit deny in a service-based policy"),
        "{}",
        response.text()
    );

    // app2 trusts only the backend role.
    let response = system.get("/app2", &["test.all"]);
    assert_eq!(response.status, 403);
    assert!(response.text().starts_with(&format!(
        "AccessDeniedException: User: arn:aws:sts::{ACCOUNT}:assumed-role/frontend/envoy is not authorized to perform: vpc-lattice-svcs:Invoke on resource: arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/svc-"
    )), "{}", response.text());
    assert_eq!(
        system.target.requests_served(),
        served,
        "a refused request reached the target"
    );
}

#[test]
fn the_wrong_role_is_refused_by_the_service_network() {
    let intruder = AwsCredentials {
        access_key_id: INTRUDER_KEY.into(),
        secret_access_key: "intruder-secret".into(),
        session_token: "intruder-token".into(),
    };
    let system = System::start(&intruder);
    let response = system.get("/app1/orders", &["test.all"]);
    assert_eq!(response.status, 403, "{}", response.text());
    assert!(
        response
            .text()
            .contains("User: arn:aws:sts::444455556666:assumed-role/frontend/elsewhere is not authorized"),
        "{}",
        response.text()
    );
    assert!(
        response.text().contains("because no network-based policy allows"),
        "{}",
        response.text()
    );
    assert_eq!(system.target.requests_served(), 0);
}

#[test]
fn credentials_lattice_does_not_know_are_refused() {
    let stranger = AwsCredentials {
        access_key_id: "ASIAUNKNOWN000000001".into(),
        secret_access_key: "x".into(),
        session_token: "y".into(),
    };
    let system = System::start(&stranger);
    let response = system.get("/app1/orders", &["test.all"]);
    assert_eq!(response.status, 403);
    assert_eq!(response.header("x-amzn-errortype"), Some("UnrecognizedClientException"));
    assert_eq!(system.target.requests_served(), 0);
}
