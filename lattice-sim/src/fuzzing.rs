//! The properties the fuzz targets in `lattice-sim/fuzz/` check, one
//! function per target. `tests/fuzz_corpus.rs` replays every committed
//! corpus through the same functions on stable Rust, so `make test` checks
//! what the fuzzers found interesting without a nightly toolchain.
//!
//! Why in the crate and not behind a cargo feature: the nightly fuzz
//! project and the stable test must call one definition, and `make test`
//! runs the plain workspace. The module is hidden from the documentation and
//! never panics: a broken property is an `Err` naming it, which the fuzz
//! target turns into a crash and the corpus test into a failure.
#![doc(hidden)]

use crate::policy::{Caller, Context, Decision, Effect, Policy, PolicyKind, INVOKE};
use crate::sigv4::{
    authorization_header, parse_authorization, verify, Authorization, Expectation, Rejection, Request, Secret,
    ALGORITHM,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A property check: `Err` says which property the input breaks.
pub type Check = fn(&[u8]) -> Result<(), String>;

/// Every fuzz target of this crate, by its name in `fuzz/fuzz_targets/`.
pub const TARGETS: [(&str, Check); 3] = [
    ("policy", check_policy),
    ("sigv4_authorization", check_sigv4_authorization),
    ("sigv4_verify", check_sigv4_verify),
];

macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

/// The `Authorization` value for `auth`, written the way AWS's signers write it.
fn authorization_value(auth: &Authorization) -> String {
    format!(
        "{ALGORITHM} Credential={}/{}/{}/{}/aws4_request, SignedHeaders={}, Signature={}",
        auth.access_key_id,
        auth.date,
        auth.region,
        auth.service,
        auth.signed_headers.join(";"),
        hex::encode(&auth.signature)
    )
}

/// SigV4 `Authorization` parser. Input: a header value.
///
/// Properties: no panic; a refusal is `Incomplete` with a message; what
/// parses has a non-empty access key, signed headers that are non-empty,
/// lower case, sorted and unique, a 32-byte signature, and reads the same
/// again once written back in AWS's form.
pub fn check_sigv4_authorization(data: &[u8]) -> Result<(), String> {
    let Ok(value) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let auth = match parse_authorization(value) {
        Ok(auth) => auth,
        Err(Rejection::Incomplete(message)) => {
            ensure!(!message.is_empty(), "a refusal without a message");
            return Ok(());
        }
        Err(other) => return Err(format!("the parser refused with {other:?}")),
    };
    ensure!(!auth.access_key_id.is_empty(), "empty access key id");
    ensure!(
        auth.signature.len() == 32,
        "signature of {} bytes",
        auth.signature.len()
    );
    ensure!(
        auth.signed_headers
            .iter()
            .all(|h| !h.is_empty() && !h.bytes().any(|b| b.is_ascii_uppercase())),
        "signed headers {:?}",
        auth.signed_headers
    );
    ensure!(
        auth.signed_headers.windows(2).all(|w| matches!(w, [a, b] if a < b)),
        "signed headers {:?} are not sorted and unique",
        auth.signed_headers
    );
    let written = authorization_value(&auth);
    match parse_authorization(&written) {
        Ok(again) if again == auth => Ok(()),
        other => Err(format!("{written:?} reads as {other:?}, not as {auth:?}")),
    }
}

/// The credentials the verify target knows: AWS's test-suite key, and the
/// same secret with a session token.
fn secret_for(key: &str) -> Option<Secret> {
    let secret = |token: Option<&str>| Secret {
        secret_access_key: SUITE_SECRET.into(),
        session_token: token.map(String::from),
    };
    match key {
        SUITE_KEY => Some(secret(None)),
        SESSION_KEY => Some(secret(Some(SESSION_TOKEN))),
        _ => None,
    }
}

const SUITE_KEY: &str = "AKIDEXAMPLE";
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_KEY: &str = "ASIASESSIONEXAMPLE";
const SESSION_TOKEN: &str = "FuzzSessionToken==";
const REGION: &str = "us-east-1";
const SERVICE: &str = "service";
/// The suite's timestamp: its requests are fresh at this instant.
const NOW: OffsetDateTime = datetime!(2015-08-30 12:36:00 UTC);

fn expectation() -> Expectation<'static> {
    Expectation {
        region: REGION,
        service: SERVICE,
        now: NOW,
        max_skew: Duration::minutes(5),
        normalize_path: true,
        require_unsigned_payload: false,
    }
}

/// A request as AWS's test suite writes one (`header-signed-request.txt`):
/// `METHOD TARGET HTTP/1.1`, `Name:value` lines (a line that starts with
/// space or tab continues the previous value), an empty line, the body.
#[derive(Clone)]
struct RawRequest {
    method: String,
    path: Vec<u8>,
    query: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl RawRequest {
    fn read(data: &[u8]) -> RawRequest {
        let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
            Some(at) => (
                data.get(..at).unwrap_or_default(),
                data.get(at + 2..).unwrap_or_default(),
            ),
            None => (data, &b""[..]),
        };
        let mut lines = head.split(|&b| b == b'\n');
        let request_line = lines.next().unwrap_or_default();
        let (method, target) = match request_line.iter().position(|&b| b == b' ') {
            Some(at) => (
                request_line.get(..at).unwrap_or_default(),
                request_line.get(at + 1..).unwrap_or_default(),
            ),
            None => (request_line, &b""[..]),
        };
        // The suite's paths may hold spaces: the version ends the line.
        let target = target.strip_suffix(b" HTTP/1.1").unwrap_or(target);
        let method = String::from_utf8_lossy(method).into_owned();
        let (path, query) = match target.iter().position(|&b| b == b'?') {
            Some(at) => (
                target.get(..at).unwrap_or_default(),
                target.get(at + 1..).unwrap_or_default(),
            ),
            None => (target, &b""[..]),
        };
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        for line in lines {
            if line.starts_with(b" ") || line.starts_with(b"\t") {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(b'\n');
                    value.extend_from_slice(line);
                }
            } else if let Some(at) = line.iter().position(|&b| b == b':') {
                let name = String::from_utf8_lossy(line.get(..at).unwrap_or_default()).into_owned();
                headers.push((name, line.get(at + 1..).unwrap_or_default().to_vec()));
            }
        }
        RawRequest {
            method,
            path: path.to_vec(),
            query: query.to_vec(),
            headers,
            body: body.to_vec(),
        }
    }

    fn request(&self) -> Request<'_> {
        Request {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body_sha256: Some(hex::encode(Sha256::digest(&self.body))),
        }
    }

    fn verify(&self) -> Result<(), Rejection> {
        verify(&self.request(), &expectation(), secret_for).map(|_| ())
    }

    fn first_header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// SigV4 verification. Input: a request in the test suite's text form,
/// verified for the suite's key, region, service and time.
///
/// Properties: no panic; when a request verifies, its signature is the one
/// the signer computes for it, its scope and time are the expected ones, it
/// signed `host` and `x-amz-date`, and any change to a signed part (the
/// signature, the secret, the method, the path, the query, a signed header's
/// value, or the body when its hash is not sent) makes it fail.
pub fn check_sigv4_verify(data: &[u8]) -> Result<(), String> {
    let raw = RawRequest::read(data);
    if raw.verify().is_err() {
        return Ok(());
    }
    let value = raw
        .first_header("authorization")
        .and_then(|v| std::str::from_utf8(v).ok())
        .ok_or("verified without an Authorization header")?;
    let auth = parse_authorization(value).map_err(|e| format!("verified, but the header does not parse: {e}"))?;
    let amz_date = raw
        .first_header("x-amz-date")
        .and_then(|v| std::str::from_utf8(v).ok())
        .ok_or("verified without X-Amz-Date")?;
    ensure!(
        auth.region == REGION && auth.service == SERVICE && amz_date.get(..8) == Some(auth.date.as_str()),
        "verified with scope {}/{}/{} at {amz_date}",
        auth.date,
        auth.region,
        auth.service
    );
    for required in ["host", "x-amz-date"] {
        ensure!(
            auth.signed_headers.iter().any(|h| h == required),
            "verified without signing {required}"
        );
    }
    let secret = secret_for(&auth.access_key_id).ok_or("verified with an unknown key")?;

    let signed = authorization_header(
        &raw.request(),
        &auth.signed_headers,
        &auth.access_key_id,
        &secret.secret_access_key,
        &auth.region,
        &auth.service,
        true,
    )
    .map_err(|e| format!("verified, but the signer fails: {e}"))?;
    let signed = parse_authorization(&signed).map_err(|e| format!("the signer's header does not parse: {e}"))?;
    ensure!(
        signed.signature == auth.signature,
        "verified a signature the signer does not compute"
    );

    let must_fail = |what: &str, changed: &RawRequest| -> Result<(), String> {
        ensure!(changed.verify().is_err(), "still verifies with {what} changed");
        Ok(())
    };
    let with = |change: &dyn Fn(&mut RawRequest)| {
        let mut changed = raw.clone();
        change(&mut changed);
        changed
    };
    let replace_authorization = |request: &mut RawRequest, value: String| {
        if let Some((_, v)) = request
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        {
            *v = value.into_bytes();
        }
    };

    let mut flipped = auth.clone();
    if let Some(first) = flipped.signature.first_mut() {
        *first ^= 1;
    }
    must_fail(
        "the signature",
        &with(&|r| replace_authorization(r, authorization_value(&flipped))),
    )?;
    let other_secret = authorization_header(
        &raw.request(),
        &auth.signed_headers,
        &auth.access_key_id,
        "another secret",
        &auth.region,
        &auth.service,
        true,
    )
    .map_err(|e| format!("the signer fails with another secret: {e}"))?;
    must_fail("the secret", &with(&|r| replace_authorization(r, other_secret.clone())))?;
    must_fail("the method", &with(&|r| r.method.push('X')))?;
    must_fail("the path", &with(&|r| r.path.push(b'x')))?;
    must_fail("the query", &with(&|r| r.query.extend_from_slice(b"&fuzz=1")))?;
    for name in &auth.signed_headers {
        let change = |r: &mut RawRequest| {
            if let Some((_, v)) = r.headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                v.push(b'x');
            }
        };
        must_fail(&format!("signed header {name}"), &with(&change))?;
    }
    if raw.first_header("x-amz-content-sha256").is_none() {
        must_fail("the body", &with(&|r| r.body.push(b'x')))?;
    }
    Ok(())
}

/// The contexts every policy that parses is evaluated against: anonymous,
/// an assumed-role session with an organisation and tags, and an IAM user,
/// each asking for a path under a service with a scope header.
fn contexts() -> Result<Vec<Context>, String> {
    let service = "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0";
    let keys: BTreeMap<String, Vec<String>> = [
        ("vpc-lattice-svcs:requestheader/x-jwt-scope-test.all", "true"),
        ("vpc-lattice-svcs:requestheader/x-jwt-subject", "Alice@Example.com"),
        ("vpc-lattice-svcs:requestquerystring/page", "2"),
        ("vpc-lattice-svcs:requestmethod", "GET"),
        ("vpc-lattice-svcs:requestpath", "/app2/admin/users"),
        ("vpc-lattice-svcs:port", "443"),
        ("vpc-lattice-svcs:servicearn", service),
        (
            "vpc-lattice-svcs:servicenetworkarn",
            "arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-0123456789abcdef0",
        ),
        ("vpc-lattice-svcs:sourcevpc", "vpc-0a1b2c3d4e5f60718"),
        ("vpc-lattice-svcs:sourcevpcowneraccount", "111122223333"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
    .collect();
    let session = Caller {
        org_id: Some("o-exampleorg".into()),
        tags: [("team".to_string(), "web".to_string())].into_iter().collect(),
        ..Caller::new("arn:aws:sts::111122223333:assumed-role/frontend/envoy", None)?
    };
    let user = Caller::new("arn:aws:iam::444455556666:user/alice", None)?;
    Ok([None, Some(session), Some(user)]
        .into_iter()
        .map(|caller| {
            Context {
                caller,
                action: INVOKE.into(),
                resource: format!("{service}/app2/admin/users"),
                keys: keys.clone(),
            }
            .with_caller_keys()
        })
        .collect())
}

/// Policy parser and evaluation. Input: a policy document (JSON), parsed
/// as an auth policy and as an identity-based policy.
///
/// Properties: no panic; a refusal has a message; a policy that parses
/// evaluates against fixed contexts without panic, as IAM combines
/// statements (the first applicable Deny wins, else the first applicable
/// Allow, else an implicit deny), naming a statement of the right effect;
/// an identity-based policy never applies to an anonymous caller.
pub fn check_policy(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let contexts = contexts()?;
    for kind in [PolicyKind::Resource, PolicyKind::Identity] {
        let policy = match Policy::parse(text, kind) {
            Ok(policy) => policy,
            Err(error) => {
                ensure!(!error.0.is_empty(), "{kind:?}: a refusal without a message");
                continue;
            }
        };
        ensure!(!policy.statements.is_empty(), "{kind:?}: a policy without statements");
        // The statements of one effect, each keeping its label in `policy`.
        let only = |effect: Effect| Policy {
            statements: policy
                .statements
                .iter()
                .enumerate()
                .filter(|(_, s)| s.effect == effect)
                .map(|(index, s)| {
                    let mut s = s.clone();
                    s.sid = Some(s.label(index));
                    s
                })
                .collect(),
        };
        let (denies, allows) = (only(Effect::Deny), only(Effect::Allow));
        for (i, ctx) in contexts.iter().enumerate() {
            let decision = policy.evaluate(ctx);
            let expected = match denies.evaluate(ctx) {
                Decision::ImplicitDeny => allows.evaluate(ctx),
                deny => deny,
            };
            ensure!(
                decision == expected,
                "{kind:?}, context {i}: {decision:?}, but its denies and allows alone say {expected:?}"
            );
            if kind == PolicyKind::Identity && ctx.caller.is_none() {
                ensure!(
                    decision == Decision::ImplicitDeny,
                    "an identity-based policy decided {decision:?} for an anonymous caller"
                );
            }
        }
    }
    Ok(())
}
