//! What Lattice decides for one request: who the caller is (SigV4), and
//! whether the service network's and the service's auth policies, and the
//! caller's IAM identity-based policy, let it invoke the service. Pure: the
//! server and `lattice-sim check` share it.

use crate::config::{AuthType, Config, Service};
use crate::policy::{Caller, Context, Decision, Policy, INVOKE};
use crate::sigv4::{self, Expectation, Rejection};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The parts of a request that authentication and policies look at.
#[derive(Debug, Clone)]
pub struct RequestInfo<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, Vec<u8>)],
    pub port: u16,
}

/// The verdict, with what decided it (for the access log and `check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The policy that decided: `network`, `service` or `identity`. A denial
    /// names the policy that denied; an Allow the last one evaluated (all of
    /// them allowed, and `statement` names each).
    pub policy: &'static str,
    /// The denying statement (none for an implicit deny), or for an Allow
    /// `network: <sid>; service: <sid>` (and `; identity: <sid>`).
    pub statement: Option<String>,
    /// The 403 body Lattice sends (empty when allowed).
    pub message: String,
}

/// Does the request try to authenticate with SigV4 or SigV4A (an
/// `Authorization` header of an `AWS4-` algorithm, or a presigned query)?
fn attempts_sigv4(request: &RequestInfo<'_>) -> bool {
    let header = request
        .headers
        .iter()
        .any(|(name, value)| name.eq_ignore_ascii_case("authorization") && value.starts_with(b"AWS4-"));
    header || presigned(request.query)
}

/// Does the query carry a presigned (query-string) SigV4 signature?
fn presigned(query: &str) -> bool {
    query.split('&').any(|pair| {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        key.eq_ignore_ascii_case("X-Amz-Signature") || key.eq_ignore_ascii_case("X-Amz-Algorithm")
    })
}

/// Who the caller is. `Ok(None)` is the anonymous principal.
///
/// "VPC Lattice attempts to authenticate any request that is signed with
/// SIGv4 or SIGv4A. The request fails without authentication."
/// (<https://docs.aws.amazon.com/vpc-lattice/latest/ug/sigv4-authenticated-requests.html>):
/// a signed request is verified whatever the auth types, and a bad
/// signature is refused even when the network and the service are `NONE`.
/// With `NONE` on both, a request that is not signed is not authenticated
/// at all (an application's own `Authorization: Bearer ...` passes
/// through). With `AWS_IAM` on either, a request without a signature is
/// anonymous, and any other `Authorization` header is refused.
///
/// lattice-sim verifies SigV4 in the `Authorization` header; SigV4A and
/// presigned (query-string) requests are refused as unsupported rather than
/// let through unauthenticated.
pub fn authenticate(
    config: &Config,
    service: &Service,
    request: &RequestInfo<'_>,
    now: OffsetDateTime,
) -> Result<Option<Caller>, Rejection> {
    let iam = config.network.auth_type == AuthType::AwsIam || service.auth_type == AuthType::AwsIam;
    if !iam && !attempts_sigv4(request) {
        return Ok(None);
    }
    if presigned(request.query) {
        return Err(Rejection::Incomplete(
            "lattice-sim verifies SigV4 in the Authorization header only; presigned (query-string) requests are not supported."
                .into(),
        ));
    }
    let signed = sigv4::Request {
        method: request.method,
        path: request.path.as_bytes(),
        query: request.query.as_bytes(),
        headers: request.headers,
        body_sha256: None,
    };
    let expect = Expectation {
        region: &config.region,
        service: "vpc-lattice-svcs",
        now,
        max_skew: time::Duration::minutes(5),
        normalize_path: true,
        require_unsigned_payload: true,
    };
    match sigv4::verify(&signed, &expect, |key| {
        config.credentials.get(key).map(|c| c.secret.clone())
    }) {
        // The key verified, so it is in the configuration; were it not, the
        // caller would be refused, never treated as anonymous.
        Ok(verified) => config
            .credentials
            .get(&verified.access_key_id)
            .map(|c| Some(c.caller.clone()))
            .ok_or(Rejection::UnknownAccessKey),
        Err(Rejection::Unsigned) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why a request path cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPath(pub String);

/// The path policies are evaluated against and the target receives.
///
/// AWS does not document how Lattice treats dot segments or repeated
/// slashes. lattice-sim makes sure a `RequestPath` condition or a resource
/// ARN sees exactly the path the target will receive: it decodes
/// percent-encoded unreserved characters (RFC 3986 6.2.2.2, so `%2E` is
/// `.` and `%61` is `a`), removes dot segments (RFC 3986 5.2.4), merges
/// repeated slashes, and forwards the result. A path that encodes a slash
/// or backslash (`%2F`, `%5C`), holds a raw backslash, or does not start
/// with `/` is refused (400): its meaning depends on the target.
pub fn request_path(raw: &str) -> Result<String, BadPath> {
    if !raw.starts_with('/') {
        return Err(BadPath(format!("the path `{raw}` does not start with `/`")));
    }
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || raw.contains('\\') {
        return Err(BadPath(
            "the path encodes a slash or a backslash, which targets read differently".into(),
        ));
    }
    let mut decoded = Vec::with_capacity(raw.len());
    let bytes = raw.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') => {
                decoded.push(c);
                i += 3;
            }
            // Other escapes stay encoded, with upper-case hex (6.2.2.1).
            Some(c) => {
                decoded.extend_from_slice(format!("%{c:02X}").as_bytes());
                i += 3;
            }
            None => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let normalized = sigv4::normalize_path(&decoded);
    String::from_utf8(normalized).map_err(|_| BadPath("the path is not valid UTF-8".into()))
}

fn decode_query_part(text: &str) -> String {
    String::from_utf8_lossy(&sigv4::percent_decode(text.as_bytes(), true)).into_owned()
}

/// The request context Lattice policies are evaluated against.
pub fn context(config: &Config, service: &Service, caller: Option<&Caller>, request: &RequestInfo<'_>) -> Context {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut put = |k: String, v: String| keys.entry(k).or_default().push(v);
    for (name, value) in request.headers {
        put(
            format!("vpc-lattice-svcs:requestheader/{}", name.to_ascii_lowercase()),
            String::from_utf8_lossy(value).into_owned(),
        );
    }
    for pair in request.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        put(
            format!("vpc-lattice-svcs:requestquerystring/{}", decode_query_part(k)),
            decode_query_part(v),
        );
    }
    put("vpc-lattice-svcs:requestmethod".into(), request.method.to_string());
    put("vpc-lattice-svcs:requestpath".into(), request.path.to_string());
    put("vpc-lattice-svcs:port".into(), request.port.to_string());
    put("vpc-lattice-svcs:servicearn".into(), service.arn.clone());
    put("vpc-lattice-svcs:servicenetworkarn".into(), config.network.arn.clone());
    put("vpc-lattice-svcs:sourcevpc".into(), config.network.source_vpc.clone());
    put(
        "vpc-lattice-svcs:sourcevpcowneraccount".into(),
        config.network.source_vpc_owner_account.clone(),
    );
    // Repeated headers are one value, as HTTP joins them.
    for (key, values) in keys.iter_mut() {
        if key.starts_with("vpc-lattice-svcs:requestheader/") && values.len() > 1 {
            *values = vec![values.join(",")];
        }
    }
    Context {
        caller: caller.cloned(),
        action: INVOKE.into(),
        resource: format!(
            "{}{}",
            service.arn,
            if request.path.is_empty() { "/" } else { request.path }
        ),
        keys,
    }
    .with_caller_keys()
}

fn evaluate(auth: AuthType, policy: Option<&Policy>, ctx: &Context) -> Decision {
    match (auth, policy) {
        (AuthType::None, _) => Decision::Allow("auth type NONE".into()),
        // AWS_IAM with no policy denies everything.
        (AuthType::AwsIam, None) => Decision::ImplicitDeny,
        (AuthType::AwsIam, Some(p)) => p.evaluate(ctx),
    }
}

/// The policies Lattice evaluates, in the order its denials are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PolicyType {
    Network,
    Service,
    Identity,
}

impl PolicyType {
    /// As [`Verdict::policy`] names it.
    fn name(self) -> &'static str {
        match self {
            PolicyType::Network => "network",
            PolicyType::Service => "service",
            PolicyType::Identity => "identity",
        }
    }

    /// The end of AWS's access-denied text: "When a policy explicitly denies
    /// access because the policy contains a Deny statement, then AWS includes
    /// the phrase `with an explicit deny in a *type* policy` in the access
    /// denied error message. When the policy implicitly denies access, then
    /// AWS includes the phrase `because no *type* policy allows the *action*
    /// action` in the access denied error message." Its identity-policy
    /// examples end "because no identity-based policy allows the
    /// codecommit:ListRepositories action" and "with an explicit deny in an
    /// identity-based policy"
    /// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html>).
    fn denial(self, explicit: bool) -> String {
        let article = match self {
            PolicyType::Identity => "an",
            PolicyType::Network | PolicyType::Service => "a",
        };
        let name = self.name();
        match explicit {
            true => format!("with an explicit deny in {article} {name}-based policy"),
            false => format!("because no {name}-based policy allows the {INVOKE} action"),
        }
    }
}

/// Lattice's decision: the service network's policy AND the service's AND,
/// when one is modelled, the caller's identity policy.
///
/// "For authorization to succeed, both auth policies and identity-based
/// policies need to have explicit allow statements." and "An explicit deny in
/// any policy overrides any allows."
/// (<https://docs.aws.amazon.com/vpc-lattice/latest/ug/auth-policies.html>,
/// "How authorization works"; identity check: "Verifying that the requester
/// (such as an IAM user or role) has permissions to perform the operation
/// from the account to which the requester belongs. If there is no explicit
/// allow statement, AWS does not authorize the request.").
///
/// An explicit deny anywhere wins (the first in the order network, service,
/// identity names it); otherwise the first implicit deny in that order; else
/// Allow. The identity policy is part of IAM authorization, which only runs
/// when the network or the service has auth type `AWS_IAM` (with `NONE` on
/// both, Lattice authorizes nothing, and the server does not even
/// authenticate). It is evaluated against the same resource ARN as the auth
/// policies (`<service arn>/<path>`).
pub fn authorize(config: &Config, service: &Service, caller: Option<&Caller>, request: &RequestInfo<'_>) -> Verdict {
    let ctx = context(config, service, caller, request);
    let user = caller.map_or("anonymous", |c| c.arn.as_str());
    let iam = config.network.auth_type == AuthType::AwsIam || service.auth_type == AuthType::AwsIam;
    let identity_policy = caller.and_then(|c| c.identity_policy.as_deref()).filter(|_| iam);
    let mut decisions = vec![
        (
            PolicyType::Network,
            evaluate(config.network.auth_type, config.network.policy.as_ref(), &ctx),
        ),
        (
            PolicyType::Service,
            evaluate(service.auth_type, service.policy.as_ref(), &ctx),
        ),
    ];
    if let Some(policy) = identity_policy {
        decisions.push((PolicyType::Identity, policy.evaluate(&ctx)));
    }
    // `statement`: the label of the explicit Deny; none for an implicit deny.
    let deny = |kind: PolicyType, statement: Option<&String>| Verdict {
        allowed: false,
        policy: kind.name(),
        statement: statement.cloned(),
        message: format!(
            "AccessDeniedException: User: {user} is not authorized to perform: {INVOKE} on resource: {} {}",
            ctx.resource,
            kind.denial(statement.is_some())
        ),
    };
    let explicit = decisions.iter().find_map(|(kind, decision)| match decision {
        Decision::ExplicitDeny(sid) => Some((*kind, sid)),
        _ => None,
    });
    if let Some((kind, sid)) = explicit {
        return deny(kind, Some(sid));
    }
    if let Some((kind, _)) = decisions
        .iter()
        .find(|(_, decision)| matches!(decision, Decision::ImplicitDeny))
    {
        return deny(*kind, None);
    }
    let allowed_by: Vec<String> = decisions
        .iter()
        .filter_map(|(kind, decision)| match decision {
            Decision::Allow(sid) => Some(format!("{}: {sid}", kind.name())),
            _ => None,
        })
        .collect();
    Verdict {
        allowed: true,
        policy: match identity_policy {
            Some(_) => PolicyType::Identity.name(),
            None => PolicyType::Service.name(),
        },
        statement: Some(allowed_by.join("; ")),
        message: String::new(),
    }
}

/// The headers Lattice adds to what it forwards; client copies of these
/// names are removed first.
pub const LATTICE_HEADERS: [&str; 4] = [
    "x-amzn-lattice-identity",
    "x-amzn-lattice-network",
    "x-amzn-lattice-target",
    "x-amzn-source-vpc",
];

/// Values of the headers Lattice adds for a caller.
pub fn lattice_headers(config: &Config, service: &Service, caller: Option<&Caller>) -> Vec<(&'static str, String)> {
    let identity = match caller {
        Some(c) => {
            let session = c.session_name();
            let mut parts = vec![format!("Principal={}", c.arn)];
            if let Some(org) = &c.org_id {
                parts.push(format!("PrincipalOrgID={org}"));
            }
            if let Some(session) = session {
                parts.push(format!("SessionName={session}"));
            }
            parts.push("Type=AWS_IAM".into());
            parts.join("; ")
        }
        None => "Type=Anonymous".into(),
    };
    let vpc_arn = format!(
        "arn:aws:ec2:{}:{}:vpc/{}",
        config.region, config.network.source_vpc_owner_account, config.network.source_vpc
    );
    vec![
        ("x-amzn-lattice-identity", identity),
        ("x-amzn-lattice-network", format!("SourceVpcArn={vpc_arn}")),
        (
            "x-amzn-lattice-target",
            format!(
                "ServiceArn={}; ServiceNetworkArn={}; TargetGroupArn={}",
                service.arn, config.network.arn, service.target_group_arn
            ),
        ),
        ("x-amzn-source-vpc", config.network.source_vpc.clone()),
    ]
}
