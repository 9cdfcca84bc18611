//! The properties the fuzz targets in `filter/core/fuzz/` check, one
//! function per target. `tests/fuzz_corpus.rs` replays every committed
//! corpus through the same functions on stable Rust, so `make test` checks
//! what the fuzzers found interesting without a nightly toolchain.
//!
//! Why in the crate: the nightly fuzz project and the stable integration
//! test must call one definition of each property. Why not behind a cargo
//! feature: `make test` runs the plain workspace, and a feature would need
//! either a self-dev-dependency or a test that silently does not run. The
//! module is hidden from the documentation and never panics: a broken
//! property is an `Err` naming it, which the fuzz target turns into a crash
//! and the corpus test into a failure. Panics from the code under test go
//! through as they are.
#![doc(hidden)]

use crate::config::{
    ClaimTarget, Config, ALWAYS_STRIPPED_PREFIXES, JWT_AUTHN_NAMESPACE, MAX_SCOPES_LIMIT, RESERVED_OUTPUT_PREFIXES,
};
use crate::mapping::Refusal;
use crate::names::{is_lowercase_header_name, is_verbatim_byte, push_scope_suffix, ScopeEncoding};
use crate::pb::{self, encode, Struct, Value};
use crate::request::{handle_request, Counter, Host, HostError, Verdict};
use crate::{map_claims, map_payload_json, pairs, strips_client_header, Output};
use serde_json::Value as Json;
use std::sync::LazyLock;

/// A property check: `Err` says which property the input breaks.
pub type Check = fn(&[u8]) -> Result<(), String>;

/// Every fuzz target of this crate, by its name in `fuzz/fuzz_targets/`.
pub const TARGETS: [(&str, Check); 5] = [
    ("claims", check_claims),
    ("config", check_config),
    ("headers", check_headers),
    ("metadata", check_metadata),
    ("request", check_request),
];

macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

/// The configurations the claims target runs with; the input's first byte
/// chooses one. Between them they cover what "configured" means: the
/// defaults, drop encoding with a small reject cap and length limit, other
/// prefixes with several payload keys and claim mappings of both kinds, and
/// no subject with a claim prefix over the scope claim itself.
const CLAIMS_CONFIGS: [&str; 4] = [
    "",
    r#"{"scope_encoding": "drop", "max_scopes": 3, "on_too_many_scopes": "reject", "max_scope_length": 12}"#,
    r#"{"payload_metadata_keys": ["okta", "entra"], "scope_claims": ["scp", "roles"],
        "scope_header_prefix": "x-scope-", "subject_claim": "email", "subject_header": "x-user", "max_scopes": 5,
        "claims": [{"claim": "realm_access.roles", "header_prefix": "x-role-"},
                   {"claim": "groups", "header": "x-groups", "separator": ";"},
                   {"claim_path": ["https://example.com/tenant"], "header": "x-tenant"}]}"#,
    r#"{"subject_claim": null, "max_scopes": 1, "claims": [{"claim": "scope", "header_prefix": "x-jwt-claim-"}]}"#,
];

static CONFIGS: LazyLock<Result<Vec<Config>, String>> = LazyLock::new(|| {
    CLAIMS_CONFIGS
        .iter()
        .map(|text| Config::from_json(text.as_bytes()).map_err(|e| format!("bug in the fuzzing configs: {e}")))
        .collect()
});

fn configs() -> Result<&'static [Config], String> {
    CONFIGS.as_deref().map_err(Clone::clone)
}

/// Claims mapping. Input: one byte choosing the configuration (and which of
/// its payload keys holds the payload), then a JSON payload, which is
/// encoded as jwt_authn leaves it; input that is not JSON is taken as raw
/// metadata bytes.
///
/// Properties: no panic; every header name is one the configuration names
/// (the subject header, a claim header, or a configured prefix followed by
/// the encoding of a value the token carries); names are lower-case
/// `tchar`s and values hold no control character and no outer space; no name
/// twice; the scope headers are exactly those the token's scopes give, in
/// order, within the cap; every name decodes back to the one scope it came
/// from (so the mapping is injective); the same input gives the same output
/// twice in one reused buffer; the same payload given as JSON text (the
/// native build's source) maps exactly as its metadata does.
pub fn check_claims(data: &[u8]) -> Result<(), String> {
    let Some((&selector, rest)) = data.split_first() else {
        return Ok(());
    };
    let configs = configs()?;
    let index = usize::from(selector) % configs.len();
    let config = configs.get(index).ok_or("bug: no configuration at the index")?;
    let payload: Option<Json> = serde_json::from_slice(rest).ok();
    let metadata = match &payload {
        Some(payload) => {
            let keys = &config.payload_metadata_keys;
            let key = keys
                .get(usize::from(selector) / configs.len() % keys.len().max(1))
                .ok_or("bug: a configuration without payload keys")?;
            let mut fields = serde_json::Map::new();
            fields.insert(key.clone(), payload.clone());
            encode::metadata(JWT_AUTHN_NAMESPACE, &Json::Object(fields))
        }
        None => rest.to_vec(),
    };

    let mut out = Output::default();
    let result = map_claims(config, Some(&metadata), &mut out);
    let headers: Vec<(String, String)> = out.headers().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    let again = map_claims(config, Some(&metadata), &mut out);
    let headers_again: Vec<(String, String)> = out.headers().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    ensure!(
        result == again && headers == headers_again,
        "config {index}: a second run in the same buffer differs"
    );
    if let Some(payload @ Json::Object(_)) = &payload {
        // The native build maps the same payload from its JSON text: it
        // must give the same headers, counts and refusal.
        let keys = &config.payload_metadata_keys;
        let key = usize::from(selector) / configs.len() % keys.len().max(1);
        let json = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
        let mut native = Output::default();
        let from_json = map_payload_json(config, key, &json, &mut native);
        let native_headers: Vec<(String, String)> =
            native.headers().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        ensure!(
            from_json == result && native_headers == headers,
            "config {index}: the payload's JSON maps differently from its metadata"
        );
    }

    let outcome = match result {
        Ok(outcome) => outcome,
        Err(refusal) => {
            ensure!(
                matches!(refusal.status, 401 | 403 | 500),
                "config {index}: refused with status {}",
                refusal.status
            );
            ensure!(
                !refusal.reason.is_empty() && !refusal.reason.chars().any(char::is_control),
                "config {index}: refusal reason {:?}",
                refusal.reason
            );
            if let Some(payload) = &payload {
                // Metadata encoded from JSON is well-formed: a 500 means
                // the decoder misread it, unless the payload is not an
                // object (jwt_authn only writes objects).
                ensure!(
                    (refusal.status == 500) != payload.is_object(),
                    "config {index}: refused with {} ({}) for a well-formed payload",
                    refusal.status,
                    refusal.reason
                );
                let cap_reason = format!("distinct values for `{}*`", config.scope_header_prefix);
                if refusal.status == 403 && refusal.reason.ends_with(&cap_reason) {
                    let expected = expected_scope_headers(config, payload);
                    ensure!(
                        expected.overflow,
                        "config {index}: refused for too many scopes, but the token has {}",
                        expected.names.len()
                    );
                }
            }
            return Ok(());
        }
    };
    if let Some(payload) = &payload {
        ensure!(
            payload.is_object(),
            "config {index}: a payload that is not an object was accepted"
        );
    }

    let mut prefix_headers = 0;
    let mut scope_headers = Vec::new();
    for (position, (name, value)) in headers.iter().enumerate() {
        ensure!(is_lowercase_header_name(name), "config {index}: header name {name:?}");
        ensure!(
            !value.is_empty() && !value.chars().any(char::is_control),
            "config {index}: {name}: value {value:?}"
        );
        ensure!(
            !value.starts_with(' ') && !value.ends_with(' '),
            "config {index}: {name}: value {value:?} has outer space"
        );
        ensure!(
            !headers.iter().take(position).any(|(earlier, _)| earlier == name),
            "config {index}: {name} twice"
        );
        match classify(config, name) {
            Emitted::Subject(claim) => {
                if let Some(payload) = &payload {
                    let sub = payload.get(claim).and_then(Json::as_str);
                    ensure!(
                        sub == Some(value.as_str()),
                        "config {index}: {name}: {value:?}, but the claim is {sub:?}"
                    );
                }
            }
            Emitted::Claim(path, separator) => {
                if let Some(expected) = payload.as_ref().and_then(|p| joined_strings(p, path, separator)) {
                    ensure!(
                        *value == expected,
                        "config {index}: {name}: {value:?}, expected {expected:?}"
                    );
                }
            }
            Emitted::Prefixed { prefix, claim_path } => {
                prefix_headers += 1;
                ensure!(value == "true", "config {index}: {name}: value {value:?}");
                let suffix = name
                    .strip_prefix(prefix)
                    .ok_or("bug: a prefixed name without its prefix")?;
                let element = decode_scope_suffix(suffix)
                    .ok_or_else(|| format!("config {index}: {name}: the suffix is no scope's encoding"))?;
                let mut encoded = String::new();
                ensure!(
                    push_scope_suffix(&mut encoded, &element, config.scope_encoding) && encoded == suffix,
                    "config {index}: {name}: decodes to {:?}, which encodes otherwise",
                    String::from_utf8_lossy(&element)
                );
                ensure!(
                    element.len() <= config.max_scope_length,
                    "config {index}: {name}: longer than max_scope_length"
                );
                match claim_path {
                    None => scope_headers.push(name.clone()),
                    Some(path) => {
                        if let Some(payload) = &payload {
                            ensure!(
                                is_claim_element(payload, path, &element),
                                "config {index}: {name}: not an element of claim {path:?}"
                            );
                        }
                    }
                }
            }
            Emitted::Unknown => return Err(format!("config {index}: {name} is not a configured output")),
        }
    }
    ensure!(
        outcome.identity || headers.is_empty(),
        "config {index}: headers without an identity"
    );
    ensure!(
        outcome.scope_headers == prefix_headers,
        "config {index}: outcome counts {} scope headers, {prefix_headers} emitted",
        outcome.scope_headers
    );

    if let Some(payload) = &payload {
        let expected = expected_scope_headers(config, payload);
        ensure!(
            scope_headers == expected.names,
            "config {index}: scope headers {scope_headers:?}, expected {:?}",
            expected.names
        );
        // Injectivity: every scope the token carries decodes back from its
        // header name, so no two scopes share one.
        for scope in token_scopes(config, payload) {
            let mut suffix = String::new();
            if push_scope_suffix(&mut suffix, &scope, ScopeEncoding::Escape) {
                ensure!(
                    decode_scope_suffix(&suffix).as_deref() == Some(scope.as_slice()),
                    "scope {:?} does not decode back from {suffix:?}",
                    String::from_utf8_lossy(&scope)
                );
            }
        }
    }
    Ok(())
}

/// What a header name is, by the configuration.
enum Emitted<'c> {
    Subject(&'c str),
    Claim(&'c [String], &'c str),
    /// `claim_path` is None for the scope prefix.
    Prefixed {
        prefix: &'c str,
        claim_path: Option<&'c [String]>,
    },
    Unknown,
}

fn classify<'c>(config: &'c Config, name: &str) -> Emitted<'c> {
    if let Some((claim, header)) = &config.subject {
        if header == name {
            return Emitted::Subject(claim);
        }
    }
    if name.starts_with(&config.scope_header_prefix) {
        return Emitted::Prefixed {
            prefix: &config.scope_header_prefix,
            claim_path: None,
        };
    }
    for mapping in &config.claims {
        match &mapping.target {
            ClaimTarget::Header {
                name: header,
                separator,
            } if header == name => {
                return Emitted::Claim(&mapping.path, separator);
            }
            ClaimTarget::Prefix(prefix) if name.starts_with(prefix.as_str()) => {
                return Emitted::Prefixed {
                    prefix,
                    claim_path: Some(&mapping.path),
                };
            }
            _ => {}
        }
    }
    Emitted::Unknown
}

/// The inverse of the scope encoding (see `names`): the scope bytes a
/// header-name suffix encodes, or None when it encodes none.
fn decode_scope_suffix(suffix: &str) -> Option<Vec<u8>> {
    fn hex(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            _ => None,
        }
    }
    let mut bytes = suffix.bytes();
    let mut scope = Vec::with_capacity(suffix.len());
    while let Some(b) = bytes.next() {
        match b {
            b'^' => scope.push(bytes.next().filter(u8::is_ascii_lowercase)?.to_ascii_uppercase()),
            b'%' => {
                let high = hex(bytes.next()?)?;
                let low = hex(bytes.next()?)?;
                scope.push(high << 4 | low);
            }
            b if is_verbatim_byte(b) => scope.push(b),
            _ => return None,
        }
    }
    Some(scope)
}

fn json_at<'j>(payload: &'j Json, path: &[String]) -> Option<&'j Json> {
    path.iter().try_fold(payload, |value, key| value.get(key.as_str()))
}

/// The value a `header` claim mapping must produce, when the claim is a
/// string or an array of strings without the separator.
fn joined_strings(payload: &Json, path: &[String], separator: &str) -> Option<String> {
    match json_at(payload, path)? {
        Json::String(s) => Some(s.clone()),
        Json::Array(items) => {
            let strings: Option<Vec<&str>> = items.iter().map(Json::as_str).collect();
            let strings = strings?;
            (!strings.is_empty() && !strings.iter().any(|s| s.contains(separator))).then(|| strings.join(separator))
        }
        _ => None,
    }
}

/// Whether a `header_prefix` claim mapping may emit `element` for the
/// claim at `path`: a string element as it is, a boolean or number as the
/// text of that value.
fn is_claim_element(payload: &Json, path: &[String], element: &[u8]) -> bool {
    let matches = |value: &Json| match value {
        Json::String(s) => s.as_bytes() == element,
        Json::Bool(b) => element == if *b { &b"true"[..] } else { b"false" },
        Json::Number(n) => std::str::from_utf8(element)
            .ok()
            .and_then(|text| text.parse::<f64>().ok())
            .is_some_and(|parsed| Some(parsed) == n.as_f64()),
        _ => false,
    };
    match json_at(payload, path) {
        Some(Json::Array(items)) => items.iter().any(matches),
        Some(value) => matches(value),
        None => false,
    }
}

/// The scopes of the token, in order: each scope claim's space-separated
/// string, or the strings of its array.
fn token_scopes(config: &Config, payload: &Json) -> Vec<Vec<u8>> {
    let mut scopes = Vec::new();
    for claim in &config.scope_claims {
        match payload.get(claim.as_str()) {
            Some(Json::String(text)) => scopes.extend(
                text.as_bytes()
                    .split(|&b| b == b' ')
                    .filter(|s| !s.is_empty())
                    .map(<[u8]>::to_vec),
            ),
            Some(Json::Array(items)) => {
                scopes.extend(items.iter().filter_map(Json::as_str).map(|s| s.as_bytes().to_vec()))
            }
            _ => {}
        }
    }
    scopes
}

struct ExpectedScopes {
    names: Vec<String>,
    /// More distinct representable scopes than `max_scopes`.
    overflow: bool,
}

/// The scope headers the design promises for `payload`, computed from the
/// JSON rather than from the protobuf the filter reads.
fn expected_scope_headers(config: &Config, payload: &Json) -> ExpectedScopes {
    let mut expected = ExpectedScopes {
        names: Vec::new(),
        overflow: false,
    };
    for scope in token_scopes(config, payload) {
        if scope.len() > config.max_scope_length {
            continue;
        }
        let mut name = config.scope_header_prefix.clone();
        if !push_scope_suffix(&mut name, &scope, config.scope_encoding) || expected.names.contains(&name) {
            continue;
        }
        if expected.names.len() >= config.max_scopes {
            expected.overflow = true;
            continue;
        }
        expected.names.push(name);
    }
    expected
}

/// Plugin configuration parser. Input: the configuration bytes.
///
/// Properties: no panic; every error names its field (or is serde's, with
/// a line and column); a configuration that validates has only unreserved
/// `x-` outputs that do not overlap and that a client can never set in any
/// spelling, its limits in range, and serialises (as envoy-gen writes it)
/// to text that validates to the same configuration.
pub fn check_config(data: &[u8]) -> Result<(), String> {
    let config = match Config::from_json(data) {
        Ok(config) => config,
        Err(error) => {
            ensure!(!error.0.is_empty(), "an error without a problem");
            for message in &error.0 {
                ensure!(names_a_field(message), "{message:?} names no field and no position");
            }
            return Ok(());
        }
    };
    let mut outputs: Vec<(&str, bool)> = vec![(config.scope_header_prefix.as_str(), true)];
    if let Some((claim, header)) = &config.subject {
        ensure!(!claim.is_empty(), "empty subject claim");
        outputs.push((header, false));
    }
    for mapping in &config.claims {
        ensure!(
            !mapping.path.is_empty() && !mapping.path.iter().any(String::is_empty),
            "claim path {:?}",
            mapping.path
        );
        match &mapping.target {
            ClaimTarget::Header { name, separator } => {
                ensure!(
                    !separator.is_empty() && !separator.chars().any(char::is_control),
                    "separator {separator:?}"
                );
                outputs.push((name, false));
            }
            ClaimTarget::Prefix(prefix) => outputs.push((prefix, true)),
        }
    }
    for (i, &(output, is_prefix)) in outputs.iter().enumerate() {
        ensure!(
            is_lowercase_header_name(output) && output.starts_with("x-") && (is_prefix || output.len() > 2),
            "output {output:?} is not a lower-case x- header name"
        );
        // The design reserves these for AWS, Envoy and the proxy chain: no
        // name the configuration can produce may fall among them.
        ensure!(
            !RESERVED_OUTPUT_PREFIXES
                .iter()
                .any(|reserved| output.starts_with(reserved) || (is_prefix && reserved.starts_with(output))),
            "output {output:?} can produce a reserved header"
        );
        ensure!(
            !config.allowed_client_headers.iter().any(|allowed| if is_prefix {
                allowed.starts_with(output)
            } else {
                allowed == output
            }),
            "an allowlisted client header is the output {output:?}"
        );
        for &(other, other_is_prefix) in outputs.iter().skip(i + 1) {
            let overlap = output == other
                || (is_prefix && other.starts_with(output))
                || (other_is_prefix && output.starts_with(other));
            ensure!(!overlap, "outputs {output:?} and {other:?} overlap");
        }
        // What a client would send to forge this output, in the spellings
        // Envoy accepts: as is, upper case, underscores for dashes.
        let forged = if is_prefix {
            format!("{output}admin")
        } else {
            output.to_string()
        };
        for spelling in [forged.clone(), forged.to_ascii_uppercase(), forged.replace('-', "_")] {
            ensure!(
                strips_client_header(&config, spelling.as_bytes()),
                "a client's {spelling:?} would reach the upstream"
            );
        }
    }
    ensure!(
        config.max_scopes <= MAX_SCOPES_LIMIT && config.max_scope_length >= 1,
        "limits {} and {}",
        config.max_scopes,
        config.max_scope_length
    );
    ensure!(
        !config.payload_metadata_keys.is_empty() && !config.payload_metadata_keys.iter().any(String::is_empty),
        "payload keys {:?}",
        config.payload_metadata_keys
    );
    for allowed in &config.allowed_client_headers {
        ensure!(
            !ALWAYS_STRIPPED_PREFIXES.iter().any(|p| allowed.starts_with(p)),
            "{allowed:?} is allowlisted"
        );
    }

    // envoy-gen writes the configuration it parsed back as JSON: that text
    // must mean the same.
    if !data.iter().all(u8::is_ascii_whitespace) {
        let raw: crate::config::RawConfig =
            serde_json::from_slice(data).map_err(|e| format!("validated, but does not parse again: {e}"))?;
        let text = serde_json::to_vec(&raw).map_err(|e| format!("does not serialise: {e}"))?;
        let reparsed = Config::from_json(&text).map_err(|e| format!("serialised form is refused: {e}"))?;
        ensure!(reparsed == config, "serialised form validates to another configuration");
    }
    Ok(())
}

/// The fields of the plugin configuration, which every message of ours
/// starts with.
const CONFIG_FIELDS: [&str; 13] = [
    "payload_metadata_keys",
    "scope_claims",
    "scope_header_prefix",
    "scope_encoding",
    "max_scopes",
    "max_scope_length",
    "on_too_many_scopes",
    "subject_claim",
    "subject_header",
    "claims",
    "allowed_client_headers",
    "forward_authorization",
    "require_identity",
];

fn names_a_field(message: &str) -> bool {
    let field = CONFIG_FIELDS.iter().any(|field| {
        message
            .strip_prefix(field)
            .is_some_and(|rest| rest.starts_with([':', '[', '.']))
    });
    // serde_json's messages end with the position.
    let position = message
        .rsplit_once(" at line ")
        .is_some_and(|(_, at)| at.split_once(" column ").is_some());
    field || position || message.starts_with("output headers overlap: ")
}

/// Header-map ("pairs") decoder. Input: a pairs buffer as the host hands it.
///
/// Properties: no panic; what decodes re-encodes to the bytes it was read
/// from (a prefix of the input) and decodes again to the same pairs; with
/// every claims configuration, a client header that spells an output or an
/// always-stripped prefix (any case, `_` for `-`) or `authorization` is
/// stripped, and a header that is neither `x-` nor authorization is kept.
pub fn check_headers(data: &[u8]) -> Result<(), String> {
    let Ok(decoded) = pairs::parse(data) else {
        return Ok(());
    };
    let encoded = pairs::serialize(&decoded);
    ensure!(
        (data.is_empty() && decoded.is_empty()) || data.starts_with(&encoded),
        "decoded pairs re-encode to other bytes"
    );
    let again = pairs::parse(&encoded).map_err(|_| "re-encoded pairs do not decode".to_string())?;
    ensure!(again == decoded, "re-encoded pairs decode to other pairs");

    for config in configs()? {
        let mut protected: Vec<(String, bool)> =
            ALWAYS_STRIPPED_PREFIXES.iter().map(|p| (p.to_string(), true)).collect();
        protected.push((config.scope_header_prefix.clone(), true));
        if let Some((_, header)) = &config.subject {
            protected.push((header.clone(), false));
        }
        for mapping in &config.claims {
            protected.push(match &mapping.target {
                ClaimTarget::Header { name, .. } => (name.clone(), false),
                ClaimTarget::Prefix(prefix) => (prefix.clone(), true),
            });
        }
        for (name, _) in &decoded {
            let spelled: Vec<u8> = name
                .iter()
                .map(|b| if *b == b'_' { b'-' } else { b.to_ascii_lowercase() })
                .collect();
            let authorization = spelled == b"authorization" || spelled == b"proxy-authorization";
            let forges = protected.iter().any(|(output, is_prefix)| {
                if *is_prefix {
                    spelled.starts_with(output.as_bytes())
                } else {
                    spelled == output.as_bytes()
                }
            });
            let strips = strips_client_header(config, name);
            let shown = String::from_utf8_lossy(name);
            ensure!(!(forges || authorization) || strips, "client header {shown:?} is kept");
            ensure!(
                spelled.starts_with(b"x-") || authorization || !strips,
                "ordinary header {shown:?} is stripped"
            );
        }
    }
    Ok(())
}

/// Keys the metadata target looks up at every level.
const PROBE_KEYS: [&str; 6] = ["jwt_payload", "sub", "scope", "scp", "realm_access", "roles"];

/// How many values one probe decodes at most, so that nested input cannot
/// make one execution slow.
const PROBE_BUDGET: usize = 256;

/// What probing found: the JSON it reads as, and whether that JSON is the
/// whole truth (every number finite, every string UTF-8, budget not spent).
struct Probe {
    budget: usize,
    exact: bool,
}

impl Probe {
    fn structure(&mut self, s: Struct<'_>, depth: usize) -> Result<Json, pb::DecodeError> {
        let mut map = serde_json::Map::new();
        for key in PROBE_KEYS {
            if let Some(value) = s.get(key.as_bytes())? {
                map.insert(key.to_string(), self.value(value, depth + 1)?);
            }
        }
        Ok(Json::Object(map))
    }

    fn value(&mut self, value: Value<'_>, depth: usize) -> Result<Json, pb::DecodeError> {
        if self.budget == 0 || depth > 4 {
            self.exact = false;
            return Ok(Json::Null);
        }
        self.budget -= 1;
        Ok(match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(b),
            Value::Number(n) => match serde_json::Number::from_f64(n) {
                Some(n) => Json::Number(n),
                None => {
                    self.exact = false;
                    Json::Null
                }
            },
            Value::String(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Json::String(text.to_string()),
                Err(_) => {
                    self.exact = false;
                    Json::Null
                }
            },
            Value::Struct(s) => self.structure(s, depth)?,
            Value::List(list) => {
                let mut items = Vec::new();
                for item in list.iter() {
                    items.push(self.value(item?, depth + 1)?);
                }
                Json::Array(items)
            }
        })
    }
}

fn probe(metadata: &[u8]) -> Result<Option<(Json, bool)>, pb::DecodeError> {
    let Some(root) = pb::filter_metadata(metadata, JWT_AUTHN_NAMESPACE.as_bytes())? else {
        return Ok(None);
    };
    let mut probe = Probe {
        budget: PROBE_BUDGET,
        exact: true,
    };
    let json = probe.structure(root, 0)?;
    Ok(Some((json, probe.exact)))
}

/// Metadata (protobuf) decoder. Input: an encoded
/// `envoy.config.core.v3.Metadata`.
///
/// Properties: no panic, whatever the bytes; what decodes (looked up under
/// the keys the filter uses, at every level) encodes again to a message
/// that decodes to the same values.
pub fn check_metadata(data: &[u8]) -> Result<(), String> {
    let Ok(Some((json, exact))) = probe(data) else {
        return Ok(());
    };
    if !exact {
        return Ok(());
    }
    let encoded = encode::metadata(JWT_AUTHN_NAMESPACE, &json);
    match probe(&encoded) {
        Ok(Some((again, true))) if again == json => Ok(()),
        Ok(Some((again, _))) => Err(format!("{json} re-encodes and decodes as {again}")),
        Ok(None) => Err(format!("{json} re-encodes without the jwt_authn namespace")),
        Err(_) => Err(format!("{json} re-encodes to a message that does not decode")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claims_configurations_are_valid() {
        assert_eq!(configs().unwrap().len(), CLAIMS_CONFIGS.len());
    }

    #[test]
    fn suffixes_decode_to_their_scope() {
        for (suffix, scope) in [
            ("test.all", &b"test.all"[..]),
            ("^user.^read", b"User.Read"),
            ("api%3a%2f%2fx", b"api://x"),
        ] {
            assert_eq!(decode_scope_suffix(suffix).as_deref(), Some(scope));
        }
        for not_an_encoding in ["^A", "%4", "%4G", "a b", "A"] {
            assert_eq!(decode_scope_suffix(not_an_encoding), None, "{not_an_encoding}");
        }
    }

    #[test]
    fn a_broken_property_is_an_error() {
        assert!(names_a_field("claims[0].claim: `a..b` has an empty path segment"));
        assert!(names_a_field("expected value at line 1 column 1"));
        assert!(!names_a_field("something went wrong"));
    }
}

/// A [`Host`] over plain values that records what the handler does: the
/// request handler's glue, run natively.
#[derive(Debug, Default)]
pub struct RecordingHost {
    /// The request headers, as they stand.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The verified claims the host hands over.
    pub claims: Option<Vec<u8>>,
    /// Headers the handler added, in order.
    pub added: Vec<(String, String)>,
    /// Counter increments.
    pub counts: Vec<(Counter, u64)>,
    /// The refusal sent, if any.
    pub refused: Option<Refusal>,
    /// The host call that fails, if any (`names`, `remove`, `add`, `claims`).
    pub fail: Option<&'static str>,
}

impl RecordingHost {
    fn check(&self, step: &'static str) -> Result<(), HostError> {
        if self.fail == Some(step) {
            Err(HostError::new(step))
        } else {
            Ok(())
        }
    }

    /// The sum of a counter's increments.
    pub fn count_of(&self, counter: Counter) -> u64 {
        self.counts.iter().filter(|(c, _)| *c == counter).map(|(_, n)| n).sum()
    }
}

impl Host for RecordingHost {
    type Claims = Vec<u8>;

    fn request_header_names(&mut self, visit: &mut dyn FnMut(&[u8])) -> Result<(), HostError> {
        self.check("names")?;
        for (name, _) in &self.headers {
            visit(name);
        }
        Ok(())
    }

    fn remove_request_header(&mut self, name: &[u8]) -> Result<(), HostError> {
        self.check("remove")?;
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        Ok(())
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.check("add")?;
        self.headers.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self.added.push((name.to_string(), value.to_string()));
        Ok(())
    }

    fn verified_claims(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        self.check("claims")?;
        Ok(self.claims.clone())
    }

    fn count(&mut self, counter: Counter, n: u64) {
        self.counts.push((counter, n));
    }

    fn refuse(&mut self, refusal: &Refusal) {
        self.refused = Some(refusal.clone());
    }
}

/// The request handler both builds run. Input: one byte choosing the
/// configuration and a failing host call (or none), two bytes giving the
/// length of a pairs buffer of client headers that follows, then a JSON
/// payload as in `check_claims` (empty: no verified token).
///
/// Properties: no panic; the handler continues exactly when `map_claims`
/// accepts the same claims and no host call fails; when it continues, no
/// client header that must be stripped is left, every other client header
/// is kept in order, and the headers added are exactly `map_claims`'
/// output; when it stops, nothing was added, the refusal is 401, 403 or
/// 500 (500 for a failed host call), and `requests_refused` counted it;
/// `requests` counts every request once.
pub fn check_request(data: &[u8]) -> Result<(), String> {
    let [selector, high, low, rest @ ..] = data else {
        return Ok(());
    };
    let configs = configs()?;
    let config = configs.get(usize::from(selector % 4)).ok_or("bug: no configuration")?;
    let fail = [None, Some("names"), Some("remove"), Some("add"), Some("claims")]
        .get(usize::from(selector / 4 % 5))
        .copied()
        .flatten();
    let split = usize::from(u16::from_be_bytes([*high, *low])).min(rest.len());
    let (header_bytes, payload) = rest.split_at(split);
    let Ok(client) = pairs::parse(header_bytes) else {
        return Ok(());
    };
    let claims = if payload.is_empty() {
        None
    } else {
        let key = config.payload_metadata_keys.first().ok_or("bug: no payload key")?;
        Some(match serde_json::from_slice::<Json>(payload) {
            Ok(json) => encode::metadata(JWT_AUTHN_NAMESPACE, &serde_json::json!({ key.as_str(): json })),
            Err(_) => payload.to_vec(),
        })
    };
    let mut host = RecordingHost {
        headers: client.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
        claims: claims.clone(),
        fail,
        ..RecordingHost::default()
    };
    let verdict = handle_request(Some(config), &mut host, &mut Output::default());

    let mut expected = Output::default();
    let mapped = map_claims(config, claims.as_deref(), &mut expected);
    let strips = client.iter().any(|(n, _)| strips_client_header(config, n));
    let adds = mapped.as_ref().is_ok_and(|_| !expected.is_empty());
    // Names and claims are read before anything is decided; removals and
    // additions happen only for a request the claims let through.
    let failing_call = match fail {
        Some("names") | Some("claims") => true,
        Some("remove") => strips && mapped.is_ok(),
        Some("add") => adds,
        _ => false,
    };
    ensure!(host.count_of(Counter::Requests) == 1, "`requests` not counted once");
    match verdict {
        Verdict::Continue => {
            ensure!(mapped.is_ok() && !failing_call, "continued where it must refuse");
            let kept: Vec<&(Vec<u8>, Vec<u8>)> = host
                .headers
                .iter()
                .take(host.headers.len() - host.added.len())
                .collect();
            let expected_kept: Vec<(Vec<u8>, Vec<u8>)> = client
                .iter()
                .filter(|(n, _)| !strips_client_header(config, n))
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            ensure!(
                kept.into_iter().cloned().collect::<Vec<_>>() == expected_kept,
                "the client headers left are not the ones to keep"
            );
            let expected_added: Vec<(String, String)> = expected
                .headers()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            ensure!(
                host.added == expected_added,
                "added headers differ from map_claims' output"
            );
            ensure!(host.refused.is_none(), "refused and continued");
        }
        Verdict::Stop => {
            ensure!(mapped.is_err() || failing_call, "refused a request map_claims accepts");
            ensure!(
                host.added.is_empty() || fail == Some("add"),
                "added headers to a refused request"
            );
            let refusal = host.refused.as_ref().ok_or("stopped without a refusal")?;
            ensure!(
                [401, 403, 500].contains(&refusal.status),
                "refused with {}",
                refusal.status
            );
            if failing_call {
                ensure!(
                    refusal.status == 500,
                    "a failed host call refused with {}",
                    refusal.status
                );
            }
            ensure!(host.count_of(Counter::Refused) == 1, "refusal not counted once");
        }
    }
    Ok(())
}
