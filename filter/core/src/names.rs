//! Header names and values: what HTTP allows, and the injective mapping from
//! an OAuth scope (or any claim element) to the suffix of a header name.
//!
//! The mapping, applied byte by byte to the UTF-8 of the scope:
//!
//! | scope byte                  | header name bytes            |
//! |-----------------------------|------------------------------|
//! | `a`-`z` `0`-`9` `.` `-` `_` | itself                       |
//! | `A`-`Z`                     | `^` and the lower-case letter |
//! | anything else               | `%` and two lower-case hex digits |
//!
//! Every output byte is an RFC 9110 `tchar` and lower case, so Envoy keeps
//! the name as is. The three kinds of output token start with different
//! bytes (a plain byte, `^`, `%`) and have fixed lengths, so the code is
//! prefix-free and therefore injective: two different scopes never give the
//! same name. Scopes made only of the plain bytes map to themselves, which is
//! what hand-written Lattice policies expect (`test.all`).
//!
//! Examples: `User.Read` -> `^user.^read`, `api://x/read` ->
//! `api%3a%2f%2fx%2fread`, `Admin` and `admin` stay distinct.

use std::fmt::Write as _;

/// How scopes outside the verbatim alphabet are handled.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeEncoding {
    /// Encode with the table above (the default).
    Escape,
    /// Drop (and count) every scope that is not verbatim.
    Drop,
}

/// True for the bytes a scope may contain to map to itself.
pub fn is_verbatim_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

/// RFC 9110 `tchar`.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

/// A header name as Envoy keeps it: non-empty, `tchar`s only, lower case.
pub fn is_lowercase_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| is_tchar(b) && !b.is_ascii_uppercase())
}

/// Appends the encoded form of `scope` to `out`. Returns false (and leaves
/// `out` as it was) when `encoding` is `Drop` and the scope is not verbatim,
/// or when the scope is empty.
pub fn push_scope_suffix(out: &mut String, scope: &[u8], encoding: ScopeEncoding) -> bool {
    if scope.is_empty() {
        return false;
    }
    if scope.iter().all(|&b| is_verbatim_byte(b)) {
        // Every byte is ASCII, so this is valid UTF-8 one byte at a time.
        out.extend(scope.iter().map(|&b| char::from(b)));
        return true;
    }
    if encoding == ScopeEncoding::Drop {
        return false;
    }
    for &b in scope {
        if is_verbatim_byte(b) {
            out.push(char::from(b));
        } else if b.is_ascii_uppercase() {
            out.push('^');
            out.push(char::from(b.to_ascii_lowercase()));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02x}");
        }
    }
    true
}

/// The full header name for `scope` under `prefix`, or None when the scope
/// is dropped by `encoding`. This is the function the filter and
/// `envoy-gen` share, so policies and headers always agree.
pub fn scope_header_name(prefix: &str, scope: &str, encoding: ScopeEncoding) -> Option<String> {
    let mut name = String::with_capacity(prefix.len() + scope.len());
    name.push_str(prefix);
    push_scope_suffix(&mut name, scope.as_bytes(), encoding).then_some(name)
}

/// Why a header value cannot be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadValue {
    /// Not UTF-8.
    NotUtf8,
    /// A control character (C0, DEL or C1), which includes CR, LF, NUL and TAB.
    Control,
    /// Leading or trailing space: HTTP trims it, so two different values
    /// would arrive as one.
    Whitespace,
    /// Empty: HTTP cannot tell it from a header without a value.
    Empty,
}

impl BadValue {
    /// A phrase for error messages; never includes the value itself.
    pub fn describe(self) -> &'static str {
        match self {
            BadValue::NotUtf8 => "is not valid UTF-8",
            BadValue::Control => "contains a control character",
            BadValue::Whitespace => "has leading or trailing whitespace",
            BadValue::Empty => "is empty",
        }
    }
}

/// Checks that `value` reaches the upstream byte for byte, so that it cannot
/// collide with another value or smuggle a header.
pub fn check_header_value(value: &[u8]) -> Result<&str, BadValue> {
    let text = std::str::from_utf8(value).map_err(|_| BadValue::NotUtf8)?;
    if text.is_empty() {
        return Err(BadValue::Empty);
    }
    if text.chars().any(char::is_control) {
        return Err(BadValue::Control);
    }
    if text.starts_with(' ') || text.ends_with(' ') {
        return Err(BadValue::Whitespace);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(scope: &str) -> Option<String> {
        scope_header_name("x-jwt-scope-", scope, ScopeEncoding::Escape)
    }

    #[test]
    fn verbatim_scopes_map_to_themselves() {
        assert_eq!(name("test.all").as_deref(), Some("x-jwt-scope-test.all"));
        assert_eq!(name("read_write-2").as_deref(), Some("x-jwt-scope-read_write-2"));
    }

    #[test]
    fn other_scopes_are_escaped() {
        assert_eq!(name("User.Read").as_deref(), Some("x-jwt-scope-^user.^read"));
        assert_eq!(
            name("api://x/read").as_deref(),
            Some("x-jwt-scope-api%3a%2f%2fx%2fread")
        );
        assert_eq!(name("é").as_deref(), Some("x-jwt-scope-%c3%a9"));
        assert_eq!(name("a b").as_deref(), Some("x-jwt-scope-a%20b"));
        assert_ne!(name("Admin"), name("admin"));
        assert_ne!(name("api://x/read"), name("api-x-read"));
        assert_eq!(name(""), None);
    }

    #[test]
    fn readme_examples() {
        for (scope, header) in [
            ("orders.read", "x-jwt-scope-orders.read"),
            ("Orders.ReadWrite", "x-jwt-scope-^orders.^read^write"),
            ("orders/read", "x-jwt-scope-orders%2fread"),
            ("read:orders", "x-jwt-scope-read%3aorders"),
            ("api://orders/read", "x-jwt-scope-api%3a%2f%2forders%2fread"),
            ("Zoë", "x-jwt-scope-^zo%c3%ab"),
        ] {
            assert_eq!(name(scope).as_deref(), Some(header), "{scope}");
        }
    }

    #[test]
    fn drop_mode_keeps_only_verbatim() {
        let drop = |s: &str| scope_header_name("p-", s, ScopeEncoding::Drop);
        assert_eq!(drop("test.all").as_deref(), Some("p-test.all"));
        assert_eq!(drop("User.Read"), None);
    }

    #[test]
    fn header_values() {
        assert_eq!(check_header_value(b"user@example.com"), Ok("user@example.com"));
        assert_eq!(check_header_value("Zoë".as_bytes()), Ok("Zoë"));
        assert_eq!(check_header_value(b"a\r\nx-jwt-subject: admin"), Err(BadValue::Control));
        assert_eq!(check_header_value(b"a\0"), Err(BadValue::Control));
        assert_eq!(check_header_value(b"a\tb"), Err(BadValue::Control));
        assert_eq!(check_header_value("a\u{85}".as_bytes()), Err(BadValue::Control));
        assert_eq!(check_header_value(b" admin"), Err(BadValue::Whitespace));
        assert_eq!(check_header_value(b"\xff"), Err(BadValue::NotUtf8));
        assert_eq!(check_header_value(b""), Err(BadValue::Empty));
    }
}
