//! The revocation file: revocations managed as a file (YAML list, or JSON lines), loaded at
//! start and re-read when it changes. Each entry is checked like an admin-API body; a bad entry
//! is reported with its line number and the others still load. The file's entries are a set:
//! on change, entries that left the file are removed, new ones added. They are the list's
//! [`Source::File`] entries: entries made through the admin API or Redis are never touched, and
//! a subject or client entry must carry its `issued_before`, so a re-read never moves a cutoff.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::request::RevocationError;
use super::{Revocation, Source};
use crate::snapshot::Snapshot;

/// The file and the entries it contributed last time.
#[derive(Debug)]
pub struct RevocationFile {
    path: PathBuf,
    loaded: Mutex<Vec<Revocation>>,
}

/// Why the revocation file could not be read at all (the entries loaded before stay).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: not a YAML list of revocations: {reason}")]
    NotYamlList { path: String, reason: String },
}

/// What one load found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileLoad {
    pub entries: usize,
    /// `path:line: reason`, one per refused entry.
    pub problems: Vec<String>,
}

impl RevocationFile {
    pub fn new(path: &Path) -> Self {
        RevocationFile {
            path: path.to_path_buf(),
            loaded: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the file and make the snapshot's list agree with it.
    pub fn load(&self, snapshot: &Snapshot, now: i64) -> Result<FileLoad, FileError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| FileError::Read {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut result = FileLoad::default();
        let mut entries = Vec::new();
        for (line, value) in parse_entries(&self.path, &text)? {
            let parsed = value
                .and_then(require_cutoff)
                .and_then(|v| super::request::parse_revocation(v, snapshot, now));
            match parsed {
                Ok(entry) => entries.push(entry),
                Err(e) => result
                    .problems
                    .push(format!("{}:{line}: {e}", self.path.display())),
            }
        }
        let list = &snapshot.revocations;
        let mut loaded = self.loaded.lock();
        if result.problems.is_empty() {
            for old in loaded.iter().filter(|old| !entries.contains(old)) {
                list.remove_from(Source::File, old);
            }
        } else {
            // A read with bad lines may be a file caught mid-rewrite: entries are only removed
            // after a clean read, so a half-written file never un-revokes anything.
            let kept: Vec<Revocation> = loaded
                .iter()
                .filter(|old| !entries.contains(old))
                .cloned()
                .collect();
            entries.extend(kept);
        }
        for entry in &entries {
            list.insert_from(Source::File, entry);
        }
        result.entries = entries.len();
        *loaded = entries;
        Ok(result)
    }
}

/// A subject or client entry in the file must say `issued_before`: defaulting it to "now", as the
/// admin API does, would move the cutoff forward on every re-read and revoke tokens issued since.
fn require_cutoff(value: Value) -> Result<Value, RevocationError> {
    let kind = value.get("type").and_then(Value::as_str);
    if matches!(kind, Some("subject" | "client")) && value.get("issued_before").is_none() {
        return Err(RevocationError::MissingCutoff {
            kind: kind.unwrap_or_default().to_owned(),
        });
    }
    Ok(value)
}

/// An entry with its 1-based line, or why that line is not an entry.
type NumberedEntry = (u64, Result<Value, RevocationError>);

/// `(line, entry)` pairs: a YAML sequence for `.yaml`/`.yml`, JSON lines otherwise.
fn parse_entries(path: &Path, text: &str) -> Result<Vec<NumberedEntry>, FileError> {
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if yaml {
        let items: Vec<Spanned<Value>> =
            serde_saphyr::from_str(text).map_err(|e| FileError::NotYamlList {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        return Ok(items
            .into_iter()
            .map(|s| (s.referenced.line(), Ok(s.value)))
            .collect());
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let value =
            serde_json::from_str(trimmed).map_err(|e| RevocationError::NotJson(e.to_string()));
        out.push((n as u64 + 1, value));
    }
    Ok(out)
}
