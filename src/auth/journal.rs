//! Durable revocations for a gateway without Redis: every change made through the admin API is
//! appended to a JSON-lines journal and synced *before* the API answers 2xx; at start the
//! journal is replayed (a bad line is reported with its number and skipped), expired entries are
//! dropped, and the file is rewritten compactly.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::revocation::{Revocation, RevocationList, Source};

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Add { entry: Revocation },
    Remove { entry: Revocation },
}

/// The append-only journal of one gateway.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

impl Journal {
    /// Replay `path` into `list` without touching the file (also for read-only tools such as
    /// `explain`); returns one problem per bad line. Expired entries are dropped.
    pub fn replay(path: &Path, list: &RevocationList, now: i64) -> std::io::Result<Vec<String>> {
        let mut problems = Vec::new();
        if path.exists() {
            let reader = BufReader::new(File::open(path)?);
            for (n, line) in reader.lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Line>(&line) {
                    Ok(Line::Add { entry }) => list.insert(&entry),
                    Ok(Line::Remove { entry }) => {
                        list.remove(&entry);
                    }
                    Err(e) => {
                        problems.push(format!("{}:{}: {e}; line skipped", path.display(), n + 1))
                    }
                }
            }
        }
        list.purge_expired(now);
        Ok(problems)
    }

    /// Replay `path` into `list` (when it exists), compact it, and open it for appending.
    /// Returns the journal and the problems found, one per bad line.
    pub fn open(
        path: &Path,
        list: &RevocationList,
        now: i64,
    ) -> std::io::Result<(Journal, Vec<String>)> {
        let problems = Self::replay(path, list, now)?;
        // Rewrite compactly: one `add` per live entry, atomically (write, sync, rename).
        let tmp = path.with_extension("compacting");
        {
            let mut out = File::create(&tmp)?;
            for entry in list.entries_of(Source::Api) {
                writeln!(out, "{}", serde_json::to_string(&Line::Add { entry })?)?;
            }
            out.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                file: Mutex::new(file),
            },
            problems,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, line: &Line) -> std::io::Result<()> {
        let text = serde_json::to_string(line)?;
        let mut file = self.file.lock();
        writeln!(file, "{text}")?;
        file.sync_data()
    }

    /// Record an addition durably.
    pub fn record_add(&self, entry: &Revocation) -> std::io::Result<()> {
        self.append(&Line::Add {
            entry: entry.clone(),
        })
    }

    /// Record a removal durably.
    pub fn record_remove(&self, entry: &Revocation) -> std::io::Result<()> {
        self.append(&Line::Remove {
            entry: entry.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_compacts_and_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.jsonl");
        let jti = |j: &str, exp: i64| Revocation::Jti {
            jti: j.into(),
            issuer: None,
            expires_at: exp,
        };
        {
            let list = RevocationList::default();
            let (journal, problems) = Journal::open(&path, &list, 0).unwrap();
            assert!(problems.is_empty());
            journal.record_add(&jti("keep", 1000)).unwrap();
            journal.record_add(&jti("gone", 1000)).unwrap();
            journal.record_add(&jti("expired", 5)).unwrap();
            journal.record_remove(&jti("gone", 0)).unwrap();
        }
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{not json\n");
        std::fs::write(&path, text).unwrap();

        let list = RevocationList::default();
        let (_journal, problems) = Journal::open(&path, &list, 10).unwrap();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains(":5:"), "{problems:?}");
        assert_eq!(list.entries(), vec![jti("keep", 1000)]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            1,
            "compacted"
        );
    }
}
