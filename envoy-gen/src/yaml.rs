//! The spec file is read in two steps, so that one wrong value never hides
//! another. First the YAML document becomes a tree of nodes, each with its
//! line and column (serde-saphyr parses it: syntax, aliases within its
//! budget, duplicate keys). Then the typed spec is read from that tree by a
//! serde `Deserializer` that knows where every node is and what field path
//! leads to it.
//!
//! Serde stops at the first error. The tree is in memory, so reading can
//! start over: each failure is recorded with the field and position of the
//! node it is about, that node (a map entry or a list item) is left out, and
//! the value is read again, until it reads. A missing required field is
//! filled in with a neutral value instead (an empty string or list), so that
//! the next one missing from the same mapping is found too. Every type
//! error, unknown field and missing field is so reported at once. A
//! required field that is missing only because its bad value was left out
//! is not reported again.
//!
//! Two wrapper types of `spec.rs` ask this reader for more than serde
//! carries, each through a newtype struct with a reserved name: `Located<T>`
//! for the position of a value ([`LOCATED`]) and `OneOrMany<T>` for a list
//! written as its single item ([`ONE_OR_MANY`]). Another deserializer sees a
//! plain newtype: the value without a position, a list only as a list.

use crate::problem::{Origin, Problem};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;

/// The newtype name under which `Located<T>` asks for its node's line and
/// column: this reader answers with a sequence `(line, column, value)`.
pub const LOCATED: &str = "$envoy_gen::Located";
/// The newtype name under which `OneOrMany<T>` asks for a list: this reader
/// answers with the sequence's items, or with the node itself as the only
/// item when it is not a sequence.
pub const ONE_OR_MANY: &str = "$envoy_gen::OneOrMany";

/// Reading stops after this many problems: the rest are likely the same
/// mistake, and each one costs a reading of the whole tree.
pub const MAX_PROBLEMS: usize = 50;

/// One node of the document.
#[derive(Debug, Clone)]
pub struct Node {
    line: u32,
    column: u32,
    /// Where the node is written, in bytes of the source (for an alias: the
    /// alias itself), when serde-saphyr knows.
    source: Option<Range<usize>>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A scalar: what YAML's core schema makes of it, and its text as
    /// written, which a string field gets (`account: 011112222333` keeps its
    /// leading zero; `region: yes` is the text `yes`).
    Scalar {
        value: Scalar,
        text: String,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    /// A required field that is not there, filled in to read on.
    Missing,
}

#[derive(Debug, Clone, Copy)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// A string: the text is the value.
    Str,
}

/// A syntax error: where, and what.
#[derive(Debug)]
pub struct SyntaxError {
    pub line: Option<(u32, u32)>,
    pub message: String,
}

/// Parses a YAML document into a tree. YAML aliases are bounded by
/// serde-saphyr's default budget, so a hostile file cannot expand without
/// limit (nor nest deeper than its depth limit).
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    match serde_saphyr::from_str::<Spanned<Parsed>>(text) {
        Ok(root) => Ok(node(root, text)),
        Err(e) => {
            let line = e.location().map(|l| (clamp(l.line()), clamp(l.column())));
            let plain = e.without_snippet().to_string();
            // serde-saphyr appends " at line L, column C"; the location is
            // reported separately.
            let message = match plain.rfind(" at line ") {
                Some(i) if line.is_some() => plain.get(..i).unwrap_or(&plain).to_string(),
                _ => plain,
            };
            Err(SyntaxError { line, message })
        }
    }
}

impl Node {
    pub fn line(&self) -> u32 {
        self.line
    }

    pub fn column(&self) -> u32 {
        self.column
    }

    /// The bytes of the source the node is written in, when known.
    pub fn source(&self) -> Option<Range<usize>> {
        self.source.clone()
    }

    /// A scalar's text (a string's value; anything else as written).
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            Kind::Seq(_) | Kind::Map(_) | Kind::Missing => None,
        }
    }

    /// A mapping's entries (none for anything else).
    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.kind {
            Kind::Map(entries) => entries,
            Kind::Scalar { .. } | Kind::Seq(_) | Kind::Missing => &[],
        }
    }

    /// A sequence's items (none for anything else).
    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Seq(items) => items,
            Kind::Scalar { .. } | Kind::Map(_) | Kind::Missing => &[],
        }
    }

    /// True for a null scalar: `~`, `null` or nothing at all (an empty
    /// document is one).
    pub fn is_null(&self) -> bool {
        matches!(
            self.kind,
            Kind::Scalar {
                value: Scalar::Null,
                ..
            }
        )
    }
}

/// Reads `T` from the tree, reporting every problem (up to
/// [`MAX_PROBLEMS`]) with its field and position.
pub fn read<T: DeserializeOwned>(root: &Node) -> Result<T, Vec<Problem>> {
    let mut repairs = Repairs::default();
    let mut problems: Vec<Problem> = Vec::new();
    loop {
        let error = match T::deserialize(NodeReader::value(root, String::new(), &repairs)) {
            Ok(value) if problems.is_empty() => return Ok(value),
            Ok(_) => return Err(problems),
            Err(error) => error,
        };
        let place = error.place.unwrap_or(Place {
            line: root.line,
            column: root.column,
            field: String::new(),
            entry: String::new(),
        });
        let repair = match error.missing {
            // Missing only because its wrong value was left out: reported.
            Some(field) if repairs.left_out.contains(&child_path(&place.entry, field)) => Repair::LeaveOut(place.entry),
            Some(field) => {
                problems.push(place.problem(error.message));
                Repair::Fill(place, field)
            }
            // A neutral value that does not fit its field: the missing
            // field is reported, its mapping cannot be read.
            None => match repairs.filled_parent(&place.entry) {
                Some(parent) => Repair::LeaveOut(parent),
                None => {
                    problems.push(place.problem(error.message));
                    Repair::LeaveOut(place.entry)
                }
            },
        };
        if problems.len() >= MAX_PROBLEMS {
            if let Some(last) = problems.last_mut() {
                let note = format!(" (envoy-gen stops after {MAX_PROBLEMS} problems: fix these first)");
                last.message.push_str(&note);
            }
            return Err(problems);
        }
        // The document itself cannot be left out, and what was repaired
        // cannot fail the same way again: either way, that is all.
        if !repairs.apply(repair) {
            return Err(problems);
        }
    }
}

/// What the next reading does differently, past one problem.
enum Repair {
    /// Read the map entry or list item at this path as if it were absent.
    LeaveOut(String),
    /// Read the mapping at this place as if it had the field.
    Fill(Place, &'static str),
}

/// Every repair so far.
#[derive(Default)]
struct Repairs {
    left_out: HashSet<String>,
    /// Missing fields by the path of their mapping, each with its neutral node.
    filled: BTreeMap<String, Vec<(&'static str, Node)>>,
}

impl Repairs {
    /// False when the repair was already made (or is of the document itself).
    fn apply(&mut self, repair: Repair) -> bool {
        match repair {
            Repair::LeaveOut(path) => !path.is_empty() && self.left_out.insert(path),
            Repair::Fill(place, field) => {
                let fields = self.filled.entry(place.entry).or_default();
                if fields.iter().any(|(f, _)| *f == field) {
                    return false;
                }
                let node = Node {
                    line: place.line,
                    column: place.column,
                    source: None,
                    kind: Kind::Missing,
                };
                fields.push((field, node));
                true
            }
        }
    }

    /// The mapping of a filled-in field, given the field's path.
    fn filled_parent(&self, path: &str) -> Option<String> {
        self.filled
            .iter()
            .find(|(parent, fields)| fields.iter().any(|(f, _)| child_path(parent, f) == path))
            .map(|(parent, _)| parent.clone())
    }

    /// The fields filled in for the mapping at `parent`.
    fn filled_in(&self, parent: &str) -> &[(&'static str, Node)] {
        self.filled.get(parent).map_or(&[], Vec::as_slice)
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// What serde-saphyr gives for a node; positions are on the `Spanned`
/// around it.
enum Parsed {
    Scalar(Scalar, Option<String>),
    Seq(Vec<Spanned<Parsed>>),
    Map(Vec<(Spanned<Parsed>, Spanned<Parsed>)>),
}

impl<'de> Deserialize<'de> for Parsed {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ParsedVisitor)
    }
}

struct ParsedVisitor;

impl<'de> Visitor<'de> for ParsedVisitor {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Scalar::Null, None))
    }
    fn visit_none<E>(self) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Scalar::Null, None))
    }
    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Parsed, D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Scalar::Bool(v), None))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Scalar::Int(v), None))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Scalar::UInt(v), None))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Scalar::Str, Some(v.to_string())))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Scalar::Str, Some(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Scalar::Float(v), None))
    }
    fn visit_str<E>(self, v: &str) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Scalar::Str, Some(v.to_string())))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(
            Scalar::Str,
            Some(String::from_utf8_lossy(v).into_owned()),
        ))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Parsed::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Parsed::Map(entries))
    }
}

/// The tree of a parsed node. A scalar that is not a string keeps its
/// source text (where it is defined, for an alias).
fn node(parsed: Spanned<Parsed>, source: &str) -> Node {
    let Spanned {
        value,
        referenced,
        defined,
    } = parsed;
    let kind = match value {
        Parsed::Scalar(value, Some(text)) => Kind::Scalar { value, text },
        Parsed::Scalar(value, None) => {
            let written = byte_range(&defined)
                .and_then(|range| source.get(range))
                .map(str::to_string);
            let text = written.unwrap_or_else(|| match value {
                Scalar::Null | Scalar::Str => String::new(),
                Scalar::Bool(b) => b.to_string(),
                Scalar::Int(i) => i.to_string(),
                Scalar::UInt(u) => u.to_string(),
                Scalar::Float(f) => f.to_string(),
            });
            Kind::Scalar { value, text }
        }
        Parsed::Seq(items) => Kind::Seq(items.into_iter().map(|i| node(i, source)).collect()),
        Parsed::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (node(k, source), node(v, source)))
                .collect(),
        ),
    };
    Node {
        line: clamp(referenced.line()),
        column: clamp(referenced.column()),
        source: byte_range(&referenced),
        kind,
    }
}

fn byte_range(location: &serde_saphyr::Location) -> Option<Range<usize>> {
    let span = location.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    Some(start..start.checked_add(usize::try_from(span.byte_len()?).ok()?)?)
}

/// Where a failure is, and what to leave out to read past it.
#[derive(Debug, Clone)]
struct Place {
    line: u32,
    column: u32,
    /// The field problems name (`issuers[0].audiences`).
    field: String,
    /// The map entry or list item to leave out (for a key: its entry).
    entry: String,
}

/// A failure while reading the tree: serde's message, and the node it is
/// about once known (the innermost node that saw it).
#[derive(Debug)]
pub struct Error {
    message: String,
    place: Option<Place>,
    /// The field serde found missing, to tell a missing field from one left out.
    missing: Option<&'static str>,
}

impl Place {
    fn problem(&self, message: String) -> Problem {
        Problem {
            origin: Origin::File {
                line: self.line,
                column: self.column,
            },
            field: self.field.clone(),
            message,
        }
    }
}

impl Error {
    fn at(mut self, place: &Place) -> Error {
        if self.place.is_none() {
            self.place = Some(place.clone());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Error {
        Error {
            message: message.to_string(),
            place: None,
            missing: None,
        }
    }

    fn invalid_type(unexpected: Unexpected, expected: &dyn de::Expected) -> Error {
        Error::custom(format!(
            "expected {}, found {}",
            expectation(expected),
            found(&unexpected)
        ))
    }

    fn invalid_value(unexpected: Unexpected, expected: &dyn de::Expected) -> Error {
        Error::invalid_type(unexpected, expected)
    }

    fn missing_field(field: &'static str) -> Error {
        Error {
            missing: Some(field),
            ..Error::custom(format!("missing field `{field}`"))
        }
    }
}

/// Serde's name of what a field takes, in the spec's words.
fn expectation(expected: &dyn de::Expected) -> String {
    let text = expected.to_string();
    match text.as_str() {
        "u8" | "u16" | "u32" | "u64" | "usize" => {
            let max = match text.as_str() {
                "u8" => u64::from(u8::MAX),
                "u16" => u64::from(u16::MAX),
                "u32" => u64::from(u32::MAX),
                _ => u64::MAX,
            };
            format!("a whole number from 0 to {max}")
        }
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        _ if text.starts_with("struct ") => "a mapping".into(),
        _ => text,
    }
}

/// What the file holds instead.
fn found(unexpected: &Unexpected) -> String {
    match unexpected {
        Unexpected::Bool(b) => format!("`{b}`"),
        Unexpected::Unsigned(n) => format!("the number {n}"),
        Unexpected::Signed(n) => format!("the number {n}"),
        Unexpected::Float(n) => format!("the number {n}"),
        Unexpected::Str(s) => format!("the string `{}`", s.escape_debug()),
        Unexpected::Unit | Unexpected::Option => "nothing (null)".into(),
        Unexpected::Seq => "a list".into(),
        Unexpected::Map => "a mapping".into(),
        other => other.to_string(),
    }
}

/// What a deserializer method asked for.
#[derive(Clone, Copy)]
enum Want {
    Any,
    Str,
    Option,
    Seq,
    Map,
    Enum,
    Newtype(&'static str),
    Ignored,
}

/// Reads one node; every failure below it carries its place unless a node
/// further in claimed it first.
struct NodeReader<'a> {
    node: &'a Node,
    field: String,
    entry: String,
    repairs: &'a Repairs,
}

impl<'a> NodeReader<'a> {
    fn value(node: &'a Node, path: String, repairs: &'a Repairs) -> NodeReader<'a> {
        NodeReader {
            node,
            field: path.clone(),
            entry: path,
            repairs,
        }
    }

    fn place(&self) -> Place {
        Place {
            line: self.node.line,
            column: self.node.column,
            field: self.field.clone(),
            entry: self.entry.clone(),
        }
    }

    fn read<'de, V: Visitor<'de>>(self, want: Want, visitor: V) -> Result<V::Value, Error> {
        let place = self.place();
        self.dispatch(want, visitor).map_err(|e| e.at(&place))
    }

    fn is_null(&self) -> bool {
        self.node.is_null()
    }

    fn dispatch<'de, V: Visitor<'de>>(self, want: Want, visitor: V) -> Result<V::Value, Error> {
        match (want, &self.node.kind) {
            (Want::Newtype(LOCATED), _) => {
                let (line, column) = (self.node.line, self.node.column);
                visitor.visit_seq(LocatedAccess {
                    line: Some(line),
                    column: Some(column),
                    value: Some(self),
                })
            }
            (_, Kind::Missing) => self.neutral(want, visitor),
            (Want::Newtype(ONE_OR_MANY), Kind::Seq(items)) => visitor.visit_seq(self.items(items)),
            (Want::Newtype(ONE_OR_MANY), _) if !self.is_null() => {
                let path = format!("{}[0]", self.entry);
                let repairs = self.repairs;
                let single = NodeReader::value(self.node, path, repairs);
                let mut items = Items::new(&[], String::new(), repairs);
                items.single = (!repairs.left_out.contains(&single.entry)).then_some(single);
                visitor.visit_seq(items)
            }
            (Want::Newtype(ONE_OR_MANY), _) => Err(de::Error::invalid_type(Unexpected::Unit, &visitor)),
            (Want::Newtype(_), _) => visitor.visit_newtype_struct(self),
            (Want::Option, _) if self.is_null() => visitor.visit_none(),
            (Want::Option, _) => visitor.visit_some(self),
            (Want::Str, Kind::Scalar { text, .. }) if !self.is_null() => visitor.visit_str(text),
            (Want::Enum, Kind::Scalar { text, .. }) if !self.is_null() => {
                visitor.visit_enum(text.as_str().into_deserializer())
            }
            (Want::Ignored, _) => visitor.visit_unit(),
            // A derived struct also reads a list, by position: the spec's
            // mappings are only mappings.
            (Want::Map, Kind::Map(_)) | (Want::Seq, Kind::Seq(_)) | (Want::Any | Want::Str, _) => self.any(visitor),
            (Want::Map | Want::Seq | Want::Enum, _) => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    /// A filled-in field: empty, if the field takes something that can be.
    fn neutral<'de, V: Visitor<'de>>(self, want: Want, visitor: V) -> Result<V::Value, Error> {
        match want {
            Want::Str => visitor.visit_str(""),
            Want::Option => visitor.visit_none(),
            Want::Seq | Want::Newtype(ONE_OR_MANY) => visitor.visit_seq(self.items(&[])),
            Want::Map => visitor.visit_map(self.entries(&[])),
            Want::Any | Want::Enum | Want::Newtype(_) | Want::Ignored => visitor.visit_unit(),
        }
    }

    fn items(&self, items: &'a [Node]) -> Items<'a> {
        Items::new(items, self.entry.clone(), self.repairs)
    }

    fn entries(&self, entries: &'a [(Node, Node)]) -> Entries<'a> {
        Entries {
            entries: entries.iter(),
            filled: self.repairs.filled_in(&self.entry).iter(),
            parent: self.entry.clone(),
            value: None,
            repairs: self.repairs,
        }
    }

    fn unexpected(&self) -> Unexpected<'_> {
        match &self.node.kind {
            Kind::Scalar { value, text } => match value {
                Scalar::Null => Unexpected::Unit,
                Scalar::Bool(b) => Unexpected::Bool(*b),
                Scalar::Int(i) => Unexpected::Signed(*i),
                Scalar::UInt(u) => Unexpected::Unsigned(*u),
                Scalar::Float(f) => Unexpected::Float(*f),
                Scalar::Str => Unexpected::Str(text),
            },
            Kind::Seq(_) => Unexpected::Seq,
            Kind::Map(_) => Unexpected::Map,
            Kind::Missing => Unexpected::Unit,
        }
    }

    fn any<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            Kind::Scalar { value, text } => match value {
                Scalar::Null => visitor.visit_unit(),
                Scalar::Bool(b) => visitor.visit_bool(*b),
                Scalar::Int(i) => visitor.visit_i64(*i),
                Scalar::UInt(u) => visitor.visit_u64(*u),
                Scalar::Float(f) => visitor.visit_f64(*f),
                Scalar::Str => visitor.visit_str(text),
            },
            Kind::Seq(items) => visitor.visit_seq(self.items(items)),
            Kind::Map(entries) => visitor.visit_map(self.entries(entries)),
            Kind::Missing => visitor.visit_unit(),
        }
    }
}

impl<'de> de::Deserializer<'de> for NodeReader<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.read(Want::Any, visitor)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.read(Want::Str, visitor)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.read(Want::Str, visitor)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.read(Want::Str, visitor)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.read(Want::Str, visitor)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.read(Want::Option, visitor)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.read(Want::Seq, visitor)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.read(Want::Seq, visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.read(Want::Seq, visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.read(Want::Map, visitor)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.read(Want::Map, visitor)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.read(Want::Enum, visitor)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.read(Want::Newtype(name), visitor)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.read(Want::Ignored, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 bytes byte_buf unit unit_struct
    }
}

/// A sequence's items (those not left out), or one node as a list of one.
struct Items<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    parent: String,
    repairs: &'a Repairs,
    single: Option<NodeReader<'a>>,
}

impl<'a> Items<'a> {
    fn new(items: &'a [Node], parent: String, repairs: &'a Repairs) -> Items<'a> {
        Items {
            items: items.iter().enumerate(),
            parent,
            repairs,
            single: None,
        }
    }
}

impl<'de> SeqAccess<'de> for Items<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        if let Some(item) = self.single.take() {
            return seed.deserialize(item).map(Some);
        }
        for (i, node) in self.items.by_ref() {
            let path = format!("{}[{i}]", self.parent);
            if !self.repairs.left_out.contains(&path) {
                return seed.deserialize(NodeReader::value(node, path, self.repairs)).map(Some);
            }
        }
        Ok(None)
    }
}

/// A mapping's entries (those not left out), then the fields filled in.
struct Entries<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    filled: std::slice::Iter<'a, (&'static str, Node)>,
    parent: String,
    /// The value of the key just read, and its path.
    value: Option<(&'a Node, String)>,
    repairs: &'a Repairs,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        for (key, value) in self.entries.by_ref() {
            let name = match &key.kind {
                Kind::Scalar { text, .. } => text.as_str(),
                Kind::Seq(_) | Kind::Map(_) | Kind::Missing => "?",
            };
            let entry = child_path(&self.parent, name);
            if self.repairs.left_out.contains(&entry) {
                continue;
            }
            self.value = Some((value, entry.clone()));
            // A key's problem (an unknown field) is the mapping's; leaving
            // it out leaves its entry out.
            let reader = NodeReader {
                node: key,
                field: self.parent.clone(),
                entry,
                repairs: self.repairs,
            };
            return seed.deserialize(reader).map(Some);
        }
        match self.filled.next() {
            Some((name, node)) => {
                self.value = Some((node, child_path(&self.parent, name)));
                seed.deserialize(name.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some((node, path)) => seed.deserialize(NodeReader::value(node, path, self.repairs)),
            None => Err(de::Error::custom("bug in envoy-gen: a value was read before its key")),
        }
    }
}

/// `Located<T>`'s answer: line, column, then the value.
struct LocatedAccess<'a> {
    line: Option<u32>,
    column: Option<u32>,
    value: Option<NodeReader<'a>>,
}

impl<'de> SeqAccess<'de> for LocatedAccess<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        if let Some(line) = self.line.take() {
            return seed.deserialize(line.into_deserializer()).map(Some);
        }
        if let Some(column) = self.column.take() {
            return seed.deserialize(column.into_deserializer()).map(Some);
        }
        match self.value.take() {
            Some(value) => seed.deserialize(value).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Located, OneOrMany};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        name: Located<String>,
        size: Option<u32>,
    }

    #[allow(dead_code)] // some fields are only read to see them fail
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        text: Option<Located<String>>,
        items: Option<OneOrMany<Located<Item>>>,
        tags: Option<Located<OneOrMany<Located<String>>>>,
        pair: Option<Pair>,
        counts: Option<Counts>,
    }

    #[allow(dead_code)] // some fields are only read to see them fail
    #[derive(Debug, Deserialize)]
    struct Pair {
        left: Located<String>,
        right: OneOrMany<Located<String>>,
    }

    #[allow(dead_code)] // some fields are only read to see them fail
    #[derive(Debug, Deserialize)]
    struct Counts {
        low: u32,
        high: u32,
    }

    fn problems(yaml: &str) -> Vec<String> {
        let root = parse(yaml).unwrap();
        match read::<Doc>(&root) {
            Ok(doc) => panic!("{yaml:?} read as {doc:?}"),
            Err(problems) => problems
                .iter()
                .map(|p| {
                    let Origin::File { line, column } = p.origin else {
                        panic!("{p:?} has no position")
                    };
                    format!("{line}:{column} {}: {}", p.field, p.message)
                })
                .collect(),
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_field_and_position() {
        let yaml =
            "text: [a]\nitems:\n  - name: {x: 1}\n    size: -1\n  - nam: b\n  - name: c\n    size: many\nextra: 1\n";
        assert_eq!(
            problems(yaml),
            [
                "1:7 text: expected a string, found a list",
                "3:11 items[0].name: expected a string, found a mapping",
                "4:11 items[0].size: expected a whole number from 0 to 4294967295, found the number -1",
                "5:5 items[1]: unknown field `nam`, expected `name` or `size`",
                "5:5 items[1]: missing field `name`",
                "7:11 items[2].size: expected a whole number from 0 to 4294967295, found the string `many`",
                "8:1 : unknown field `extra`, expected one of `text`, `items`, `tags`, `pair`, `counts`",
            ]
        );
    }

    #[test]
    fn every_missing_field_is_reported_unless_its_value_was_wrong() {
        // items[0] has a name of the wrong type (reported once, not again
        // as missing); items[1] has none at all; `pair` lacks both fields.
        let yaml = "items:\n  - name: [x]\n  - size: 3\npair: {}\n";
        assert_eq!(
            problems(yaml),
            [
                "2:11 items[0].name: expected a string, found a list",
                "3:5 items[1]: missing field `name`",
                "4:7 pair: missing field `left`",
                "4:7 pair: missing field `right`",
            ]
        );
    }

    #[test]
    fn a_missing_field_that_cannot_be_filled_in_is_reported_once() {
        // A number has no neutral value: the second missing field of the
        // mapping is not found, but nothing is reported twice.
        let yaml = "counts: {}\n";
        assert_eq!(problems(yaml), ["1:9 counts: missing field `low`"]);
    }

    #[test]
    fn a_single_value_is_a_list_of_one_with_its_position() {
        let root = parse("tags: one\nitems: {name: x, size: 2}\ntext: 011112222333\n").unwrap();
        let doc: Doc = read(&root).unwrap();
        let tags = doc.tags.unwrap();
        assert_eq!(tags.origin, Origin::File { line: 1, column: 7 });
        let tags: Vec<(String, Origin)> = tags.value.into_iter().map(|t| (t.value, t.origin)).collect();
        assert_eq!(tags, [("one".to_string(), Origin::File { line: 1, column: 7 })]);
        let items = doc.items.unwrap();
        assert_eq!(items.len(), 1);
        let item = &items[0].value;
        assert_eq!((item.name.value.as_str(), item.size), ("x", Some(2)));
        assert_eq!(item.name.origin, Origin::File { line: 2, column: 15 });
        // A string field gets the scalar as written.
        assert_eq!(doc.text.unwrap().value, "011112222333");

        let root = parse("tags: [a, b]\n").unwrap();
        let doc: Doc = read(&root).unwrap();
        let tags: Vec<String> = doc.tags.unwrap().value.into_iter().map(|t| t.value).collect();
        assert_eq!(tags, ["a", "b"]);
    }

    #[test]
    fn a_mapping_is_not_read_from_a_list_nor_a_list_from_null() {
        assert_eq!(
            problems("items: [[a, 1]]\ntags:\n  -\n"),
            [
                "1:9 items[0]: expected a mapping, found a list",
                "3:4 tags[0]: expected a string, found nothing (null)",
            ]
        );
    }

    #[test]
    fn a_scalar_knows_the_bytes_it_is_written_in() {
        let yaml = "a: /plain/x\nb: \"/quoted x\"\nc: &anchor '/single'\nd: *anchor\ne: |\n  /block\n";
        let root = parse(yaml).unwrap();
        let written: Vec<(&str, &str, &str)> = root
            .entries()
            .iter()
            .map(|(key, value)| {
                let range = value.source().unwrap();
                (key.scalar().unwrap(), value.scalar().unwrap(), &yaml[range])
            })
            .collect();
        assert_eq!(
            written,
            [
                ("a", "/plain/x", "/plain/x"),
                ("b", "/quoted x", "\"/quoted x\""),
                ("c", "/single", "'/single'"),
                ("d", "/single", "*anchor"),
                // A block scalar: its content only.
                ("e", "/block\n", "/block\n"),
            ]
        );
    }

    #[test]
    fn reading_stops_after_the_maximum_number_of_problems() {
        let yaml: String = (0..MAX_PROBLEMS + 10).map(|i| format!("bad{i}: 1\n")).collect();
        let found = problems(&yaml);
        assert_eq!(found.len(), MAX_PROBLEMS);
        assert!(found[0].starts_with("1:1 : unknown field `bad0`"));
        let last = found.last().unwrap();
        assert!(last.starts_with("50:1 : unknown field `bad49`"), "{last}");
        assert!(
            last.ends_with(" (envoy-gen stops after 50 problems: fix these first)"),
            "{last}"
        );
    }
}
