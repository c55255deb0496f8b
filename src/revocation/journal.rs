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
//!
//! One process owns the journal at a time, through an exclusive lock on `<journal>.lock`. During
//! a `run --upgrade` hand-over the old process still owns it and may still answer admin writes
//! on kept-alive connections; the new process replays what is there, refuses writes
//! ([`JournalError::NotOwner`], answered 503) and, once the old process has exited, replays what
//! it appended meanwhile, compacts, and takes over. Nothing the old process acknowledged is lost.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{Revocation, RevocationList, Source};

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Add { entry: Revocation },
    Remove { entry: Revocation },
}

/// Why a change could not be journaled (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("another gateway process still owns the revocation journal (an upgrade is in progress); retry shortly")]
    NotOwner,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The append-only journal of one gateway.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// `None` until this process owns the journal.
    file: Mutex<Option<Appender>>,
    /// `<journal>.lock`, locked exclusively once this process owns the journal.
    lock: File,
}

/// The open file and the length of its last complete, synced line.
#[derive(Debug)]
struct Appender {
    file: File,
    good_len: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Replayed {
    bytes: u64,
    lines: usize,
}

impl Journal {
    /// Replay `path` into `list` without touching the file (also for read-only tools such as
    /// `explain`); returns one problem per bad line, and one for a torn last line. Expired
    /// entries are dropped.
    pub fn replay(path: &Path, list: &RevocationList, now: i64) -> std::io::Result<Vec<String>> {
        let (problems, _) = replay_from(path, Replayed::default(), list, true)?;
        list.purge_expired(now);
        Ok(problems)
    }

    /// Replay `path` into `list` and, when no other process owns the journal, compact it and
    /// open it for appending; otherwise the journal waits for [`Self::take_over`]. Returns the
    /// journal and the problems found, one per bad line.
    pub fn open(
        path: &Path,
        list: &RevocationList,
        now: i64,
    ) -> std::io::Result<(Journal, Vec<String>)> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(path))?;
        let owner = match lock.try_lock() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => false,
            Err(TryLockError::Error(e)) => return Err(e),
        };
        // A follower leaves a last line without newline alone: the owner may be writing it.
        let (problems, _) = replay_from(path, Replayed::default(), list, owner)?;
        list.purge_expired(now);
        let journal = Journal {
            path: path.to_path_buf(),
            file: Mutex::new(None),
            lock,
        };
        if owner {
            *journal.file.lock() = Some(compact(path, list)?);
        } else {
            tracing::warn!(path = %path.display(), "another gateway process owns the revocation journal (upgrade in progress); admin writes wait until it exits");
        }
        Ok((journal, problems))
    }

    /// True once this process owns the journal and writes it.
    pub fn is_owner(&self) -> bool {
        self.file.lock().is_some()
    }

    /// Block until the process owning the journal has exited, then replay the journal again
    /// (with what that process appended since [`Self::open`]), compact, and own it. Returns the problems found. A no-op
    /// for the owner.
    pub fn take_over(&self, list: &RevocationList, now: i64) -> std::io::Result<Vec<String>> {
        if self.is_owner() {
            return Ok(Vec::new());
        }
        self.lock.lock()?;
        // Replayed again from the start: the previous owner may have cut back a line this
        // process had already read (a failed sync), so an offset could point mid-line.
        list.clear_source(Source::Api);
        let (problems, _) = replay_from(&self.path, Replayed::default(), list, true)?;
        list.purge_expired(now);
        *self.file.lock() = Some(compact(&self.path, list)?);
        tracing::info!(path = %self.path.display(), "revocation journal taken over from the previous process");
        Ok(problems)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, line: &Line) -> Result<(), JournalError> {
        let mut text = serde_json::to_string(line).map_err(std::io::Error::from)?;
        text.push('\n');
        let mut guard = self.file.lock();
        let out = guard.as_mut().ok_or(JournalError::NotOwner)?;
        // Whatever an earlier failed write left past the last good line goes first.
        if out.file.metadata()?.len() != out.good_len {
            out.file.set_len(out.good_len)?;
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
                let _ = out.file.set_len(out.good_len);
                Err(e.into())
            }
        }
    }

    /// Record an addition durably.
    pub fn record_add(&self, entry: &Revocation) -> Result<(), JournalError> {
        self.append(&Line::Add {
            entry: entry.clone(),
        })
    }

    /// Record a removal durably.
    pub fn record_remove(&self, entry: &Revocation) -> Result<(), JournalError> {
        self.append(&Line::Remove {
            entry: entry.clone(),
        })
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Apply the lines of `path` after `from` to `list`. With `final_read`, a last line without a
/// newline is torn (reported, dropped); without, it may be in the middle of being written and
/// is left for a later read. Returns the problems and how far the file was read.
fn replay_from(
    path: &Path,
    from: Replayed,
    list: &RevocationList,
    final_read: bool,
) -> std::io::Result<(Vec<String>, Replayed)> {
    let mut problems = Vec::new();
    if !path.exists() {
        return Ok((problems, from));
    }
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from.bytes))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut read = Replayed {
        bytes: from.bytes + complete as u64,
        lines: from.lines,
    };
    for line in bytes[..complete].split_inclusive(|&b| b == b'\n') {
        read.lines += 1;
        apply(line, read.lines, path, list, &mut problems);
    }
    let tail = &bytes[complete..];
    if final_read && !tail.iter().all(u8::is_ascii_whitespace) {
        problems.push(format!(
            "{}:{}: torn last line ({} bytes, a write cut short); dropped",
            path.display(),
            read.lines + 1,
            tail.len()
        ));
    }
    Ok((problems, read))
}

fn apply(
    line: &[u8],
    number: usize,
    path: &Path,
    list: &RevocationList,
    problems: &mut Vec<String>,
) {
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    match serde_json::from_slice::<Line>(line) {
        Ok(Line::Add { entry }) => list.insert_from(Source::Api, &entry),
        Ok(Line::Remove { entry }) => {
            list.remove_from(Source::Api, &entry);
        }
        Err(e) => problems.push(format!("{}:{number}: {e}; line skipped", path.display())),
    }
}

/// Rewrite the journal compactly: one `add` per live admin-API entry, atomically (write, sync,
/// rename, sync the directory); return it open for appending.
fn compact(path: &Path, list: &RevocationList) -> std::io::Result<Appender> {
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
    Ok(Appender { file, good_len })
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

    #[test]
    fn a_successor_waits_for_the_owner_and_loses_nothing_it_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.jsonl");
        let old_list = RevocationList::default();
        let (old, _) = Journal::open(&path, &old_list, 0).unwrap();
        assert!(old.is_owner());
        old.record_add(&jti("before", 1000)).unwrap();

        // `run --upgrade`: the new process starts while the old one still owns the journal.
        let new_list = RevocationList::default();
        let (new, problems) = Journal::open(&path, &new_list, 0).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!new.is_owner());
        assert!(matches!(
            new.record_add(&jti("refused", 1000)),
            Err(JournalError::NotOwner)
        ));
        assert_eq!(new_list.entries(), vec![jti("before", 1000)]);

        // The old process still acknowledges a write on a kept-alive connection, then exits.
        old.record_add(&jti("during", 1000)).unwrap();
        drop(old);
        assert!(new.take_over(&new_list, 0).unwrap().is_empty());
        assert!(new.is_owner());
        let mut live = new_list.entries();
        live.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(live, vec![jti("before", 1000), jti("during", 1000)]);
        new.record_add(&jti("after", 1000)).unwrap();
        drop(new);

        let list = RevocationList::default();
        let (_journal, problems) = Journal::open(&path, &list, 0).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn a_refused_removal_leaves_the_entry_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.jsonl");
        let owner_list = RevocationList::default();
        let (owner, _) = Journal::open(&path, &owner_list, 0).unwrap();
        owner.record_add(&jti("kept", 1000)).unwrap();
        // A follower (upgrade in progress) cannot journal: the DELETE is refused, and the entry
        // keeps its own expiry, not the one in the request body.
        let list = RevocationList::default();
        let (follower, _) = Journal::open(&path, &list, 0).unwrap();
        list.attach_journal(follower);
        assert!(matches!(
            list.remove_durably(&jti("kept", 5)),
            Err(JournalError::NotOwner)
        ));
        assert_eq!(list.entries(), vec![jti("kept", 1000)]);
        assert!(matches!(list.remove_durably(&jti("absent", 5)), Ok(false)));
    }
}
