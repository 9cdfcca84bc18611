//! What the frontend and the sidecars refuse before anything is signed:
//! requests Lattice could read otherwise than Envoy and the policies do, or
//! that a client could use to steer Lattice. Each refusal is a route placed
//! before every other, answered by Envoy itself (`direct_response`), so the
//! route table alone decides. On the frontend jwt_authn is disabled on these
//! routes (a refused request gets its 4xx, never a challenge); a route that
//! only ever answers locally cannot let an unauthenticated request through.

use serde::Serialize;
use serde_json::{json, Value};

/// One refusal: requests whose `header` matches `string_match` (or, with
/// `invert`, does not) get `status` and `body`.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub name: String,
    /// A request header or pseudo-header (`:method`, `:path`, `:authority`).
    pub header: String,
    /// An Envoy `StringMatcher`.
    pub string_match: Value,
    pub invert: bool,
    pub status: u16,
    pub body: String,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

/// The refusals of an Envoy that forwards `methods` (validated: upper-case
/// standard methods).
pub fn refusals(methods: &[String]) -> Vec<Refusal> {
    let allowed = methods.join(", ");
    vec![
        // `:method` is compared exactly: over HTTP/2 a client may send `get`
        // or `delete`, which Lattice policies on `GET` and `DELETE` do not
        // see, and extension methods; HTTP/1.1 only refuses lower case.
        Refusal {
            name: "refuse_method".into(),
            header: ":method".into(),
            // RE2 full match; the names are upper-case letters only.
            string_match: json!({"safe_regex": {"regex": methods.join("|")}}),
            invert: true,
            status: 405,
            body: format!("method not allowed: only {allowed}\n"),
            headers: vec![("allow".into(), allowed)],
        },
        // RFC 9112 section 3.2: a request with more than one Host is a 400.
        // Envoy's HTTP/1.1 codec joins them into one `:authority` with a
        // comma, which no host name holds.
        Refusal {
            name: "refuse_duplicate_host".into(),
            header: ":authority".into(),
            string_match: json!({"contains": ","}),
            invert: false,
            status: 400,
            body: "more than one Host header\n".into(),
            headers: Vec::new(),
        },
        // Presigned-URL authentication (`X-Amz-Signature`, `X-Amz-Credential`,
        // ... in the query) next to the signature Envoy adds: Lattice may try
        // to verify the client's. Refused for any case and any percent-encoding
        // of `x-amz-`, after `?`, `&` or `;`.
        Refusal {
            name: "refuse_x_amz_query".into(),
            header: ":path".into(),
            string_match: json!({"safe_regex": {"regex": X_AMZ_QUERY_PARAMETER}}),
            invert: false,
            status: 400,
            body: "query parameters named X-Amz-* are refused: they carry AWS request authentication\n".into(),
            headers: Vec::new(),
        },
    ]
}

/// A request target (`:path`) whose query has a parameter named `x-amz-...`
/// in any case, each character literal or percent-encoded (RE2, full match).
pub const X_AMZ_QUERY_PARAMETER: &str =
    r"(?i)[^?]*\?(?:.*[&;])?(?:x|%78|%58)(?:-|%2d)(?:a|%61|%41)(?:m|%6d|%4d)(?:z|%7a|%5a)(?:-|%2d).*";
