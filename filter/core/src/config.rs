//! Plugin configuration: the JSON users write, and the validated form the
//! hot path uses. Parsed once, in `on_configure`; every problem is reported
//! with the field it concerns, and any problem refuses the configuration.

use crate::names::{is_lowercase_header_name, ScopeEncoding};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The metadata namespace jwt_authn writes verified payloads under.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";

/// What the names of [`payload_header_name`] start with.
pub const PAYLOAD_HEADER_PREFIX: &str = "x-jwt-payload-";

/// The request header in which the native build receives the payload
/// jwt_authn verified under payload key `key`: the provider's
/// `forward_payload_header` (jwt_authn adds the payload's base64url there
/// once the token is verified). Its name starts with `x-jwt-`, which the
/// frontend removes from client requests before any filter runs. None when
/// `key` cannot be part of a header name.
pub fn payload_header_name(key: &str) -> Option<String> {
    let name = format!("{PAYLOAD_HEADER_PREFIX}{}", key.to_ascii_lowercase());
    (!key.is_empty() && crate::names::is_lowercase_header_name(&name)).then_some(name)
}

/// The payload header of each of `config`'s payload keys, in order (what
/// the native build reads, and what envoy-gen renders as each provider's
/// `forward_payload_header`). Refused: a key that cannot name a header, two
/// keys with one header, and a header the filter itself may emit (the
/// payload header is removed after the request is handled).
pub fn payload_headers(config: &Config) -> Result<Vec<String>, String> {
    let mut headers: Vec<String> = Vec::new();
    for key in &config.payload_metadata_keys {
        let key_shown = key.escape_debug();
        let header = payload_header_name(key).ok_or_else(|| {
            format!("payload key `{key_shown}` cannot be part of a header name (`{PAYLOAD_HEADER_PREFIX}<key>`), which the native build needs")
        })?;
        if headers.contains(&header) {
            return Err(format!(
                "payload key `{key_shown}` and another one both name header `{header}`"
            ));
        }
        if let Some(output) = emitted_by_filter(config, &header) {
            return Err(format!(
                "header `{header}`, where the payload of `{key_shown}` arrives in the native build, could also be emitted as {output}"
            ));
        }
        headers.push(header);
    }
    Ok(headers)
}

/// True when the filter's output `output` (a header name, or a prefix when
/// `is_prefix`) could produce header `name`.
fn covers(output: &str, is_prefix: bool, name: &str) -> bool {
    if is_prefix {
        name.starts_with(output)
    } else {
        name == output
    }
}

/// Which of the filter's outputs `header` could be, if any.
fn emitted_by_filter(config: &Config, header: &str) -> Option<String> {
    if covers(&config.scope_header_prefix, true, header) {
        return Some(format!("a scope header (`{}*`)", config.scope_header_prefix));
    }
    if config
        .subject
        .as_ref()
        .is_some_and(|(_, name)| covers(name, false, header))
    {
        return Some("the subject header".into());
    }
    config.claims.iter().find_map(|mapping| match &mapping.target {
        ClaimTarget::Header { name, .. } if covers(name, false, header) => Some(format!("claim header `{name}`")),
        ClaimTarget::Prefix(prefix) if covers(prefix, true, header) => Some(format!("a claim header (`{prefix}*`)")),
        _ => None,
    })
}

/// Client headers kept by default: the reference deployment's list.
pub const DEFAULT_ALLOWED_CLIENT_HEADERS: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-request-id",
    "x-amzn-trace-id",
    "x-envoy-internal",
];

/// Prefixes a client can never send through, whatever the allowlist says.
pub const ALWAYS_STRIPPED_PREFIXES: [&str; 3] = ["x-jwt-", "x-amz-", "x-amzn-lattice-"];

/// Prefixes an output header may not use: they belong to AWS, Envoy or the
/// forwarding chain, and a token must not be able to set them.
pub const RESERVED_OUTPUT_PREFIXES: [&str; 4] = ["x-amz", "x-envoy-", "x-forwarded-", "x-request-id"];

/// What to do when a token has more scopes than `max_scopes`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TooManyScopes {
    /// Emit the first `max_scopes` distinct scopes, in token order; count the
    /// rest as dropped. Safe because Lattice policies grant on presence.
    Drop,
    /// Refuse the request with 403.
    Reject,
}

/// The configuration as written (JSON). Every field is optional.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub payload_metadata_keys: Vec<String>,
    pub scope_claims: Vec<String>,
    pub scope_header_prefix: String,
    pub scope_encoding: ScopeEncoding,
    pub max_scopes: usize,
    pub max_scope_length: usize,
    pub on_too_many_scopes: TooManyScopes,
    pub subject_claim: Option<String>,
    pub subject_header: String,
    pub claims: Vec<RawClaimMapping>,
    pub allowed_client_headers: Vec<String>,
    pub forward_authorization: bool,
    pub require_identity: bool,
    /// Per payload metadata key (an issuer), the app client ids whose
    /// access tokens are accepted: for issuers whose access tokens carry
    /// `client_id` and no `aud` (Amazon Cognito), where jwt_authn cannot
    /// check the audience. A payload under such a key is refused unless
    /// its `client_id` is one of these, its `token_use` is `access` and it
    /// has no `aud`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub client_ids: BTreeMap<String, Vec<String>>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            payload_metadata_keys: vec!["jwt_payload".into()],
            scope_claims: vec!["scope".into(), "scp".into()],
            scope_header_prefix: "x-jwt-scope-".into(),
            scope_encoding: ScopeEncoding::Escape,
            max_scopes: 64,
            max_scope_length: 256,
            on_too_many_scopes: TooManyScopes::Drop,
            subject_claim: Some("sub".into()),
            subject_header: "x-jwt-subject".into(),
            claims: Vec::new(),
            allowed_client_headers: DEFAULT_ALLOWED_CLIENT_HEADERS.map(String::from).to_vec(),
            forward_authorization: false,
            require_identity: false,
            client_ids: BTreeMap::new(),
        }
    }
}

/// One extra claim-to-header mapping, as written.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaimMapping {
    /// Dotted path (`realm_access.roles`).
    pub claim: Option<String>,
    /// Explicit path segments, for claim names that contain dots
    /// (`["https://example.com/tenant"]`).
    pub claim_path: Option<Vec<String>>,
    /// One header carrying the value (arrays joined with `separator`).
    pub header: Option<String>,
    /// One `<prefix><element>: true` header per array element (or for a
    /// single string), names encoded like scopes.
    pub header_prefix: Option<String>,
    /// Separator for arrays under `header`; default `,`.
    pub separator: Option<String>,
}

/// Where a mapped claim goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimTarget {
    /// One header, arrays joined with the separator.
    Header { name: String, separator: String },
    /// One header per element under the prefix.
    Prefix(String),
}

/// A validated claim mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    pub path: Vec<String>,
    pub target: ClaimTarget,
}

/// The validated configuration the filter runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub payload_metadata_keys: Vec<String>,
    pub scope_claims: Vec<String>,
    pub scope_header_prefix: String,
    pub scope_encoding: ScopeEncoding,
    pub max_scopes: usize,
    pub max_scope_length: usize,
    pub on_too_many_scopes: TooManyScopes,
    pub subject: Option<(String, String)>,
    pub claims: Vec<ClaimMapping>,
    pub allowed_client_headers: Vec<String>,
    pub forward_authorization: bool,
    pub require_identity: bool,
    /// Allowed `client_id`s by payload metadata key (see `RawConfig`).
    pub client_ids: BTreeMap<String, Vec<String>>,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid jwt_scopes configuration: ")?;
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for ConfigError {}

/// Largest `max_scopes` accepted: each scope is one header, and Envoy's
/// header count limit (default 100) must leave room for the rest.
pub const MAX_SCOPES_LIMIT: usize = 1000;

impl Config {
    /// Parses and validates plugin configuration bytes. Empty (or
    /// whitespace-only) input gives the defaults.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return RawConfig::default().validate();
        }
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| ConfigError(vec![e.to_string()]))?;
        raw.validate()
    }
}

impl RawConfig {
    /// Semantic checks; reports every problem at once.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut errors = Vec::new();
        let mut outputs: Vec<(String, bool)> = Vec::new(); // (name or prefix, is_prefix)

        if self.payload_metadata_keys.is_empty() {
            errors.push("payload_metadata_keys: must name at least one key".into());
        }
        for (i, key) in self.payload_metadata_keys.iter().enumerate() {
            if key.is_empty() {
                errors.push(format!("payload_metadata_keys[{i}]: must not be empty"));
            }
        }
        for (i, claim) in self.scope_claims.iter().enumerate() {
            if claim.is_empty() {
                errors.push(format!("scope_claims[{i}]: must not be empty"));
            }
        }
        check_output_name("scope_header_prefix", &self.scope_header_prefix, true, &mut errors);
        outputs.push((self.scope_header_prefix.clone(), true));
        if self.max_scopes > MAX_SCOPES_LIMIT {
            errors.push(format!(
                "max_scopes: {} is above the limit of {MAX_SCOPES_LIMIT}",
                self.max_scopes
            ));
        }
        if self.max_scope_length == 0 {
            errors.push("max_scope_length: must be at least 1".into());
        }

        let subject = match &self.subject_claim {
            Some(claim) if claim.is_empty() => {
                errors.push("subject_claim: must not be empty (use null to disable)".into());
                None
            }
            Some(claim) => {
                check_output_name("subject_header", &self.subject_header, false, &mut errors);
                outputs.push((self.subject_header.clone(), false));
                Some((claim.clone(), self.subject_header.clone()))
            }
            None => None,
        };

        let mut claims = Vec::new();
        for (i, raw) in self.claims.iter().enumerate() {
            let field = format!("claims[{i}]");
            let path = match (&raw.claim, &raw.claim_path) {
                (Some(dotted), None) => {
                    let path: Vec<String> = dotted.split('.').map(String::from).collect();
                    if path.iter().any(String::is_empty) {
                        errors.push(format!("{field}.claim: `{dotted}` has an empty path segment"));
                    }
                    path
                }
                (None, Some(path)) => {
                    if path.is_empty() || path.iter().any(String::is_empty) {
                        errors.push(format!("{field}.claim_path: must be non-empty segments"));
                    }
                    path.clone()
                }
                _ => {
                    errors.push(format!("{field}: exactly one of `claim` and `claim_path` is required"));
                    continue;
                }
            };
            let target = match (&raw.header, &raw.header_prefix) {
                (Some(name), None) => {
                    check_output_name(&format!("{field}.header"), name, false, &mut errors);
                    outputs.push((name.clone(), false));
                    let separator = raw.separator.clone().unwrap_or_else(|| ",".into());
                    if separator.is_empty() || separator.chars().any(char::is_control) {
                        errors.push(format!("{field}.separator: must be non-empty printable text"));
                    }
                    ClaimTarget::Header {
                        name: name.clone(),
                        separator,
                    }
                }
                (None, Some(prefix)) => {
                    check_output_name(&format!("{field}.header_prefix"), prefix, true, &mut errors);
                    outputs.push((prefix.clone(), true));
                    if raw.separator.is_some() {
                        errors.push(format!("{field}.separator: only applies with `header`"));
                    }
                    ClaimTarget::Prefix(prefix.clone())
                }
                _ => {
                    errors.push(format!(
                        "{field}: exactly one of `header` and `header_prefix` is required"
                    ));
                    continue;
                }
            };
            claims.push(ClaimMapping { path, target });
        }

        check_outputs_disjoint(&outputs, &mut errors);

        for (i, name) in self.allowed_client_headers.iter().enumerate() {
            let field = format!("allowed_client_headers[{i}]");
            if !is_lowercase_header_name(name) {
                errors.push(format!("{field}: `{name}` is not a lower-case header name"));
            } else if !name.starts_with("x-") {
                errors.push(format!("{field}: `{name}` does not start with `x-`; only `x-` headers are stripped, so it needs no allowlisting"));
            } else if let Some(p) = ALWAYS_STRIPPED_PREFIXES.iter().find(|p| name.starts_with(*p)) {
                errors.push(format!(
                    "{field}: `{name}` can never be allowed: `{p}*` headers are always stripped"
                ));
            } else if let Some((out, _)) = outputs.iter().find(|(out, is_prefix)| covers(out, *is_prefix, name)) {
                errors.push(format!(
                    "{field}: `{name}` would let a client set the filter's output header `{out}`"
                ));
            }
        }

        for (key, ids) in &self.client_ids {
            let field = format!("client_ids.{key}");
            if !self.payload_metadata_keys.contains(key) {
                errors.push(format!(
                    "{field}: `{key}` is not one of payload_metadata_keys, so no token would ever be checked"
                ));
            }
            if ids.is_empty() {
                errors.push(format!(
                    "{field}: must list at least one client id (an empty list would refuse every token of `{key}`)"
                ));
            }
            for (i, id) in ids.iter().enumerate() {
                if id.trim().is_empty() || id.chars().any(char::is_control) {
                    errors.push(format!(
                        "{field}[{i}]: must be a non-empty client id without control characters"
                    ));
                }
            }
        }

        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        Ok(Config {
            payload_metadata_keys: self.payload_metadata_keys,
            scope_claims: self.scope_claims,
            scope_header_prefix: self.scope_header_prefix,
            scope_encoding: self.scope_encoding,
            max_scopes: self.max_scopes,
            max_scope_length: self.max_scope_length,
            on_too_many_scopes: self.on_too_many_scopes,
            subject,
            claims,
            allowed_client_headers: self.allowed_client_headers,
            forward_authorization: self.forward_authorization,
            require_identity: self.require_identity,
            client_ids: self.client_ids,
        })
    }
}

/// An output header (or prefix) must be an `x-` name a client cannot keep
/// (the filter strips every `x-` header not allowlisted) and must not step
/// on AWS's, Envoy's or the forwarding chain's headers.
fn check_output_name(field: &str, name: &str, is_prefix: bool, errors: &mut Vec<String>) {
    if !is_lowercase_header_name(name) {
        errors.push(format!("{field}: `{name}` is not a lower-case header name"));
    } else if !name.starts_with("x-") || (!is_prefix && name.len() <= 2) {
        errors.push(format!(
            "{field}: `{name}` must start with `x-` (so that client copies are always stripped)"
        ));
    } else if let Some(p) = RESERVED_OUTPUT_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        errors.push(format!(
            "{field}: `{name}` is reserved (`{p}*` belongs to AWS, Envoy or the proxy chain)"
        ));
    } else if let Some(p) = RESERVED_OUTPUT_PREFIXES
        .iter()
        .find(|p| is_prefix && p.starts_with(name))
    {
        // A scope is appended to a prefix: `x-e` and `nvoy-original-path`
        // would make `x-envoy-original-path`.
        errors.push(format!(
            "{field}: `{name}` would let a token's values make `{p}*` headers (they belong to AWS, Envoy or the proxy chain)"
        ));
    }
}

/// No output may land on another: a scope header must never be mistaken for
/// the subject header or a claim header, or two mappings share a header.
fn check_outputs_disjoint(outputs: &[(String, bool)], errors: &mut Vec<String>) {
    for (i, (a, a_prefix)) in outputs.iter().enumerate() {
        for (b, b_prefix) in outputs.iter().skip(i + 1) {
            let clash = match (a_prefix, b_prefix) {
                (false, false) => a == b,
                (true, false) => b.starts_with(a.as_str()),
                (false, true) => a.starts_with(b.as_str()),
                (true, true) => a.starts_with(b.as_str()) || b.starts_with(a.as_str()),
            };
            if clash {
                errors.push(format!(
                    "output headers overlap: `{a}` and `{b}` could produce the same header"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<String> {
        Config::from_json(json.as_bytes()).unwrap_err().0
    }

    #[test]
    fn empty_configuration_is_the_reference_behaviour() {
        let config = Config::from_json(b"").unwrap();
        assert_eq!(config.payload_metadata_keys, ["jwt_payload"]);
        assert_eq!(config.scope_claims, ["scope", "scp"]);
        assert_eq!(config.scope_header_prefix, "x-jwt-scope-");
        assert_eq!(config.subject, Some(("sub".into(), "x-jwt-subject".into())));
        assert_eq!(Config::from_json(b"{}").unwrap(), config);
    }

    #[test]
    fn unknown_field_is_named() {
        let e = errors(r#"{"scope_prefix": "x-"}"#);
        assert!(e[0].contains("unknown field `scope_prefix`"), "{e:?}");
    }

    #[test]
    fn bad_type_is_named() {
        let e = errors(r#"{"max_scopes": "many"}"#);
        assert!(e[0].contains("invalid type: string \"many\""), "{e:?}");
    }

    #[test]
    fn allowlisting_identity_or_aws_headers_is_rejected() {
        let e = errors(
            r#"{"allowed_client_headers": ["x-jwt-subject", "x-amz-date", "x-amzn-lattice-identity", "X-Foo", "x-jwt-scope-admin"]}"#,
        );
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e[0].starts_with("allowed_client_headers[0]: `x-jwt-subject` can never be allowed"));
        assert!(e[1].starts_with("allowed_client_headers[1]: `x-amz-date` can never be allowed"));
        assert!(e[2].starts_with("allowed_client_headers[2]: `x-amzn-lattice-identity`"));
        assert!(e[3].starts_with("allowed_client_headers[3]: `X-Foo` is not a lower-case header name"));
    }

    #[test]
    fn allowlist_cannot_cover_outputs() {
        let e = errors(r#"{"scope_header_prefix": "x-scope-", "allowed_client_headers": ["x-scope-admin"]}"#);
        assert_eq!(e, ["allowed_client_headers[0]: `x-scope-admin` would let a client set the filter's output header `x-scope-`"]);
    }

    #[test]
    fn outputs_must_be_unreserved_x_headers() {
        let e = errors(r#"{"subject_header": "authorization", "scope_header_prefix": "x-amz-"}"#);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("scope_header_prefix: `x-amz-` is reserved"));
        assert!(e[1].starts_with("subject_header: `authorization` must start with `x-`"));
    }

    #[test]
    fn a_prefix_cannot_lead_into_reserved_names() {
        let e = errors(
            r#"{"scope_header_prefix": "x-e", "allowed_client_headers": [],
                "claims": [{"claim": "roles", "header_prefix": "x-f"}]}"#,
        );
        assert_eq!(
            e,
            [
                "scope_header_prefix: `x-e` would let a token's values make `x-envoy-*` headers (they belong to AWS, Envoy or the proxy chain)",
                "claims[0].header_prefix: `x-f` would let a token's values make `x-forwarded-*` headers (they belong to AWS, Envoy or the proxy chain)",
            ]
        );
    }

    #[test]
    fn outputs_must_be_disjoint() {
        let e = errors(r#"{"claims": [{"claim": "email", "header": "x-jwt-scope-email"}]}"#);
        assert_eq!(
            e,
            ["output headers overlap: `x-jwt-scope-` and `x-jwt-scope-email` could produce the same header"]
        );
    }

    #[test]
    fn claim_mappings_are_checked() {
        let e = errors(
            r#"{"claims": [{"claim": "a..b", "header": "x-a"}, {"claim": "x"}, {"claim": "g", "claim_path": ["g"], "header": "x-g"}, {"claim_path": ["https://e.com/t"], "header_prefix": "x-t-", "separator": ";"}]}"#,
        );
        assert_eq!(
            e,
            [
                "claims[0].claim: `a..b` has an empty path segment",
                "claims[1]: exactly one of `header` and `header_prefix` is required",
                "claims[2]: exactly one of `claim` and `claim_path` is required",
                "claims[3].separator: only applies with `header`",
            ]
        );
    }

    #[test]
    fn client_ids_must_name_a_payload_key_and_list_ids() {
        let e = errors(
            r#"{"payload_metadata_keys": ["cognito", "okta"],
                "client_ids": {"cognito": ["1example23456789", " ", "a\u0000b"], "okta": [], "entra": ["x"]}}"#,
        );
        assert_eq!(
            e,
            [
                "client_ids.cognito[1]: must be a non-empty client id without control characters",
                "client_ids.cognito[2]: must be a non-empty client id without control characters",
                "client_ids.entra: `entra` is not one of payload_metadata_keys, so no token would ever be checked",
                "client_ids.okta: must list at least one client id (an empty list would refuse every token of `okta`)",
            ]
        );
        let config = Config::from_json(br#"{"client_ids": {"jwt_payload": ["1example23456789"]}}"#).unwrap();
        assert_eq!(config.client_ids["jwt_payload"], ["1example23456789"]);
    }

    #[test]
    fn no_client_ids_serialise_as_nothing() {
        // envoy-gen serialises RawConfig into every frontend: a configuration
        // without client ids keeps its old text.
        let text = serde_json::to_string(&RawConfig::default()).unwrap();
        assert!(!text.contains("client_ids"), "{text}");
    }

    #[test]
    fn claim_path_keeps_dots() {
        let config = Config::from_json(
            br#"{"claims": [{"claim_path": ["https://example.com/tenant"], "header": "x-jwt-tenant"}]}"#,
        )
        .unwrap();
        assert_eq!(config.claims[0].path, ["https://example.com/tenant"]);
    }
}
