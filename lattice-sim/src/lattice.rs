//! What Lattice decides for one request: who the caller is (SigV4), and
//! whether the service network's and the service's auth policies let it
//! invoke the service. Pure: the server and `lattice-sim check` share it.

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
    /// `network` or `service` policy (or `auth`), and the statement.
    pub policy: &'static str,
    pub statement: Option<String>,
    /// The 403 body Lattice sends (empty when allowed).
    pub message: String,
}

/// Verifies the caller's signature. `Ok(None)` is an unsigned request
/// (the anonymous principal).
pub fn authenticate(
    config: &Config,
    request: &RequestInfo<'_>,
    now: OffsetDateTime,
) -> Result<Option<Caller>, Rejection> {
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
        Ok(verified) => Ok(config
            .credentials
            .get(&verified.access_key_id)
            .map(|c| c.caller.clone())),
        Err(Rejection::Unsigned) => Ok(None),
        Err(e) => Err(e),
    }
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

/// Lattice's decision: the service network's policy AND the service's.
pub fn authorize(config: &Config, service: &Service, caller: Option<&Caller>, request: &RequestInfo<'_>) -> Verdict {
    let ctx = context(config, service, caller, request);
    let user = caller.map_or("anonymous", |c| c.arn.as_str());
    let resource = ctx.resource.clone();
    let deny = |kind: &'static str, statement: Option<String>, why: String| Verdict {
        allowed: false,
        policy: kind,
        statement,
        message: format!(
            "AccessDeniedException: User: {user} is not authorized to perform: {INVOKE} on resource: {resource} {why}"
        ),
    };
    let network = evaluate(config.network.auth_type, config.network.policy.as_ref(), &ctx);
    let network_statement = match network {
        Decision::ExplicitDeny(sid) => {
            return deny(
                "network",
                Some(sid),
                "with an explicit deny in a network-based policy".into(),
            )
        }
        Decision::ImplicitDeny => {
            return deny(
                "network",
                None,
                format!("because no network-based policy allows the {INVOKE} action"),
            )
        }
        Decision::Allow(sid) => sid,
    };
    match evaluate(service.auth_type, service.policy.as_ref(), &ctx) {
        Decision::ExplicitDeny(sid) => deny(
            "service",
            Some(sid),
            "with an explicit deny in a service-based policy".into(),
        ),
        Decision::ImplicitDeny => deny(
            "service",
            None,
            format!("because no service-based policy allows the {INVOKE} action"),
        ),
        Decision::Allow(sid) => Verdict {
            allowed: true,
            policy: "service",
            statement: Some(format!("network: {network_statement}; service: {sid}")),
            message: String::new(),
        },
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
            let session = c.arn.rsplit('/').next().filter(|_| c.principal_type() == "AssumedRole");
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
