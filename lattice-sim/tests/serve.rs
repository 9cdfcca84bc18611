//! `lattice-sim serve` as a user runs it: the binary, a config file, port 0,
//! the CA written with --ca-out, HTTPS requests, one access-log line each.
#![allow(clippy::unwrap_used, clippy::panic)]

use lattice_sim::sigv4;
use std::io::{BufRead, BufReader, Lines, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running `lattice-sim serve`, killed when dropped.
struct Sim {
    child: Child,
    port: u16,
    ca: PathBuf,
    log: Lines<BufReader<ChildStdout>>,
    _dir: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sim {
    /// Starts the binary on port 0 with `config` as its configuration file.
    fn start(config: &str) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("sim.yaml");
        std::fs::write(&config_path, config).unwrap();
        let (ca, port_file) = (dir.path().join("ca.pem"), dir.path().join("port"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_lattice-sim"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config_path)
            .arg("--ca-out")
            .arg(&ca)
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let log = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut sim = Sim {
            child,
            port: 0,
            ca,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        sim.port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                break port;
            }
            assert!(Instant::now() < deadline, "lattice-sim did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        sim
    }

    /// Sends `request` (raw HTTP/1.1) over TLS to `host`; the whole response.
    fn send(&self, host: &str, request: &str) -> String {
        self.send_bytes(host, request.as_bytes())
    }

    /// The TLS client configuration trusting the simulator's CA.
    fn tls(&self) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// Like `send`, with any bytes.
    fn send_bytes(&self, host: &str, request: &[u8]) -> String {
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
        let connection = rustls::ClientConnection::new(self.tls(), name).unwrap();
        let tcp = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut stream = rustls::StreamOwned::new(connection, tcp);
        stream.write_all(request).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    }

    /// The next access-log line.
    fn next_log(&mut self) -> serde_json::Value {
        let line = self.log.next().unwrap().unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

#[test]
fn serve_writes_its_ca_and_port_and_logs_each_request() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sim = Sim::start(&format!(
        "region: us-west-2\naccount: \"111122223333\"\nservice_network: {{name: n, auth_type: NONE}}\n\
         services: [{{name: app, host: app.lattice.test, auth_type: NONE, target: \"http://127.0.0.1:{closed}\"}}]\n"
    ));
    let response = sim.send(
        "app.lattice.test",
        "GET /x HTTP/1.1\r\nhost: app.lattice.test\r\nconnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 502"), "{response}");
    let log = sim.next_log();
    assert_eq!(
        (log["service"].as_str(), log["status"].as_u64(), log["caller"].as_str()),
        (Some("app"), Some(502), Some("anonymous"))
    );
}

#[test]
fn a_signed_request_the_identity_policy_does_not_allow_is_refused() {
    const KEY: &str = "ASIASERVEIDENTITY001";
    const SECRET: &str = "serve/identity/secret";
    const CALLER: &str = "arn:aws:sts::111122223333:assumed-role/frontend/direct";
    const APP_ARN: &str = "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0";
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Both auth policies allow everyone; the caller's role may only invoke
    // another service.
    let allow_all =
        "{Statement: [{Sid: All, Effect: Allow, Principal: '*', Action: 'vpc-lattice-svcs:Invoke', Resource: '*'}]}";
    let mut sim = Sim::start(&format!(
        "region: us-west-2\naccount: \"111122223333\"\n\
         service_network: {{name: n, auth_type: AWS_IAM, policy: {allow_all}}}\n\
         services: [{{name: app, id: svc-0123456789abcdef0, host: app.lattice.test, auth_type: AWS_IAM, \
                      target: \"http://127.0.0.1:{closed}\", policy: {allow_all}}}]\n\
         credentials:\n\
         - access_key_id: {KEY}\n  secret_access_key: {SECRET}\n  principal: {CALLER}\n  identity_policy:\n    \
             Statement: [{{Sid: OtherOnly, Effect: Allow, Action: 'vpc-lattice-svcs:Invoke', \
                           Resource: 'arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-00000000000000000/*'}}]\n"
    ));

    let amz_date = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap();
    let headers: Vec<(String, Vec<u8>)> = [
        ("host", "app.lattice.test"),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ("x-amz-date", amz_date.as_str()),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
    .collect();
    let signed: Vec<String> = headers.iter().map(|(n, _)| n.clone()).collect();
    let authorization = sigv4::authorization_header(
        &sigv4::Request {
            method: "GET",
            path: b"/orders",
            query: b"",
            headers: &headers,
            body_sha256: None,
        },
        &signed,
        KEY,
        SECRET,
        "us-west-2",
        "vpc-lattice-svcs",
        true,
    )
    .unwrap();
    let response = sim.send(
        "app.lattice.test",
        &format!(
            "GET /orders HTTP/1.1\r\nhost: app.lattice.test\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n\
             x-amz-date: {amz_date}\r\nauthorization: {authorization}\r\nconnection: close\r\n\r\n"
        ),
    );
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 403"), "{response}");
    assert!(head.contains("x-amzn-errortype: AccessDeniedException"), "{response}");
    assert_eq!(
        body,
        format!("AccessDeniedException: User: {CALLER} is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {APP_ARN}/orders because no identity-based policy allows the vpc-lattice-svcs:Invoke action\n")
    );
    let log = sim.next_log();
    assert_eq!(
        (
            log["caller"].as_str(),
            log["status"].as_u64(),
            log["decision"].as_str(),
            log["policy"].as_str(),
            &log["statement"]
        ),
        (
            Some(CALLER),
            Some(403),
            Some("deny"),
            Some("identity"),
            &serde_json::Value::Null
        )
    );
}

/// A simulator with one NONE service whose target is a closed port: any
/// request that gets past the front is a 502.
fn open_sim() -> Sim {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Sim::start(&format!(
        "region: us-west-2\naccount: \"111122223333\"\nservice_network: {{name: n, auth_type: NONE}}\n\
         services: [{{name: app, host: app.lattice.test, auth_type: NONE, target: \"http://127.0.0.1:{closed}\"}}]\n"
    ))
}

/// Requests the hops after lattice-sim could read differently are refused
/// with 400 before any service sees them: two Host headers, and a Host that
/// is not text (it could not be checked against SNI).
#[test]
fn ambiguous_requests_are_refused() {
    let mut sim = open_sim();
    let cases: [(&str, &[u8]); 2] = [
        (
            "two Host headers",
            b"GET /x HTTP/1.1\r\nhost: app.lattice.test\r\nhost: other.lattice.test\r\nconnection: close\r\n\r\n",
        ),
        (
            "a Host that is not text",
            b"GET /x HTTP/1.1\r\nhost: app.lattice.test\xff\r\nconnection: close\r\n\r\n",
        ),
    ];
    for (what, request) in cases {
        let response = sim.send_bytes("app.lattice.test", request);
        assert!(response.starts_with("HTTP/1.1 400"), "{what}: {response}");
        let log = sim.next_log();
        assert_eq!(log["status"].as_u64(), Some(400), "{what}: {log}");
    }
}

/// Content-Length with Transfer-Encoding: the HTTP/1.1 parser (hyper)
/// applies RFC 9112 6.3 ("Transfer-Encoding overrides the Content-Length
/// ... the server MUST close the connection after responding"), so what
/// would be a second request under Content-Length is never read: one
/// request, one response, one log line.
#[test]
fn content_length_with_transfer_encoding_smuggles_nothing() {
    let mut sim = open_sim();
    let smuggled = "GET /smuggled HTTP/1.1\r\nhost: app.lattice.test\r\n\r\n";
    let body = format!("0\r\n\r\n{smuggled}");
    let response = sim.send(
        "app.lattice.test",
        &format!(
            "POST /first HTTP/1.1\r\nhost: app.lattice.test\r\ncontent-length: {}\r\ntransfer-encoding: chunked\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(response.matches("HTTP/1.1 ").count(), 1, "{response}");
    let log = sim.next_log();
    assert_eq!(log["path"].as_str(), Some("/first"), "{log}");
    // The next request on a fresh connection is the next log line: nothing
    // from the first connection came in between.
    sim.send(
        "app.lattice.test",
        "GET /after HTTP/1.1\r\nhost: app.lattice.test\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(sim.next_log()["path"].as_str(), Some("/after"));
}

/// A client that never finishes the TLS handshake, or never finishes its
/// headers, is cut off (10 s each) instead of holding a connection.
#[test]
fn slow_clients_are_cut_off() {
    let sim = open_sim();
    let started = Instant::now();
    // No TLS handshake at all.
    let silent = std::thread::spawn({
        let port = sim.port;
        move || {
            let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut buf = [0u8; 16];
            tcp.read(&mut buf).unwrap_or(0)
        }
    });
    // A handshake, then half a request.
    let name = rustls::pki_types::ServerName::try_from("app.lattice.test").unwrap();
    let connection = rustls::ClientConnection::new(sim.tls(), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", sim.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    stream
        .write_all(b"GET /x HTTP/1.1\r\nhost: app.lattice.test\r\n")
        .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    assert!(
        response.is_empty() || response.starts_with("HTTP/1.1 408"),
        "half a request got {response}"
    );
    assert_eq!(silent.join().unwrap(), 0, "the silent connection was closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(25),
        "cut off after {waited:?}"
    );
}
