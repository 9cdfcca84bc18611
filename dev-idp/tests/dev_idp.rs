//! `dev-idp` as a user runs it: the built binary in a temporary directory,
//! its JWKS fetched over TLS verified with the CA it wrote, and its tokens
//! verified against that JWKS.

use dev_idp::http::Request;
use dev_idp::idp::{DISCOVERY_PATH, JWKS_PATH};
use jwt_simple::prelude::*;
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// A started process, killed when the test ends however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dev_idp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dev-idp")).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn token(args: &[&str]) -> String {
    let out = dev_idp(&[&["token"], args].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    stdout.trim().to_string()
}

#[test]
fn init_serve_and_tokens_that_verify_against_the_served_jwks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idp");
    let d = dir.to_str().unwrap();
    let issuer = "https://localhost:8444";

    let init = dev_idp(&["init", "--dir", d, "--host", "localhost", "--host", "127.0.0.1"]);
    assert!(init.status.success(), "{}", stderr(&init));
    assert_eq!(mode(&dir), 0o700);
    for (file, expected) in [
        ("signing-key.pem", 0o600),
        ("tls-key.pem", 0o600),
        ("tls-cert.pem", 0o644),
        ("ca.pem", 0o644),
        ("idp.json", 0o644),
    ] {
        assert_eq!(mode(&dir.join(file)), expected, "{file}");
    }
    let init_output = String::from_utf8_lossy(&init.stdout);
    assert!(!init_output.contains("PRIVATE KEY"), "{init_output}");

    let key_before = std::fs::read(dir.join("signing-key.pem")).unwrap();
    let again = dev_idp(&["init", "--dir", d]);
    assert_eq!(again.status.code(), Some(2));
    let message = stderr(&again);
    assert!(
        message.contains("signing-key.pem exists") && message.contains("--force"),
        "{message}"
    );
    assert_eq!(std::fs::read(dir.join("signing-key.pem")).unwrap(), key_before);

    let port_file = tmp.path().join("port");
    let mut server = Killed(
        Command::new(env!("CARGO_BIN_EXE_dev-idp"))
            .args(["serve", "--dir", d, "--listen", "127.0.0.1:0", "--port-file"])
            .arg(&port_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let port = dev_idp::idp::wait_for_port_file(&port_file, &mut server.0).expect("dev-idp serve did not start");
    let jwks_uri = format!("https://localhost:{port}{JWKS_PATH}");
    let line = BufReader::new(server.0.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert!(line.contains(&jwks_uri) && line.contains(issuer), "{line}");
    let warning = BufReader::new(server.0.stderr.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert!(warning.contains("warning") && warning.contains("8444"), "{warning}");

    let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let discovery = dev_idp::tls::send(addr, "localhost", &ca, &Request::get(DISCOVERY_PATH)).unwrap();
    assert_eq!(discovery.status, 200);
    assert_eq!(
        discovery.json(),
        serde_json::json!({"issuer": issuer, "jwks_uri": jwks_uri})
    );
    // The certificate also names 127.0.0.1, as asked at init.
    let jwks = dev_idp::tls::send(addr, "127.0.0.1", &ca, &Request::get(JWKS_PATH)).unwrap();
    assert_eq!(jwks.status, 200);
    let keys = jwks.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = ES256PublicKey::from_jwk(&keys[0].to_string()).unwrap();
    let kid = keys[0]["kid"].as_str().unwrap().to_string();
    let wrong_ca = dev_idp::tls::TestCa::new("someone else");
    assert!(dev_idp::tls::send(addr, "localhost", &wrong_ca.pem, &Request::get(JWKS_PATH)).is_err());

    let verify = |token: &str, audience: &str| -> JWTClaims<Map<String, Value>> {
        assert_eq!(Token::decode_metadata(token).unwrap().key_id(), Some(kid.as_str()));
        assert_eq!(Token::decode_metadata(token).unwrap().algorithm(), "ES256");
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from_strings(&[issuer])),
            allowed_audiences: Some(HashSet::from_strings(&[audience])),
            ..Default::default()
        };
        key.verify_token::<Map<String, Value>>(token, Some(options)).unwrap()
    };

    let scope_style = token(&[
        "--dir",
        d,
        "--sub",
        "alice@example.com",
        "--aud",
        "lattice-api",
        "--scope",
        "openid",
        "--scope",
        "test.all",
        "--claim",
        r#"groups=["admins"]"#,
        "--ttl",
        "600",
    ]);
    let claims = verify(&scope_style, "lattice-api");
    assert_eq!(claims.subject.as_deref(), Some("alice@example.com"));
    assert_eq!(claims.custom["scope"], "openid test.all");
    assert_eq!(claims.custom["groups"], serde_json::json!(["admins"]));
    assert!(!claims.custom.contains_key("scp"));
    let (iat, nbf, exp) = (
        claims.issued_at.unwrap(),
        claims.invalid_before.unwrap(),
        claims.expires_at.unwrap(),
    );
    assert_eq!(nbf, iat);
    assert_eq!((exp - iat).as_secs(), 600);

    let scp_style = token(&[
        "--dir",
        d,
        "--sub",
        "bob",
        "--aud",
        "other-api",
        "--style",
        "scp",
        "--scope",
        "openid",
        "--scope",
        "test.all",
    ]);
    let claims = verify(&scp_style, "other-api");
    assert_eq!(claims.subject.as_deref(), Some("bob"));
    assert_eq!(claims.custom["scp"], serde_json::json!(["openid", "test.all"]));
    assert!(!claims.custom.contains_key("scope"));
    assert_eq!((claims.expires_at.unwrap() - claims.issued_at.unwrap()).as_secs(), 3600);

    // Entra ID's space-delimited `scp`, through --claim when no --scope is given.
    let entra = token(&["--dir", d, "--sub", "carol", "--aud", "api", "--claim", r#"scp="a b""#]);
    assert_eq!(verify(&entra, "api").custom["scp"], "a b");

    let elsewhere = token(&[
        "--dir",
        d,
        "--sub",
        "dave",
        "--aud",
        "api",
        "--issuer",
        "https://other.test",
    ]);
    assert_eq!(dev_idp::jwt::payload_of(&elsewhere)["iss"], "https://other.test");

    // --force makes new keys: the old server's JWKS no longer verifies new tokens.
    let forced = dev_idp(&["init", "--dir", d, "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(std::fs::read(dir.join("signing-key.pem")).unwrap(), key_before);
    let rotated = token(&["--dir", d, "--sub", "erin", "--aud", "api"]);
    assert!(key.verify_token::<Map<String, Value>>(&rotated, None).is_err());
}

#[test]
fn bad_flags_and_missing_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idp");
    let d = dir.to_str().unwrap();

    let missing = dev_idp(&["token", "--dir", d, "--sub", "a", "--aud", "b"]);
    assert_eq!(missing.status.code(), Some(2));
    let message = stderr(&missing);
    assert!(
        message.contains("idp.json: not found") && message.contains("dev-idp init"),
        "{message}"
    );

    assert!(dev_idp(&["init", "--dir", d]).status.success());
    let base = ["token", "--dir", d, "--sub", "a", "--aud", "b"];
    for (extra, expected) in [
        (&["--claim", "tenant=acme"][..], "--claim"),
        (&["--claim", "no-equals-sign"], "--claim"),
        (&["--claim", "=1"], "--claim"),
        (&["--claim", "exp=1"], "--ttl"),
        (&["--claim", "iss=\"x\""], "--issuer"),
        (&["--scope", "x", "--claim", "scope=\"y\""], "--scope"),
        (&["--claim", "a=1", "--claim", "a=2"], "more than once"),
        (&["--scope", "two words"], "--scope"),
        (&["--ttl=-1"], "--ttl"),
        (&["--ttl", "999999999999"], "--ttl"),
        (&["--style", "roles"], "--style"),
    ] {
        let out = dev_idp(&[&base[..], extra].concat());
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        assert!(out.stdout.is_empty(), "{extra:?}");
        let message = stderr(&out);
        assert!(message.contains(expected), "{extra:?}: {message}");
    }

    let bad_host = dev_idp(&["init", "--dir", d, "--force", "--host", "not a host"]);
    assert_eq!(bad_host.status.code(), Some(2));
    assert!(stderr(&bad_host).contains("--host"), "{}", stderr(&bad_host));

    std::fs::write(dir.join("signing-key.pem"), "not a key").unwrap();
    let broken = dev_idp(&["token", "--dir", d, "--sub", "a", "--aud", "b"]);
    let message = stderr(&broken);
    assert!(
        message.contains("signing-key.pem: not a P-256 private key"),
        "{message}"
    );
}
