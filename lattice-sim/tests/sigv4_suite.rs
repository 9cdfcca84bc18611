//! AWS's SigV4 test suite (`tests/aws-sigv4-test-suite/v4`, Apache-2.0, with its LICENSE and NOTICE): every
//! header-signed request gets its expected outcome at its timestamp, any single change to a signed part makes
//! it fail, and the signer reproduces every expected signature. How many cases there are is not written here:
//! every folder the suite holds is loaded and checked.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use lattice_sim::sigv4::{authorization_header, verify, Expectation, Rejection, Request, Secret};
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

/// Every entry of a suite folder, sorted; each must be a case folder, so
/// nothing in it goes unchecked.
fn case_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    for dir in &dirs {
        assert!(dir.is_dir(), "{}: not a case folder", dir.display());
    }
    dirs
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
        if line.starts_with([' ', '\t']) {
            // A continuation line (obs-fold) goes on the previous value as
            // it is, line break included: unfolding is the verifier's job.
            let (_, value) = headers
                .last_mut()
                .unwrap_or_else(|| panic!("{line:?} continues no header"));
            value.push(b'\n');
            value.extend_from_slice(line.as_bytes());
        } else {
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_string(), value.as_bytes().to_vec()));
        }
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

/// What lattice-sim answers to a case as the suite wrote it.
fn outcome(case: &Case) -> Result<(), Rejection> {
    check(case, &case.method, &case.path, &case.query, &case.headers)
}

/// What lattice-sim must answer: every case verifies (a session token in
/// the credentials is signed, so it verifies too), except one whose token
/// was added after signing (`omit_session_token`, upstream's
/// `post-sts-header-after`): lattice-sim requires the token to be signed.
fn expected_outcome(case: &Case) -> Result<(), Rejection> {
    if case.context["omit_session_token"].as_bool() == Some(true) {
        Err(Rejection::MissingSignedHeader("x-amz-security-token"))
    } else {
        Ok(())
    }
}

/// Loads every case of a suite folder and checks its outcome; returns how
/// many were checked, which is how many folders there are.
fn check_every_case(root: &Path) -> usize {
    let dirs = case_dirs(root);
    assert!(!dirs.is_empty(), "{}: no cases", root.display());
    let mut checked = 0;
    for dir in &dirs {
        let case = load(dir);
        assert_eq!(outcome(&case), expected_outcome(&case), "{}", case.name);
        checked += 1;
    }
    assert_eq!(checked, dirs.len());
    checked
}

fn cases() -> Vec<Case> {
    case_dirs(&suite_dir()).iter().map(|d| load(d)).collect()
}

#[test]
fn every_case_has_its_expected_outcome_at_its_timestamp() {
    let root = suite_dir();
    assert_eq!(check_every_case(&root), case_dirs(&root).len());
}

/// Writes a case in the suite's layout: `context.json` and a
/// `header-signed-request.txt` whose header values are written as they are
/// (a value with line breaks becomes continuation lines).
fn write_case(root: &Path, name: &str, context: &serde_json::Value, request_line: &str, headers: &[(&str, &str)]) {
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("context.json"), serde_json::to_string_pretty(context).unwrap()).unwrap();
    let mut text = format!("{request_line}\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}:{value}\n"));
    }
    text.push('\n');
    std::fs::write(dir.join("header-signed-request.txt"), text).unwrap();
}

/// Signs a bodiless request as the suite's context says.
fn sign(context: &serde_json::Value, method: &str, path: &str, headers: &[(&str, &str)], signed: &[&str]) -> String {
    let headers: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    let signed: Vec<String> = signed.iter().map(|s| s.to_string()).collect();
    authorization_header(
        &Request {
            method,
            path: path.as_bytes(),
            query: b"",
            headers: &headers,
            body_sha256: None,
        },
        &signed,
        context["credentials"]["access_key_id"].as_str().unwrap(),
        context["credentials"]["secret_access_key"].as_str().unwrap(),
        context["region"].as_str().unwrap(),
        context["service"].as_str().unwrap(),
        context["normalize"].as_bool().unwrap(),
    )
    .unwrap()
}

/// Our copy of the suite has no folded header and no token added after
/// signing; these two cases, written in its layout, exercise the loader's
/// continuation lines and the expected refusal through the same check.
#[test]
fn the_suite_check_unfolds_continuation_lines_and_refuses_a_token_added_after_signing() {
    let root = tempfile::tempdir().unwrap();
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(suite_dir().join(name).join("context.json")).unwrap()).unwrap()
    };
    let date = ("X-Amz-Date", "20150830T123600Z");
    let host = ("Host", "example.amazonaws.com");

    let plain = read("get-vanilla");
    let unfolded = [host, ("My-Header1", "value1 value2 value3"), date];
    let authorization = sign(&plain, "GET", "/", &unfolded, &["host", "my-header1", "x-amz-date"]);
    let folded = [
        host,
        ("My-Header1", "value1\n  value2\n     value3"),
        date,
        ("Authorization", authorization.as_str()),
    ];
    write_case(
        root.path(),
        "get-header-value-multiline",
        &plain,
        "GET / HTTP/1.1",
        &folded,
    );

    let mut after = read("post-sts-header-before");
    after["omit_session_token"] = true.into();
    let token = after["credentials"]["token"].as_str().unwrap().to_string();
    let authorization = sign(&after, "POST", "/", &[host, date], &["host", "x-amz-date"]);
    let token_added = [
        host,
        date,
        ("Authorization", authorization.as_str()),
        ("X-Amz-Security-Token", token.as_str()),
    ];
    write_case(
        root.path(),
        "post-sts-header-after",
        &after,
        "POST / HTTP/1.1",
        &token_added,
    );

    assert_eq!(check_every_case(root.path()), 2);

    let multiline = load(&root.path().join("get-header-value-multiline"));
    assert_eq!(multiline.headers[1].1, b"value1\n  value2\n     value3");
    let token_after = load(&root.path().join("post-sts-header-after"));
    assert_eq!(
        outcome(&token_after),
        Err(Rejection::MissingSignedHeader("x-amz-security-token"))
    );
}

type Mutation = (String, String, Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>);

#[test]
fn any_change_to_a_signed_part_is_rejected() {
    // A case expected to be refused already is; changing it proves nothing.
    for case in cases().into_iter().filter(|c| expected_outcome(c).is_ok()) {
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
        let header = authorization_header(
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
