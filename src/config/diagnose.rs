//! Parser errors in the form of compile errors: `line:column: path: message`, in plain language.
//!
//! The YAML parser (serde-saphyr) stops at the first syntax error, wrong type or unknown key and
//! names only a line and column. Here that location is mapped back to the key path (by walking
//! the parser's events, [`node_at`]), unknown keys get a "did you mean", and a value of the wrong
//! shape is explained by what the key takes: for a mapping, its keys, found by parsing the file
//! again with a probe key in that place ([`keys_of`]), so the list can never drift from the file
//! model.

use serde_saphyr::granit_parser::{Event, Parser};
use serde_saphyr::{Error, Location};

use super::file::GatewayFile;
use super::ConfigError;

/// The key that cannot exist in the file model: asking for it lists the keys that do.
const PROBE: &str = "__portcullis_probe__";

/// The configuration error for a parser error on `text`.
pub(super) fn diagnose(text: &str, error: &Error) -> ConfigError {
    let error = error.without_snippet();
    let location = error.location().unwrap_or(Location::UNKNOWN);
    let node = node_at(text, location.line(), location.column());
    let path = node.as_ref().map(|n| n.path.clone()).unwrap_or_default();
    let key = node
        .as_ref()
        .and_then(|n| n.key.clone())
        .unwrap_or_default();
    let message = match error {
        Error::SerdeUnknownField {
            field, expected, ..
        } => unknown("key", field, expected),
        Error::SerdeUnknownVariant {
            variant, expected, ..
        } => unknown("value", variant, expected),
        Error::SerdeMissingField { field, .. } => format!("the key `{field}` is required here"),
        Error::Unexpected { expected, .. } => {
            wrong_shape(text, node.as_ref(), &key, expected, None)
        }
        Error::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => wrong_shape(
            text,
            node.as_ref(),
            &key,
            expected,
            Some(&redacted(unexpected)),
        ),
        Error::InvalidScalar { ty, .. } => {
            let what = match *ty {
                "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)",
                "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
                "f32" | "f64" => "a number",
                "bool" => "true or false",
                other => other,
            };
            match key.as_str() {
                "" => format!("expected {what}"),
                k => format!("`{k}` takes {what}"),
            }
        }
        Error::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => format!("{} is not {expected}", redacted(unexpected)),
        other => plain(other),
    };
    ConfigError::at(location, path, message)
}

/// serde's description of a value, without the value when it is a string: it may be a secret
/// (a Redis URL with its password) in the wrong place.
fn redacted(unexpected: &str) -> String {
    match unexpected.starts_with("string ") {
        true => "a string".to_owned(),
        false => unexpected.to_owned(),
    }
}

/// `unknown key `audience`; did you mean `audiences`? (expected one of …)`.
fn unknown(what: &str, found: &str, expected: &[&str]) -> String {
    let mut message = format!("unknown {what} `{found}`");
    if let Some(close) = did_you_mean(found, expected) {
        message.push_str(&format!("; did you mean `{close}`?"));
    }
    match expected {
        [] => message.push_str(&format!(" (no {what}s are accepted here)")),
        known => message.push_str(&format!(" (known {what}s: {})", quoted(known))),
    }
    message
}

/// The one known name close to `found`, if there is exactly one.
fn did_you_mean<'a>(found: &str, known: &[&'a str]) -> Option<&'a str> {
    let close: Vec<&str> = known
        .iter()
        .copied()
        .filter(|k| strsim::damerau_levenshtein(found, k) <= 2 || is_plural_of(found, k))
        .collect();
    match close.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

fn is_plural_of(found: &str, known: &str) -> bool {
    known.strip_suffix('s') == Some(found) || found.strip_suffix('s') == Some(known)
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the key takes, when its value has the wrong shape.
fn wrong_shape(
    text: &str,
    node: Option<&Node>,
    key: &str,
    expected: &str,
    found: Option<&str>,
) -> String {
    let subject = match key {
        "" => "this value".to_owned(),
        k => format!("`{k}`"),
    };
    let found = found
        .map(str::to_owned)
        .or_else(|| node.map(|n| n.shape.to_owned()));
    let found = found.map(|f| format!(", not {f}")).unwrap_or_default();
    if expected.contains("mapping") || expected.contains("struct") {
        let keys = node.and_then(|n| keys_of(text, n));
        return match keys {
            Some(keys) if !keys.is_empty() => {
                format!(
                    "{subject} takes a mapping with the keys {}{found}",
                    quoted(&keys)
                )
            }
            _ => format!("{subject} takes a mapping{found}"),
        };
    }
    if expected.contains("sequence") {
        return format!("{subject} takes a list (`[a, b]`, or one `- item` per line){found}");
    }
    let expected = expected.trim_start_matches("a ").trim_start_matches("an ");
    format!("{subject} takes {}{found}", article(expected))
}

fn article(what: &str) -> String {
    let vowel = what.starts_with(['a', 'e', 'i', 'o', 'u']);
    match vowel {
        true => format!("an {what}"),
        false => format!("a {what}"),
    }
}

/// The parser's own message without its location (the error carries it apart).
fn plain(error: &Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // "line 9 column 5: message", or "message at line 9, column 5"
    let first = match first.split_once(": ") {
        Some((at, rest)) if at.starts_with("line ") && at.contains(" column ") => rest,
        _ => first,
    };
    match first.rsplit_once(" at line ") {
        Some((message, _)) => message.to_owned(),
        None => first.to_owned(),
    }
}

/// The node of the YAML document that starts at a location.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    /// Its key path: `routes[0].auth.audience` (for a key, the path it would have).
    path: String,
    /// The key it is the value of, or the key it is.
    key: Option<String>,
    /// Character range of the value in the text (a key's own range for a key).
    start: usize,
    end: usize,
    /// "a list", "a mapping", "a string".
    shape: &'static str,
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        expecting_key: bool,
    },
    Seq {
        path: String,
        next: usize,
    },
}

/// A node being read, until its end event gives its range.
struct Open {
    node: Node,
    depth: usize,
}

/// Walk the events, tracking the path, until the node that starts at `at`.
/// `line` and `column` are 1-based, as in [`Location`]; line 0 is unknown.
fn node_at(text: &str, line: u64, column: u64) -> Option<Node> {
    if line == 0 {
        return None;
    }
    let (line, column) = (line as usize, column as usize);
    let mut stack: Vec<Frame> = Vec::new();
    let mut found: Option<Open> = None;
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            break;
        };
        let starts_here = span.start.line() == line && span.start.col() + 1 == column;
        let collection_end = matches!(event, Event::MappingEnd | Event::SequenceEnd);
        if collection_end {
            stack.pop();
            if let Some(open) = &mut found {
                if open.depth == stack.len() {
                    open.node.end = span.end.index();
                    return found.map(|o| o.node);
                }
            }
            continue;
        }
        let shape = match &event {
            Event::Scalar(..) | Event::Alias(..) => "a single value",
            Event::MappingStart(..) => "a mapping",
            Event::SequenceStart(..) => "a list",
            _ => continue,
        };
        // Where this node sits: a key, a mapping's value or a list item.
        let (path, key, is_key) = match stack.last_mut() {
            None => (String::new(), None, false),
            Some(Frame::Map {
                path,
                key,
                expecting_key,
            }) => {
                if *expecting_key {
                    *expecting_key = false;
                    let name = match &event {
                        Event::Scalar(value, ..) => value.to_string(),
                        _ => String::new(),
                    };
                    *key = Some(name.clone());
                    (join(path, &name), Some(name), true)
                } else {
                    *expecting_key = true;
                    let name = key.clone().unwrap_or_default();
                    (join(path, &name), Some(name), false)
                }
            }
            Some(Frame::Seq { path, next }) => {
                let item = format!("{path}[{next}]");
                *next += 1;
                let parent_key = path
                    .rsplit('.')
                    .next()
                    .map(|k| k.split('[').next().unwrap_or(k).to_owned());
                (item, parent_key, false)
            }
        };
        if starts_here && found.is_none() {
            let node = Node {
                path: path.clone(),
                key: key.clone(),
                start: span.start.index(),
                end: span.end.index(),
                shape: if is_key { "a key" } else { shape },
            };
            let is_collection = matches!(event, Event::MappingStart(..) | Event::SequenceStart(..));
            if !is_collection {
                return Some(node);
            }
            found = Some(Open {
                node,
                depth: stack.len(),
            });
        }
        match event {
            Event::MappingStart(..) => stack.push(Frame::Map {
                path,
                key: None,
                expecting_key: true,
            }),
            Event::SequenceStart(..) => stack.push(Frame::Seq { path, next: 0 }),
            _ => {}
        }
    }
    found.map(|o| o.node)
}

fn join(parent: &str, key: &str) -> String {
    match parent {
        "" => key.to_owned(),
        p => format!("{p}.{key}"),
    }
}

/// The keys a mapping in the place of `node` accepts: parse the text again with a probe key
/// there, and read the parser's list of known keys.
fn keys_of(text: &str, node: &Node) -> Option<Vec<&'static str>> {
    let start = text.char_indices().nth(node.start).map(|(i, _)| i)?;
    let end = text
        .char_indices()
        .nth(node.end)
        .map(|(i, _)| i)
        .unwrap_or(text.len());
    let probed = format!("{}{{{PROBE}: 0}}{}", &text[..start], &text[end..]);
    match serde_saphyr::from_str::<GatewayFile>(&probed) {
        Err(e) => match e.without_snippet() {
            Error::SerdeUnknownField {
                field, expected, ..
            } if field == PROBE => Some(expected.clone()),
            _ => None,
        },
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_for(yaml: &str) -> ConfigError {
        match serde_saphyr::from_str::<GatewayFile>(yaml) {
            Err(e) => diagnose(yaml, &e),
            Ok(_) => panic!("expected a parse error"),
        }
    }

    const HEAD: &str = "listeners: [{ name: public, address: \"127.0.0.1:0\" }]\n\
        upstreams: [{ id: app, url: \"http://127.0.0.1:1\" }]\n";

    #[test]
    fn an_unknown_key_names_its_path_and_the_close_known_key() {
        let yaml = format!(
            "{HEAD}issuers:\n  - id: idp\n    issuer: https://idp.example\n    audience: [api]\n    jwks_file: keys.json\nroutes: []\n"
        );
        let e = error_for(&yaml);
        assert_eq!((e.line, e.column), (Some(6), Some(5)));
        assert_eq!(e.path, "issuers[0].audience");
        assert!(
            e.message
                .starts_with("unknown key `audience`; did you mean `audiences`? (known keys: "),
            "{}",
            e.message
        );
        assert!(!e.message.contains("line"), "{}", e.message);
    }

    #[test]
    fn a_far_unknown_key_gets_no_guess() {
        let yaml = format!("{HEAD}routes: []\ncolour: blue\n");
        let e = error_for(&yaml);
        assert_eq!(e.path, "colour");
        assert!(
            e.message
                .starts_with("unknown key `colour` (known keys: `listeners`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_list_where_a_mapping_goes_says_which_keys_it_takes() {
        let yaml = format!(
            "{HEAD}routes:\n  - id: r\n    match: {{ path_prefix: / }}\n    upstream: app\n    auth:\n      scopes: [\"items:read\"]\n"
        );
        let e = error_for(&yaml);
        assert_eq!(e.path, "routes[0].auth.scopes");
        assert_eq!(
            e.message,
            "`scopes` takes a mapping with the keys `all_of`, `any_of`, not a list"
        );
    }

    #[test]
    fn a_scalar_where_a_list_goes_says_so() {
        let yaml = format!(
            "{HEAD}issuers:\n  - id: idp\n    issuer: https://idp.example\n    audiences: api\n    jwks_file: keys.json\nroutes: []\n"
        );
        let e = error_for(&yaml);
        assert_eq!(e.path, "issuers[0].audiences");
        assert!(
            e.message.starts_with("`audiences` takes a list"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_string_in_the_wrong_place_is_not_repeated() {
        let yaml =
            format!("{HEAD}routes: []\nrevocation:\n  redis: \"redis://:hunter2@cache:6379\"\n");
        let e = error_for(&yaml);
        assert_eq!(e.path, "revocation.redis");
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        assert!(
            e.message
                .starts_with("`redis` takes a mapping with the keys `url`"),
            "{}",
            e.message
        );
        let yaml = format!("{HEAD}routes: []\nauth_cache: {{ max_entries: \"hunter2\" }}\n");
        let e = error_for(&yaml);
        assert_eq!(e.path, "auth_cache.max_entries");
        assert_eq!(e.message, "`max_entries` takes a whole number (0 or more)");
    }

    #[test]
    fn the_path_walk_follows_flow_and_block_style() {
        let text = "a:\n  b: [x, {c: 1, d: [y, z]}]\n";
        let node = node_at(text, 2, 24).unwrap();
        assert_eq!(node.path, "a.b[1].d[1]");
        let key = node_at(text, 2, 11).unwrap();
        assert_eq!((key.path.as_str(), key.shape), ("a.b[1].c", "a key"));
        let value = node_at(text, 2, 14).unwrap();
        assert_eq!(
            (value.path.as_str(), value.shape),
            ("a.b[1].c", "a single value")
        );
    }
}
