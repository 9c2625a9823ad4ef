//! Low-level scanners shared by the header parsers: tokens, quoted strings, parameter lists and
//! comma splitting that respects quotes and angle brackets.

use std::fmt;

/// A `;name=value` list as it appears after URIs and header values.
///
/// Kept in wire order so that serialising what was parsed gives the same parameters back; names
/// compare case-insensitively as RFC 3261 §7.3.1 says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, Option<String>)>);

impl Params {
    /// An empty list, for building messages.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// The value of `name`: `None` if absent, `Some(None)` for a flag such as `;lr`.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The value of `name` when it has one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    /// Whether `name` is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name`, replacing an existing value in place or appending.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        match self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    /// Removes `name` if present.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Iterates in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `;a=b;c` (leading `;` optional), trimming LWS around names, `=` and values.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let mut out = Vec::new();
        let s = s.trim();
        if s.is_empty() {
            return Some(Self(out));
        }
        let s = s.strip_prefix(';').unwrap_or(s);
        for part in split_unquoted(s, b';') {
            let part = part.trim();
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (part, None),
            };
            if name.is_empty() || !name.bytes().all(is_param_char) {
                return None;
            }
            if let Some(v) = value {
                if v.is_empty() {
                    return None;
                }
                let quoted = v.starts_with('"');
                if quoted && (v.len() < 2 || !v.ends_with('"')) {
                    return None;
                }
                if !quoted
                    && !v
                        .bytes()
                        .all(|b| is_param_char(b) || b == b':' || b == b'[' || b == b']')
                {
                    return None;
                }
            }
            out.push((name.to_owned(), value.map(str::to_owned)));
        }
        Some(Self(out))
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in &self.0 {
            match value {
                Some(v) => write!(f, ";{name}={v}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

/// RFC 3261 `token` characters.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Characters we accept in parameter names and unquoted values (token plus URI `paramchar`s).
pub(crate) fn is_param_char(b: u8) -> bool {
    is_token_char(b) || b"[]/:&+$".contains(&b) || b >= 0x80
}

/// Whether `s` is a non-empty `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Splits on `sep` outside quoted strings and `<...>`; `\` escapes inside quotes are honoured.
pub(crate) fn split_unquoted(s: &str, sep: u8) -> Vec<&str> {
    let bytes = s.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut i) = (0, 0);
    let (mut in_quote, mut in_angle) = (false, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_quote {
            if b == b'\\' {
                i += 1;
            } else if b == b'"' {
                in_quote = false;
            }
        } else if b == b'"' {
            in_quote = true;
        } else if b == b'<' {
            in_angle = true;
        } else if b == b'>' {
            in_angle = false;
        } else if b == sep && !in_angle {
            parts.push(&s[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    parts.push(&s[start.min(s.len())..]);
    parts
}

/// Reads a quoted string at the start of `s` (which must begin with `"`): returns the unescaped
/// content and the rest after the closing quote, or `None` if unbalanced.
pub(crate) fn take_quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.strip_prefix('"')?.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &s[i + 2..])),
            _ => out.push(c),
        }
    }
    None
}

/// Splits `a=b, c="d,e"` auth-style parameter lists (comma-separated, values maybe quoted).
pub(crate) fn split_params(s: &str) -> Vec<(String, String)> {
    split_unquoted(s, b',')
        .into_iter()
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// Removes surrounding quotes and `\` escapes, or returns the token as is.
pub(crate) fn unquote(s: &str) -> String {
    match take_quoted(s) {
        Some((inner, rest)) if rest.trim().is_empty() => inner,
        _ => s.to_owned(),
    }
}

/// Writes `s` as a quoted string, escaping `"` and `\`.
pub(crate) fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_angles() {
        let parts = split_unquoted(r#""a,b" <sip:x;y,z>, c"#, b',');
        assert_eq!(parts, vec![r#""a,b" <sip:x;y,z>"#, " c"]);
    }

    #[test]
    fn quoted_string_with_escapes() {
        let (s, rest) = take_quoted(r#""J \"R\" \\" <x>"#).unwrap();
        assert_eq!(s, r#"J "R" \"#);
        assert_eq!(rest, " <x>");
        assert!(take_quoted(r#""open"#).is_none());
    }

    #[test]
    fn params_trim_and_flags() {
        let p = Params::parse(" ;  tag = 98asjd8 ; lr").unwrap();
        assert_eq!(p.value("TAG"), Some("98asjd8"));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.to_string(), ";tag=98asjd8;lr");
    }
}
