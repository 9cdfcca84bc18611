//! The simulator's configuration file: the service network, its services
//! and the callers' credentials (with, optionally, each caller's IAM
//! identity-based policy). Everything is checked at start; a malformed
//! policy stops the simulator with an error naming it.

use crate::policy::{is_account_id, Caller, Policy, PolicyKind};
use crate::sigv4::Secret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AuthType {
    #[serde(rename = "NONE")]
    None,
    #[serde(rename = "AWS_IAM")]
    AwsIam,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    region: String,
    account: String,
    listen: Option<String>,
    /// How long a target may take to answer (default 30 s); past it, 504.
    upstream_timeout_seconds: Option<u64>,
    tls: Option<RawTls>,
    service_network: RawNetwork,
    services: Vec<RawService>,
    #[serde(default)]
    credentials: Vec<RawCredential>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_cert: PathBuf,
    ca_key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    name: String,
    id: Option<String>,
    auth_type: AuthType,
    policy: Option<serde_json::Value>,
    policy_file: Option<PathBuf>,
    source_vpc: Option<String>,
    source_vpc_owner_account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    id: Option<String>,
    host: String,
    auth_type: AuthType,
    policy: Option<serde_json::Value>,
    policy_file: Option<PathBuf>,
    target: String,
}

/// One entry of `credentials:`: an access key and who signs with it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    principal: String,
    /// The role's ARN, for a role with a path (a session ARN does not carry
    /// it); `aws:PrincipalArn` and role principals use it.
    role_arn: Option<String>,
    org_id: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// The IAM identity-based policy of the principal's role or user, inline
    /// (no `Principal` element). With it, the caller also needs an Allow for
    /// `vpc-lattice-svcs:Invoke` there; without it (and without
    /// `identity_policy_file`) identity policies are not modelled for this
    /// caller and only the auth policies decide.
    identity_policy: Option<serde_json::Value>,
    /// The same, from a JSON file relative to the configuration file.
    identity_policy_file: Option<PathBuf>,
}

/// A service network.
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    pub arn: String,
    pub auth_type: AuthType,
    pub policy: Option<Policy>,
    pub source_vpc: String,
    pub source_vpc_owner_account: String,
}

/// A Lattice service and where it forwards.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub host: String,
    pub auth_type: AuthType,
    pub policy: Option<Policy>,
    /// `http://host:port`, no path.
    pub target: String,
    pub target_group_arn: String,
}

/// A caller's credentials and who they are.
#[derive(Debug, Clone)]
pub struct Credential {
    pub secret: Secret,
    /// Who signs with this key, with the identity policy of its role or user
    /// when the configuration gives one (`identity_policy` or
    /// `identity_policy_file`; none: identity policies are not modelled for
    /// this caller).
    pub caller: Caller,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub region: String,
    pub account: String,
    pub listen: Option<String>,
    pub upstream_timeout: std::time::Duration,
    pub ca: Option<(PathBuf, PathBuf)>,
    pub network: Network,
    pub services: Vec<Service>,
    pub credentials: BTreeMap<String, Credential>,
}

fn derived_id(prefix: &str, name: &str) -> String {
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    format!("{prefix}-{}", digest.get(..17).unwrap_or(&digest))
}

/// The configuration key of a policy of this kind (`<key>` inline,
/// `<key>_file` from a file).
fn policy_key(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Resource => "policy",
        PolicyKind::Identity => "identity_policy",
    }
}

fn checked_policy(doc: &serde_json::Value, kind: PolicyKind) -> Result<Policy, String> {
    Policy::from_value(doc, kind).map_err(|e| format!("malformed {}: {e}", policy_key(kind)))
}

/// Reads and checks a policy document from a JSON file: `policy_file`,
/// `identity_policy_file`, and `lattice-sim check --identity-policy`.
pub fn read_policy_file(path: &Path, kind: PolicyKind) -> Result<Policy, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    checked_policy(&doc, kind).map_err(|e| format!("{}: {e}", path.display()))
}

/// A policy given inline or as a file (not both), or none.
fn load_policy(
    inline: Option<serde_json::Value>,
    file: Option<PathBuf>,
    base: &Path,
    what: &str,
    kind: PolicyKind,
) -> Result<Option<Policy>, String> {
    let key = policy_key(kind);
    let loaded = match (inline, file) {
        (Some(_), Some(_)) => Err(format!("give `{key}` or `{key}_file`, not both")),
        (Some(doc), None) => checked_policy(&doc, kind).map(Some),
        (None, Some(path)) => read_policy_file(&base.join(path), kind).map(Some),
        (None, None) => Ok(None),
    };
    loaded.map_err(|e| format!("{what}: {e}"))
}

impl Config {
    /// Reads and checks a configuration file; relative paths in it are
    /// relative to the file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str, base: &Path) -> Result<Config, String> {
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| e.without_snippet().to_string())?;
        let mut errors = Vec::new();
        if !is_account_id(&raw.account) {
            errors.push(format!("account: `{}` is not a 12-digit AWS account id", raw.account));
        }
        let region = raw.region.clone();
        let account = raw.account.clone();
        let net_id = raw
            .service_network
            .id
            .clone()
            .unwrap_or_else(|| derived_id("sn", &raw.service_network.name));
        let network_policy = load_policy(
            raw.service_network.policy,
            raw.service_network.policy_file,
            base,
            "service_network",
            PolicyKind::Resource,
        )
        .unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let network = Network {
            arn: format!("arn:aws:vpc-lattice:{region}:{account}:servicenetwork/{net_id}"),
            name: raw.service_network.name,
            auth_type: raw.service_network.auth_type,
            policy: network_policy,
            source_vpc: raw
                .service_network
                .source_vpc
                .unwrap_or_else(|| "vpc-0a1b2c3d4e5f60718".into()),
            source_vpc_owner_account: raw
                .service_network
                .source_vpc_owner_account
                .unwrap_or_else(|| account.clone()),
        };
        let mut services: Vec<Service> = Vec::new();
        for (i, s) in raw.services.into_iter().enumerate() {
            let what = format!("services[{i}] ({})", s.name);
            if services.iter().any(|o| o.name == s.name) {
                errors.push(format!("{what}: duplicate service name"));
            }
            let host = s.host.to_ascii_lowercase();
            if services.iter().any(|o| o.host == host) {
                errors.push(format!("{what}: host `{host}` is used twice"));
            }
            let target = s.target.trim_end_matches('/').to_string();
            if !target.starts_with("http://") || target.len() <= "http://".len() {
                errors.push(format!("{what}: target `{}` must be http://HOST:PORT", s.target));
            }
            let policy = load_policy(s.policy, s.policy_file, base, &what, PolicyKind::Resource).unwrap_or_else(|e| {
                errors.push(e);
                None
            });
            let id = s.id.unwrap_or_else(|| derived_id("svc", &s.name));
            services.push(Service {
                arn: format!("arn:aws:vpc-lattice:{region}:{account}:service/{id}"),
                target_group_arn: format!(
                    "arn:aws:vpc-lattice:{region}:{account}:targetgroup/{}",
                    derived_id("tg", &s.name)
                ),
                id,
                name: s.name,
                host,
                auth_type: s.auth_type,
                policy,
                target,
            });
        }
        if services.is_empty() {
            errors.push("services: at least one service is required".into());
        }
        let mut credentials = BTreeMap::new();
        for (i, c) in raw.credentials.into_iter().enumerate() {
            let what = format!("credentials[{i}] ({})", c.access_key_id);
            let caller = Caller::new(&c.principal, c.role_arn.as_deref())
                .map_err(|e| errors.push(format!("{what}: principal {e}")))
                .ok();
            if credentials.contains_key(&c.access_key_id) {
                errors.push(format!("{what}: the access key is listed twice"));
            }
            let identity_policy = load_policy(
                c.identity_policy,
                c.identity_policy_file,
                base,
                &what,
                PolicyKind::Identity,
            )
            .unwrap_or_else(|e| {
                errors.push(e);
                None
            });
            let Some(caller) = caller else { continue };
            credentials.insert(
                c.access_key_id,
                Credential {
                    secret: Secret {
                        secret_access_key: c.secret_access_key,
                        session_token: c.session_token,
                    },
                    caller: Caller {
                        org_id: c.org_id,
                        tags: c.tags,
                        identity_policy: identity_policy.map(Arc::new),
                        ..caller
                    },
                },
            );
        }
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        Ok(Config {
            region,
            account,
            listen: raw.listen,
            upstream_timeout: std::time::Duration::from_secs(raw.upstream_timeout_seconds.unwrap_or(30)),
            ca: raw.tls.map(|t| (base.join(t.ca_cert), base.join(t.ca_key))),
            network,
            services,
            credentials,
        })
    }

    /// The service a request is for, by host name (SNI or Host, no port).
    pub fn service_by_host(&self, host: &str) -> Option<&Service> {
        let host = host.rsplit_once(':').map_or(
            host,
            |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host },
        );
        self.services.iter().find(|s| s.host.eq_ignore_ascii_case(host))
    }
}
