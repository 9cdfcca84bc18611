//! Several issuers in one generated frontend, in both builds of the filter:
//! envoy-gen renders one jwt_authn provider per issuer, each writing its own
//! key (named after the issuer) in jwt_authn's metadata, the proof that it
//! verified the token. The wasm build reads the payload under that key
//! (`payload_in_metadata`); the native build reads only the key's presence
//! (`header_in_metadata`) and the payload from that provider's
//! `forward_payload_header`, `x-jwt-payload-<issuer>`. Here two test IdPs
//! over HTTPS, lattice-sim and the frontend as envoy-gen renders it from a
//! two-issuer spec, in the real Envoy: each issuer's tokens give their own
//! identity, an issuer's audience or key is never accepted for the other,
//! and a client's forged payload header for either issuer proves nothing.

use e2e::echo::{echoed_headers, EchoServer};
use e2e::envoy::{
    native_module, AwsCredentials, Envoy, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN,
};
use e2e::http::{Request, Response};
use e2e::idp::TlsIdp;
use e2e::tls::TestCa;
use envoy_gen::spec::FilterBuild;
use lattice_sim::config::Config;
use serde_json::{json, Value};
use std::path::Path;

const ACCOUNT: &str = "111122223333";
const DOMAIN: &str = "lattice.test";
const REGION: &str = "us-west-2";

/// app1 admits the frontend's role with `x-jwt-scope-test.all: true`; app3
/// admits anyone and shows what it received.
fn sim_config(target_port: u16) -> Config {
    let doc = json!({
        "region": REGION,
        "account": ACCOUNT,
        "service_network": {"name": "issuers-network", "auth_type": "NONE"},
        "services": [
            {"name": "app1", "host": format!("app1.{DOMAIN}"), "auth_type": "AWS_IAM", "target": format!("http://127.0.0.1:{target_port}"),
             "policy": {"Statement": [
                {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/frontend")}, "Action": "vpc-lattice-svcs:Invoke", "Resource": "*",
                 "Condition": {"StringEquals": {"vpc-lattice-svcs:RequestHeader/x-jwt-scope-test.all": "true"}}},
             ]}},
            {"name": "app3", "host": format!("app3.{DOMAIN}"), "auth_type": "NONE", "target": format!("http://127.0.0.1:{target_port}")},
        ],
        "credentials": [
            {"access_key_id": TEST_ACCESS_KEY_ID, "secret_access_key": TEST_SECRET_ACCESS_KEY, "session_token": TEST_SESSION_TOKEN,
             "principal": format!("arn:aws:sts::{ACCOUNT}:assumed-role/frontend/envoy")},
        ],
    });
    Config::parse(&doc.to_string(), Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

/// A spec with two issuers, `first` and `second`, each with its own
/// audience, and the two services.
fn spec(first: &TlsIdp, second: &TlsIdp) -> String {
    format!(
        "region: {REGION}\n\
         domain: {DOMAIN}\n\
         issuers:\n\
         \x20 - name: first\n\
         \x20   issuer: {}\n\
         \x20   jwks_uri: {}\n\
         \x20   audiences: [{}]\n\
         \x20 - name: second\n\
         \x20   issuer: {}\n\
         \x20   jwks_uri: {}\n\
         \x20   audiences: [{}]\n\
         services:\n\
         \x20 - name: app1\n\
         \x20 - name: app3\n",
        first.url,
        first.jwks_uri(),
        first.audience,
        second.url,
        second.jwks_uri(),
        second.audience
    )
}

struct Stack {
    // Field order is drop order: Envoy first.
    envoy: Envoy,
    config: Value,
    first: TlsIdp,
    second: TlsIdp,
    _sim: lattice_sim::front::Running,
    _target: EchoServer,
    _dir: tempfile::TempDir,
}

impl Stack {
    fn start(build: FilterBuild) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let target = EchoServer::start().unwrap();
        let sim = lattice_sim::front::start(sim_config(target.addr.port()), "127.0.0.1:0").unwrap();
        let ca = TestCa::new("IdP CA");
        // Two issuers, each with its own keys, URL (`iss`) and audience.
        let first = TlsIdp::start(&ca, "api-one", false);
        let second = TlsIdp::start(&ca, "api-two", false);
        let bundle = dir.path().join("ca-bundle.pem");
        std::fs::write(&bundle, format!("{}{}", ca.pem, sim.ca_pem)).unwrap();
        let mut overrides = e2e::stack::local_overrides(DOMAIN, REGION, sim.addr.port(), &bundle);
        overrides = match build {
            FilterBuild::Native => e2e::stack::native(overrides, &native_module().unwrap_or_else(|e| panic!("{e}"))),
            FilterBuild::Wasm => {
                overrides.lattice.filter = Some(FilterBuild::Wasm);
                overrides.lattice.native_module = None;
                overrides
            }
        };
        let spec_path = dir.path().join("issuers.yaml");
        let text = spec(&first, &second);
        std::fs::write(&spec_path, &text).unwrap();
        let rendered = envoy_gen::render_frontend(Some((&spec_path, &text)), &overrides)
            .unwrap_or_else(|e| panic!("envoy-gen: {e}"));
        let config: Value = serde_saphyr::from_str(&rendered).unwrap();
        let envoy = Envoy::start_as(&rendered, &AwsCredentials::test()).unwrap_or_else(|e| panic!("{e}"));
        Stack {
            envoy,
            config,
            first,
            second,
            _sim: sim,
            _target: target,
            _dir: dir,
        }
    }

    fn get(&self, path: &str, token: &str, extra: &[(&str, &str)]) -> Response {
        let mut request = Request::get(path).bearer(token);
        for (name, value) in extra {
            request = request.header(name, value);
        }
        request.send(("127.0.0.1", self.envoy.port("frontend"))).unwrap()
    }

    /// The identity headers app3 received.
    fn identity(&self, token: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let response = self.get("/app3", token, extra);
        assert_eq!(response.status, 200, "{}", response.text());
        let seen = echoed_headers(&response.json());
        assert!(
            seen.iter().all(|(n, _)| !n.starts_with("x-jwt-payload")),
            "a payload header left the frontend: {seen:?}"
        );
        let mut identity: Vec<_> = seen.into_iter().filter(|(n, _)| n.starts_with("x-jwt-")).collect();
        identity.sort();
        identity
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(n, v)| ((*n).into(), (*v).into())).collect()
}

/// A base64url payload a client would like the filter to believe.
fn forged_payload(iss: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"iss": iss, "sub": "mallory", "scp": ["test.all", "admin"]}).to_string())
}

/// The rendered providers: one per issuer, named after it, each writing
/// that name in jwt_authn's metadata as the build reads it.
fn check_providers(config: &Value, build: FilterBuild) {
    let listener = &config["static_resources"]["listeners"][0];
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    let jwt = hcm["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "envoy.filters.http.jwt_authn")
        .expect("jwt_authn");
    let providers = jwt["typed_config"]["providers"].as_object().unwrap();
    let mut names: Vec<_> = providers.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["first", "second"], "{build:?}");
    for (name, provider) in providers {
        match build {
            FilterBuild::Native => {
                assert_eq!(provider["header_in_metadata"], json!(name), "{provider}");
                assert_eq!(
                    provider["forward_payload_header"],
                    json!(format!("x-jwt-payload-{name}"))
                );
                assert!(provider.get("payload_in_metadata").is_none(), "{provider}");
            }
            FilterBuild::Wasm => {
                assert_eq!(provider["payload_in_metadata"], json!(name), "{provider}");
                assert!(provider.get("header_in_metadata").is_none(), "{provider}");
                assert!(provider.get("forward_payload_header").is_none(), "{provider}");
            }
        }
    }
}

fn each_issuer_proves_its_own_tokens(build: FilterBuild) {
    let stack = Stack::start(build);
    check_providers(&stack.config, build);
    let alice = stack.first.token(json!({"sub": "alice", "scp": ["test.all"]}));
    let bob = stack.second.token(json!({"sub": "bob", "scp": ["orders.read"]}));

    // Each issuer's token: its own identity.
    assert_eq!(
        stack.identity(&alice, &[]),
        pairs(&[("x-jwt-scope-test.all", "true"), ("x-jwt-subject", "alice")]),
        "{build:?}"
    );
    assert_eq!(
        stack.identity(&bob, &[]),
        pairs(&[("x-jwt-scope-orders.read", "true"), ("x-jwt-subject", "bob")]),
        "{build:?}"
    );
    // And Lattice's policy sees it: alice has test.all, bob has not.
    assert_eq!(stack.get("/app1", &alice, &[]).status, 200, "{build:?}");
    assert_eq!(stack.get("/app1", &bob, &[]).status, 403, "{build:?}");

    // A forged payload header for either issuer beside a real token: the
    // token's identity only, for both payload headers.
    for name in ["first", "second"] {
        let header = format!("x-jwt-payload-{name}");
        let forged = forged_payload(&stack.first.url);
        assert_eq!(
            stack.identity(&bob, &[(&header, &forged)]),
            pairs(&[("x-jwt-scope-orders.read", "true"), ("x-jwt-subject", "bob")]),
            "{build:?} {header}"
        );
        assert_eq!(stack.get("/app1", &bob, &[(&header, &forged)]).status, 403, "{build:?}");
    }

    // One issuer's audience or key is never accepted for the other.
    let wrong_audience = stack.second.issuer.token(
        e2e::jwt::Alg::ES256,
        json!({"iss": stack.second.url, "aud": stack.first.audience, "sub": "eve", "scp": ["test.all"]}),
    );
    let wrong_key = stack.first.issuer.token(
        e2e::jwt::Alg::ES256,
        json!({"iss": stack.second.url, "aud": stack.second.audience, "sub": "eve", "scp": ["test.all"]}),
    );
    // jwt_authn answers 403 to a verified token for another audience, 401
    // to a signature it cannot verify.
    for (what, token, status, body) in [
        (
            "the other issuer's audience",
            wrong_audience,
            403,
            "Audiences in Jwt are not allowed",
        ),
        ("the other issuer's key", wrong_key, 401, "Jwt verification fails"),
    ] {
        let response = stack.get("/app1", &token, &[]);
        assert_eq!(response.status, status, "{build:?}: {what}: {}", response.text());
        assert_eq!(response.text(), body, "{build:?}: {what}");
    }
    // Without a token the forged headers do not pass either.
    let forged = forged_payload(&stack.second.url);
    let response = Request::get("/app1")
        .header("x-jwt-payload-second", &forged)
        .send(("127.0.0.1", stack.envoy.port("frontend")))
        .unwrap();
    assert_eq!(response.status, 401, "{build:?}: {}", response.text());
}

#[test]
fn wasm_build_each_issuer_proves_its_own_tokens() {
    each_issuer_proves_its_own_tokens(FilterBuild::Wasm);
}

#[test]
fn native_build_each_issuer_proves_its_own_tokens() {
    each_issuer_proves_its_own_tokens(FilterBuild::Native);
}
