//! A test identity provider: real RS256 and ES256 keys generated per run,
//! their JWKS, and tokens signed with them. The dev-idp binary uses the same
//! issuer with one ES256 key kept in a PEM file.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "lattice-api";

pub struct Issuer {
    /// None for an issuer loaded from an ES256 key alone (`from_es256_pem`).
    rs256: Option<RS256KeyPair>,
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
            rs256: Some(
                RS256KeyPair::generate(2048)
                    .expect("RSA key generation")
                    .with_key_id("rs-1"),
            ),
            es256: ES256KeyPair::generate().with_key_id("es-1"),
        }
    }

    /// An issuer with one fresh ES256 key and no RS256 key (RSA key
    /// generation takes seconds in a debug build), its key id the key's
    /// JWK thumbprint (RFC 7638).
    pub fn generate_es256() -> Issuer {
        Issuer::with_es256(ES256KeyPair::generate())
    }

    /// An ES256-only issuer from a P-256 private key in PEM (PKCS#8, as
    /// `es256_private_pem` writes it); the key id is the JWK thumbprint, so
    /// the same file always gives the same `kid`.
    pub fn from_es256_pem(pem: &str) -> Result<Issuer, String> {
        let key = ES256KeyPair::from_pem(pem).map_err(|e| format!("not a P-256 private key in PEM: {e}"))?;
        Ok(Issuer::with_es256(key))
    }

    fn with_es256(key: ES256KeyPair) -> Issuer {
        let kid = key.jwk_thumbprint();
        Issuer {
            rs256: None,
            es256: key.with_key_id(&kid),
        }
    }

    /// The ES256 private key, PKCS#8 PEM (secret: write it 0600).
    pub fn es256_private_pem(&self) -> Result<String, String> {
        self.es256.to_pem().map_err(|e| format!("ES256 key to PEM: {e}"))
    }

    /// The `kid` of the ES256 key, as its tokens and the JWKS carry it.
    pub fn es256_key_id(&self) -> Option<&str> {
        self.es256.key_id().as_deref()
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> String {
        let keys: Vec<Value> = self
            .rs256
            .iter()
            .map(|rs256| rs256.public_key().to_jwk())
            .chain([self.es256.public_key().to_jwk()])
            .map(|jwk| serde_json::from_str(&jwk).expect("jwt-simple JWK is JSON"))
            .collect();
        json!({ "keys": keys }).to_string()
    }

    /// A token with exactly `claims` plus `iat` and `nbf` (now) and `exp`
    /// (now + `valid_for`). Fails for RS256 on an issuer without that key.
    pub fn sign(&self, alg: Alg, claims: Map<String, Value>, valid_for: std::time::Duration) -> Result<String, String> {
        let claims = Claims::with_custom_claims(claims, Duration::from_secs(valid_for.as_secs()));
        match alg {
            Alg::RS256 => self.rs256()?.sign(claims),
            Alg::ES256 => self.es256.sign(claims),
        }
        .map_err(|e| format!("signing a {alg:?} token: {e}"))
    }

    fn rs256(&self) -> Result<&RS256KeyPair, String> {
        self.rs256
            .as_ref()
            .ok_or_else(|| "this issuer has no RS256 key (it was made from an ES256 key alone)".to_string())
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
        self.sign(alg, custom, std::time::Duration::from_secs(5 * 60))
            .unwrap_or_else(|e| panic!("{e}"))
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

/// Base64url without padding, as JWS uses.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Issuer {
    /// A token with an exact header and payload text (duplicate keys, odd
    /// header parameters), signed with the issuer's trusted key for `alg`.
    pub fn raw_token(&self, alg: Alg, header: &str, payload: &str) -> String {
        let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let signature = match alg {
            Alg::RS256 => sign_rs256(
                &self.rs256_key().to_der().expect("RSA key to DER"),
                signing_input.as_bytes(),
            ),
            Alg::ES256 => sign_es256(&self.es256.to_bytes(), signing_input.as_bytes()),
        };
        format!("{signing_input}.{}", b64(&signature))
    }

    /// The RS256 public key in PEM, as an attacker would find it.
    pub fn rs256_public_pem(&self) -> String {
        self.rs256_key().public_key().to_pem().expect("PEM")
    }

    /// The RS256 public key as a JWK (JSON text).
    pub fn rs256_public_jwk(&self) -> String {
        self.rs256_key().public_key().to_jwk()
    }

    fn rs256_key(&self) -> &RS256KeyPair {
        self.rs256().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Why not jwt-simple: it signs claims it serialises itself, with the
/// headers it chooses; attack tests need exact bytes.
fn sign_rs256(der: &[u8], message: &[u8]) -> Vec<u8> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let key = rsa::RsaPrivateKey::from_pkcs1_der(der)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_der(der))
        .expect("RSA private key DER");
    rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(key)
        .sign(message)
        .to_vec()
}

fn sign_es256(scalar: &[u8], message: &[u8]) -> Vec<u8> {
    use p256::ecdsa::signature::Signer;
    let key = p256::ecdsa::SigningKey::from_slice(scalar).expect("P-256 scalar");
    let signature: p256::ecdsa::Signature = key.sign(message);
    signature.to_bytes().to_vec()
}
