//! The request-time logic: which client headers go, which identity headers
//! come, or why the request is refused. Pure: the wasm glue feeds it header
//! names and the metadata bytes, and applies what it returns.

use crate::config::{ClaimMapping, ClaimTarget, Config, TooManyScopes, JWT_AUTHN_NAMESPACE};
use crate::names::{check_header_value, push_scope_suffix, BadValue};
use crate::payload::{Claim, Object};
use crate::pb;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value as Json};
use std::borrow::Cow;
use std::fmt::Write as _;

/// Headers to add, kept in one reusable buffer: the glue clears it per
/// request, so steady-state requests allocate nothing here.
#[derive(Debug, Default)]
pub struct Output {
    text: String,
    /// (name start, name end = value start, value end) into `text`.
    spans: Vec<(usize, usize, usize)>,
}

impl Output {
    pub fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
    }

    /// The headers, in the order they were produced.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans
            .iter()
            .filter_map(|&(a, b, c)| Some((self.text.get(a..b)?, self.text.get(b..c)?)))
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn start(&self) -> usize {
        self.text.len()
    }

    /// Finishes a header whose name was written from `start` on.
    fn finish(&mut self, start: usize, value: &str) {
        let name_end = self.text.len();
        self.text.push_str(value);
        self.spans.push((start, name_end, self.text.len()));
    }

    /// Undoes a name written from `start` on.
    fn abandon(&mut self, start: usize) {
        self.text.truncate(start);
    }

    /// True when a header with the name written from `start` on already exists.
    fn is_duplicate(&self, start: usize) -> bool {
        let Some(name) = self.text.get(start..) else {
            return false;
        };
        self.spans.iter().any(|&(a, b, _)| self.text.get(a..b) == Some(name))
    }
}

/// Why a request is refused; `reason` is safe to log and to send (it never
/// contains claim values or tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u32,
    pub reason: String,
    /// The `WWW-Authenticate` value, for refusals about the token (RFC 6750).
    pub challenge: Option<&'static str>,
}

/// The challenge of a request without a (verified) token.
pub const CHALLENGE_BEARER: &str = "Bearer";
/// The challenge of a verified token that is not for this API: what the
/// frontend answers when jwt_authn refuses a token's audience.
pub const CHALLENGE_INVALID_TOKEN: &str = "Bearer error=\"invalid_token\"";

impl Refusal {
    /// 403: the token is valid, but what it says cannot be forwarded.
    pub fn forbidden(reason: String) -> Self {
        Refusal {
            status: 403,
            reason,
            challenge: None,
        }
    }

    /// 401: no verified identity.
    pub fn unauthenticated(reason: String) -> Self {
        Refusal {
            status: 401,
            reason,
            challenge: Some(CHALLENGE_BEARER),
        }
    }

    /// 403: the token is verified but was not issued for this API (as
    /// jwt_authn refuses a wrong `aud`).
    pub fn invalid_token(reason: String) -> Self {
        Refusal {
            status: 403,
            reason,
            challenge: Some(CHALLENGE_INVALID_TOKEN),
        }
    }

    /// 500: the filter could not do its work; nothing is forwarded.
    pub fn internal(reason: String) -> Self {
        Refusal {
            status: 500,
            reason,
            challenge: None,
        }
    }
}

/// What happened to a request that goes on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// A verified payload was found.
    pub identity: bool,
    /// Scope headers (and per-element claim headers) emitted.
    pub scope_headers: usize,
    /// Scopes (and claim elements) that could not be represented, were not
    /// strings, or were past the cap.
    pub dropped: usize,
}

/// True when the client's header `name` must be removed before anything
/// trusts the request. Names arrive lower-cased from Envoy; this compares
/// without regard to case anyway.
pub fn strips_client_header(config: &Config, name: &[u8]) -> bool {
    let starts =
        |prefix: &[u8]| name.len() >= prefix.len() && name.iter().zip(prefix).all(|(a, b)| a.eq_ignore_ascii_case(b));
    if starts(b"x-") || starts(b"x_") {
        return !config
            .allowed_client_headers
            .iter()
            .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(name));
    }
    !config.forward_authorization
        && (name.eq_ignore_ascii_case(b"authorization") || name.eq_ignore_ascii_case(b"proxy-authorization"))
}

/// Finds the verified payload in Envoy's `metadata` property bytes, and
/// the payload key it is under.
fn find_payload<'a, 'c>(
    config: &'c Config,
    metadata: &'a [u8],
) -> Result<Option<(&'c str, Object<'a>)>, pb::DecodeError> {
    let Some(jwt_authn) = pb::filter_metadata(metadata, JWT_AUTHN_NAMESPACE.as_bytes())? else {
        return Ok(None);
    };
    for key in &config.payload_metadata_keys {
        match jwt_authn.get(key.as_bytes())? {
            Some(pb::Value::Struct(payload)) => return Ok(Some((key, Object::Pb(payload)))),
            // jwt_authn always writes an object; anything else is not its payload.
            Some(_) => return Err(pb::DecodeError),
            None => {}
        }
    }
    Ok(None)
}

/// Computes the identity headers for a request. `metadata` is the encoded
/// `envoy.config.core.v3.Metadata` of the stream (None when the host has
/// none). On success the headers are in `out`.
pub fn map_claims(config: &Config, metadata: Option<&[u8]>, out: &mut Output) -> Result<Outcome, Refusal> {
    let found = metadata
        .map(|m| find_payload(config, m))
        .transpose()
        .map_err(malformed)?;
    map_found(config, found.flatten(), out)
}

/// [`map_claims`] for a payload received as JSON text (the native build):
/// `json` is the payload jwt_authn verified under
/// `config.payload_metadata_keys[key]`. Anything but a JSON object is
/// refused with 500: jwt_authn only ever forwards an object.
pub fn map_payload_json(config: &Config, key: usize, json: &[u8], out: &mut Output) -> Result<Outcome, Refusal> {
    let name = config
        .payload_metadata_keys
        .get(key)
        .ok_or_else(|| Refusal::internal("the verified payload has no payload key".into()))?;
    let not_an_object = |_| Refusal::internal("the verified payload is not a JSON object".into());
    let mut reader = serde_json::Deserializer::from_slice(json);
    let payload = NeededClaims {
        config,
        client_check: config.client_ids.contains_key(name),
    }
    .deserialize(&mut reader)
    .map_err(not_an_object)?;
    reader.end().map_err(not_an_object)?;
    map_found(config, Some((name, Object::Json(&payload))), out)
}

/// Reads a payload object keeping only the claims the mapping may look
/// at: every other member is checked as JSON and skipped, never built
/// (a token carries `iss`, `exp`, `aud`, ... that no header needs). The
/// mapping's result is the same as from the whole object (the tests map
/// every payload both ways).
struct NeededClaims<'c> {
    config: &'c Config,
    /// The payload key's issuer is checked by `client_id`.
    client_check: bool,
}

impl NeededClaims<'_> {
    fn needs(&self, claim: &str) -> bool {
        let config = self.config;
        config.scope_claims.iter().any(|c| c == claim)
            || config.subject.as_ref().is_some_and(|(c, _)| c == claim)
            || config.claims.iter().any(|m| m.path.first().is_some_and(|c| c == claim))
            || (self.client_check && matches!(claim, "aud" | "token_use" | "client_id"))
    }
}

impl<'de> DeserializeSeed<'de> for NeededClaims<'_> {
    type Value = Map<String, Json>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NeededClaims<'_> {
    type Value = Map<String, Json>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Self::Value, A::Error> {
        let mut kept = Map::new();
        while let Some(name) = members.next_key_seed(MemberName)? {
            if self.needs(&name) {
                // A repeated member keeps its last value, as jwt_authn's.
                kept.insert(name.into_owned(), members.next_value::<Json>()?);
            } else {
                members.next_value::<IgnoredAny>()?;
            }
        }
        Ok(kept)
    }
}

/// A member name, borrowed from the input when it has no escape.
struct MemberName;

impl<'de> DeserializeSeed<'de> for MemberName {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MemberName {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(name))
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(name.to_owned()))
    }
}

fn malformed<E>(_: E) -> Refusal {
    Refusal::internal("jwt_authn metadata could not be read".into())
}

/// The mapping itself, over the verified payload found under payload key
/// `key` (None: no token was verified).
fn map_found(config: &Config, found: Option<(&str, Object<'_>)>, out: &mut Output) -> Result<Outcome, Refusal> {
    out.clear();
    let Some((key, payload)) = found else {
        if config.require_identity {
            return Err(Refusal::unauthenticated("a verified identity is required".into()));
        }
        return Ok(Outcome::default());
    };
    if let Some(allowed) = config.client_ids.get(key) {
        check_client_id(allowed, &payload)?;
    }
    let mut outcome = Outcome {
        identity: true,
        ..Outcome::default()
    };

    if let Some((claim, header)) = &config.subject {
        match payload.get(claim.as_bytes()).map_err(malformed)? {
            None | Some(Claim::Null) => {}
            Some(Claim::String(bytes)) => {
                let value = check_header_value(bytes)
                    .map_err(|bad| Refusal::forbidden(format!("subject claim `{claim}` {}", bad.describe())))?;
                let start = out.start();
                out.text.push_str(header);
                out.finish(start, value);
            }
            Some(other) => {
                return Err(Refusal::forbidden(format!(
                    "subject claim `{claim}` is a {}, not a string",
                    other.type_name()
                )))
            }
        }
    }

    let mut scopes = ScopeEmitter::new(config, &config.scope_header_prefix, out);
    for claim in &config.scope_claims {
        match payload.get(claim.as_bytes()).map_err(malformed)? {
            None => {}
            Some(Claim::String(text)) => {
                for scope in text.split(|&b| b == b' ').filter(|s| !s.is_empty()) {
                    scopes.emit(scope)?;
                }
            }
            Some(Claim::List(items)) => {
                for item in items.iter() {
                    match item.map_err(malformed)? {
                        Claim::String(scope) => scopes.emit(scope)?,
                        _ => scopes.drop_one(),
                    }
                }
            }
            Some(_) => scopes.drop_one(),
        }
    }
    outcome.scope_headers += scopes.emitted;
    outcome.dropped += scopes.dropped;

    for mapping in &config.claims {
        let Some(value) = payload.get_path(&mapping.path).map_err(malformed)? else {
            continue;
        };
        match &mapping.target {
            ClaimTarget::Header { name, separator } => {
                map_claim_to_header(mapping, name, separator, value, out)?;
            }
            ClaimTarget::Prefix(prefix) => {
                let mut elements = ScopeEmitter::new(config, prefix, out);
                map_claim_to_prefix(mapping, value, &mut elements)?;
                outcome.scope_headers += elements.emitted;
                outcome.dropped += elements.dropped;
            }
        }
    }
    Ok(outcome)
}

/// The audience check of an issuer whose access tokens name the app client
/// in `client_id` and carry no `aud` (Amazon Cognito), as strict as
/// jwt_authn's check of `aud`: the client must be one of `allowed`
/// (compared byte for byte), the token must say it is an access token
/// (`token_use`; Cognito's ID tokens say `id` and carry the client in
/// `aud`), and a token with an `aud` is not one of these access tokens
/// whatever else it says.
fn check_client_id(allowed: &[String], payload: &Object<'_>) -> Result<(), Refusal> {
    let claim = |name: &[u8]| {
        payload
            .get(name)
            .map_err(|_| Refusal::internal("jwt_authn metadata could not be read".into()))
    };
    if claim(b"aud")?.is_some() {
        return Err(Refusal::invalid_token(
            "the token has an `aud` claim: this issuer's tokens are accepted by `client_id`, which its access tokens carry instead"
                .into(),
        ));
    }
    if !matches!(claim(b"token_use")?, Some(Claim::String(b"access"))) {
        return Err(Refusal::invalid_token(
            "the token is not an access token (`token_use` is not `access`)".into(),
        ));
    }
    match claim(b"client_id")? {
        Some(Claim::String(id)) if allowed.iter().any(|a| a.as_bytes() == id) => Ok(()),
        Some(Claim::String(_)) => Err(Refusal::invalid_token(
            "the token was issued to a client this API does not accept (`client_id`)".into(),
        )),
        _ => Err(Refusal::invalid_token("the token has no `client_id` string".into())),
    }
}

/// Emits `<prefix><encoded element>: true` headers with de-duplication and
/// the `max_scopes` cap.
struct ScopeEmitter<'c, 'o> {
    config: &'c Config,
    prefix: &'c str,
    out: &'o mut Output,
    emitted: usize,
    dropped: usize,
}

impl<'c, 'o> ScopeEmitter<'c, 'o> {
    fn new(config: &'c Config, prefix: &'c str, out: &'o mut Output) -> Self {
        ScopeEmitter {
            config,
            prefix,
            out,
            emitted: 0,
            dropped: 0,
        }
    }

    fn drop_one(&mut self) {
        self.dropped += 1;
    }

    fn emit(&mut self, element: &[u8]) -> Result<(), Refusal> {
        if element.len() > self.config.max_scope_length {
            self.dropped += 1;
            return Ok(());
        }
        let start = self.out.start();
        self.out.text.push_str(self.prefix);
        if !push_scope_suffix(&mut self.out.text, element, self.config.scope_encoding) {
            self.out.abandon(start);
            self.dropped += 1;
            return Ok(());
        }
        if self.out.is_duplicate(start) {
            self.out.abandon(start);
            return Ok(());
        }
        if self.emitted >= self.config.max_scopes {
            self.out.abandon(start);
            if self.config.on_too_many_scopes == TooManyScopes::Reject {
                return Err(Refusal::forbidden(format!(
                    "the token has more than {} distinct values for `{}*`",
                    self.config.max_scopes, self.prefix
                )));
            }
            self.dropped += 1;
            return Ok(());
        }
        self.out.finish(start, "true");
        self.emitted += 1;
        Ok(())
    }
}

/// Writes a number the way JSON would: integers without a fraction.
fn push_number(text: &mut String, n: f64) {
    // 2^53: past it, f64 no longer holds every integer exactly.
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        let _ = write!(text, "{}", n as i64);
    } else {
        let _ = write!(text, "{n}");
    }
}

fn claim_name(mapping: &ClaimMapping) -> String {
    mapping.path.join(".")
}

/// Appends a scalar to `text`; None for null, objects and arrays.
fn push_scalar(text: &mut String, value: &Claim<'_>) -> Option<Result<(), BadValue>> {
    match value {
        Claim::String(bytes) => Some(check_header_value(bytes).map(|s| text.push_str(s))),
        Claim::Number(n) => {
            push_number(text, *n);
            Some(Ok(()))
        }
        Claim::Bool(b) => {
            text.push_str(if *b { "true" } else { "false" });
            Some(Ok(()))
        }
        Claim::Null | Claim::Object(_) | Claim::List(_) => None,
    }
}

fn map_claim_to_header(
    mapping: &ClaimMapping,
    name: &str,
    separator: &str,
    value: Claim<'_>,
    out: &mut Output,
) -> Result<(), Refusal> {
    let refuse = |why: &str| Refusal::forbidden(format!("claim `{}` {why}", claim_name(mapping)));
    let start = out.start();
    out.text.push_str(name);
    let value_start = out.text.len();
    match value {
        Claim::Null => {
            out.abandon(start);
            return Ok(());
        }
        Claim::List(items) => {
            for (i, item) in items.iter().enumerate() {
                let item = item.map_err(|_| refuse("could not be read"))?;
                if i > 0 {
                    out.text.push_str(separator);
                }
                let element_start = out.text.len();
                match push_scalar(&mut out.text, &item) {
                    Some(Ok(())) => {}
                    Some(Err(bad)) => {
                        out.abandon(start);
                        return Err(refuse(&format!("has an element that {}", bad.describe())));
                    }
                    None => {
                        out.abandon(start);
                        return Err(refuse(&format!("has an element that is {}", item.type_name())));
                    }
                }
                // A separator inside an element would make the joined value
                // ambiguous (["a,b"] and ["a", "b"] would look the same).
                if out.text.get(element_start..).is_some_and(|e| e.contains(separator)) {
                    out.abandon(start);
                    return Err(refuse("has an element containing the separator"));
                }
            }
            if out.text.len() == value_start {
                out.abandon(start);
                return Ok(());
            }
        }
        scalar => match push_scalar(&mut out.text, &scalar) {
            Some(Ok(())) => {}
            Some(Err(bad)) => {
                out.abandon(start);
                return Err(refuse(bad.describe()));
            }
            None => {
                out.abandon(start);
                return Err(refuse(&format!(
                    "is an {}, which a header cannot carry",
                    scalar.type_name()
                )));
            }
        },
    }
    // The value was written in place after the name; record the span.
    let name_end = value_start;
    out.spans.push((start, name_end, out.text.len()));
    Ok(())
}

fn map_claim_to_prefix(
    mapping: &ClaimMapping,
    value: Claim<'_>,
    elements: &mut ScopeEmitter<'_, '_>,
) -> Result<(), Refusal> {
    let mut scratch = String::new();
    let mut emit_scalar = |elements: &mut ScopeEmitter<'_, '_>, item: &Claim<'_>| -> Result<(), Refusal> {
        match item {
            Claim::String(bytes) => elements.emit(bytes),
            Claim::Number(_) | Claim::Bool(_) => {
                scratch.clear();
                let _ = push_scalar(&mut scratch, item);
                elements.emit(scratch.as_bytes())
            }
            _ => {
                elements.drop_one();
                Ok(())
            }
        }
    };
    match value {
        Claim::Null => Ok(()),
        Claim::List(items) => {
            for item in items.iter() {
                let item =
                    item.map_err(|_| Refusal::forbidden(format!("claim `{}` could not be read", claim_name(mapping))))?;
                emit_scalar(elements, &item)?;
            }
            Ok(())
        }
        scalar => emit_scalar(elements, &scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::encode;
    use serde_json::{json, Value as Json};

    type Mapped = Result<(Vec<(String, String)>, Outcome), Refusal>;

    /// Maps `payload` found under payload key `key` both ways the builds
    /// receive it, as jwt_authn's metadata (wasm) and as its JSON (native),
    /// and checks that both give the same headers, counts and refusal.
    fn both_ways(config: &Config, key: &str, payload: &Json) -> Mapped {
        let collect = |out: &Output, outcome: Result<Outcome, Refusal>| -> Mapped {
            let headers = out.headers().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            outcome.map(|o| (headers, o))
        };
        let metadata = encode::metadata(JWT_AUTHN_NAMESPACE, &json!({ key: payload }));
        let mut out = Output::default();
        let outcome = map_claims(config, Some(&metadata), &mut out);
        let from_metadata = collect(&out, outcome);
        let index = config.payload_metadata_keys.iter().position(|k| k == key);
        if let Some(index) = index {
            let json = serde_json::to_vec(payload).unwrap();
            let mut out = Output::default();
            let outcome = map_payload_json(config, index, &json, &mut out);
            let from_json = collect(&out, outcome);
            assert_eq!(from_metadata, from_json, "the two sources disagree on {payload}");
        }
        from_metadata
    }

    fn run(config: &Config, payload: Json) -> Mapped {
        both_ways(config, "jwt_payload", &payload)
    }

    fn default_config() -> Config {
        Config::from_json(b"").unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn okta_scp_array() {
        let (h, o) = run(&default_config(), json!({"sub": "00u1", "scp": ["openid", "test.all"]})).unwrap();
        assert_eq!(
            h,
            pairs(&[
                ("x-jwt-subject", "00u1"),
                ("x-jwt-scope-openid", "true"),
                ("x-jwt-scope-test.all", "true")
            ])
        );
        assert_eq!(
            o,
            Outcome {
                identity: true,
                scope_headers: 2,
                dropped: 0
            }
        );
    }

    #[test]
    fn cognito_scope_string_and_entra_scp_string() {
        let (h, _) = run(
            &default_config(),
            json!({"scope": "openid  profile openid", "scp": "User.Read"}),
        )
        .unwrap();
        assert_eq!(
            h,
            pairs(&[
                ("x-jwt-scope-openid", "true"),
                ("x-jwt-scope-profile", "true"),
                ("x-jwt-scope-^user.^read", "true")
            ])
        );
    }

    #[test]
    fn non_string_scopes_are_dropped_and_counted() {
        let (h, o) = run(
            &default_config(),
            json!({"scope": 5, "scp": ["ok", 1, null, {"a": 1}, ["x"], true, ""]}),
        )
        .unwrap();
        assert_eq!(h, pairs(&[("x-jwt-scope-ok", "true")]));
        assert_eq!(o.dropped, 7);
    }

    #[test]
    fn cap_drops_or_rejects() {
        let scopes: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
        let mut config = default_config();
        config.max_scopes = 3;
        let (h, o) = run(&config, json!({"scp": scopes})).unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(o.dropped, 97);
        config.on_too_many_scopes = TooManyScopes::Reject;
        let r = run(&config, json!({"scp": scopes})).unwrap_err();
        assert_eq!(r.status, 403);
    }

    #[test]
    fn subject_with_control_characters_is_refused() {
        let r = run(&default_config(), json!({"sub": "a\r\nx-jwt-scope-admin: true"})).unwrap_err();
        assert_eq!(
            r,
            Refusal::forbidden("subject claim `sub` contains a control character".into())
        );
        let r = run(&default_config(), json!({"sub": 42})).unwrap_err();
        assert_eq!(r.reason, "subject claim `sub` is a number, not a string");
    }

    #[test]
    fn no_payload_means_no_headers_unless_required() {
        let mut out = Output::default();
        let config = default_config();
        assert_eq!(map_claims(&config, None, &mut out), Ok(Outcome::default()));
        let other = encode::metadata("some.other.filter", &json!({"jwt_payload": {"sub": "x"}}));
        assert_eq!(map_claims(&config, Some(&other), &mut out), Ok(Outcome::default()));
        assert!(out.is_empty());
        let required = Config {
            require_identity: true,
            ..config
        };
        assert_eq!(map_claims(&required, None, &mut out).unwrap_err().status, 401);
    }

    #[test]
    fn malformed_metadata_fails_closed() {
        let mut out = Output::default();
        let r = map_claims(&default_config(), Some(&[0x0a, 0x05, 0x01]), &mut out);
        assert_eq!(r.unwrap_err().status, 500);
    }

    #[test]
    fn second_metadata_key_is_used_when_first_absent() {
        let config = Config::from_json(br#"{"payload_metadata_keys": ["okta", "entra"]}"#).unwrap();
        let metadata = encode::metadata(JWT_AUTHN_NAMESPACE, &json!({"entra": {"sub": "e"}}));
        let mut out = Output::default();
        map_claims(&config, Some(&metadata), &mut out).unwrap();
        assert_eq!(out.headers().collect::<Vec<_>>(), [("x-jwt-subject", "e")]);
    }

    #[test]
    fn claim_mappings() {
        let config = Config::from_json(
            br#"{"claims": [
            {"claim": "email", "header": "x-jwt-email"},
            {"claim": "realm_access.roles", "header_prefix": "x-jwt-role-"},
            {"claim": "groups", "header": "x-jwt-groups"},
            {"claim_path": ["https://example.com/tenant"], "header": "x-jwt-tenant"},
            {"claim": "exp", "header": "x-jwt-exp"},
            {"claim": "email_verified", "header": "x-jwt-email-verified"},
            {"claim": "missing", "header": "x-jwt-missing"}
        ]}"#,
        )
        .unwrap();
        let (h, _) = run(
            &config,
            json!({
                "email": "a@b.c",
                "realm_access": {"roles": ["Admin", "admin", "Admin"]},
                "groups": ["g1", "g2"],
                "https://example.com/tenant": "t1",
                "exp": 1700000000,
                "email_verified": true,
            }),
        )
        .unwrap();
        assert_eq!(
            h,
            pairs(&[
                ("x-jwt-email", "a@b.c"),
                ("x-jwt-role-^admin", "true"),
                ("x-jwt-role-admin", "true"),
                ("x-jwt-groups", "g1,g2"),
                ("x-jwt-tenant", "t1"),
                ("x-jwt-exp", "1700000000"),
                ("x-jwt-email-verified", "true"),
            ])
        );
    }

    #[test]
    fn joined_claim_with_separator_inside_is_refused() {
        let config = Config::from_json(br#"{"claims": [{"claim": "groups", "header": "x-jwt-groups"}]}"#).unwrap();
        let r = run(&config, json!({"groups": ["a,b"]})).unwrap_err();
        assert_eq!(r.reason, "claim `groups` has an element containing the separator");
        let r = run(&config, json!({"groups": {"a": 1}})).unwrap_err();
        assert_eq!(r.reason, "claim `groups` is an object, which a header cannot carry");
    }

    /// An access token as Amazon Cognito issues it: `client_id`, `token_use`
    /// and no `aud`.
    fn cognito_access_token(client_id: &str) -> Json {
        json!({
            "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "iss": "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_aaaaaaaaa",
            "client_id": client_id,
            "origin_jti": "bbbbbbbb-cccc-dddd-eeee-ffffffffffff",
            "event_id": "cccccccc-dddd-eeee-ffff-aaaaaaaaaaaa",
            "token_use": "access",
            "scope": "orders/read openid",
            "auth_time": 1_700_000_000,
            "exp": 1_700_003_600,
            "iat": 1_700_000_000,
            "jti": "dddddddd-eeee-ffff-aaaa-bbbbbbbbbbbb",
            "username": "alice",
        })
    }

    fn cognito_config() -> Config {
        Config::from_json(
            br#"{"payload_metadata_keys": ["okta", "cognito"],
                 "client_ids": {"cognito": ["1example23456789", "2example23456789"]}}"#,
        )
        .unwrap()
    }

    fn run_under(config: &Config, key: &str, payload: Json) -> Result<Vec<(String, String)>, Refusal> {
        both_ways(config, key, &payload).map(|(headers, _)| headers)
    }

    #[test]
    fn cognito_access_token_of_an_allowed_client_is_mapped() {
        let config = cognito_config();
        for client in ["1example23456789", "2example23456789"] {
            let headers = run_under(&config, "cognito", cognito_access_token(client)).unwrap();
            assert_eq!(
                headers,
                pairs(&[
                    ("x-jwt-subject", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
                    ("x-jwt-scope-orders%2fread", "true"),
                    ("x-jwt-scope-openid", "true"),
                ])
            );
        }
    }

    #[test]
    fn cognito_tokens_not_for_an_allowed_client_are_refused_before_any_header() {
        let config = cognito_config();
        let invalid = |reason: &str| Err(Refusal::invalid_token(reason.into()));
        let not_allowed = "the token was issued to a client this API does not accept (`client_id`)";
        let no_client = "the token has no `client_id` string";
        let not_access = "the token is not an access token (`token_use` is not `access`)";
        let has_aud = "the token has an `aud` claim: this issuer's tokens are accepted by `client_id`, which its access tokens carry instead";
        let with = |change: &dyn Fn(&mut Json)| {
            let mut token = cognito_access_token("1example23456789");
            change(&mut token);
            run_under(&config, "cognito", token)
        };
        // The wrong client, in every near miss: case, spaces, a prefix, a list.
        for other in [
            "3example23456789",
            "1EXAMPLE23456789",
            " 1example23456789",
            "1example2345678",
            "",
        ] {
            assert_eq!(
                with(&|t| t["client_id"] = json!(other)),
                invalid(not_allowed),
                "{other:?}"
            );
        }
        assert_eq!(
            with(&|t| t["client_id"] = json!(["1example23456789"])),
            invalid(no_client)
        );
        assert_eq!(with(&|t| t["client_id"] = json!(null)), invalid(no_client));
        assert_eq!(
            with(&|t| {
                t.as_object_mut().unwrap().remove("client_id");
            }),
            invalid(no_client)
        );
        // Cognito's ID token: the client in `aud`, `token_use: id`.
        let id_token = json!({"sub": "x", "aud": "1example23456789", "token_use": "id", "cognito:username": "alice"});
        assert_eq!(run_under(&config, "cognito", id_token), invalid(has_aud));
        assert_eq!(with(&|t| t["aud"] = json!("1example23456789")), invalid(has_aud));
        assert_eq!(with(&|t| t["aud"] = json!(null)), invalid(has_aud));
        for token_use in [json!("id"), json!("ACCESS"), json!(["access"]), json!(null), json!(1)] {
            assert_eq!(with(&|t| t["token_use"] = token_use.clone()), invalid(not_access));
        }
        assert_eq!(
            with(&|t| {
                t.as_object_mut().unwrap().remove("token_use");
            }),
            invalid(not_access)
        );
        let refusal = with(&|t| t["client_id"] = json!("nope")).unwrap_err();
        assert_eq!(refusal.status, 403);
        assert_eq!(refusal.challenge, Some(CHALLENGE_INVALID_TOKEN));
    }

    #[test]
    fn client_ids_apply_only_to_their_issuer() {
        // Another issuer's payload is checked by jwt_authn's `aud` alone.
        let config = cognito_config();
        let headers = run_under(&config, "okta", json!({"sub": "00u1", "aud": "api://default"})).unwrap();
        assert_eq!(headers, pairs(&[("x-jwt-subject", "00u1")]));
        let mut out = Output::default();
        assert!(map_claims(&default_config(), None, &mut out).is_ok());
    }

    #[test]
    fn strips_x_headers_except_allowlist() {
        let config = default_config();
        for name in [
            "x-jwt-subject",
            "X-JWT-Subject",
            "x_jwt_subject",
            "x-amz-date",
            "x-amzn-lattice-identity",
            "x-foo",
            "authorization",
        ] {
            assert!(strips_client_header(&config, name.as_bytes()), "{name}");
        }
        for name in [
            "x-forwarded-for",
            "x-request-id",
            "x-amzn-trace-id",
            "content-type",
            "host",
            ":path",
        ] {
            assert!(!strips_client_header(&config, name.as_bytes()), "{name}");
        }
    }
}
