//! Query parameters as backends read their names: percent-decoded, `+` as a space, and PHP's
//! renaming applied (leading spaces dropped, ` `, `.` and `[` turned into `_`, the name cut at a
//! NUL), so `access%5Ftoken`, `access.token` and `access_token[]` are all `access_token` and
//! `_method` cannot hide either. Both `&` and `;` separate parameters (older Python and Java
//! parsers split on `;` too). Nothing allocates unless a name needs decoding or a parameter is
//! removed.

use std::borrow::Cow;

/// The `name=value` pieces of a query.
fn params(query: &str) -> impl Iterator<Item = &str> {
    query.split(['&', ';'])
}

/// A parameter backends could read in more than one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ambiguous;

/// The value of `name` when backends can only read it one way: exactly one parameter is named
/// `name` by any reading, spelled exactly `name`, among the first 1,000 parameters (where PHP,
/// Node and Tomcat stop reading), in a query without `;` (which only some parsers split on).
/// `Ok(None)` when there is none; [`Ambiguous`] when backends could read it differently
/// (duplicates disagree on first or last, `_method[]` is no `_method` to Express or Go).
pub fn unambiguous_value<'a>(
    query: &'a str,
    name: &str,
) -> Result<Option<Cow<'a, str>>, Ambiguous> {
    let mut found = None;
    for (index, piece) in params(query).enumerate() {
        if !is_named(piece, name) {
            continue;
        }
        let raw_name = piece.split('=').next().unwrap_or_default();
        if found.is_some() || raw_name != name || index >= 1000 || query.contains(';') {
            return Err(Ambiguous);
        }
        found = Some(decode(
            piece.split_once('=').map(|(_, v)| v).unwrap_or_default(),
        ));
    }
    Ok(found)
}

/// True when some parameter of `query` is named `name` as a backend decodes it.
pub fn has(query: &str, name: &str) -> bool {
    params(query).any(|p| is_named(p, name))
}

/// `query` without the parameters named any of `names`, every other byte kept as sent
/// (separators and empty pieces included); `None` when there is nothing to remove.
pub fn without(query: &str, names: &[&str]) -> Option<String> {
    if !names.iter().any(|n| has(query, n)) {
        return None;
    }
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    let mut pending_separator: Option<char> = None;
    loop {
        let end = rest.find(['&', ';']).unwrap_or(rest.len());
        let piece = &rest[..end];
        if !names.iter().any(|n| is_named(piece, n)) {
            if let Some(sep) = pending_separator.filter(|_| !out.is_empty()) {
                out.push(sep);
            }
            out.push_str(piece);
        }
        let Some(sep) = rest[end..].chars().next() else {
            break;
        };
        // The separator before the next kept piece is the one that followed this piece.
        pending_separator = Some(sep);
        rest = &rest[end + 1..];
    }
    Some(out)
}

/// Is this `name=value` piece's name `name` as PHP, Rack, Werkzeug or Express read it?
fn is_named(piece: &str, name: &str) -> bool {
    let raw = piece.split('=').next().unwrap_or_default();
    if raw == name {
        return true;
    }
    if !raw
        .bytes()
        .any(|b| matches!(b, b'%' | b'+' | b'.' | b'[' | b' '))
    {
        return false;
    }
    // Compared byte by byte as it decodes, without building the decoded name (a JSON:API query
    // such as `filter[status]=…` would otherwise allocate for every parameter).
    let mut bytes = decoded_bytes(raw)
        .take_while(|&b| b != 0)
        .skip_while(|&b| b == b' ');
    for want in name.bytes() {
        match bytes.next() {
            Some(b) if mangled(b) == want => {}
            _ => return false,
        }
    }
    matches!(bytes.next(), None | Some(b'['))
}

/// PHP's renaming of a parameter-name byte.
fn mangled(b: u8) -> u8 {
    if matches!(b, b' ' | b'.' | b'[') {
        b'_'
    } else {
        b
    }
}

/// The bytes of `text` percent-decoded (an invalid escape stays as it is), `+` as a space.
fn decoded_bytes(text: &str) -> impl Iterator<Item = u8> + '_ {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *bytes.get(i)?;
        let hex = |b: u8| (b as char).to_digit(16);
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            ) {
                i += 3;
                return Some((h * 16 + l) as u8);
            }
        }
        i += 1;
        Some(if b == b'+' { b' ' } else { b })
    })
}

/// Percent-decode (invalid escapes kept, invalid UTF-8 replaced) with `+` as a space.
fn decode(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_as_backends_decode_them() {
        for q in [
            "access_token=x",
            "a=1&access_token=x",
            "a=1;access_token=x",
            "access%5Ftoken=x",
            "%61ccess_token=x",
            "access.token=x",
            "access+token=x",
            "access%20token=x",
            "access_token[]=x",
            "access_token[a]=x",
            " access_token=x",
            "access_token",
            "access_token%00x=y",
        ] {
            assert!(has(q, "access_token"), "{q}");
        }
        for q in [
            "",
            "a=1",
            "access_tokens=x",
            "xaccess_token=1",
            "token=access_token",
            "access_token%",
        ] {
            assert!(!has(q, "access_token"), "{q}");
        }
    }

    #[test]
    fn removes_only_the_named_parameters_and_keeps_every_other_byte() {
        assert_eq!(without("a=1&b=2", &["access_token"]), None);
        assert_eq!(
            without("a=1&access_token=x&b=2", &["access_token"]).as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(
            without("q=a;b&access_token=T", &["access_token"]).as_deref(),
            Some("q=a;b")
        );
        assert_eq!(
            without("access_token=T&q=a;b&&c", &["access_token"]).as_deref(),
            Some("q=a;b&&c")
        );
        assert_eq!(
            without("access%5Ftoken=x", &["access_token"]).as_deref(),
            Some("")
        );
        assert_eq!(
            without(
                "_method=DELETE&access_token=x&a=1",
                &["access_token", "_method"]
            )
            .as_deref(),
            Some("a=1")
        );
    }

    #[test]
    fn an_override_parameter_must_read_one_way_only() {
        let one = |q| unambiguous_value(q, "_method").map(|v| v.map(|v| v.into_owned()));
        assert_eq!(one("a=1&_method=DELETE"), Ok(Some("DELETE".to_owned())));
        assert_eq!(one("a=1"), Ok(None));
        for ambiguous in [
            "_method=PATCH&_method=DELETE",
            "_method[]=DELETE",
            "%5Fmethod=DELETE",
            "+_method=DELETE",
            "x=1;_method=DELETE",
            "_method%00x=DELETE",
        ] {
            assert_eq!(one(ambiguous), Err(Ambiguous), "{ambiguous}");
        }
        let late = format!("{}_method=DELETE", "a=1&".repeat(1000));
        assert_eq!(one(&late), Err(Ambiguous));
    }

    #[test]
    fn values_are_decoded() {
        let v = unambiguous_value("_method=a%20b+c", "_method").unwrap();
        assert_eq!(v.as_deref(), Some("a b c"));
    }
}
