//! SigV4 verification, as a service receiving a signed request does it.
//!
//! Why not the `aws-sigv4` crate: it is a signer. A verifier must rebuild the
//! canonical request from what the *client* says it signed (its
//! `SignedHeaders` list, its timestamp, the path and query exactly as they
//! arrived) and compare in constant time; `aws-sigv4` chooses the headers
//! itself and keeps its canonicalisation internal. The cryptography comes
//! from RustCrypto (`hmac`, `sha2`); only the canonical-request rules of
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>
//! are written here, and AWS's test suite checks them (tests/sigv4_suite.rs).

use hmac::digest::generic_array::GenericArray;
use hmac::digest::CtOutput;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// A received request, as the verifier needs it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as received, before `?`.
    pub path: &'a [u8],
    /// The query as received, after `?` (empty when none).
    pub query: &'a [u8],
    /// Every header, in the order received (names in any case).
    pub headers: &'a [(String, Vec<u8>)],
    /// SHA-256 of the body in lower-case hex, when the body is available;
    /// used only when `x-amz-content-sha256` is absent.
    pub body_sha256: Option<String>,
}

/// A secret the verifier knows.
#[derive(Debug, Clone)]
pub struct Secret {
    pub secret_access_key: String,
    /// The session token temporary credentials must present, if any.
    pub session_token: Option<String>,
}

/// What the receiving service expects.
#[derive(Debug, Clone)]
pub struct Expectation<'a> {
    pub region: &'a str,
    pub service: &'a str,
    pub now: OffsetDateTime,
    pub max_skew: Duration,
    /// Remove dot segments and repeated slashes before signing (every AWS
    /// service but S3 does).
    pub normalize_path: bool,
    /// Require a signed `x-amz-content-sha256: UNSIGNED-PAYLOAD` (Lattice).
    pub require_unsigned_payload: bool,
}

/// Why a signature was not accepted. `Display` gives AWS's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No `Authorization` header: the caller is anonymous (not an error for Lattice).
    Unsigned,
    /// The header is not a SigV4 authorization, or lacks a part.
    Incomplete(String),
    UnknownAccessKey,
    BadSessionToken,
    WrongScope(String),
    Skew {
        signed: String,
        now: String,
    },
    MissingSignedHeader(&'static str),
    PayloadNotUnsigned,
    SignatureMismatch,
}

impl Rejection {
    /// The AWS error code (the `x-amzn-ErrorType` / body prefix).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Unsigned | Rejection::Incomplete(_) | Rejection::MissingSignedHeader(_) => {
                "IncompleteSignatureException"
            }
            Rejection::UnknownAccessKey | Rejection::BadSessionToken => "UnrecognizedClientException",
            Rejection::WrongScope(_)
            | Rejection::Skew { .. }
            | Rejection::PayloadNotUnsigned
            | Rejection::SignatureMismatch => "InvalidSignatureException",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Unsigned => f.write_str("Request is missing Authentication Token"),
            Rejection::Incomplete(what) => write!(f, "{what}"),
            Rejection::UnknownAccessKey => f.write_str("The security token included in the request is invalid."),
            Rejection::BadSessionToken => f.write_str("The security token included in the request is invalid."),
            Rejection::WrongScope(what) => write!(f, "Credential should be scoped to {what}."),
            Rejection::Skew { signed, now } => {
                write!(f, "Signature expired: {signed} is now earlier or later than {now} (more than 5 minutes apart).")
            }
            Rejection::MissingSignedHeader(name) => write!(f, "'{name}' must be a signed header."),
            Rejection::PayloadNotUnsigned => {
                f.write_str("x-amz-content-sha256 must be UNSIGNED-PAYLOAD and signed.")
            }
            Rejection::SignatureMismatch => f.write_str(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            ),
        }
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: Vec<u8>,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
}

fn header_values<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> impl Iterator<Item = &'h [u8]> + 'h {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
        .map(|(_, v)| v.as_slice())
}

fn single_header<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h [u8]> {
    header_values(headers, name).next()
}

/// The client's timestamp (`x-amz-date`), which the string to sign carries.
fn amz_date(headers: &[(String, Vec<u8>)]) -> Result<&str, Rejection> {
    single_header(headers, "x-amz-date")
        .and_then(|v| std::str::from_utf8(v).ok())
        .ok_or_else(|| {
            Rejection::Incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
            )
        })
}

/// The last line of the canonical request: `x-amz-content-sha256` as sent
/// (a hash, or `UNSIGNED-PAYLOAD`), else the body's hash, else the hash of
/// an empty body.
fn payload_hash(request: &Request<'_>) -> Result<String, Rejection> {
    match single_header(request.headers, "x-amz-content-sha256") {
        Some(value) => std::str::from_utf8(value)
            .map(str::to_string)
            .map_err(|_| Rejection::Incomplete("x-amz-content-sha256 is not valid text.".into())),
        None => Ok(request
            .body_sha256
            .clone()
            .unwrap_or_else(|| hex::encode(Sha256::digest(b"")))),
    }
}

/// The credential scope a signature is bound to.
struct Scope<'a> {
    /// YYYYMMDD.
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/aws4_request", self.date, self.region, self.service)
    }
}

/// The signature of `request` over `signed_headers`, at `amz_date` within
/// `scope`: the one computation both the signer and the verifier make. The
/// result compares in constant time (`CtOutput`'s `==`), which is how the
/// verifier must compare it.
fn signature(
    request: &Request<'_>,
    signed_headers: &[String],
    amz_date: &str,
    scope: &Scope<'_>,
    secret_access_key: &str,
    normalize: bool,
) -> Result<CtOutput<HmacSha256>, Rejection> {
    let canonical = canonical_request(request, signed_headers, &payload_hash(request)?, normalize)?;
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(secret_access_key, scope.date, scope.region, scope.service);
    // HMAC takes keys of any length, so this does not fail; if it ever did,
    // no signature would match (closed).
    let mut mac = HmacSha256::new_from_slice(&key).map_err(|_| Rejection::SignatureMismatch)?;
    mac.update(string_to_sign.as_bytes());
    Ok(mac.finalize())
}

/// Parses the Authorization header value.
pub fn parse_authorization(value: &str) -> Result<Authorization, Rejection> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| Rejection::Incomplete(format!("Authorization header requires the {ALGORITHM} algorithm.")))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        let (key, val) = part.split_once('=').ok_or_else(|| {
            Rejection::Incomplete(format!(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'; got '{part}'."
            ))
        })?;
        match key {
            "Credential" => credential = Some(val),
            "SignedHeaders" => signed_headers = Some(val),
            "Signature" => signature = Some(val),
            _ => {
                return Err(Rejection::Incomplete(format!(
                    "Authorization header has an unknown parameter '{key}'."
                )))
            }
        }
    }
    let missing = |name: &str| Rejection::Incomplete(format!("Authorization header requires '{name}' parameter."));
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope.as_slice() else {
        return Err(Rejection::Incomplete(format!(
            "Credential '{credential}' is not KEY/DATE/REGION/SERVICE/aws4_request."
        )));
    };
    if *terminator != "aws4_request" || access_key_id.is_empty() {
        return Err(Rejection::Incomplete(format!(
            "Credential '{credential}' is not KEY/DATE/REGION/SERVICE/aws4_request."
        )));
    }
    let headers: Vec<String> = signed_headers.split(';').map(str::to_string).collect();
    let sorted = headers.windows(2).all(|w| matches!(w, [a, b] if a < b));
    if headers
        .iter()
        .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
        || !sorted
    {
        return Err(Rejection::Incomplete(
            "SignedHeaders must be lower-case, sorted and unique.".into(),
        ));
    }
    let signature = hex::decode(signature)
        .ok()
        .filter(|s| s.len() == 32)
        .ok_or_else(|| Rejection::Incomplete("Signature must be 64 hexadecimal digits.".into()))?;
    Ok(Authorization {
        access_key_id: access_key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: headers,
        signature,
    })
}

/// Verifies a request's SigV4 signature. `secret_for` maps an access key
/// id to its secret.
pub fn verify(
    request: &Request<'_>,
    expect: &Expectation<'_>,
    secret_for: impl Fn(&str) -> Option<Secret>,
) -> Result<Verified, Rejection> {
    let authorization = single_header(request.headers, "authorization").ok_or(Rejection::Unsigned)?;
    let authorization = std::str::from_utf8(authorization)
        .map_err(|_| Rejection::Incomplete("Authorization header is not valid text.".into()))?;
    let auth = parse_authorization(authorization)?;

    let amz_date = amz_date(request.headers)?;
    let signed_at = PrimitiveDateTime::parse(
        amz_date,
        format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .map_err(|_| Rejection::Incomplete(format!("X-Amz-Date '{amz_date}' is not YYYYMMDDTHHMMSSZ.")))?
    .assume_utc();
    if !amz_date.starts_with(&auth.date) || auth.date.len() != 8 {
        return Err(Rejection::WrongScope(format!(
            "a date of {}",
            amz_date.get(..8).unwrap_or(amz_date)
        )));
    }
    if auth.region != expect.region {
        return Err(Rejection::WrongScope(format!(
            "a correct region, expecting '{}'",
            expect.region
        )));
    }
    if auth.service != expect.service {
        return Err(Rejection::WrongScope(format!(
            "a correct service, expecting '{}'",
            expect.service
        )));
    }
    if (expect.now - signed_at).abs() > expect.max_skew {
        let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
        return Err(Rejection::Skew {
            signed: amz_date.to_string(),
            now: expect.now.format(fmt).unwrap_or_default(),
        });
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(Rejection::MissingSignedHeader(required));
        }
    }
    let content_sha = single_header(request.headers, "x-amz-content-sha256");
    if expect.require_unsigned_payload
        && (content_sha != Some(UNSIGNED_PAYLOAD.as_bytes())
            || !auth.signed_headers.iter().any(|h| h == "x-amz-content-sha256"))
    {
        return Err(Rejection::PayloadNotUnsigned);
    }

    let secret = secret_for(&auth.access_key_id).ok_or(Rejection::UnknownAccessKey)?;
    // A session token must be among the signed headers. Some AWS services
    // accept one added after signing (AWS's test case
    // `post-sts-header-after`); Lattice's documentation does not say it
    // does, so this stand-in refuses what Lattice may refuse.
    let token = single_header(request.headers, "x-amz-security-token");
    match (&secret.session_token, token) {
        (None, None) => {}
        (Some(expected), Some(given)) if expected.as_bytes() == given => {
            if !auth.signed_headers.iter().any(|h| h == "x-amz-security-token") {
                return Err(Rejection::MissingSignedHeader("x-amz-security-token"));
            }
        }
        _ => return Err(Rejection::BadSessionToken),
    }

    let scope = Scope {
        date: &auth.date,
        region: &auth.region,
        service: &auth.service,
    };
    let expected = signature(
        request,
        &auth.signed_headers,
        amz_date,
        &scope,
        &secret.secret_access_key,
        expect.normalize_path,
    )?;
    let presented = GenericArray::from_exact_iter(auth.signature.iter().copied()).map(CtOutput::<HmacSha256>::new);
    match presented {
        // `CtOutput`'s `==` runs in constant time.
        Some(presented) if presented == expected => {}
        _ => return Err(Rejection::SignatureMismatch),
    }
    Ok(Verified {
        access_key_id: auth.access_key_id,
    })
}

/// Signs a request as a SigV4 client does (all of `signed_headers` must be
/// present, `x-amz-date` among them): returns the `Authorization` value.
/// For tests and tools; the verifier does not use it.
pub fn authorization_header(
    request: &Request<'_>,
    signed_headers: &[String],
    access_key_id: &str,
    secret_access_key: &str,
    region: &str,
    service: &str,
    normalize: bool,
) -> Result<String, Rejection> {
    let amz_date = amz_date(request.headers)?;
    let scope = Scope {
        date: amz_date.get(..8).unwrap_or(amz_date),
        region,
        service,
    };
    let signature = signature(request, signed_headers, amz_date, &scope, secret_access_key, normalize)?;
    Ok(format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={}",
        signed_headers.join(";"),
        hex::encode(signature.into_bytes())
    ))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so `new_from_slice` does not fail; if it
    // ever did, an empty key only makes verification fail (closed).
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// The SigV4 signing key for a date (YYYYMMDD), region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 encoding as SigV4 defines it: everything but the unreserved
/// characters, upper-case hex (`/` kept where `keep_slash`).
fn uri_encode(out: &mut String, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Decodes `%XX` escapes (a malformed escape stays as it is). Form
/// encoding's `+` for space is decoded only when `plus_is_space`: SigV4
/// canonicalisation keeps it, Lattice's query-string condition keys do not.
pub(crate) fn percent_decode(bytes: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(if plus_is_space && b == b'+' { b' ' } else { b });
                i += 1;
            }
        }
    }
    out
}

/// RFC 3986 5.2.4 dot-segment removal, plus collapsing repeated slashes.
pub(crate) fn normalize_path(path: &[u8]) -> Vec<u8> {
    let trailing = path.ends_with(b"/") || path.ends_with(b"/.") || path.ends_with(b"/..");
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in path.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if out.is_empty() || (trailing && !segments.is_empty()) {
        out.push(b'/');
    }
    out
}

/// A header value as the canonical request carries it, by SigV4's
/// "Trimall" rule (<https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>,
/// canonical headers: remove white space before and after the value and
/// convert sequential spaces to a single space).
///
/// White space here is space, tab, CR and LF, so a value folded over
/// several lines (RFC 9112 5.2 obs-fold: a line break followed by spaces or
/// tabs) reads as the unfolded value the client signed: `value1\n  value2`
/// is `value1 value2`. Counting a bare CR or LF as white space too means no
/// header value can add a line of its own to the canonical request. A value
/// that is not UTF-8 is refused rather than read lossily, since two
/// different values must never canonicalise alike.
fn canonical_header_value(name: &str, value: &[u8]) -> Result<String, Rejection> {
    let text = std::str::from_utf8(value)
        .map_err(|_| Rejection::Incomplete(format!("Signed header '{name}' is not valid UTF-8.")))?;
    let words: Vec<&str> = text
        .split([' ', '\t', '\r', '\n'])
        .filter(|word| !word.is_empty())
        .collect();
    Ok(words.join(" "))
}

/// The canonical request (the text whose hash is signed).
pub fn canonical_request(
    request: &Request<'_>,
    signed_headers: &[String],
    payload_hash: &str,
    normalize: bool,
) -> Result<String, Rejection> {
    let mut out = String::new();
    out.push_str(request.method);
    out.push('\n');
    let path: &[u8] = if request.path.is_empty() { b"/" } else { request.path };
    let path = if normalize { normalize_path(path) } else { path.to_vec() };
    // Non-S3 services encode the path as received once more (so `%20`
    // becomes `%2520`): encode every byte but unreserved and `/`.
    uri_encode(&mut out, &path, true);
    out.push('\n');
    let mut params: Vec<(String, String)> = request
        .query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = match p.iter().position(|&b| b == b'=') {
                Some(i) => (p.get(..i).unwrap_or_default(), p.get(i + 1..).unwrap_or_default()),
                None => (p, &b""[..]),
            };
            let (mut key, mut value) = (String::new(), String::new());
            uri_encode(&mut key, &percent_decode(k, false), false);
            uri_encode(&mut value, &percent_decode(v, false), false);
            (key, value)
        })
        .collect();
    params.sort();
    let query: Vec<String> = params.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.push_str(&query.join("&"));
    out.push('\n');
    for name in signed_headers {
        let values = header_values(request.headers, name)
            .map(|v| canonical_header_value(name, v))
            .collect::<Result<Vec<_>, _>>()?;
        if values.is_empty() {
            return Err(Rejection::Incomplete(format!(
                "SignedHeaders names '{name}', which the request does not have."
            )));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        for (input, expected) in [
            ("/", "/"),
            ("/./", "/"),
            ("/example1/example2/../..", "/"),
            ("/example/..", "/"),
            ("//example//", "/example/"),
            ("/./example", "/example"),
            ("/a/b/../c", "/a/c"),
        ] {
            assert_eq!(
                String::from_utf8(normalize_path(input.as_bytes())).unwrap(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn canonical_header_values_unfold_trim_and_collapse_white_space() {
        for (input, expected) in [
            ("value1", "value1"),
            ("  value1  ", "value1"),
            ("\"a   b   c\"", "\"a b c\""),
            ("value1\n  value2\n     value3", "value1 value2 value3"),
            ("value1\r\n\tvalue2", "value1 value2"),
            ("a\t \tb", "a b"),
            ("line\ninjected:1", "line injected:1"),
            ("", ""),
        ] {
            assert_eq!(
                canonical_header_value("my-header1", input.as_bytes()).unwrap(),
                expected,
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_header_value_that_is_not_utf8_is_refused() {
        assert_eq!(
            canonical_header_value("my-header1", b"caf\xe9"),
            Err(Rejection::Incomplete(
                "Signed header 'my-header1' is not valid UTF-8.".into()
            ))
        );
    }

    #[test]
    fn parses_authorization() {
        let a = parse_authorization("AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/svc/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31").unwrap();
        assert_eq!(a.access_key_id, "AKID");
        assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
        assert!(parse_authorization("AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/svc/aws4_request, SignedHeaders=x-amz-date;host, Signature=00").is_err());
        assert!(parse_authorization("Bearer abc").is_err());
    }
}
