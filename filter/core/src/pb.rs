//! Zero-copy reader for the protobuf that Envoy returns for the `metadata`
//! property: `envoy.config.core.v3.Metadata`, whose `filter_metadata` holds
//! jwt_authn's verified payload as a `google.protobuf.Struct`.
//!
//! Why this is hand-written: asking Envoy for a path *inside* the metadata
//! (`metadata.filter_metadata...`) returns values with no type tag (a string
//! of 8 bytes and a number are indistinguishable, a JSON null fails the call).
//! Asking for `metadata` itself returns the typed protobuf message. `prost`
//! would decode it, but eagerly into `BTreeMap<String, Value>`, allocating for
//! every claim of every token; this reader walks only the few fields the filter
//! needs and borrows everything from the host's buffer. Malformed input gives
//! `DecodeError`, never a panic.
//!
//! Wire format: <https://protobuf.dev/programming-guides/encoding/>.

use std::fmt;

/// Input that is not the protobuf it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed protobuf in dynamic metadata")
    }
}

impl std::error::Error for DecodeError {}

type Result<T> = std::result::Result<T, DecodeError>;

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// One field of a message: its number and its payload.
#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Varint(u32, u64),
    I64(u32, u64),
    Len(u32, &'a [u8]),
    I32,
}

/// Iterates over the fields of one encoded message.
struct Fields<'a> {
    buf: &'a [u8],
}

fn read_varint(buf: &mut &[u8]) -> Result<u64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or(DecodeError)?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError)
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if buf.len() < n {
        return Err(DecodeError);
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn read_fixed64(buf: &mut &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = take(buf, 8)?.try_into().map_err(|_| DecodeError)?;
    Ok(u64::from_le_bytes(bytes))
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let field = self.read_field();
        if field.is_err() {
            // Stop after the first error: the rest of the buffer is unframed.
            self.buf = &[];
        }
        Some(field)
    }
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf }
    }

    fn read_field(&mut self) -> Result<Field<'a>> {
        let key = read_varint(&mut self.buf)?;
        let number = u32::try_from(key >> 3).map_err(|_| DecodeError)?;
        if number == 0 {
            return Err(DecodeError);
        }
        match (key & 7) as u8 {
            WIRE_VARINT => Ok(Field::Varint(number, read_varint(&mut self.buf)?)),
            WIRE_I64 => Ok(Field::I64(number, read_fixed64(&mut self.buf)?)),
            WIRE_LEN => {
                let len = usize::try_from(read_varint(&mut self.buf)?).map_err(|_| DecodeError)?;
                Ok(Field::Len(number, take(&mut self.buf, len)?))
            }
            WIRE_I32 => {
                take(&mut self.buf, 4)?;
                Ok(Field::I32)
            }
            // Groups (3, 4) are not used by Struct or Metadata.
            _ => Err(DecodeError),
        }
    }
}

/// A `google.protobuf.Value`, borrowed from the encoded message.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Null,
    Number(f64),
    /// Raw bytes of `string_value`. Protobuf requires UTF-8 but the reader
    /// does not trust that: callers check.
    String(&'a [u8]),
    Bool(bool),
    Struct(Struct<'a>),
    List(List<'a>),
}

impl<'a> Value<'a> {
    /// Decodes an encoded `google.protobuf.Value`. The last `kind` field wins,
    /// as protobuf's oneof rules say; a Value with no kind set is `Null`.
    pub fn decode(buf: &'a [u8]) -> Result<Self> {
        let mut value = Value::Null;
        for field in Fields::new(buf) {
            value = match field? {
                Field::Varint(1, _) => Value::Null,
                Field::I64(2, bits) => Value::Number(f64::from_bits(bits)),
                Field::Len(3, bytes) => Value::String(bytes),
                Field::Varint(4, b) => Value::Bool(b != 0),
                Field::Len(5, bytes) => Value::Struct(Struct(bytes)),
                Field::Len(6, bytes) => Value::List(List(bytes)),
                // Unknown fields are skipped, as protobuf parsers do.
                _ => value,
            };
        }
        Ok(value)
    }

    /// A short name of the JSON type, for logs and errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Bool(_) => "boolean",
            Value::Struct(_) => "object",
            Value::List(_) => "array",
        }
    }
}

/// A `google.protobuf.Struct` (a JSON object), borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Struct<'a>(&'a [u8]);

impl<'a> Struct<'a> {
    /// Wraps the encoded bytes of a Struct.
    pub fn new(buf: &'a [u8]) -> Self {
        Struct(buf)
    }

    /// The value under `key`. Protobuf map semantics: the last entry wins.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value<'a>>> {
        let mut found = None;
        for entry in map_entries(self.0) {
            let (entry_key, value) = entry?;
            if entry_key == key {
                found = Some(value);
            }
        }
        found.map(Value::decode).transpose()
    }

    /// Follows a path of keys through nested objects.
    pub fn get_path<S: AsRef<[u8]>>(&self, path: &[S]) -> Result<Option<Value<'a>>> {
        let Some((first, rest)) = path.split_first() else {
            return Ok(Some(Value::Struct(*self)));
        };
        let mut current = self.get(first.as_ref())?;
        for key in rest {
            current = match current {
                Some(Value::Struct(inner)) => inner.get(key.as_ref())?,
                _ => return Ok(None),
            };
        }
        Ok(current)
    }
}

/// Iterates over the (key, encoded value) entries of a protobuf map whose
/// entries are field 1 of the enclosing message.
fn map_entries(buf: &[u8]) -> impl Iterator<Item = Result<(&[u8], &[u8])>> {
    Fields::new(buf).filter_map(|field| match field {
        Err(e) => Some(Err(e)),
        Ok(Field::Len(1, entry)) => Some(map_entry(entry)),
        Ok(_) => None,
    })
}

fn map_entry(entry: &[u8]) -> Result<(&[u8], &[u8])> {
    let mut key: &[u8] = &[];
    let mut value: &[u8] = &[];
    for field in Fields::new(entry) {
        match field? {
            Field::Len(1, bytes) => key = bytes,
            Field::Len(2, bytes) => value = bytes,
            _ => {}
        }
    }
    Ok((key, value))
}

/// A `google.protobuf.ListValue` (a JSON array), borrowed.
#[derive(Debug, Clone, Copy)]
pub struct List<'a>(&'a [u8]);

impl<'a> List<'a> {
    /// The elements in order. Iteration stops after the first decode error.
    pub fn iter(&self) -> impl Iterator<Item = Result<Value<'a>>> + 'a {
        Fields::new(self.0).filter_map(|field| match field {
            Err(e) => Some(Err(e)),
            Ok(Field::Len(1, bytes)) => Some(Value::decode(bytes)),
            Ok(_) => None,
        })
    }
}

/// Finds `filter_metadata[namespace]` in an encoded
/// `envoy.config.core.v3.Metadata` (field 1: `map<string, Struct>`).
pub fn filter_metadata<'a>(metadata: &'a [u8], namespace: &[u8]) -> Result<Option<Struct<'a>>> {
    let mut found = None;
    for entry in map_entries(metadata) {
        let (key, value) = entry?;
        if key == namespace {
            found = Some(Struct(value));
        }
    }
    Ok(found)
}

/// Encoding, the inverse of the reader: builds the bytes Envoy would return,
/// for tests, fuzzing and tools that need real input without an Envoy.
pub mod encode {
    use serde_json::Value as Json;

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn len_field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
        varint(out, u64::from(number) << 3 | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    /// Encodes a JSON value as `google.protobuf.Value`.
    pub fn value(json: &Json) -> Vec<u8> {
        let mut out = Vec::new();
        match json {
            Json::Null => {
                varint(&mut out, 1 << 3);
                varint(&mut out, 0);
            }
            Json::Bool(b) => {
                varint(&mut out, 4 << 3);
                varint(&mut out, u64::from(*b));
            }
            Json::Number(n) => {
                varint(&mut out, 2 << 3 | 1);
                out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_le_bytes());
            }
            Json::String(s) => len_field(&mut out, 3, s.as_bytes()),
            Json::Array(items) => len_field(&mut out, 6, &list(items)),
            Json::Object(_) => len_field(&mut out, 5, &structure(json)),
        }
        out
    }

    fn list(items: &[Json]) -> Vec<u8> {
        let mut out = Vec::new();
        for item in items {
            len_field(&mut out, 1, &value(item));
        }
        out
    }

    /// Encodes the fields of a JSON object as `google.protobuf.Struct`
    /// (anything else encodes as an empty Struct).
    pub fn structure(json: &Json) -> Vec<u8> {
        let mut out = Vec::new();
        if let Json::Object(map) = json {
            for (key, item) in map {
                out.extend_from_slice(&map_entry(key.as_bytes(), &value(item)));
            }
        }
        out
    }

    fn map_entry(key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut entry = Vec::new();
        len_field(&mut entry, 1, key);
        len_field(&mut entry, 2, value);
        let mut out = Vec::new();
        len_field(&mut out, 1, &entry);
        out
    }

    /// Encodes `envoy.config.core.v3.Metadata` with one namespace whose
    /// Struct is `fields` (a JSON object), as jwt_authn leaves it.
    pub fn metadata(namespace: &str, fields: &Json) -> Vec<u8> {
        map_entry(namespace.as_bytes(), &structure(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_back_every_json_type() {
        let payload = json!({
            "sub": "user@example.com",
            "exp": 1700000000,
            "admin": true,
            "nothing": null,
            "scp": ["a", "b"],
            "realm_access": {"roles": ["r1"]},
        });
        let bytes = encode::metadata("ns", &json!({"jwt_payload": payload}));
        let ns = filter_metadata(&bytes, b"ns").unwrap().unwrap();
        let Some(Value::Struct(p)) = ns.get(b"jwt_payload").unwrap() else {
            panic!("payload is not a struct")
        };
        assert!(matches!(
            p.get(b"sub").unwrap(),
            Some(Value::String(b"user@example.com"))
        ));
        assert!(matches!(p.get(b"exp").unwrap(), Some(Value::Number(n)) if n == 1.7e9));
        assert!(matches!(p.get(b"admin").unwrap(), Some(Value::Bool(true))));
        assert!(matches!(p.get(b"nothing").unwrap(), Some(Value::Null)));
        assert!(p.get(b"absent").unwrap().is_none());
        let Some(Value::List(scp)) = p.get(b"scp").unwrap() else {
            panic!("scp")
        };
        let items: Vec<_> = scp.iter().map(|v| v.unwrap()).collect();
        assert!(matches!(items[..], [Value::String(b"a"), Value::String(b"b")]));
        let roles = p.get_path(&["realm_access", "roles"]).unwrap();
        assert!(matches!(roles, Some(Value::List(_))));
        assert!(p.get_path(&["sub", "x"]).unwrap().is_none());
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = encode::metadata("ns", &json!({"jwt_payload": {"sub": "abc"}}));
        for cut in 1..bytes.len() {
            let r = filter_metadata(&bytes[..cut], b"ns")
                .and_then(|ns| ns.map(|s| s.get_path(&["jwt_payload", "sub"])).transpose());
            assert!(r.is_err(), "cut at {cut} decoded: {r:?}");
        }
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let bytes = [0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(filter_metadata(&bytes, b"ns").unwrap_err(), DecodeError);
    }
}
