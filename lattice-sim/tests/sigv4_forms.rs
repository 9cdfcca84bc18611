//! Forms of a signed request that AWS's suite (tests/sigv4_suite.rs) does
//! not cover in our copy: header values folded over several lines, session
//! tokens signed, added after signing, missing or unexpected, and the signer
//! and verifier agreeing on queries, normalised paths and UNSIGNED-PAYLOAD.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use lattice_sim::sigv4::{
    authorization_header, canonical_request, verify, Expectation, Rejection, Request, Secret, UNSIGNED_PAYLOAD,
};
use sha2::{Digest, Sha256};
use time::macros::datetime;

const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLEsessiontoken";
const HOST: (&str, &str) = ("Host", "example.amazonaws.com");
const AMZ_DATE: (&str, &str) = ("X-Amz-Date", "20150830T123600Z");

/// An owned request to sign, change and verify.
#[derive(Clone)]
struct Req {
    method: &'static str,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body_sha256: Option<String>,
}

impl Req {
    fn new(method: &'static str, path: &str, query: &str, headers: &[(&str, &str)]) -> Self {
        Req {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body_sha256: None,
        }
    }

    fn request(&self) -> Request<'_> {
        Request {
            method: self.method,
            path: self.path.as_bytes(),
            query: self.query.as_bytes(),
            headers: &self.headers,
            body_sha256: self.body_sha256.clone(),
        }
    }

    /// Replaces the value of `name` (or adds the header).
    fn with_header(mut self, name: &str, value: &str) -> Self {
        match self.headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(slot) => slot.1 = value.as_bytes().to_vec(),
            None => self.headers.push((name.to_string(), value.as_bytes().to_vec())),
        }
        self
    }

    /// Signs `signed` as a client does and adds the `Authorization` header.
    fn signed(self, signed: &[&str], normalize: bool) -> Self {
        let signed: Vec<String> = signed.iter().map(|s| s.to_string()).collect();
        let authorization = authorization_header(
            &self.request(),
            &signed,
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            "us-east-1",
            "vpc-lattice-svcs",
            normalize,
        )
        .unwrap();
        self.with_header("Authorization", &authorization)
    }

    fn verify(&self, expect: &Expectation<'_>, session_token: Option<&str>) -> Result<(), Rejection> {
        verify(&self.request(), expect, |key| {
            (key == ACCESS_KEY_ID).then(|| Secret {
                secret_access_key: SECRET_ACCESS_KEY.to_string(),
                session_token: session_token.map(String::from),
            })
        })
        .map(|_| ())
    }
}

fn expectation(normalize_path: bool, require_unsigned_payload: bool) -> Expectation<'static> {
    Expectation {
        region: "us-east-1",
        service: "vpc-lattice-svcs",
        now: datetime!(2015-08-30 12:36:00 UTC),
        max_skew: time::Duration::minutes(5),
        normalize_path,
        require_unsigned_payload,
    }
}

fn signed_headers(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn empty_body_hash() -> String {
    hex::encode(Sha256::digest(b""))
}

const FOLDED_SIGNED: [&str; 3] = ["host", "my-header1", "x-amz-date"];

/// Signed with the value on one line, as a client signs it.
fn signed_with_unfolded_value() -> Req {
    Req::new(
        "GET",
        "/",
        "",
        &[HOST, ("My-Header1", "value1 value2 value3"), AMZ_DATE],
    )
    .signed(&FOLDED_SIGNED, true)
}

#[test]
fn a_header_folded_over_several_lines_verifies_as_its_unfolded_value() {
    let signed = signed_with_unfolded_value();
    let expect = expectation(true, false);
    assert_eq!(signed.verify(&expect, None), Ok(()));
    for folded in [
        "value1\n  value2\n     value3",
        "value1\r\n\tvalue2\r\n value3",
        " value1\n value2 \n  value3 ",
    ] {
        let received = signed.clone().with_header("My-Header1", folded);
        assert_eq!(received.verify(&expect, None), Ok(()), "{folded:?}");
        let canonical = canonical_request(
            &received.request(),
            &signed_headers(&FOLDED_SIGNED),
            &empty_body_hash(),
            true,
        )
        .unwrap();
        assert!(
            canonical.contains("\nmy-header1:value1 value2 value3\n"),
            "{folded:?}: {canonical}"
        );
    }
}

#[test]
fn changing_the_words_of_a_folded_value_is_rejected() {
    let signed = signed_with_unfolded_value();
    let expect = expectation(true, false);
    for changed in [
        "value1\n  value2\n     valueX",
        "value1\n  val\n ue2\n     value3",
        "value1value2\n     value3",
    ] {
        let received = signed.clone().with_header("My-Header1", changed);
        assert_eq!(
            received.verify(&expect, None),
            Err(Rejection::SignatureMismatch),
            "{changed:?}"
        );
    }
}

#[test]
fn a_session_token_added_after_signing_is_rejected() {
    let received = Req::new("POST", "/", "", &[HOST, AMZ_DATE])
        .signed(&["host", "x-amz-date"], true)
        .with_header("X-Amz-Security-Token", SESSION_TOKEN);
    assert_eq!(
        received.verify(&expectation(true, false), Some(SESSION_TOKEN)),
        Err(Rejection::MissingSignedHeader("x-amz-security-token"))
    );
}

fn signed_with_token(token: &str) -> Req {
    Req::new("POST", "/", "", &[HOST, AMZ_DATE, ("X-Amz-Security-Token", token)])
        .signed(&["host", "x-amz-date", "x-amz-security-token"], true)
}

#[test]
fn a_signed_session_token_is_accepted() {
    let received = signed_with_token(SESSION_TOKEN);
    assert_eq!(received.verify(&expectation(true, false), Some(SESSION_TOKEN)), Ok(()));
}

#[test]
fn a_signed_session_token_that_is_not_the_keys_is_rejected() {
    let received = signed_with_token("another-token");
    assert_eq!(
        received.verify(&expectation(true, false), Some(SESSION_TOKEN)),
        Err(Rejection::BadSessionToken)
    );
}

#[test]
fn a_missing_session_token_is_rejected_when_the_key_has_one() {
    let received = Req::new("POST", "/", "", &[HOST, AMZ_DATE]).signed(&["host", "x-amz-date"], true);
    assert_eq!(
        received.verify(&expectation(true, false), Some(SESSION_TOKEN)),
        Err(Rejection::BadSessionToken)
    );
}

#[test]
fn a_session_token_is_rejected_when_the_key_has_none() {
    let received = signed_with_token(SESSION_TOKEN);
    assert_eq!(
        received.verify(&expectation(true, false), None),
        Err(Rejection::BadSessionToken)
    );
}

#[test]
fn signer_and_verifier_agree_on_a_query_in_any_order() {
    let signed = Req::new("GET", "/items", "b=2&a=1&path=%2Fx%20y&empty=", &[HOST, AMZ_DATE])
        .signed(&["host", "x-amz-date"], true);
    let expect = expectation(true, false);
    assert_eq!(signed.verify(&expect, None), Ok(()));
    let reordered = Req {
        query: "empty=&path=%2Fx%20y&a=1&b=2".into(),
        ..signed.clone()
    };
    assert_eq!(reordered.verify(&expect, None), Ok(()));
    let changed = Req {
        query: "b=2&a=1&path=%2Fx%20z&empty=".into(),
        ..signed
    };
    assert_eq!(changed.verify(&expect, None), Err(Rejection::SignatureMismatch));
}

#[test]
fn signer_and_verifier_agree_on_a_normalised_path() {
    let signed = Req::new("GET", "/a/./b/../c//d", "", &[HOST, AMZ_DATE]).signed(&["host", "x-amz-date"], true);
    assert_eq!(signed.verify(&expectation(true, false), None), Ok(()));
    // Normalised, the two paths are one.
    let same = Req {
        path: "/a/c/d".into(),
        ..signed.clone()
    };
    assert_eq!(same.verify(&expectation(true, false), None), Ok(()));
    // A verifier that does not normalise signs the path as received.
    assert_eq!(
        signed.verify(&expectation(false, false), None),
        Err(Rejection::SignatureMismatch)
    );
}

#[test]
fn signer_and_verifier_agree_on_unsigned_payload_when_lattice_requires_it() {
    let unsigned = Req::new(
        "POST",
        "/",
        "",
        &[HOST, ("X-Amz-Content-Sha256", UNSIGNED_PAYLOAD), AMZ_DATE],
    );
    let signed = unsigned
        .clone()
        .signed(&["host", "x-amz-content-sha256", "x-amz-date"], true);
    assert_eq!(signed.verify(&expectation(true, true), None), Ok(()));
    let canonical = canonical_request(
        &signed.request(),
        &signed_headers(&["host", "x-amz-content-sha256", "x-amz-date"]),
        UNSIGNED_PAYLOAD,
        true,
    )
    .unwrap();
    assert!(canonical.ends_with("\nUNSIGNED-PAYLOAD"), "{canonical}");

    let not_signed = unsigned.signed(&["host", "x-amz-date"], true);
    assert_eq!(
        not_signed.verify(&expectation(true, true), None),
        Err(Rejection::PayloadNotUnsigned)
    );
}

#[test]
fn without_x_amz_content_sha256_the_body_hash_is_signed() {
    let signed = Req {
        body_sha256: Some(hex::encode(Sha256::digest(b"{\"a\":1}"))),
        ..Req::new("POST", "/", "", &[HOST, AMZ_DATE])
    }
    .signed(&["host", "x-amz-date"], true);
    assert_eq!(signed.verify(&expectation(true, false), None), Ok(()));
    let other_body = Req {
        body_sha256: Some(hex::encode(Sha256::digest(b"{\"a\":2}"))),
        ..signed
    };
    assert_eq!(
        other_body.verify(&expectation(true, false), None),
        Err(Rejection::SignatureMismatch)
    );
}
