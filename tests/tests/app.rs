//! The echo apps (`e2e::app`): what they answer, and calls to another app
//! through a stand-in sidecar that records what it received.

use bytes::Bytes;
use e2e::app::{App, NO_IDENTITY};
use e2e::echo::{echoed_headers, EchoServer};
use e2e::http::Request;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::Response;
use lattice_sim::http_server::Peer;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

const DOMAIN: &str = "lattice.local";

fn values(headers: &[(String, String)], name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A loopback address where nothing listens.
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[test]
fn answers_with_what_it_received_and_who_called() {
    let app = App::start("app1", None, DOMAIN).unwrap();
    let response = Request::get("/app1/hello?x=1&y=%20")
        .header("host", "app1.lattice.local")
        .header("x-jwt-subject", "alice@example.com")
        .header("x-custom", "kept")
        .send(app.addr)
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["path"], "/app1/hello?x=1&y=%20");
    assert_eq!(body["method"], "GET");
    assert_eq!(body["hostname"], "app1.lattice.local");
    assert_eq!(body["webserver"], "app1");
    assert_eq!(body["jwt_subject"], "alice@example.com");
    let headers = echoed_headers(&body);
    assert_eq!(values(&headers, "x-custom"), ["kept"]);
    assert_eq!(values(&headers, "x-jwt-subject"), ["alice@example.com"]);
    assert_eq!(values(&headers, "host"), ["app1.lattice.local"]);

    let anonymous = Request {
        method: "DELETE".into(),
        ..Request::get("/")
    }
    .send(app.addr)
    .unwrap();
    assert_eq!(anonymous.status, 200);
    let body = anonymous.json();
    assert_eq!(body["jwt_subject"], NO_IDENTITY);
    assert_eq!(body["method"], "DELETE");
    assert_eq!(body["hostname"], "localhost");
}

#[test]
fn calls_through_the_sidecar_with_the_target_host_and_identity_headers_only() {
    let sidecar = EchoServer::start().unwrap();
    let app = App::start("app2", Some(sidecar.addr), DOMAIN).unwrap();
    let response = Request::get("/app2/call-to-app1?ignored=1")
        .header("x-jwt-subject", "alice@example.com")
        .header("x-jwt-scope-test.all", "true")
        .header("x-jwt-scope-test.all", "again")
        .header("authorization", "Bearer secret")
        .header("x-amz-date", "20250101T000000Z")
        .header("x-custom", "stays here")
        .send(app.addr)
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["method"], "GET");
    assert_eq!(body["path"], "/app1/called-by-app2");
    let headers = echoed_headers(&body);
    assert_eq!(values(&headers, "host"), ["app1.lattice.local"]);
    assert_eq!(values(&headers, "x-jwt-subject"), ["alice@example.com"]);
    assert_eq!(values(&headers, "x-jwt-scope-test.all"), ["true", "again"]);
    for dropped in ["authorization", "x-amz-date", "x-custom"] {
        assert!(
            values(&headers, dropped).is_empty(),
            "{dropped} was passed on: {headers:?}"
        );
    }
    assert_eq!(sidecar.requests_served(), 1);

    // Only GET calls; other methods are echoed.
    let post = Request {
        method: "POST".into(),
        ..Request::get("/app2/call-to-app1")
    }
    .send(app.addr)
    .unwrap();
    assert_eq!(post.json()["webserver"], "app2");
    assert_eq!(sidecar.requests_served(), 1);
}

#[test]
fn a_refusal_comes_back_unchanged() {
    let refusal = "AccessDeniedException: User: arn:aws:sts::111122223333:assumed-role/app2/x is not authorized\n";
    let sidecar = lattice_sim::http_server::spawn(
        "127.0.0.1:0",
        None,
        1,
        move |_: Peer, _: hyper::Request<Incoming>| async move {
            Response::builder()
                .status(403)
                .header("content-type", "text/plain; charset=utf-8")
                .header("x-amzn-errortype", "AccessDeniedException")
                .body(Full::new(Bytes::from(refusal)))
                .unwrap()
        },
    )
    .unwrap();
    let app = App::start("app2", Some(sidecar.addr), DOMAIN).unwrap();
    let response = Request::get("/app2/call-to-app1").send(app.addr).unwrap();
    assert_eq!(response.status, 403);
    assert_eq!(response.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(response.text(), refusal);
}

#[test]
fn sidecar_down_missing_or_silent() {
    let down = closed_port();
    let app = App::start("app2", Some(down), DOMAIN).unwrap();
    let response = Request::get("/x/call-to-app1").send(app.addr).unwrap();
    assert_eq!(response.status, 502);
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert!(response.text().contains(&down.to_string()), "{}", response.text());

    let alone = App::start("app3", None, DOMAIN).unwrap();
    let response = Request::get("/call-to-app1").send(alone.addr).unwrap();
    assert_eq!(
        (response.status, response.text().trim()),
        (500, "no sidecar configured")
    );

    // Accepts connections (the kernel does) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = App::start("app2", Some(silent.local_addr().unwrap()), DOMAIN).unwrap();
    let started = Instant::now();
    let response = Request::get("/x/call-to-app1").send(app.addr).unwrap();
    assert_eq!(response.status, 504, "{}", response.text());
    assert!(started.elapsed() >= Duration::from_secs(9), "{:?}", started.elapsed());
}

#[test]
fn target_names_are_lower_case_letters_digits_and_hyphens() {
    let sidecar = EchoServer::start().unwrap();
    let app = App::start("app2", Some(sidecar.addr), DOMAIN).unwrap();
    for path in [
        "/x/call-to-App1",
        "/x/call-to-app_1",
        "/x/call-to-",
        "/x/call-to-app1.evil.example",
        "/x/call-to-app%31",
        "/x/call-to-app1:8080",
    ] {
        let response = Request::get(path).send(app.addr).unwrap();
        assert_eq!(response.status, 400, "{path}: {}", response.text());
    }
    assert_eq!(sidecar.requests_served(), 0);
    let ok = Request::get("/x/call-to-my-app-2").send(app.addr).unwrap();
    assert_eq!(ok.json()["path"], "/my-app-2/called-by-app2");

    for (name, domain) in [
        ("App1", DOMAIN),
        ("app1", ""),
        ("app1", "lattice..local"),
        ("app1", "a b"),
    ] {
        assert!(App::start(name, None, domain).is_err(), "{name} {domain:?}");
    }
}
