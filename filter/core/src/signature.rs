//! The signing guard's decision: did `aws_request_signing` sign this request?
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
    use super::is_signed;

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
