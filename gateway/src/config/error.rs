//! Configuration errors that an operator can act on: each names the file (or environment
//! variable), the dotted key, what is wrong and what to write instead.

use super::layers::Layers;

/// Why the configuration was refused. The process exits before binding anything.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read or is not valid TOML.
    #[error("{file}: cannot read the configuration: {reason}; {fix}")]
    Read {
        /// The file.
        file: String,
        /// What the system or the TOML parser said.
        reason: String,
        /// What to do about it.
        fix: String,
    },
    /// A key the gateway does not know (usually a typo).
    #[error("{file}: unknown key `{key}`: {fix}")]
    UnknownKey {
        /// Where the key was written.
        file: String,
        /// The dotted path of the key, e.g. `trunks[0].adress`.
        key: String,
        /// The closest known key, or the list of known ones.
        fix: String,
    },
    /// A required key is absent.
    #[error("{file}: missing key `{key}`: {fix}")]
    MissingKey {
        /// The file holding the table the key belongs in.
        file: String,
        /// The dotted path of the missing key.
        key: String,
        /// What to add.
        fix: String,
    },
    /// A value of the wrong type or out of range, or inconsistent with another one.
    #[error("{file}: `{key}`: {problem}; {fix}")]
    Invalid {
        /// Where the value was written (or the main file, for a default).
        file: String,
        /// The dotted path of the key.
        key: String,
        /// What is wrong.
        problem: String,
        /// What to write instead.
        fix: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::UnknownKey { key, .. }
            | ConfigError::MissingKey { key, .. }
            | ConfigError::Invalid { key, .. } => Some(key),
        }
    }
}

/// The known word closest to `word`, when it is close enough to be a likely typo.
pub(crate) fn closest<'a>(word: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    known
        .map(|k| (edit_distance(word, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Edit distance counting a swap of neighbours as one edit (typos are often swaps: `upd`);
/// config keys are short, so the quadratic table is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// Turns the `config` crate's deserialisation error into one naming file, key and fix.
pub(crate) fn from_deserialize(error: config::ConfigError, layers: &Layers) -> ConfigError {
    let (key, inner) = unwrap_at(error);
    let key = dotted(&key);
    match inner {
        config::ConfigError::Message(message) => from_message(&key, &message, layers),
        config::ConfigError::Type {
            unexpected,
            expected,
            key: type_key,
            ..
        } => {
            let key = type_key.map_or(key, |k| dotted(&k));
            layers.invalid(
                &key,
                format!("is {unexpected}, expected {expected}"),
                "write a value of that type (strings in quotes, numbers and booleans without)",
            )
        }
        config::ConfigError::NotFound(missing) => missing_key(&dotted(&missing), layers),
        other => ConfigError::Read {
            file: layers.main_file().to_string(),
            reason: other.to_string(),
            fix: "check the file's syntax".to_string(),
        },
    }
}

/// Peels `At { key }` wrappers, keeping the innermost key path.
fn unwrap_at(error: config::ConfigError) -> (String, config::ConfigError) {
    match error {
        config::ConfigError::At { error, key, .. } => {
            let (inner_key, inner) = unwrap_at(*error);
            let key = key.unwrap_or_default();
            (if inner_key.is_empty() { key } else { inner_key }, inner)
        }
        other => (String::new(), other),
    }
}

/// The `config` crate joins an index and a field without a dot (`trunks[0]address`).
fn dotted(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    let mut after_index = false;
    for c in key.chars() {
        if after_index && c != '.' && c != '[' {
            out.push('.');
        }
        after_index = c == ']';
        out.push(c);
    }
    out
}

fn from_message(key: &str, message: &str, layers: &Layers) -> ConfigError {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let full = join(key, field);
        let known = backticked(expected);
        let fix = match closest(field, known.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`?"),
            None if known.is_empty() => "remove it: this table takes no keys".to_string(),
            None => format!(
                "remove it, or use one of {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return ConfigError::UnknownKey {
            file: layers.origin(&full),
            key: full,
            fix,
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return missing_key(&join(key, field), layers);
    }
    if message.contains("expected a duration") || message.contains("time unit") {
        return layers.invalid(
            key,
            format!("is not a duration ({message})"),
            "write a number with a unit, e.g. `30s`, `500ms` or `1h`",
        );
    }
    if let Some(rest) = message.strip_prefix("invalid socket address syntax") {
        return layers.invalid(
            key,
            format!("is not a socket address{rest}"),
            "write `ip:port`, e.g. `0.0.0.0:5060` or `[::]:5060`",
        );
    }
    if message.contains("invalid IP address syntax") {
        return layers.invalid(
            key,
            "is not an IP address",
            "write an address like `127.0.0.1` or `::1`",
        );
    }
    // Our own value types say `problem; fix`.
    let (problem, fix) = message
        .split_once("; ")
        .unwrap_or((message, "see conf/landline.toml for what this key takes"));
    layers.invalid(key, problem, fix)
}

fn missing_key(key: &str, layers: &Layers) -> ConfigError {
    let field = key.rsplit('.').next().unwrap_or(key);
    ConfigError::MissingKey {
        file: layers.origin(key),
        key: key.to_string(),
        fix: format!("add `{field} = …` (conf/landline.toml documents it)"),
    }
}

fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}

/// The names between backticks in serde's "expected one of `a`, `b`".
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("adress", "address"), 1);
        assert_eq!(edit_distance("udp", "upd"), 1);
        assert_eq!(edit_distance("tcp", "upd"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn keys_get_their_dots_back() {
        assert_eq!(dotted("trunks[0]address"), "trunks[0].address");
        assert_eq!(dotted("users[1].dids[0]"), "users[1].dids[0]");
        assert_eq!(dotted("a[0][1]b"), "a[0][1].b");
    }

    #[test]
    fn closest_suggests_only_near_words() {
        let known = ["address", "addresses", "allow"];
        assert_eq!(closest("adress", known.iter().copied()), Some("address"));
        assert_eq!(closest("xyzzy", known.iter().copied()), None);
    }
}
