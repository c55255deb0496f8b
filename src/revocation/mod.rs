//! The revocation list: tokens by `jti`, subjects and clients by "issued before" cutoff.
//!
//! Lookups are lock-free reads of `DashMap`s keyed by the looked-up value itself (`jti`, `sub`,
//! `client_id`), so a check borrows the token's strings and allocates nothing. Every entry carries
//! an expiry after which it can no longer matter (the token it names has expired) and is purged.
//! The list lives outside the configuration snapshot: reloads keep it.

use std::sync::Arc;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

pub mod file;
pub mod journal;
pub mod mirror;
pub mod request;

use journal::{Journal, JournalError};

/// One revocation, as the admin API and files describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Revocation {
    /// One token. `issuer` (an issuer id) limits it to that issuer's tokens.
    Jti {
        jti: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<String>,
        /// When the entry can be dropped (the token's `exp`), seconds since the epoch.
        expires_at: i64,
    },
    /// Every token of `sub` from `issuer` issued before `issued_before` (`iat` < cutoff).
    Subject {
        issuer: String,
        sub: String,
        issued_before: i64,
        expires_at: i64,
    },
    /// Every token of `client_id` (or `azp`) from `issuer` issued before `issued_before`.
    Client {
        issuer: String,
        client_id: String,
        issued_before: i64,
        expires_at: i64,
    },
}

impl Revocation {
    pub fn expires_at(&self) -> i64 {
        match self {
            Revocation::Jti { expires_at, .. }
            | Revocation::Subject { expires_at, .. }
            | Revocation::Client { expires_at, .. } => *expires_at,
        }
    }
}

/// Why a token is revoked (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedBy {
    Jti,
    Subject,
    Client,
}

impl RevokedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokedBy::Jti => "jti",
            RevokedBy::Subject => "subject",
            RevokedBy::Client => "client",
        }
    }
}

/// Where an entry came from. The sources are independent: each adds and removes only its own
/// entries, a lookup refuses a token if any source's entry covers it (so the newest cutoff of
/// any source wins), and a re-read of one source never overwrites another's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The admin API on a single gateway (journaled in `revocation.state_file`).
    Api,
    /// `revocation.file`.
    File,
    /// The Redis mirror (admin API writes when `revocation.redis` is set).
    Redis,
}

/// A cutoff for one issuer: tokens issued before `issued_before` are revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cutoff {
    issuer: Arc<str>,
    issued_before: i64,
    expires_at: i64,
    source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct JtiEntry {
    issuer: Option<Arc<str>>,
    expires_at: i64,
    source: Source,
}

/// The entries of one `jti`: almost always exactly one, kept inline. A `Vec` per entry would
/// cost an extra allocation each, which with a million entries is a large share of the memory.
#[derive(Debug, Clone, Default)]
enum JtiEntries {
    #[default]
    Empty,
    One(JtiEntry),
    Many(Vec<JtiEntry>),
}

impl JtiEntries {
    fn as_slice(&self) -> &[JtiEntry] {
        match self {
            JtiEntries::Empty => &[],
            JtiEntries::One(e) => std::slice::from_ref(e),
            JtiEntries::Many(v) => v,
        }
    }

    fn iter(&self) -> std::slice::Iter<'_, JtiEntry> {
        self.as_slice().iter()
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn retain(&mut self, keep: impl Fn(&JtiEntry) -> bool) {
        let kept: Vec<JtiEntry> = self.iter().filter(|e| keep(e)).cloned().collect();
        *self = JtiEntries::from(kept);
    }

    fn push(&mut self, entry: JtiEntry) {
        let mut all = self.as_slice().to_vec();
        all.push(entry);
        *self = JtiEntries::from(all);
    }
}

impl From<Vec<JtiEntry>> for JtiEntries {
    fn from(mut v: Vec<JtiEntry>) -> Self {
        match v.len() {
            0 => JtiEntries::Empty,
            1 => v.pop().map(JtiEntries::One).unwrap_or_default(),
            _ => JtiEntries::Many(v),
        }
    }
}

impl<'a> IntoIterator for &'a JtiEntries {
    type Item = &'a JtiEntry;
    type IntoIter = std::slice::Iter<'a, JtiEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// What a token offers to the revocation check.
#[derive(Debug, Clone, Copy)]
pub struct TokenFacts<'a> {
    /// The issuer id (configuration id).
    pub issuer: &'a str,
    pub jti: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub iat: Option<i64>,
}

/// The in-memory revocation list, optionally backed by a [`Journal`].
#[derive(Debug, Default)]
pub struct RevocationList {
    jtis: DashMap<Box<str>, JtiEntries>,
    subjects: DashMap<String, Vec<Cutoff>>,
    clients: DashMap<String, Vec<Cutoff>>,
    journal: std::sync::OnceLock<Journal>,
}

impl RevocationList {
    /// Make later [`Self::add_durably`] / [`Self::remove_durably`] calls write `journal` first.
    /// Only the first call has an effect.
    pub fn attach_journal(&self, journal: Journal) {
        let _ = self.journal.set(journal);
    }

    /// The journal, once attached.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.get()
    }

    /// Add an entry, recording it in the journal (if any) before it takes effect, so an answered
    /// API call is never lost by a restart.
    pub fn add_durably(&self, r: &Revocation) -> Result<(), JournalError> {
        if let Some(j) = self.journal.get() {
            j.record_add(r)?;
        }
        self.insert(r);
        Ok(())
    }

    /// Remove an admin-API entry, journaled first (as an addition is), so a failed write leaves
    /// the entry exactly as it was; `Ok(false)` when there was none.
    pub fn remove_durably(&self, r: &Revocation) -> Result<bool, JournalError> {
        if !self
            .entries_of(Source::Api)
            .iter()
            .any(|e| same_identity(e, r))
        {
            return Ok(false);
        }
        if let Some(j) = self.journal.get() {
            j.record_remove(r)?;
        }
        Ok(self.remove(r))
    }

    /// Drop every entry of `source` (a journal about to be replayed again).
    pub fn clear_source(&self, source: Source) {
        for r in self.entries_of(source) {
            self.remove_from(source, &r);
        }
    }

    /// Add (or replace) an admin-API entry: [`Self::insert_from`] with [`Source::Api`].
    pub fn insert(&self, r: &Revocation) {
        self.insert_from(Source::Api, r);
    }

    /// Remove an admin-API entry: [`Self::remove_from`] with [`Source::Api`].
    pub fn remove(&self, r: &Revocation) -> bool {
        self.remove_from(Source::Api, r)
    }

    /// Add an entry of `source`, replacing that source's entry for the same identity (issuer and
    /// jti, subject or client); other sources' entries are left alone.
    pub fn insert_from(&self, source: Source, r: &Revocation) {
        match r {
            Revocation::Jti {
                jti,
                issuer,
                expires_at,
            } => {
                let entry = JtiEntry {
                    issuer: issuer.as_deref().map(Arc::from),
                    expires_at: *expires_at,
                    source,
                };
                let mut list = self.jtis.entry(Box::from(jti.as_str())).or_default();
                list.retain(|e| e.issuer != entry.issuer || e.source != source);
                list.push(entry);
            }
            Revocation::Subject {
                issuer,
                sub,
                issued_before,
                expires_at,
            } => upsert_cutoff(
                &self.subjects,
                sub,
                Cutoff {
                    issuer: Arc::from(issuer.as_str()),
                    issued_before: *issued_before,
                    expires_at: *expires_at,
                    source,
                },
            ),
            Revocation::Client {
                issuer,
                client_id,
                issued_before,
                expires_at,
            } => upsert_cutoff(
                &self.clients,
                client_id,
                Cutoff {
                    issuer: Arc::from(issuer.as_str()),
                    issued_before: *issued_before,
                    expires_at: *expires_at,
                    source,
                },
            ),
        }
    }

    /// Remove `source`'s entry for the identity of `r`; `true` when it existed. Only the
    /// identifying fields of `r` matter; other sources' entries stay.
    pub fn remove_from(&self, source: Source, r: &Revocation) -> bool {
        match r {
            Revocation::Jti { jti, issuer, .. } => {
                let mut removed = false;
                self.jtis.remove_if_mut(jti.as_str(), |_, list| {
                    let before = list.len();
                    list.retain(|e| e.issuer.as_deref() != issuer.as_deref() || e.source != source);
                    removed = list.len() != before;
                    list.is_empty()
                });
                removed
            }
            Revocation::Subject { issuer, sub, .. } => remove_where(&self.subjects, sub, |c| {
                &*c.issuer == issuer && c.source == source
            }),
            Revocation::Client {
                issuer, client_id, ..
            } => remove_where(&self.clients, client_id, |c| {
                &*c.issuer == issuer && c.source == source
            }),
        }
    }

    /// Is this token revoked? Lock-free reads, no allocation.
    pub fn check(&self, t: &TokenFacts<'_>) -> Option<RevokedBy> {
        if let Some(jti) = t.jti {
            if let Some(list) = self.jtis.get(jti) {
                if list
                    .iter()
                    .any(|e| e.issuer.as_deref().is_none_or(|i| i == t.issuer))
                {
                    return Some(RevokedBy::Jti);
                }
            }
        }
        // A cutoff applies to tokens issued before it; a token without `iat` cannot prove it was
        // issued after, so it is revoked too (fail closed).
        let cut = |map: &DashMap<String, Vec<Cutoff>>, key: Option<&str>| {
            key.and_then(|k| map.get(k)).is_some_and(|list| {
                list.iter().any(|c| {
                    &*c.issuer == t.issuer && t.iat.is_none_or(|iat| iat < c.issued_before)
                })
            })
        };
        if cut(&self.subjects, t.sub) {
            return Some(RevokedBy::Subject);
        }
        if cut(&self.clients, t.client_id) {
            return Some(RevokedBy::Client);
        }
        None
    }

    /// Drop every entry that expired at `now`; returns how many.
    pub fn purge_expired(&self, now: i64) -> usize {
        let mut removed = 0;
        let mut sweep_jti = |list: &mut JtiEntries| {
            let before = list.len();
            list.retain(|e| e.expires_at > now);
            removed += before - list.len();
            !list.is_empty()
        };
        self.jtis.retain(|_, list| sweep_jti(list));
        for map in [&self.subjects, &self.clients] {
            map.retain(|_, list| {
                let before = list.len();
                list.retain(|c| c.expires_at > now);
                removed += before - list.len();
                !list.is_empty()
            });
        }
        removed
    }

    /// Every entry of every source (the admin listing).
    pub fn entries(&self) -> Vec<Revocation> {
        self.entries_where(|_| true)
    }

    /// The entries of one source (the journal persists only the admin API's).
    pub fn entries_of(&self, source: Source) -> Vec<Revocation> {
        self.entries_where(|s| s == source)
    }

    fn entries_where(&self, keep: impl Fn(Source) -> bool) -> Vec<Revocation> {
        let mut out = Vec::new();
        for e in self.jtis.iter() {
            for j in e.value().iter().filter(|j| keep(j.source)) {
                out.push(Revocation::Jti {
                    jti: e.key().to_string(),
                    issuer: j.issuer.as_deref().map(str::to_owned),
                    expires_at: j.expires_at,
                });
            }
        }
        for (map, subject) in [(&self.subjects, true), (&self.clients, false)] {
            for e in map.iter() {
                for c in e.value().iter().filter(|c| keep(c.source)) {
                    let (issuer, value) = (c.issuer.to_string(), e.key().clone());
                    out.push(if subject {
                        Revocation::Subject {
                            issuer,
                            sub: value,
                            issued_before: c.issued_before,
                            expires_at: c.expires_at,
                        }
                    } else {
                        Revocation::Client {
                            issuer,
                            client_id: value,
                            issued_before: c.issued_before,
                            expires_at: c.expires_at,
                        }
                    });
                }
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        let count = |n: usize, len: usize| n + len;
        let jtis = self.jtis.iter().map(|e| e.value().len()).fold(0, count);
        let subjects = self.subjects.iter().map(|e| e.value().len()).fold(0, count);
        let clients = self.clients.iter().map(|e| e.value().len()).fold(0, count);
        jtis + subjects + clients
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entry counts by type: (jti, subject, client).
    pub fn counts(&self) -> (usize, usize, usize) {
        let jti = self.jtis.iter().map(|e| e.value().len()).sum();
        let subject = self.subjects.iter().map(|e| e.value().len()).sum();
        let client = self.clients.iter().map(|e| e.value().len()).sum();
        (jti, subject, client)
    }
}

/// Do `a` and `b` name the same entry (issuer and jti, subject or client)?
fn same_identity(a: &Revocation, b: &Revocation) -> bool {
    match (a, b) {
        (
            Revocation::Jti {
                jti: j1,
                issuer: i1,
                ..
            },
            Revocation::Jti {
                jti: j2,
                issuer: i2,
                ..
            },
        ) => j1 == j2 && i1 == i2,
        (
            Revocation::Subject {
                issuer: i1,
                sub: s1,
                ..
            },
            Revocation::Subject {
                issuer: i2,
                sub: s2,
                ..
            },
        ) => i1 == i2 && s1 == s2,
        (
            Revocation::Client {
                issuer: i1,
                client_id: c1,
                ..
            },
            Revocation::Client {
                issuer: i2,
                client_id: c2,
                ..
            },
        ) => i1 == i2 && c1 == c2,
        _ => false,
    }
}

fn upsert_cutoff(map: &DashMap<String, Vec<Cutoff>>, key: &str, cutoff: Cutoff) {
    let mut list = map.entry(key.to_owned()).or_default();
    list.retain(|c| c.issuer != cutoff.issuer || c.source != cutoff.source);
    list.push(cutoff);
}

fn remove_where<T>(map: &DashMap<String, Vec<T>>, key: &str, matches: impl Fn(&T) -> bool) -> bool {
    let mut removed = false;
    map.remove_if_mut(key, |_, list| {
        let before = list.len();
        list.retain(|e| !matches(e));
        removed = list.len() != before;
        list.is_empty()
    });
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(jti: &'a str, sub: &'a str, client: &'a str, iat: i64) -> TokenFacts<'a> {
        TokenFacts {
            issuer: "corp",
            jti: Some(jti),
            sub: Some(sub),
            client_id: Some(client),
            iat: Some(iat),
        }
    }

    #[test]
    fn jti_revocation_hits_only_that_token_and_respects_issuer_scope() {
        let list = RevocationList::default();
        list.insert(&Revocation::Jti {
            jti: "t1".into(),
            issuer: None,
            expires_at: 100,
        });
        list.insert(&Revocation::Jti {
            jti: "t2".into(),
            issuer: Some("other".into()),
            expires_at: 100,
        });
        assert_eq!(
            list.check(&facts("t1", "alice", "ui", 10)),
            Some(RevokedBy::Jti)
        );
        assert_eq!(
            list.check(&facts("t2", "alice", "ui", 10)),
            None,
            "scoped to another issuer"
        );
        assert_eq!(list.check(&facts("t3", "alice", "ui", 10)), None);
    }

    #[test]
    fn subject_and_client_cutoffs_revoke_only_older_tokens_of_that_issuer() {
        let list = RevocationList::default();
        list.insert(&Revocation::Subject {
            issuer: "corp".into(),
            sub: "alice".into(),
            issued_before: 50,
            expires_at: 500,
        });
        list.insert(&Revocation::Client {
            issuer: "corp".into(),
            client_id: "ui".into(),
            issued_before: 20,
            expires_at: 500,
        });
        assert_eq!(
            list.check(&facts("a", "alice", "cli", 49)),
            Some(RevokedBy::Subject)
        );
        assert_eq!(
            list.check(&facts("a", "alice", "cli", 50)),
            None,
            "issued at the cutoff: new login"
        );
        assert_eq!(
            list.check(&facts("a", "bob", "ui", 19)),
            Some(RevokedBy::Client)
        );
        assert_eq!(list.check(&facts("a", "bob", "ui", 21)), None);
        let other_issuer = TokenFacts {
            issuer: "partner",
            ..facts("a", "alice", "ui", 1)
        };
        assert_eq!(list.check(&other_issuer), None);
        let no_iat = TokenFacts {
            iat: None,
            ..facts("a", "alice", "x", 0)
        };
        assert_eq!(
            list.check(&no_iat),
            Some(RevokedBy::Subject),
            "no iat: fail closed"
        );
    }

    #[test]
    fn expired_entries_are_purged_and_removal_works() {
        let list = RevocationList::default();
        list.insert(&Revocation::Jti {
            jti: "old".into(),
            issuer: None,
            expires_at: 10,
        });
        list.insert(&Revocation::Jti {
            jti: "new".into(),
            issuer: None,
            expires_at: 1000,
        });
        list.insert(&Revocation::Subject {
            issuer: "corp".into(),
            sub: "alice".into(),
            issued_before: 5,
            expires_at: 10,
        });
        assert_eq!(list.purge_expired(10), 2);
        assert_eq!(list.len(), 1);
        assert!(list.remove(&Revocation::Jti {
            jti: "new".into(),
            issuer: None,
            expires_at: 0
        }));
        assert!(!list.remove(&Revocation::Jti {
            jti: "new".into(),
            issuer: None,
            expires_at: 0
        }));
        assert!(list.is_empty());
    }

    #[test]
    fn sources_are_independent() {
        let list = RevocationList::default();
        let subject = |issued_before| Revocation::Subject {
            issuer: "corp".into(),
            sub: "alice".into(),
            issued_before,
            expires_at: 10_000,
        };
        // The file says 100; the admin API later revokes everything before 500.
        list.insert_from(Source::File, &subject(100));
        list.insert_from(Source::Api, &subject(500));
        assert_eq!(
            list.check(&facts("j", "alice", "c", 300)),
            Some(RevokedBy::Subject)
        );
        // A re-read of the file re-inserts its own entry: the API's newer cutoff still holds.
        list.insert_from(Source::File, &subject(100));
        assert_eq!(
            list.check(&facts("j", "alice", "c", 300)),
            Some(RevokedBy::Subject)
        );
        // The entry leaves the file: only the file's entry goes.
        assert!(list.remove_from(Source::File, &subject(0)));
        assert_eq!(
            list.check(&facts("j", "alice", "c", 300)),
            Some(RevokedBy::Subject)
        );
        assert!(!list.remove_from(Source::Redis, &subject(0)));
        assert_eq!(list.entries_of(Source::Api), vec![subject(500)]);
        assert!(list.entries_of(Source::File).is_empty());
        // The same for one token: each source keeps its own jti entry.
        let jti = Revocation::Jti {
            jti: "j".into(),
            issuer: None,
            expires_at: 10_000,
        };
        list.insert_from(Source::Redis, &jti);
        list.insert_from(Source::File, &jti);
        assert!(list.remove_from(Source::File, &jti));
        assert_eq!(
            list.check(&facts("j", "bob", "c", 900)),
            Some(RevokedBy::Jti)
        );
        assert!(list.remove_from(Source::Redis, &jti));
        assert_eq!(list.check(&facts("j", "bob", "c", 900)), None);
    }

    #[test]
    fn entries_round_trip_through_json() {
        let list = RevocationList::default();
        let all = [
            Revocation::Jti {
                jti: "t".into(),
                issuer: Some("corp".into()),
                expires_at: 9,
            },
            Revocation::Subject {
                issuer: "corp".into(),
                sub: "alice".into(),
                issued_before: 1,
                expires_at: 9,
            },
            Revocation::Client {
                issuer: "corp".into(),
                client_id: "ui".into(),
                issued_before: 1,
                expires_at: 9,
            },
        ];
        for r in &all {
            list.insert(r);
        }
        let json = serde_json::to_string(&list.entries()).unwrap();
        let back: Vec<Revocation> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.len(), 3);
        for r in &all {
            assert!(back.contains(r), "{r:?}");
        }
    }
}
