//! A verified JWT payload as the claim mapping reads it, whichever way the
//! build received it:
//!
//! - the proxy-wasm build reads jwt_authn's dynamic metadata, a protobuf
//!   `Struct` ([`Object::Pb`], borrowed from the encoded bytes, see [`pb`]);
//! - the native build reads the payload's JSON, which jwt_authn forwards in
//!   a request header once the token is verified ([`Object::Json`]).
//!
//! [`crate::mapping`] is written once against this view, so both sources
//! give the same headers and refusals. The two readings agree: jwt_authn
//! builds its `Struct` from that same JSON (numbers become doubles, a
//! repeated key keeps its last value), and so does this view. The
//! `differential` tests below and the fuzzer hold them to it.

use crate::pb::{self, DecodeError};
use serde_json::{Map, Value as Json};

/// A JSON object: the payload itself or an object inside it.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    Pb(pb::Struct<'a>),
    Json(&'a Map<String, Json>),
}

/// A JSON array inside the payload.
#[derive(Debug, Clone, Copy)]
pub enum List<'a> {
    Pb(pb::List<'a>),
    Json(&'a [Json]),
}

/// One claim's value.
#[derive(Debug, Clone, Copy)]
pub enum Claim<'a> {
    Null,
    /// Every JSON number is a double, as in `google.protobuf.Value`.
    Number(f64),
    /// The string's bytes. The protobuf reader does not check UTF-8, so
    /// callers check (JSON strings always are).
    String(&'a [u8]),
    Bool(bool),
    Object(Object<'a>),
    List(List<'a>),
}

impl<'a> Claim<'a> {
    fn from_pb(value: pb::Value<'a>) -> Self {
        match value {
            pb::Value::Null => Claim::Null,
            pb::Value::Number(n) => Claim::Number(n),
            pb::Value::String(s) => Claim::String(s),
            pb::Value::Bool(b) => Claim::Bool(b),
            pb::Value::Struct(s) => Claim::Object(Object::Pb(s)),
            pb::Value::List(l) => Claim::List(List::Pb(l)),
        }
    }

    fn from_json(value: &'a Json) -> Self {
        match value {
            Json::Null => Claim::Null,
            // Without serde_json's arbitrary_precision every number has an
            // f64 form; NaN is what the protobuf encoder would write too.
            Json::Number(n) => Claim::Number(n.as_f64().unwrap_or(f64::NAN)),
            Json::String(s) => Claim::String(s.as_bytes()),
            Json::Bool(b) => Claim::Bool(*b),
            Json::Object(map) => Claim::Object(Object::Json(map)),
            Json::Array(items) => Claim::List(List::Json(items)),
        }
    }

    /// A short name of the JSON type, for logs and errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Claim::Null => "null",
            Claim::Number(_) => "number",
            Claim::String(_) => "string",
            Claim::Bool(_) => "boolean",
            Claim::Object(_) => "object",
            Claim::List(_) => "array",
        }
    }
}

impl<'a> Object<'a> {
    /// The value under `key` (the last one when the key repeats).
    pub fn get(&self, key: &[u8]) -> Result<Option<Claim<'a>>, DecodeError> {
        match self {
            Object::Pb(s) => Ok(s.get(key)?.map(Claim::from_pb)),
            // A key that is not UTF-8 names no JSON member.
            Object::Json(map) => Ok(std::str::from_utf8(key)
                .ok()
                .and_then(|k| map.get(k))
                .map(Claim::from_json)),
        }
    }

    /// Follows a path of keys through nested objects.
    pub fn get_path<S: AsRef<[u8]>>(&self, path: &[S]) -> Result<Option<Claim<'a>>, DecodeError> {
        let Some((first, rest)) = path.split_first() else {
            return Ok(Some(Claim::Object(*self)));
        };
        let mut current = self.get(first.as_ref())?;
        for key in rest {
            current = match current {
                Some(Claim::Object(inner)) => inner.get(key.as_ref())?,
                _ => return Ok(None),
            };
        }
        Ok(current)
    }
}

impl<'a> List<'a> {
    /// The elements in order; a protobuf list stops after its first decode
    /// error.
    pub fn iter(&self) -> Elements<'a> {
        match self {
            List::Pb(l) => Elements::Pb(Box::new(l.iter())),
            List::Json(items) => Elements::Json(items.iter()),
        }
    }
}

/// The elements of a [`List`].
pub enum Elements<'a> {
    Pb(Box<dyn Iterator<Item = Result<pb::Value<'a>, DecodeError>> + 'a>),
    Json(std::slice::Iter<'a, Json>),
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<Claim<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Elements::Pb(it) => it.next().map(|v| v.map(Claim::from_pb)),
            Elements::Json(it) => it.next().map(|v| Ok(Claim::from_json(v))),
        }
    }
}

#[cfg(test)]
mod differential {
    use super::*;
    use crate::pb::encode;
    use serde_json::json;

    /// Asserts that two readings of one value agree, all the way down
    /// (objects are walked by the keys `keys` lists, from the JSON side).
    fn same(a: Claim<'_>, b: Claim<'_>, keys: &Json, at: &str) {
        match (a, b) {
            (Claim::Null, Claim::Null) => {}
            (Claim::Number(x), Claim::Number(y)) => assert_eq!(x.to_bits(), y.to_bits(), "{at}"),
            (Claim::String(x), Claim::String(y)) => assert_eq!(x, y, "{at}"),
            (Claim::Bool(x), Claim::Bool(y)) => assert_eq!(x, y, "{at}"),
            (Claim::Object(x), Claim::Object(y)) => {
                for (key, inner) in keys.as_object().unwrap() {
                    let at = format!("{at}.{key}");
                    let (xa, ya) = (x.get(key.as_bytes()).unwrap(), y.get(key.as_bytes()).unwrap());
                    same(xa.expect(&at), ya.expect(&at), inner, &at);
                }
            }
            (Claim::List(x), Claim::List(y)) => {
                let items = keys.as_array().unwrap();
                let (xs, ys): (Vec<_>, Vec<_>) = (x.iter().collect(), y.iter().collect());
                assert_eq!((xs.len(), ys.len()), (items.len(), items.len()), "{at}");
                for (i, ((xa, ya), inner)) in xs.into_iter().zip(ys).zip(items).enumerate() {
                    same(xa.unwrap(), ya.unwrap(), inner, &format!("{at}[{i}]"));
                }
            }
            (a, b) => panic!("{at}: {} and {}", a.type_name(), b.type_name()),
        }
    }

    #[test]
    fn both_sources_read_alike() {
        let payload = json!({
            "sub": "alice", "n": 3, "big": 9007199254740993u64, "neg": -7, "f": 1.5, "t": true, "z": null,
            "scp": ["a", 1, false, null, {"x": "y"}, ["nested"]],
            "org": {"team": {"name": "blue", "ids": [1, 2]}},
        });
        let Json::Object(map) = &payload else { unreachable!() };
        let bytes = encode::structure(&payload);
        let from_pb = Object::Pb(pb::Struct::new(&bytes));
        let from_json = Object::Json(map);
        same(Claim::Object(from_pb), Claim::Object(from_json), &payload, "$");
        for path in [
            &["org", "team", "name"][..],
            &["org", "team", "ids"],
            &["org", "nope"],
            &["sub", "x"],
            &[],
        ] {
            let a = from_pb.get_path(path).unwrap().map(|c| c.type_name());
            let b = from_json.get_path(path).unwrap().map(|c| c.type_name());
            assert_eq!(a, b, "{path:?}");
        }
        assert!(from_json.get(b"\xff").unwrap().is_none());
        assert!(from_json.get(b"absent").unwrap().is_none());
    }
}
