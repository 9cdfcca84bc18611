//! The reference architecture's four flows on the real stack: every Envoy
//! rendered by envoy-gen from `envoy/examples/reference.yaml`, lattice-sim
//! running the policy files `envoy-gen policies` wrote, the dev IdP, and
//! the echo apps calling each other through their sidecars.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::deployment::Deployment;
use e2e::echo::echoed_headers;
use e2e::http::Request;
use serde_json::Value;

fn spec() -> std::path::PathBuf {
    e2e::envoy::workspace_root().join("envoy/examples/reference.yaml")
}

/// One deployment (five Envoys, the IdP, lattice-sim, three apps) for
/// every check, stopped when the test ends, whether it passes or panics.
#[test]
fn the_reference_system_on_one_machine() {
    let d = Deployment::start(&spec(), None, &e2e::dev_idp_binary().unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    flow1_app2_calls_app1_with_its_own_role_and_no_user_identity(&d);
    flow2_app2_to_app3_is_refused_by_lattice_with_its_text(&d);
    flow3_no_token_is_401_and_an_unsigned_call_to_lattice_is_403_anonymous(&d);
    flow4_a_valid_token_reaches_app2_with_its_scope_and_not_app3(&d);
    a_token_without_the_scope_and_forged_scope_headers_are_refused(&d);
    sidecar_addressing_modes_sign_for_the_target_host(&d);
    sidecar_refuses_unlisted_targets_locally(&d);
    sidecar_removes_identity_headers_forged_by_the_app(&d);
    sidecar_refuses_what_lattice_could_misread(&d);
    lattice_sim_runs_the_committed_policy_files(&d);
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn through_frontend(d: &Deployment, path: &str, scopes: Option<&[&str]>) -> e2e::http::Response {
    let mut request = Request::get(path);
    if let Some(scopes) = scopes {
        request = request.bearer(&d.token("alice@example.com", scopes).unwrap());
    }
    request.send(("127.0.0.1", d.frontend_port())).unwrap()
}

fn role_session(d: &Deployment, role: &str) -> String {
    d.key(role).unwrap().session_arn.clone()
}

fn flow1_app2_calls_app1_with_its_own_role_and_no_user_identity(d: &Deployment) {
    let response = through_frontend(d, "/app2/call-to-app1", Some(&["test.all"]));
    assert_eq!(response.status, 200, "{}", response.text());
    let body: Value = response.json();
    assert_eq!(body["webserver"], "app1");
    assert_eq!(body["jwt_subject"], "no user identity");
    let headers = echoed_headers(&body);
    let identity = header(&headers, "x-amzn-lattice-identity").unwrap();
    assert!(
        identity.starts_with(&format!("Principal={};", role_session(d, "app2"))),
        "{identity}"
    );
    assert!(headers.iter().all(|(n, _)| !n.starts_with("x-jwt-")), "{headers:?}");
}

fn flow2_app2_to_app3_is_refused_by_lattice_with_its_text(d: &Deployment) {
    let response = through_frontend(d, "/app2/call-to-app3", Some(&["test.all"]));
    assert_eq!(response.status, 403);
    let text = response.text();
    assert!(
        text.starts_with(&format!(
            "AccessDeniedException: User: {} is not authorized to perform: vpc-lattice-svcs:Invoke on resource: arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0a1b2c3d4e5f60003/app3/called-by-app2",
            role_session(d, "app2")
        )),
        "{text}"
    );
}

fn flow3_no_token_is_401_and_an_unsigned_call_to_lattice_is_403_anonymous(d: &Deployment) {
    let response = through_frontend(d, "/app1", None);
    assert_eq!(response.status, 401);
    assert_eq!(response.text(), "Jwt is missing");

    let response = e2e::tls::send(
        d.sim.addr,
        "app1.example.internal",
        &d.sim.ca_pem,
        &Request::get("/app1"),
    )
    .unwrap();
    assert_eq!(response.status, 403);
    assert_eq!(
        response.text().trim_end(),
        "AccessDeniedException: User: anonymous is not authorized to perform: vpc-lattice-svcs:Invoke on resource: arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0a1b2c3d4e5f60001/app1 because no network-based policy allows the vpc-lattice-svcs:Invoke action"
    );
}

fn flow4_a_valid_token_reaches_app2_with_its_scope_and_not_app3(d: &Deployment) {
    let response = through_frontend(d, "/app2", Some(&["openid", "test.all"]));
    assert_eq!(response.status, 200, "{}", response.text());
    let body: Value = response.json();
    assert_eq!(body["webserver"], "app2");
    assert_eq!(body["jwt_subject"], "alice@example.com");
    let headers = echoed_headers(&body);
    assert_eq!(header(&headers, "x-jwt-scope-test.all"), Some("true"));
    assert_eq!(header(&headers, "x-jwt-scope-openid"), Some("true"));
    let identity = header(&headers, "x-amzn-lattice-identity").unwrap();
    assert!(
        identity.starts_with(&format!("Principal={};", role_session(d, "frontend"))),
        "{identity}"
    );

    let response = through_frontend(d, "/app3", Some(&["openid", "test.all"]));
    assert_eq!(response.status, 403);
    assert!(
        response
            .text()
            .contains(" with an explicit deny in a service-based policy"),
        "{}",
        response.text()
    );
}

fn a_token_without_the_scope_and_forged_scope_headers_are_refused(d: &Deployment) {
    let response = through_frontend(d, "/app1", Some(&["openid"]));
    assert_eq!(response.status, 403, "{}", response.text());
    let token = d.token("mallory", &["openid"]).unwrap();
    let response = Request::get("/app1")
        .bearer(&token)
        .header("x-jwt-scope-test.all", "true")
        .header("X-JWT-Scope-Test.All", "true")
        .send(("127.0.0.1", d.frontend_port()))
        .unwrap();
    assert_eq!(response.status, 403, "{}", response.text());
}

/// The app talks to its sidecar both ways: `Host:` on the loopback
/// listener, and as an HTTP forward proxy (absolute URI).
fn sidecar_addressing_modes_sign_for_the_target_host(d: &Deployment) {
    let port = d.sidecar_port("app2").unwrap();
    for request in [
        Request::get("/app1/by-host").header("host", "app1.example.internal"),
        Request::get("http://app1.example.internal/app1/by-proxy").header("host", "app1.example.internal"),
        Request::get("/app1/with-port").header("host", "app1.example.internal:80"),
    ] {
        let response = request.send(("127.0.0.1", port)).unwrap();
        assert_eq!(response.status, 200, "{}: {}", request.path, response.text());
        let body: Value = response.json();
        assert_eq!(body["webserver"], "app1");
        assert_eq!(body["hostname"], "app1.example.internal");
        let headers = echoed_headers(&body);
        assert!(header(&headers, "x-amzn-lattice-identity")
            .unwrap()
            .starts_with(&format!("Principal={};", role_session(d, "app2"))));
    }
}

fn sidecar_refuses_unlisted_targets_locally(d: &Deployment) {
    let before = d.sim_log_len();
    let app2 = d.sidecar_port("app2").unwrap();
    for host in [
        "app2.example.internal",
        "evil.example.com",
        "127.0.0.1",
        "app1.example.internal.evil.com",
    ] {
        let response = Request::get("/x")
            .header("host", host)
            .send(("127.0.0.1", app2))
            .unwrap();
        assert_eq!(response.status, 403, "{host}");
        assert!(
            response
                .text()
                .starts_with("refused by the sidecar of app2: this host is not a service app2 may call"),
            "{}",
            response.text()
        );
    }
    // app1 may call nothing at all.
    let app1 = d.sidecar_port("app1").unwrap();
    let response = Request::get("/x")
        .header("host", "app2.example.internal")
        .send(("127.0.0.1", app1))
        .unwrap();
    assert_eq!(response.status, 403);
    assert_eq!(
        response.text(),
        "refused by the sidecar of app1: app1 may call no service\n"
    );
    // Through app1's own endpoint, the refusal comes back unchanged.
    let response = through_frontend(d, "/app1/call-to-app2", Some(&["test.all"]));
    assert_eq!(response.status, 403);
    assert_eq!(
        response.text(),
        "refused by the sidecar of app1: app1 may call no service\n"
    );
    // None of the refused calls reached Lattice.
    let lines = d.sim_log_since(before);
    assert!(
        lines
            .iter()
            .all(|l| !l.contains(r#""path":"/x""#) && !l.contains("called-by-app1")),
        "{lines:?}"
    );
}

fn sidecar_removes_identity_headers_forged_by_the_app(d: &Deployment) {
    let port = d.sidecar_port("app2").unwrap();
    let response = Request::get("/app1/forged")
        .header("host", "app1.example.internal")
        .header("x-jwt-subject", "admin")
        .header("x-jwt-scope-test.all", "true")
        .header(
            "X-Amzn-Lattice-Identity",
            "Principal=arn:aws:iam::111122223333:role/frontend",
        )
        .header("x-amz-security-token", "forged")
        .header("x-amz-date", "20200101T000000Z")
        .header("authorization", "AWS4-HMAC-SHA256 Credential=forged")
        .header("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793")
        .header("forwarded", "for=203.0.113.9;host=app3.example.internal")
        .send(("127.0.0.1", port))
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let body: Value = response.json();
    assert_eq!(body["jwt_subject"], "no user identity");
    let headers = echoed_headers(&body);
    assert!(headers.iter().all(|(n, _)| !n.starts_with("x-jwt-")), "{headers:?}");
    assert_eq!(header(&headers, "forwarded"), None);
    assert!(header(&headers, "x-amzn-lattice-identity")
        .unwrap()
        .contains("assumed-role/app2/"));
    // The trace id is not an identity header and passes.
    assert_eq!(
        header(&headers, "x-amzn-trace-id"),
        Some("Root=1-5759e988-bd862e3fe1be46a994272793")
    );
}

/// The app cannot send what Lattice policies would read otherwise than
/// written: `delete` is not `DELETE` to a policy, TRACE echoes, a second
/// Host or an X-Amz-* query parameter are not the request Envoy signed.
fn sidecar_refuses_what_lattice_could_misread(d: &Deployment) {
    let before = d.sim_log_len();
    let port = d.sidecar_port("app2").unwrap();
    let request = |method: &str| Request {
        method: method.into(),
        path: "/app1/m".into(),
        headers: vec![("host".into(), b"app1.example.internal".to_vec())],
    };
    for method in ["delete", "get", "PROPFIND", "TRACE"] {
        let response = e2e::http::send_h2(("127.0.0.1", port), &request(method)).unwrap();
        assert_eq!(response.status, 405, "HTTP/2 {method}: {}", response.text());
    }
    let response = request("TRACE").send(("127.0.0.1", port)).unwrap();
    assert_eq!(response.status, 405, "{}", response.text());
    let response = Request::get("/app1/q?X-Amz-Credential=AKIA")
        .header("host", "app1.example.internal")
        .send(("127.0.0.1", port))
        .unwrap();
    assert_eq!(response.status, 400, "{}", response.text());
    let response = Request::get("/app1/h")
        .header("host", "app1.example.internal")
        .header("host", "app3.example.internal")
        .send(("127.0.0.1", port))
        .unwrap();
    assert_eq!(response.status, 400, "{}", response.text());
    assert_eq!(d.sim_log_len(), before, "{:?}", d.sim_log_since(before));
    // The standard ones still go through, over both protocols.
    let response = e2e::http::send_h2(("127.0.0.1", port), &request("DELETE")).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["method"], "DELETE");
}

fn lattice_sim_runs_the_committed_policy_files(d: &Deployment) {
    let committed = e2e::envoy::workspace_root().join("envoy/generated/reference/policies");
    for file in [
        "service-network.json",
        "services/app1.json",
        "services/app2.json",
        "services/app3.json",
        "roles/app2.json",
        "roles/frontend.json",
    ] {
        let running = std::fs::read_to_string(d.dir.join("policies").join(file)).unwrap();
        let golden = std::fs::read_to_string(committed.join(file)).unwrap();
        assert_eq!(running, golden, "{file}");
    }
    let config = std::fs::read_to_string(d.dir.join("lattice-sim.yaml")).unwrap();
    assert!(config.contains("identity_policy_file"), "{config}");
}
