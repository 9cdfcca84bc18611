//! A test identity provider: real RS256 and ES256 keys generated per run,
//! their JWKS, and tokens signed with them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "lattice-api";

pub struct Issuer {
    rs256: RS256KeyPair,
    es256: ES256KeyPair,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    ES256,
}

impl Issuer {
    pub fn new() -> Issuer {
        Issuer {
            rs256: RS256KeyPair::generate(2048)
                .expect("RSA key generation")
                .with_key_id("rs-1"),
            es256: ES256KeyPair::generate().with_key_id("es-1"),
        }
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> String {
        let keys: Vec<Value> = [
            self.rs256.public_key().to_jwk(),
            self.es256.public_key().to_jwk(),
        ]
        .iter()
        .map(|jwk| serde_json::from_str(jwk).expect("jwt-simple JWK is JSON"))
        .collect();
        json!({ "keys": keys }).to_string()
    }

    /// A token with the standard claims (iss, aud, iat, nbf, exp in 5
    /// minutes) and `extra` on top; `extra` may override any of them or set
    /// claims of any JSON type.
    pub fn token(&self, alg: Alg, extra: Value) -> String {
        let mut custom: Map<String, Value> = match extra {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        custom.entry("iss").or_insert_with(|| json!(ISSUER));
        custom.entry("aud").or_insert_with(|| json!(AUDIENCE));
        let claims = Claims::with_custom_claims(custom, Duration::from_mins(5));
        match alg {
            Alg::RS256 => self.rs256.sign(claims),
            Alg::ES256 => self.es256.sign(claims),
        }
        .expect("signing")
    }
}

impl Default for Issuer {
    fn default() -> Self {
        Issuer::new()
    }
}

/// The decoded payload of a token (no verification: for showing in demos).
pub fn payload_of(token: &str) -> Value {
    token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}
