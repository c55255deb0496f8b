//! Revocations shared between replicas through Redis.
//!
//! Every entry is a Redis key, `<prefix>:entry:<identity>`, holding the entry as JSON and expiring
//! (`EXAT`) when the entry does; each change is announced on `<prefix>:events`. Every replica keeps
//! a local mirror: the same [`RevocationList`] the request path reads, so lookups never wait on
//! Redis. The mirror task subscribes, then re-reads the whole set (at start, after every
//! reconnect, and every `resync_interval`, which heals a missed announcement), and applies
//! announcements as they come. When Redis is unreachable the gateway keeps serving from the
//! mirror, reconnects with backoff, and reports how stale the mirror is; past `max_staleness` it
//! reports itself not ready.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Revocation, RevocationList, Source};

/// The Redis settings of `revocation.redis`.
#[derive(Clone)]
pub struct RedisSettings {
    /// The parsed client (the URL may hold a password: never logged).
    pub client: redis::Client,
    /// `host:port` only, for logs.
    pub description: String,
    pub key_prefix: String,
    pub resync_interval: Duration,
    pub max_staleness: Duration,
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("address", &self.description)
            .field("key_prefix", &self.key_prefix)
            .field("resync_interval", &self.resync_interval)
            .field("max_staleness", &self.max_staleness)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PartialEq for RedisSettings {
    /// Same server and layout (reloads compare settings to warn that a change needs a restart).
    fn eq(&self, other: &Self) -> bool {
        self.client.get_connection_info().addr() == other.client.get_connection_info().addr()
            && self.key_prefix == other.key_prefix
            && self.resync_interval == other.resync_interval
            && self.max_staleness == other.max_staleness
            && self.timeout == other.timeout
    }
}

/// The Redis key of an entry: the prefix and the entry's identity (type, issuer, value) as a
/// JSON array, which cannot be ambiguous whatever characters the values hold.
pub fn entry_key(prefix: &str, r: &Revocation) -> String {
    let identity = match r {
        Revocation::Jti { jti, issuer, .. } => serde_json::json!(["jti", issuer, jti]),
        Revocation::Subject { issuer, sub, .. } => serde_json::json!(["subject", issuer, sub]),
        Revocation::Client {
            issuer, client_id, ..
        } => serde_json::json!(["client", issuer, client_id]),
    };
    format!("{prefix}:entry:{identity}")
}

/// The identity an entry key names, as a [`Revocation`] fit for [`RevocationList::remove`]
/// (only identifying fields are meaningful).
pub fn identity_of_key(prefix: &str, key: &str) -> Option<Revocation> {
    let identity = key.strip_prefix(prefix)?.strip_prefix(":entry:")?;
    let (kind, issuer, value): (String, Option<String>, String) =
        serde_json::from_str(identity).ok()?;
    Some(match kind.as_str() {
        "jti" => Revocation::Jti {
            jti: value,
            issuer,
            expires_at: 0,
        },
        "subject" => Revocation::Subject {
            issuer: issuer?,
            sub: value,
            issued_before: 0,
            expires_at: 0,
        },
        "client" => Revocation::Client {
            issuer: issuer?,
            client_id: value,
            issued_before: 0,
            expires_at: 0,
        },
        _ => return None,
    })
}

/// An announcement on the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    Add { revocation: Revocation },
    Remove { revocation: Revocation },
}

/// Why a write to Redis failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisWriteError {
    #[error("Redis at {address} is unreachable or failed: {reason}")]
    Unavailable { address: String, reason: String },
}

/// What the readiness check and the metrics see of the mirror.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MirrorStatus {
    /// Subscribed and synchronised right now.
    pub connected: bool,
    /// The mirror has been complete at least once.
    pub synced_once: bool,
    /// How long the mirror may have been missing changes: zero while connected, else the time
    /// since it was last known complete (or since start, when it never was).
    pub staleness: Duration,
    pub max_staleness: Duration,
}

impl MirrorStatus {
    pub fn ready(&self) -> bool {
        self.synced_once && self.staleness <= self.max_staleness
    }
}

#[derive(Debug)]
struct State {
    connected: bool,
    synced_once: bool,
    /// When the mirror was last known complete: the last resync, or the last PING answered on
    /// the subscription (every announcement sent before it has arrived). Start-up time before
    /// the first sync.
    last_complete: Instant,
}

/// Which entries of the local list came from Redis, with the resync generation that last saw
/// them, so a resync can drop what Redis no longer has without touching entries from the
/// revocation file, nor entries written while the resync ran.
#[derive(Debug, Default)]
struct Origin {
    generation: u64,
    keys: HashMap<Box<str>, u64>,
}

/// The Redis store and the local mirror of it.
pub struct RedisMirror {
    settings: RedisSettings,
    list: Arc<RevocationList>,
    channel: String,
    origin: Mutex<Origin>,
    state: Mutex<State>,
    /// A command connection, shared (it multiplexes); dropped after an error.
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// Completed resyncs (tests and logs wait on it).
    syncs: watch::Sender<u64>,
}

impl std::fmt::Debug for RedisMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMirror")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A client for `url` whose connections use TCP keepalive (first probe after 10 s idle, then
/// every 5 s, 3 probes) and a 20 s `TCP_USER_TIMEOUT`, so a peer that vanished is noticed by the
/// kernel too, not only by the mirror's PINGs.
pub fn client_with_keepalive(url: &str) -> redis::RedisResult<redis::Client> {
    use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
    use redis::IntoConnectionInfo;
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    let tcp = TcpSettings::default()
        .set_keepalive(keepalive)
        .set_user_timeout(Duration::from_secs(20));
    let info = url.into_connection_info()?.set_tcp_settings(tcp);
    redis::Client::open(info)
}

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Keys per SCAN / MGET round trip in a resync.
const BATCH: usize = 1000;

impl RedisMirror {
    pub fn new(settings: RedisSettings, list: Arc<RevocationList>) -> Arc<Self> {
        let channel = format!("{}:events", settings.key_prefix);
        Arc::new(RedisMirror {
            settings,
            list,
            channel,
            origin: Mutex::new(Origin::default()),
            state: Mutex::new(State {
                connected: false,
                synced_once: false,
                last_complete: Instant::now(),
            }),
            connection: Mutex::new(None),
            syncs: watch::channel(0).0,
        })
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// A receiver of the count of completed resyncs.
    pub fn syncs(&self) -> watch::Receiver<u64> {
        self.syncs.subscribe()
    }

    pub fn status(&self) -> MirrorStatus {
        let state = self.state.lock();
        MirrorStatus {
            connected: state.connected,
            synced_once: state.synced_once,
            // From the last confirmed round trip, connected or not: a connection that silently
            // stopped delivering shows here before any error does.
            staleness: state.last_complete.elapsed(),
            max_staleness: self.settings.max_staleness,
        }
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> RedisWriteError {
        RedisWriteError::Unavailable {
            address: self.settings.description.clone(),
            reason: reason.to_string(),
        }
    }

    async fn command_connection(
        &self,
    ) -> Result<redis::aio::MultiplexedConnection, RedisWriteError> {
        if let Some(c) = self.connection.lock().clone() {
            return Ok(c);
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.timeout))
            .set_response_timeout(Some(self.settings.timeout));
        let c = self
            .settings
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.unavailable(e))?;
        *self.connection.lock() = Some(c.clone());
        Ok(c)
    }

    /// Run `pipe` on the command connection, dropping the connection after a failure.
    async fn query<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisWriteError> {
        let mut c = self.command_connection().await?;
        match pipe.query_async(&mut c).await {
            Ok(v) => Ok(v),
            Err(e) => {
                *self.connection.lock() = None;
                Err(self.unavailable(e))
            }
        }
    }

    /// Claim `id` (a DPoP proof, RFC 9449 §11.1) until `until` (unix seconds), once across every
    /// replica sharing this Redis: `SET <prefix>:dpop:<hex> 1 NX EXAT until`. `Ok(true)` for the
    /// first claim, `Ok(false)` when another request claimed it first.
    pub async fn claim_once(&self, id: &[u8; 32], until: i64) -> Result<bool, RedisWriteError> {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(format!("{}:dpop:{hex}", self.settings.key_prefix))
            .arg(1)
            .arg("NX")
            .arg("EXAT")
            .arg(until);
        let (set,): (Option<String>,) = self.query(&pipe).await?;
        Ok(set.is_some())
    }

    /// Run `script` with `keys` and `args` on the command connection (`EVALSHA`, then `EVAL`
    /// after a `NOSCRIPT`), dropping the connection after a failure: the rate limits' check.
    pub async fn eval(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[u64],
    ) -> Result<Vec<i64>, RedisWriteError> {
        let mut c = self.command_connection().await?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        match invocation.invoke_async(&mut c).await {
            Ok(v) => Ok(v),
            Err(e) => {
                *self.connection.lock() = None;
                Err(self.unavailable(e))
            }
        }
    }

    /// Store an entry in Redis (expiring with it), announce it, and apply it locally. Nothing
    /// changes when Redis cannot be written.
    pub async fn add(&self, r: &Revocation) -> Result<(), RedisWriteError> {
        let key = entry_key(&self.settings.key_prefix, r);
        let value = serde_json::to_string(r).map_err(|e| self.unavailable(e))?;
        let event = serde_json::to_string(&Event::Add {
            revocation: r.clone(),
        })
        .map_err(|e| self.unavailable(e))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&key)
            .arg(value)
            .arg("EXAT")
            .arg(r.expires_at())
            .ignore()
            .cmd("PUBLISH")
            .arg(&self.channel)
            .arg(event)
            .ignore();
        self.query::<()>(&pipe).await?;
        self.apply_add(key, r);
        Ok(())
    }

    /// Delete an entry from Redis, announce it, and remove it locally; `Ok(false)` when neither
    /// Redis nor the mirror had it.
    pub async fn remove(&self, r: &Revocation) -> Result<bool, RedisWriteError> {
        let key = entry_key(&self.settings.key_prefix, r);
        let event = serde_json::to_string(&Event::Remove {
            revocation: r.clone(),
        })
        .map_err(|e| self.unavailable(e))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("DEL")
            .arg(&key)
            .cmd("PUBLISH")
            .arg(&self.channel)
            .arg(event)
            .ignore();
        let (deleted,): (u64,) = self.query(&pipe).await?;
        let local = self.apply_remove(&key, r);
        Ok(deleted > 0 || local)
    }

    fn apply_add(&self, key: String, r: &Revocation) {
        let mut origin = self.origin.lock();
        let generation = origin.generation;
        origin.keys.insert(key.into_boxed_str(), generation);
        self.list.insert_from(Source::Redis, r);
    }

    fn apply_remove(&self, key: &str, r: &Revocation) -> bool {
        let mut origin = self.origin.lock();
        origin.keys.remove(key);
        self.list.remove_from(Source::Redis, r)
    }

    /// Apply one announcement; a malformed one is logged and ignored (the next resync heals).
    fn apply_message(&self, payload: &[u8]) {
        match serde_json::from_slice::<Event>(payload) {
            Ok(Event::Add { revocation }) => {
                let key = entry_key(&self.settings.key_prefix, &revocation);
                self.apply_add(key, &revocation);
            }
            Ok(Event::Remove { revocation }) => {
                let key = entry_key(&self.settings.key_prefix, &revocation);
                self.apply_remove(&key, &revocation);
            }
            Err(e) => {
                tracing::warn!(channel = %self.channel, error = %e, "ignoring a malformed revocation announcement")
            }
        }
    }

    /// Re-read every entry from Redis into the mirror, and drop the mirrored entries Redis no
    /// longer has. Returns how many entries Redis holds.
    pub async fn resync(&self) -> Result<usize, RedisWriteError> {
        let generation = {
            let mut origin = self.origin.lock();
            origin.generation += 1;
            origin.generation
        };
        let pattern = format!("{}:entry:*", self.settings.key_prefix);
        let mut cursor: u64 = 0;
        let mut seen: HashSet<String> = HashSet::new();
        loop {
            let mut scan = redis::pipe();
            scan.cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(BATCH);
            let ((next, keys),): ((u64, Vec<String>),) = self.query(&scan).await?;
            let fresh: Vec<String> = keys.into_iter().filter(|k| !seen.contains(k)).collect();
            if !fresh.is_empty() {
                let mut get = redis::pipe();
                get.cmd("MGET").arg(&fresh);
                let (values,): (Vec<Option<String>>,) = self.query(&get).await?;
                for (key, value) in fresh.into_iter().zip(values) {
                    // A key that expired between SCAN and MGET is simply gone.
                    let Some(value) = value else { continue };
                    match serde_json::from_str::<Revocation>(&value) {
                        Ok(r) if entry_key(&self.settings.key_prefix, &r) == key => {
                            self.apply_add(key.clone(), &r);
                            seen.insert(key);
                        }
                        Ok(_) | Err(_) => {
                            tracing::warn!(key = %key, "ignoring a malformed revocation entry in Redis")
                        }
                    }
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        // Entries mirrored before this resync began that Redis no longer holds were deleted (or
        // expired) while an announcement was missed. Writes made during the resync carry the
        // new generation and are kept.
        let mut origin = self.origin.lock();
        let gone: Vec<Box<str>> = origin
            .keys
            .iter()
            .filter(|(k, g)| **g < generation && !seen.contains(&***k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            origin.keys.remove(&key);
            if let Some(r) = identity_of_key(&self.settings.key_prefix, &key) {
                self.list.remove_from(Source::Redis, &r);
            }
        }
        drop(origin);
        self.syncs.send_modify(|n| *n += 1);
        Ok(seen.len())
    }

    fn mark_connected(&self) {
        let mut state = self.state.lock();
        state.connected = true;
        state.synced_once = true;
        state.last_complete = Instant::now();
    }

    /// A PING on the subscription was answered: everything announced before it has arrived.
    fn mark_confirmed(&self) {
        let mut state = self.state.lock();
        if state.connected {
            state.last_complete = Instant::now();
        }
    }

    /// The connection failed; staleness keeps counting from the last confirmed round trip.
    fn mark_lost(&self) {
        self.state.lock().connected = false;
    }

    /// How often the subscription is PINGed: often enough that a silently dropped connection is
    /// noticed well within `max_staleness`, at most every 5 s.
    fn ping_interval(&self) -> Duration {
        (self.settings.max_staleness / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
    }

    /// Keep the mirror current until `shutdown` says stop: subscribe, resync, follow the
    /// announcements, resync periodically; on any failure, reconnect with backoff.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        loop {
            match self.session(&mut shutdown).await {
                Ok(()) => return,
                Err((e, was_connected)) => {
                    self.mark_lost();
                    *self.connection.lock() = None;
                    if was_connected {
                        failures = 0;
                    }
                    failures = failures.saturating_add(1);
                    let delay = backoff(failures);
                    tracing::warn!(
                        redis = %self.settings.description,
                        error = %e,
                        retry_in_ms = delay.as_millis() as u64,
                        staleness_s = self.status().staleness.as_secs(),
                        "revocation mirror disconnected from Redis; serving the last known list"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// One connected period. `Ok` on shutdown; on failure, the error and whether the mirror
    /// had got connected (which resets the backoff).
    async fn session(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), (RedisWriteError, bool)> {
        let timeout = self.settings.timeout;
        let mut pubsub =
            match tokio::time::timeout(timeout, self.settings.client.get_async_pubsub()).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return Err((self.unavailable(e), false)),
                Err(_) => return Err((self.unavailable("connect timed out"), false)),
            };
        // Subscribe before reading the set, so nothing falls between the two.
        match tokio::time::timeout(timeout, pubsub.subscribe(&self.channel)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err((self.unavailable(e), false)),
            Err(_) => return Err((self.unavailable("subscribe timed out"), false)),
        }
        let entries = self.resync().await.map_err(|e| (e, false))?;
        self.mark_connected();
        tracing::info!(redis = %self.settings.description, entries, "revocation mirror synchronised with Redis");
        let (mut sink, mut messages) = pubsub.split();
        let mut resync = tokio::time::interval(self.settings.resync_interval);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        let mut ping = tokio::time::interval(self.ping_interval());
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(m) => self.apply_message(m.get_payload_bytes()),
                    None => return Err((self.unavailable("the subscription was closed"), true)),
                },
                _ = ping.tick() => {
                    // A PING answered on the subscription connection proves it still delivers;
                    // TCP keepalive alone would take minutes to notice a silent drop.
                    match tokio::time::timeout(timeout, sink.ping::<String>()).await {
                        Ok(Ok(_)) => self.mark_confirmed(),
                        Ok(Err(e)) => return Err((self.unavailable(e), true)),
                        Err(_) => return Err((self.unavailable("PING on the subscription timed out"), true)),
                    }
                }
                _ = resync.tick() => {
                    let entries = self.resync().await.map_err(|e| (e, true))?;
                    self.mark_connected();
                    tracing::debug!(entries, "revocation mirror resynchronised");
                }
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
}

/// The pause before reconnection attempt `n` (1-based): doubling from 100 ms up to 5 s, with
/// jitter so that replicas do not reconnect in lockstep.
fn backoff(n: u32) -> Duration {
    let exp = MIN_BACKOFF.saturating_mul(1u32 << n.saturating_sub(1).min(10));
    let capped = exp.min(MAX_BACKOFF);
    capped.mul_f64(0.5 + fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_identities_unambiguously_and_round_trip() {
        let a = Revocation::Jti {
            jti: "a:b".into(),
            issuer: None,
            expires_at: 5,
        };
        let b = Revocation::Jti {
            jti: "b".into(),
            issuer: Some("a:".into()),
            expires_at: 5,
        };
        let s = Revocation::Subject {
            issuer: "corp".into(),
            sub: "alice".into(),
            issued_before: 1,
            expires_at: 9,
        };
        let ka = entry_key("p", &a);
        assert_ne!(ka, entry_key("p", &b));
        assert_eq!(ka, r#"p:entry:["jti",null,"a:b"]"#);
        let back = identity_of_key("p", &entry_key("p", &s)).unwrap();
        assert_eq!(entry_key("p", &back), entry_key("p", &s));
        assert_eq!(
            identity_of_key("p", &ka),
            Some(Revocation::Jti {
                jti: "a:b".into(),
                issuer: None,
                expires_at: 0
            })
        );
        assert_eq!(identity_of_key("q", &ka), None, "another prefix");
        assert_eq!(identity_of_key("p", "p:entry:[\"x\",null,\"y\"]"), None);
        assert_eq!(
            identity_of_key("p", "p:entry:[\"subject\",null,\"y\"]"),
            None,
            "a subject entry needs an issuer"
        );
    }

    #[test]
    fn events_are_tagged_json() {
        let e = Event::Remove {
            revocation: Revocation::Client {
                issuer: "corp".into(),
                client_id: "ui".into(),
                issued_before: 1,
                expires_at: 2,
            },
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(
            json.starts_with(r#"{"op":"remove","revocation":{"type":"client""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }

    #[test]
    fn redis_connections_use_tcp_keepalive_and_a_user_timeout() {
        let client = client_with_keepalive("redis://127.0.0.1:6379/0").unwrap();
        let tcp = client.get_connection_info().tcp_settings();
        assert!(tcp.keepalive().is_some());
        assert_eq!(tcp.user_timeout(), Some(Duration::from_secs(20)));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        for n in 1..20 {
            let d = backoff(n);
            let full = MIN_BACKOFF
                .saturating_mul(1 << (n - 1).min(10))
                .min(MAX_BACKOFF);
            assert!(d >= full / 2 && d <= full, "attempt {n}: {d:?} vs {full:?}");
        }
        assert!(backoff(30) <= MAX_BACKOFF);
    }

    #[test]
    fn status_is_not_ready_before_the_first_sync_and_stale_after_a_loss() {
        let settings = RedisSettings {
            client: redis::Client::open("redis://127.0.0.1:1").unwrap(),
            description: "127.0.0.1:1".into(),
            key_prefix: "p".into(),
            resync_interval: Duration::from_secs(60),
            max_staleness: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
        };
        let m = RedisMirror::new(settings, Arc::default());
        assert!(!m.status().ready(), "never synchronised");
        m.mark_connected();
        assert!(m.status().ready());
        assert!(m.status().staleness < Duration::from_secs(1));
        // Connected, but nothing confirmed for 10 s (a silent drop): stale all the same.
        m.state.lock().last_complete = Instant::now() - Duration::from_secs(10);
        assert!(m.status().connected && !m.status().ready());
        m.mark_confirmed();
        assert!(m.status().ready(), "a PING answered");
        m.mark_lost();
        assert!(!m.status().connected && m.status().synced_once);
        assert!(m.status().ready(), "lost just now: within the bound");
        // Lost 10 s ago.
        m.state.lock().last_complete = Instant::now() - Duration::from_secs(10);
        let s = m.status();
        assert!(s.staleness >= Duration::from_secs(10));
        assert!(!s.ready(), "staler than max_staleness");
        m.mark_connected();
        assert!(m.status().ready(), "reconnected");
    }
}
