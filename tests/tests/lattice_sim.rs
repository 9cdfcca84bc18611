//! lattice-sim's HTTPS front, spoken to directly over TLS: anonymous
//! callers, forged Lattice headers, SNI/Host disagreement, a CA the user
//! gives, signatures made with the wrong secret, and targets that are down
//! or too slow.

use e2e::echo::{echoed_headers, EchoServer};
use e2e::http::Request;
use e2e::tls::{send, TestCa};
use lattice_sim::config::Config;
use lattice_sim::sigv4;
use serde_json::json;
use std::net::TcpListener;

const ACCOUNT: &str = "111122223333";
const KEY: &str = "ASIADIRECTTEST000001";
const SECRET: &str = "direct/test/secret";

fn config(target: &str, extra: serde_json::Value) -> Config {
    let mut doc = json!({
        "region": "us-west-2",
        "account": ACCOUNT,
        "upstream_timeout_seconds": 1,
        "service_network": {"name": "net", "auth_type": "NONE"},
        "services": [
            {"name": "open", "host": "open.lattice.test", "auth_type": "NONE", "target": target},
            {"name": "iam", "host": "iam.lattice.test", "auth_type": "AWS_IAM", "target": target,
             "policy": {"Statement": [{"Sid": "Frontend", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/frontend")},
                                        "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]}},
        ],
        "credentials": [{"access_key_id": KEY, "secret_access_key": SECRET, "principal": format!("arn:aws:sts::{ACCOUNT}:assumed-role/frontend/direct")}],
    });
    if let serde_json::Value::Object(extra) = extra {
        for (k, v) in extra {
            doc[k] = v;
        }
    }
    Config::parse(&doc.to_string(), std::path::Path::new("/")).unwrap_or_else(|e| panic!("{e}"))
}

/// Signs `request` for `host` with `secret` (x-amz-date now, UNSIGNED-PAYLOAD).
fn signed(request: Request, host: &str, secret: &str) -> Request {
    let now = time::OffsetDateTime::now_utc();
    let amz_date = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap();
    let request = request
        .header("host", host)
        .header("x-amz-date", &amz_date)
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    let headers: Vec<(String, Vec<u8>)> = request.headers.clone();
    let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    let signed_headers: Vec<String> = vec!["host".into(), "x-amz-content-sha256".into(), "x-amz-date".into()];
    let authorization = sigv4::authorization_header(
        &sigv4::Request {
            method: &request.method,
            path: path.as_bytes(),
            query: query.as_bytes(),
            headers: &headers,
            body_sha256: None,
        },
        &signed_headers,
        KEY,
        secret,
        "us-west-2",
        "vpc-lattice-svcs",
        true,
    )
    .unwrap();
    request.header("authorization", authorization)
}

#[test]
fn forwards_with_lattice_headers_and_drops_forged_ones() {
    let target = EchoServer::start().unwrap();
    let sim = lattice_sim::front::start(
        config(&format!("http://127.0.0.1:{}", target.addr.port()), json!({})),
        "127.0.0.1:0",
    )
    .unwrap();
    let request = Request::get("/hello?x=1")
        .header(
            "x-amzn-lattice-identity",
            "Principal=arn:aws:iam::999999999999:role/admin; Type=AWS_IAM",
        )
        .header("x-amzn-source-vpc", "vpc-forged")
        .header("x-forwarded-for", "203.0.113.9");
    let response = send(sim.addr, "open.lattice.test", &sim.ca_pem, &request).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["path"], "/hello?x=1");
    let seen = echoed_headers(&body);
    let get = |name: &str| {
        seen.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("x-amzn-lattice-identity"), ["Type=Anonymous"]);
    assert_eq!(get("x-amzn-source-vpc"), ["vpc-0a1b2c3d4e5f60718"]);
    assert_eq!(get("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(get("x-forwarded-proto"), ["https"]);
    assert_eq!(get("x-amzn-lattice-target").len(), 1);
    assert!(get("x-amzn-lattice-target")[0]
        .contains("ServiceNetworkArn=arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-"));
}

#[test]
fn signatures_and_policies_at_the_door() {
    let target = EchoServer::start().unwrap();
    let sim = lattice_sim::front::start(
        config(&format!("http://127.0.0.1:{}", target.addr.port()), json!({})),
        "127.0.0.1:0",
    )
    .unwrap();
    let host = "iam.lattice.test";

    let anonymous = send(sim.addr, host, &sim.ca_pem, &Request::get("/x")).unwrap();
    assert_eq!(anonymous.status, 403);
    assert_eq!(anonymous.header("x-amzn-errortype"), Some("AccessDeniedException"));
    assert!(
        anonymous
            .text()
            .starts_with("AccessDeniedException: User: anonymous is not authorized"),
        "{}",
        anonymous.text()
    );

    let good = send(
        sim.addr,
        host,
        &sim.ca_pem,
        &signed(Request::get("/x?q=1"), host, SECRET),
    )
    .unwrap();
    assert_eq!(good.status, 200, "{}", good.text());
    let seen = echoed_headers(&good.json());
    assert!(seen.contains(&(
        "x-amzn-lattice-identity".into(),
        format!("Principal=arn:aws:sts::{ACCOUNT}:assumed-role/frontend/direct; SessionName=direct; Type=AWS_IAM")
    )));

    let wrong_secret = send(
        sim.addr,
        host,
        &sim.ca_pem,
        &signed(Request::get("/x"), host, "not-the-secret"),
    )
    .unwrap();
    assert_eq!(wrong_secret.status, 403);
    assert_eq!(
        wrong_secret.header("x-amzn-errortype"),
        Some("InvalidSignatureException")
    );
    assert!(
        wrong_secret
            .text()
            .contains("The request signature we calculated does not match"),
        "{}",
        wrong_secret.text()
    );

    // A signed header changed after signing.
    let mut tampered = signed(Request::get("/x"), host, SECRET);
    for (name, value) in tampered.headers.iter_mut() {
        if name == "x-amz-content-sha256" {
            *value = b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_vec();
        }
    }
    let response = send(sim.addr, host, &sim.ca_pem, &tampered).unwrap();
    assert_eq!(response.status, 403, "{}", response.text());
    assert_eq!(response.header("x-amzn-errortype"), Some("InvalidSignatureException"));
    assert_eq!(target.requests_served(), 1, "only the good request reached the target");
}

#[test]
fn host_must_match_sni_and_unknown_hosts_are_not_found() {
    let target = EchoServer::start().unwrap();
    let sim = lattice_sim::front::start(
        config(&format!("http://127.0.0.1:{}", target.addr.port()), json!({})),
        "127.0.0.1:0",
    )
    .unwrap();
    let smuggled = Request::get("/x").header("host", "iam.lattice.test");
    let response = send(sim.addr, "open.lattice.test", &sim.ca_pem, &smuggled).unwrap();
    assert_eq!(response.status, 421, "{}", response.text());
    // A name the certificate does not cover fails TLS verification at the client.
    assert!(send(sim.addr, "other.lattice.test", &sim.ca_pem, &Request::get("/")).is_err());
    assert_eq!(target.requests_served(), 0);
}

#[test]
fn targets_down_or_too_slow_are_502_and_504() {
    // Nothing listens on a port we bound and released.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sim =
        lattice_sim::front::start(config(&format!("http://127.0.0.1:{closed}"), json!({})), "127.0.0.1:0").unwrap();
    let response = send(sim.addr, "open.lattice.test", &sim.ca_pem, &Request::get("/")).unwrap();
    assert_eq!(response.status, 502, "{}", response.text());

    // A target that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let sim = lattice_sim::front::start(
        config(&format!("http://{}", silent.local_addr().unwrap()), json!({})),
        "127.0.0.1:0",
    )
    .unwrap();
    let response = send(sim.addr, "open.lattice.test", &sim.ca_pem, &Request::get("/")).unwrap();
    assert_eq!(response.status, 504, "{}", response.text());
    drop(silent);
}

#[test]
fn a_ca_the_user_gives_signs_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("user CA");
    std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(dir.path().join("ca.key"), ca.key_pem()).unwrap();
    let target = EchoServer::start().unwrap();
    let cfg = config(
        &format!("http://127.0.0.1:{}", target.addr.port()),
        json!({"tls": {"ca_cert": dir.path().join("ca.pem"), "ca_key": dir.path().join("ca.key")}}),
    );
    let sim = lattice_sim::front::start(cfg, "127.0.0.1:0").unwrap();
    assert_eq!(sim.ca_pem, ca.pem);
    let response = send(sim.addr, "open.lattice.test", &ca.pem, &Request::get("/")).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
}

/// "VPC Lattice attempts to authenticate any request that is signed with
/// SIGv4 or SIGv4A. The request fails without authentication."
/// (<https://docs.aws.amazon.com/vpc-lattice/latest/ug/sigv4-authenticated-requests.html>):
/// with auth type NONE on the network and the service, a bad signature is
/// still refused, never passed on as anonymous; what lattice-sim cannot
/// verify (SigV4A, presigned queries) is refused too. An application's own
/// `Authorization: Bearer` is not a SigV4 signature and passes.
#[test]
fn a_signed_request_is_authenticated_even_where_auth_type_is_none() {
    let target = EchoServer::start().unwrap();
    let sim = lattice_sim::front::start(
        config(&format!("http://127.0.0.1:{}", target.addr.port()), json!({})),
        "127.0.0.1:0",
    )
    .unwrap();
    let host = "open.lattice.test";
    let refused = [
        (
            "a wrong secret",
            signed(Request::get("/x"), host, "not-the-secret"),
            "InvalidSignatureException",
        ),
        (
            "SigV4A",
            Request::get("/x").header(
                "authorization",
                "AWS4-ECDSA-P256-SHA256 Credential=ASIADIRECTTEST000001/20250101/vpc-lattice-svcs/aws4_request, SignedHeaders=host, Signature=00",
            ),
            "IncompleteSignatureException",
        ),
        (
            "a presigned query",
            Request::get("/x?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00"),
            "IncompleteSignatureException",
        ),
    ];
    for (what, request, error) in refused {
        let response = send(sim.addr, host, &sim.ca_pem, &request).unwrap();
        assert_eq!(response.status, 403, "{what}: {}", response.text());
        assert_eq!(response.header("x-amzn-errortype"), Some(error), "{what}");
    }
    assert_eq!(target.requests_served(), 0, "no refused request reached the target");

    let good = send(sim.addr, host, &sim.ca_pem, &signed(Request::get("/x"), host, SECRET)).unwrap();
    assert_eq!(good.status, 200, "{}", good.text());
    assert!(echoed_headers(&good.json()).contains(&(
        "x-amzn-lattice-identity".into(),
        format!("Principal=arn:aws:sts::{ACCOUNT}:assumed-role/frontend/direct; SessionName=direct; Type=AWS_IAM")
    )));
    let bearer = send(
        sim.addr,
        host,
        &sim.ca_pem,
        &Request::get("/x").header("authorization", "Bearer app-token"),
    )
    .unwrap();
    assert_eq!(bearer.status, 200, "{}", bearer.text());
    assert!(echoed_headers(&bearer.json()).contains(&("x-amzn-lattice-identity".into(), "Type=Anonymous".into())));

    // Where IAM applies, anything in Authorization that is not SigV4 is refused.
    let response = send(
        sim.addr,
        "iam.lattice.test",
        &sim.ca_pem,
        &Request::get("/x").header("authorization", "Bearer app-token"),
    )
    .unwrap();
    assert_eq!(response.status, 403, "{}", response.text());
    assert_eq!(target.requests_served(), 2);
}

/// A `RequestPath` Deny cannot be walked around with dot segments, repeated
/// slashes or encoded letters: the policy sees the normalised path, and the
/// target receives that same path. Encoded slashes are refused.
#[test]
fn the_target_receives_the_path_the_policy_saw() {
    let target = EchoServer::start().unwrap();
    let policy = json!({"Statement": [
        {"Sid": "Frontend", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/frontend")},
         "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"},
        {"Sid": "NoAdmin", "Effect": "Deny", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*",
         "Condition": {"StringLike": {"vpc-lattice-svcs:RequestPath": "/admin*"}}},
    ]});
    let mut cfg = config(&format!("http://127.0.0.1:{}", target.addr.port()), json!({}));
    cfg.services[1].policy =
        Some(lattice_sim::policy::Policy::from_value(&policy, lattice_sim::policy::PolicyKind::Resource).unwrap());
    let sim = lattice_sim::front::start(cfg, "127.0.0.1:0").unwrap();
    let host = "iam.lattice.test";
    for path in [
        "/admin",
        "//admin",
        "/x/../admin",
        "/./admin/users",
        "/x/%2e%2e/admin",
        "/%61dmin",
    ] {
        let response = send(sim.addr, host, &sim.ca_pem, &signed(Request::get(path), host, SECRET)).unwrap();
        assert_eq!(response.status, 403, "{path}: {}", response.text());
        assert!(
            response
                .text()
                .contains("with an explicit deny in a service-based policy"),
            "{path}"
        );
    }
    for path in ["/x%2Fadmin", "/x%5cadmin"] {
        let response = send(sim.addr, host, &sim.ca_pem, &signed(Request::get(path), host, SECRET)).unwrap();
        assert_eq!(response.status, 400, "{path}: {}", response.text());
    }
    assert_eq!(target.requests_served(), 0);
    let response = send(
        sim.addr,
        host,
        &sim.ca_pem,
        &signed(Request::get("/a/./b//c/../d?x=1"), host, SECRET),
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["path"], "/a/b/d?x=1");
}
