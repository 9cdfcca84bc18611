//! AWS's SigV4 test suite (`tests/aws-sigv4-test-suite/v4`, Apache-2.0, with its LICENSE and NOTICE): every
//! header-signed request verifies at its timestamp, and any single change
//! to a signed part makes it fail.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use lattice_sim::sigv4::{verify, Expectation, Rejection, Request, Secret};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

fn suite_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aws-sigv4-test-suite/v4");
    assert!(
        dir.is_dir(),
        "{} missing: the suite is part of the repository",
        dir.display()
    );
    dir
}

struct Case {
    name: String,
    context: serde_json::Value,
    method: String,
    path: Vec<u8>,
    query: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn load(dir: &Path) -> Case {
    let context: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).unwrap()).unwrap();
    let raw = std::fs::read(dir.join("header-signed-request.txt")).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let (method, rest) = request_line.split_once(' ').unwrap();
    let target = rest.strip_suffix(" HTTP/1.1").unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.to_string(), value.as_bytes().to_vec()));
    }
    Case {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        context,
        method: method.to_string(),
        path: path.as_bytes().to_vec(),
        query: query.as_bytes().to_vec(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn check(case: &Case, method: &str, path: &[u8], query: &[u8], headers: &[(String, Vec<u8>)]) -> Result<(), Rejection> {
    let ctx = &case.context;
    let timestamp = OffsetDateTime::parse(
        ctx["timestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expect = Expectation {
        region: ctx["region"].as_str().unwrap(),
        service: ctx["service"].as_str().unwrap(),
        now: timestamp,
        max_skew: time::Duration::minutes(5),
        normalize_path: ctx["normalize"].as_bool().unwrap(),
        require_unsigned_payload: false,
    };
    let request = Request {
        method,
        path,
        query,
        headers,
        body_sha256: Some(hex::encode(Sha256::digest(&case.body))),
    };
    let creds = &ctx["credentials"];
    verify(&request, &expect, |key| {
        (key == creds["access_key_id"].as_str().unwrap()).then(|| Secret {
            secret_access_key: creds["secret_access_key"].as_str().unwrap().to_string(),
            session_token: creds["token"].as_str().map(String::from),
        })
    })
    .map(|_| ())
}

fn cases() -> Vec<Case> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(suite_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs.iter().map(|d| load(d)).collect()
}

#[test]
fn every_case_verifies_at_its_timestamp() {
    let cases = cases();
    assert_eq!(cases.len(), 31);
    for case in &cases {
        check(case, &case.method, &case.path, &case.query, &case.headers)
            .unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
    }
}

type Mutation = (String, String, Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>);

#[test]
fn any_change_to_a_signed_part_is_rejected() {
    for case in cases() {
        let signed: Vec<String> = {
            let auth = case
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                .unwrap();
            let text = String::from_utf8_lossy(&auth.1).into_owned();
            let list = text
                .split("SignedHeaders=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_string();
            list.split(';').map(String::from).collect()
        };
        // (what changed, method, path, query, headers)
        let mut mutations: Vec<Mutation> = Vec::new();
        let other_method = if case.method == "GET" { "POST" } else { "GET" };
        mutations.push((
            "method".into(),
            other_method.into(),
            case.path.clone(),
            case.query.clone(),
            case.headers.clone(),
        ));
        let mut path = case.path.clone();
        path.extend_from_slice(b"x");
        mutations.push((
            "path".into(),
            case.method.clone(),
            path,
            case.query.clone(),
            case.headers.clone(),
        ));
        let mut query = case.query.clone();
        query.extend_from_slice(if query.is_empty() { b"extra=1" } else { b"&extra=1" });
        mutations.push((
            "query".into(),
            case.method.clone(),
            case.path.clone(),
            query,
            case.headers.clone(),
        ));
        for name in &signed {
            let mut headers = case.headers.clone();
            let slot = headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)).unwrap();
            if name == "x-amz-date" {
                // One second later: still within the skew, so only the signature can catch it.
                let v = String::from_utf8(slot.1.clone()).unwrap();
                slot.1 = v.replace("36:00Z", "36:01Z").replace("3600Z", "3601Z").into_bytes();
            } else {
                slot.1.extend_from_slice(b"x");
            }
            mutations.push((
                format!("header {name}"),
                case.method.clone(),
                case.path.clone(),
                case.query.clone(),
                headers,
            ));
        }
        let mut headers = case.headers.clone();
        let auth = headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .unwrap();
        let last = auth.1.len() - 1;
        auth.1[last] = if auth.1[last] == b'0' { b'1' } else { b'0' };
        mutations.push((
            "signature".into(),
            case.method.clone(),
            case.path.clone(),
            case.query.clone(),
            headers,
        ));

        for (what, method, path, query, headers) in mutations {
            let result = check(&case, &method, &path, &query, &headers);
            assert!(result.is_err(), "{}: changing the {what} was accepted", case.name);
        }
    }
}

#[test]
fn clock_skew_over_five_minutes_is_rejected() {
    let case = load(&suite_dir().join("get-vanilla"));
    let mut late = case.context.clone();
    late["timestamp"] = "2015-08-30T12:41:01Z".into();
    let shifted = Case {
        context: late,
        ..load(&suite_dir().join("get-vanilla"))
    };
    let err = check(&shifted, &case.method, &case.path, &case.query, &case.headers).unwrap_err();
    assert!(matches!(err, Rejection::Skew { .. }), "{err:?}");
    let mut early = case.context.clone();
    early["timestamp"] = "2015-08-30T12:40:59Z".into();
    let within = Case {
        context: early,
        ..load(&suite_dir().join("get-vanilla"))
    };
    check(&within, &case.method, &case.path, &case.query, &case.headers).unwrap();
}

#[test]
fn the_signer_reproduces_every_expected_signature() {
    for case in cases() {
        let auth = case
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .unwrap();
        let auth = lattice_sim::sigv4::parse_authorization(&String::from_utf8_lossy(&auth.1)).unwrap();
        let unsigned: Vec<(String, Vec<u8>)> = case
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("authorization"))
            .cloned()
            .collect();
        let request = Request {
            method: &case.method,
            path: &case.path,
            query: &case.query,
            headers: &unsigned,
            body_sha256: Some(hex::encode(Sha256::digest(&case.body))),
        };
        let ctx = &case.context;
        let header = lattice_sim::sigv4::authorization_header(
            &request,
            &auth.signed_headers,
            ctx["credentials"]["access_key_id"].as_str().unwrap(),
            ctx["credentials"]["secret_access_key"].as_str().unwrap(),
            ctx["region"].as_str().unwrap(),
            ctx["service"].as_str().unwrap(),
            ctx["normalize"].as_bool().unwrap(),
        )
        .unwrap();
        let expected = std::fs::read_to_string(suite_dir().join(&case.name).join("header-signature.txt")).unwrap();
        assert!(
            header.ends_with(&format!("Signature={}", expected.trim())),
            "{}: {header}",
            case.name
        );
    }
}
