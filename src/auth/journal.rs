//! Durable revocations for a gateway without Redis: every change made through the admin API is
//! appended to a JSON-lines journal and synced *before* the API answers 2xx; at start the
//! journal is replayed, expired entries are dropped, and the file is rewritten compactly.
//!
//! What a crash or a full disk can leave behind never costs an acknowledged entry:
//! - a write that fails is cut off again (the file goes back to its last good length), so a torn
//!   line can never swallow the next entry; a tail torn by a crash is found on replay, reported
//!   and dropped by the compaction;
//! - a line that is not a journal entry (bad JSON, not UTF-8) is reported with its number and
//!   skipped, never fatal;
//! - the compaction is written to a temporary file, synced, renamed over the journal, and the
//!   directory is synced, so the rename itself survives a power loss.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
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
    file: Mutex<Appender>,
}

/// The open file and the length of its last complete, synced line.
#[derive(Debug)]
struct Appender {
    file: File,
    good_len: u64,
}

impl Journal {
    /// Replay `path` into `list` without touching the file (also for read-only tools such as
    /// `explain`); returns one problem per bad line, and one for a torn last line. Expired
    /// entries are dropped.
    pub fn replay(path: &Path, list: &RevocationList, now: i64) -> std::io::Result<Vec<String>> {
        let mut problems = Vec::new();
        if path.exists() {
            let mut bytes = Vec::new();
            File::open(path)?.read_to_end(&mut bytes)?;
            let torn = !bytes.is_empty() && !bytes.ends_with(b"\n");
            let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
            let last = lines.len().saturating_sub(1);
            for (n, line) in lines.iter().enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<Line>(line) {
                    Ok(Line::Add { entry }) => list.insert_from(Source::Api, &entry),
                    Ok(Line::Remove { entry }) => {
                        list.remove_from(Source::Api, &entry);
                    }
                    Err(_) if torn && n == last => problems.push(format!(
                        "{}:{}: torn last line ({} bytes, a write cut short); dropped",
                        path.display(),
                        n + 1,
                        line.len()
                    )),
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
        // Rewrite compactly: one `add` per live entry of the admin API, atomically (write, sync,
        // rename, sync the directory).
        let tmp = path.with_extension("compacting");
        {
            let mut out = File::create(&tmp)?;
            for entry in list.entries_of(Source::Api) {
                writeln!(out, "{}", serde_json::to_string(&Line::Add { entry })?)?;
            }
            out.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()?;
        let file = OpenOptions::new().append(true).open(path)?;
        let good_len = file.metadata()?.len();
        Ok((
            Journal {
                path: path.to_path_buf(),
                file: Mutex::new(Appender { file, good_len }),
            },
            problems,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, line: &Line) -> std::io::Result<()> {
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        let mut out = self.file.lock();
        // Whatever an earlier failed write left past the last good line goes first.
        if out.file.metadata()?.len() != out.good_len {
            let good_len = out.good_len;
            out.file.set_len(good_len)?;
        }
        let written = out
            .file
            .write_all(text.as_bytes())
            .and_then(|()| out.file.sync_data());
        match written {
            Ok(()) => {
                out.good_len += text.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut the torn line off now; if even that fails, the next append retries.
                let good_len = out.good_len;
                let _ = out.file.set_len(good_len);
                Err(e)
            }
        }
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

    fn jti(j: &str, exp: i64) -> Revocation {
        Revocation::Jti {
            jti: j.into(),
            issuer: None,
            expires_at: exp,
        }
    }

    #[test]
    fn a_torn_tail_is_reported_dropped_and_never_swallows_the_next_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.jsonl");
        {
            let list = RevocationList::default();
            let (journal, _) = Journal::open(&path, &list, 0).unwrap();
            journal.record_add(&jti("first", 1000)).unwrap();
        }
        // A crash mid-write: half a line, no newline.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"op\":\"add\",\"entry\":{\"type\":\"jti\",\"jt")
            .unwrap();
        drop(f);

        let list = RevocationList::default();
        let (journal, problems) = Journal::open(&path, &list, 0).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains(":2: torn last line"), "{problems:?}");
        journal.record_add(&jti("second", 1000)).unwrap();
        drop(journal);

        let list = RevocationList::default();
        let (_journal, problems) = Journal::open(&path, &list, 0).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let mut names: Vec<Revocation> = list.entries();
        names.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(names, vec![jti("first", 1000), jti("second", 1000)]);
    }

    #[test]
    fn bytes_left_by_a_failed_write_are_cut_before_the_next_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.jsonl");
        let list = RevocationList::default();
        let (journal, _) = Journal::open(&path, &list, 0).unwrap();
        journal.record_add(&jti("first", 1000)).unwrap();
        // What a write cut short by a full disk leaves: part of a line past the last good one.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"op\":\"add\",\"ent").unwrap();
        drop(f);
        journal.record_add(&jti("second", 1000)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let list = RevocationList::default();
        assert!(Journal::replay(&path, &list, 0).unwrap().is_empty());
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.jsonl");
        let good = serde_json::to_string(&Line::Add {
            entry: jti("ok", 1000),
        })
        .unwrap();
        std::fs::write(
            &path,
            [b"\xff\xfe\n".as_slice(), good.as_bytes(), b"\n"].concat(),
        )
        .unwrap();
        let list = RevocationList::default();
        let problems = Journal::replay(&path, &list, 0).unwrap();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains(":1:"), "{problems:?}");
        assert_eq!(list.len(), 1);
    }
}
