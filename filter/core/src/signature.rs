//! The signing guard's decision (did `aws_request_signing` sign this
//! request?) and its refusal, shared by its two builds: the wasm module's
//! root context `sign_guard` (filter/src/guard.rs) and the native module's
//! filter `sign_guard` (filter/native/src/guard.rs).
//!
//! The guard runs as an upstream HTTP filter right after Envoy's
//! `aws_request_signing`. When that filter has no AWS credentials (none
//! configured, or fetching them failed or timed out), it forwards the request
//! as it was and only logs at debug level (envoyproxy/envoy#47519); Lattice
//! would then see an anonymous request. A request the signer signed carries
//! both its `authorization: AWS4-HMAC-SHA256 Credential=...` and its
//! `x-amz-date`; a client can produce neither, because every client
//! `authorization` and `x-amz-*` header is removed before signing (by the
//! jwt_scopes filter on the frontend, by the early header mutation on the
//! sidecars), so both present means Envoy signed.

/// The guard's name: the wasm module's `root_id` and the native module's
/// `filter_name`.
pub const GUARD_NAME: &str = "sign_guard";

/// The guard's counter, without the metrics namespace: Envoy shows it as
/// `wasmcustom.sign_guard.unsigned_requests_refused` (the wasm build's
/// namespace, which the generated configuration gives the native build too).
pub const REFUSED_COUNTER: &str = "sign_guard.unsigned_requests_refused";

/// The status of the guard's refusal: the request was not sent (Lattice
/// would have refused it as anonymous, or worse, admitted it).
pub const REFUSAL_STATUS: u32 = 503;

/// The `content-type` of the refusal's body.
pub const REFUSAL_CONTENT_TYPE: &str = "text/plain";

/// The refusal's body.
pub const REFUSAL_BODY: &str = "the request could not be signed for Lattice (no AWS credentials) and was not sent\n";

/// The refusal's details, as Envoy's access log shows them
/// (`%RESPONSE_CODE_DETAILS%`).
pub const REFUSAL_DETAILS: &str = "sign_guard_unsigned";

/// The guard takes no configuration: anything but white space is a mistake,
/// and refusing it makes Envoy refuse to start.
pub fn check_configuration(configuration: &[u8]) -> Result<(), String> {
    if configuration.iter().all(u8::is_ascii_whitespace) {
        Ok(())
    } else {
        Err(format!(
            "{GUARD_NAME} takes no configuration; remove `configuration` (wasm) or `filter_config` (native)"
        ))
    }
}

/// The error line logged for each refusal: the Lattice service the request
/// was for (its `:authority`, escaped when it is not text) and nothing else
/// of the request.
pub fn refusal_log_message(authority: Option<&[u8]>) -> String {
    let service = authority
        .map(|a| String::from_utf8_lossy(a).escape_debug().to_string())
        .unwrap_or_default();
    format!(
        "refused with {REFUSAL_STATUS} a request to {service} that aws_request_signing did not sign \
         (Envoy has no AWS credentials, or fetching them failed or timed out)"
    )
}

/// The start of a SigV4 `authorization` header value.
pub const SIGV4_AUTHORIZATION_PREFIX: &[u8] = b"AWS4-HMAC-SHA256 Credential=";

/// True when the request carries a SigV4 header signature: an
/// `authorization` value starting with [`SIGV4_AUTHORIZATION_PREFIX`] and
/// naming a credential, and a non-empty `x-amz-date`.
pub fn is_signed(authorization: Option<&[u8]>, amz_date: Option<&[u8]>) -> bool {
    let credential = authorization.and_then(|a| a.strip_prefix(SIGV4_AUTHORIZATION_PREFIX));
    matches!(credential, Some(rest) if rest.first().is_some_and(|b| !b.is_ascii_whitespace() && *b != b','))
        && amz_date.is_some_and(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::{check_configuration, is_signed, refusal_log_message};

    #[test]
    fn the_guard_takes_no_configuration() {
        for empty in [&b""[..], b" ", b"\n\t "] {
            assert!(check_configuration(empty).is_ok(), "{empty:?}");
        }
        for given in [&b"{}"[..], b"\"\"", b"null", b" x "] {
            let error = check_configuration(given).unwrap_err();
            assert!(error.starts_with("sign_guard takes no configuration"), "{error}");
        }
    }

    #[test]
    fn the_log_line_names_the_service_only() {
        assert_eq!(
            refusal_log_message(Some(b"app1.lattice.test")),
            "refused with 503 a request to app1.lattice.test that aws_request_signing did not sign \
             (Envoy has no AWS credentials, or fetching them failed or timed out)"
        );
        assert!(refusal_log_message(Some(b"a\nb\xff")).contains("a request to a\\nb\u{fffd} that"));
        assert!(refusal_log_message(None).contains("a request to  that"));
    }

    const SIGNED: &[u8] = b"AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20250101/us-west-2/vpc-lattice-svcs/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123";

    #[test]
    fn a_sigv4_header_signature_with_its_date_is_signed() {
        assert!(is_signed(Some(SIGNED), Some(b"20250101T000000Z")));
    }

    #[test]
    fn anything_less_is_not() {
        for (authorization, date) in [
            (None, None),
            (None, Some(&b"20250101T000000Z"[..])),
            (Some(SIGNED), None),
            (Some(SIGNED), Some(&b""[..])),
            // The client's bearer token, kept with `forward_authorization`.
            (
                Some(&b"Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig"[..]),
                Some(&b"20250101T000000Z"[..]),
            ),
            (
                Some(&b"AWS4-HMAC-SHA256 Credential="[..]),
                Some(&b"20250101T000000Z"[..]),
            ),
            (
                Some(&b"AWS4-HMAC-SHA256 Credential=, Signature=0"[..]),
                Some(&b"20250101T000000Z"[..]),
            ),
            (
                Some(&b"aws4-hmac-sha256 credential=A/x"[..]),
                Some(&b"20250101T000000Z"[..]),
            ),
            (
                Some(&b"AWS4-ECDSA-P256-SHA256 Credential=A/x"[..]),
                Some(&b"20250101T000000Z"[..]),
            ),
        ] {
            assert!(!is_signed(authorization, date), "{authorization:?} {date:?}");
        }
    }
}
