//! Prometheus metrics, on an explicit [`Registry`] (no global statics).
//!
//! Labels come only from configuration ids and closed enums (route id, issuer id, method,
//! status class, reason), never from `sub`, tokens or raw paths, so cardinality stays bounded.

use std::time::Duration;

use std::sync::OnceLock;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::snapshot::Snapshot;

/// Each introspector's counters as last exported (active, inactive, errors, cache hits, call
/// microseconds), by issuer id and client.
type IntrospectionSeen = std::collections::HashMap<(String, usize), [u64; 5]>;

/// Every metric the gateway exports. Cloning shares the same metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    rejections: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    key_fetches: IntCounterVec,
    unknown_kid_refreshes: IntCounterVec,
    keys_loaded: IntGaugeVec,
    key_set_age: GaugeVec,
    reloads: IntCounterVec,
    revocations: IntGaugeVec,
    mirror_staleness: GaugeVec,
    mirror_connected: IntGaugeVec,
    certificate_reloads: IntCounterVec,
    certificate_expiry: GaugeVec,
    token_cache_events: IntCounterVec,
    token_cache_size: IntGaugeVec,
    /// The cache's own counters as last exported (hits, misses, evictions): each scrape adds
    /// what happened since.
    token_cache_seen: std::sync::Arc<[std::sync::atomic::AtomicU64; 3]>,
    rate_limited: IntCounterVec,
    rate_limit_events: IntCounterVec,
    /// The limits table's counters as last exported (Redis fallbacks, live keys evicted).
    rate_limit_seen: std::sync::Arc<[std::sync::atomic::AtomicU64; 2]>,
    introspection_requests: IntCounterVec,
    introspection_cache_hits: IntCounterVec,
    introspection_seconds: prometheus::CounterVec,
    /// Each introspector's counters as last exported, by issuer and client (a changed client
    /// starts from 0).
    introspection_seen: std::sync::Arc<parking_lot::Mutex<IntrospectionSeen>>,
    /// `config_info{sha256}`: the configuration serving now.
    config_info: IntGaugeVec,
    /// When a configuration was last applied (at start, then by each applied reload).
    config_applied_at: Gauge,
    /// `process_*`, unprefixed as Prometheus names them everywhere.
    process: Registry,
    log_lines_dropped: prometheus::IntCounter,
    /// [`crate::telemetry::dropped_lines`] as last exported.
    log_lines_dropped_seen: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Latency buckets in seconds: 0.5 ms to 30 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// Methods outside this list are counted as `OTHER`, so clients cannot mint label values.
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

/// The status classes a request is counted under.
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// One route's request metrics (or the unrouted requests'), part of the compiled snapshot
/// ([`Snapshot::meters`]). Each label set's handle is looked up in the registry the first time
/// it is used, then kept: a request costs index arithmetic and atomic adds, not the registry's
/// label hashing and lock. A snapshot is served by one [`Metrics`], the process's.
pub struct RouteMeters {
    route: std::sync::Arc<str>,
    /// `proxy`, or `decision` (decision mode): the `mode` label.
    mode: &'static str,
    /// By method (the known ones, then `OTHER`) and status class.
    requests: [OnceLock<IntCounter>; (KNOWN_METHODS.len() + 1) * STATUS_CLASSES.len()],
    /// By reason: few per route, added on a reason's first refusal (a write lock once per
    /// reason, then shared reads).
    rejections: parking_lot::RwLock<Vec<(&'static str, IntCounter)>>,
    duration: OnceLock<Histogram>,
    upstream: OnceLock<Histogram>,
}

impl RouteMeters {
    /// The proxy's metrics of route `route` (`-`: requests that matched no route).
    pub fn new(route: std::sync::Arc<str>) -> Self {
        Self::for_mode(route, "proxy")
    }

    /// The metrics of route `route` in `mode` (`proxy` or `decision`).
    pub fn for_mode(route: std::sync::Arc<str>, mode: &'static str) -> Self {
        RouteMeters {
            route,
            mode,
            requests: std::array::from_fn(|_| OnceLock::new()),
            rejections: parking_lot::RwLock::new(Vec::new()),
            duration: OnceLock::new(),
            upstream: OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for RouteMeters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMeters")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

/// One finished request, as metrics see it.
pub struct RequestRecord<'a> {
    /// The route's metrics, or the unrouted requests' when no route matched.
    pub meters: &'a RouteMeters,
    pub method: &'a http::Method,
    /// The status sent (0 when the client went away first).
    pub status: u16,
    /// The gateway's reason when it refused or failed the request.
    pub rejection: Option<&'static str>,
    pub duration: Duration,
    pub upstream_duration: Option<Duration>,
}

impl Metrics {
    /// Create and register every metric. Fails only on a programming error (bad metric name).
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("portcullis".into()), None)?;
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let histogram = |name: &str, help: &str| -> prometheus::Result<HistogramVec> {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let requests = counter(
            "requests_total",
            "Requests by route, method and status class; mode: proxy, or decision (decision mode).",
            &["route", "method", "status_class", "mode"],
        )?;
        let rejections = counter(
            "rejections_total",
            "Requests refused or failed by the gateway, by route and reason; mode: proxy or decision.",
            &["route", "reason", "mode"],
        )?;
        let key_fetches = counter(
            "jwks_fetches_total",
            "Remote key-set fetches by issuer and result (success, error).",
            &["issuer", "result"],
        )?;
        let unknown_kid_refreshes = counter(
            "jwks_unknown_kid_refreshes_total",
            "Key refreshes, requested because a token named a kid the issuer's keys lacked, that brought it.",
            &["issuer"],
        )?;
        let reloads = counter(
            "config_reloads_total",
            "Configuration reloads by result (applied, rejected).",
            &["result"],
        )?;
        let request_duration = histogram(
            "request_duration_seconds",
            "Time from request start to the end of the response, by route.",
        )?;
        let upstream_duration = histogram(
            "upstream_duration_seconds",
            "Time from the upstream request to its response header, by route.",
        )?;
        let keys_loaded = IntGaugeVec::new(
            Opts::new(
                "jwks_keys_loaded",
                "Signing keys loaded, by issuer (0: the issuer's tokens get 503).",
            ),
            &["issuer"],
        )?;
        registry.register(Box::new(keys_loaded.clone()))?;
        let key_set_age = GaugeVec::new(
            Opts::new(
                "jwks_key_set_age_seconds",
                "Seconds since the issuer's remote keys were last fetched successfully.",
            ),
            &["issuer"],
        )?;
        registry.register(Box::new(key_set_age.clone()))?;
        let revocations = IntGaugeVec::new(
            Opts::new(
                "revocations",
                "Revocation entries in this process, by type (jti, subject, client).",
            ),
            &["type"],
        )?;
        registry.register(Box::new(revocations.clone()))?;
        let mirror_staleness = GaugeVec::new(
            Opts::new(
                "revocation_mirror_staleness_seconds",
                "How long the local revocation mirror may have missed changes: 0 while connected to the store, else the time since it was last complete.",
            ),
            &["store"],
        )?;
        registry.register(Box::new(mirror_staleness.clone()))?;
        let mirror_connected = IntGaugeVec::new(
            Opts::new(
                "revocation_mirror_connected",
                "1 while the revocation mirror is subscribed to its store and synchronised.",
            ),
            &["store"],
        )?;
        registry.register(Box::new(mirror_connected.clone()))?;
        let certificate_reloads = IntCounterVec::new(
            Opts::new(
                "tls_certificate_reloads_total",
                "Certificate file changes picked up, by listener and result (applied, refused).",
            ),
            &["listener", "result"],
        )?;
        registry.register(Box::new(certificate_reloads.clone()))?;
        let certificate_expiry = GaugeVec::new(
            Opts::new(
                "tls_certificate_expiry_timestamp_seconds",
                "notAfter of each served certificate, by listener and first name.",
            ),
            &["listener", "name"],
        )?;
        registry.register(Box::new(certificate_expiry.clone()))?;
        let token_cache_events = counter(
            "token_cache_events_total",
            "Verified-token cache lookups by the proxy (hit, miss) and entries evicted (eviction).",
            &["event"],
        )?;
        let token_cache_size = IntGaugeVec::new(
            Opts::new(
                "token_cache_size",
                "The verified-token cache's entries and their estimated bytes, by unit.",
            ),
            &["unit"],
        )?;
        registry.register(Box::new(token_cache_size.clone()))?;
        let rate_limited = counter(
            "rate_limited_total",
            "Requests refused by a rate limit (429), by route and limit name.",
            &["route", "limit"],
        )?;
        let rate_limit_events = counter(
            "rate_limit_events_total",
            "Rate limit checks decided by this replica's table because Redis could not be asked (redis_fallback), and keys dropped from the full table while still limited (evicted_active).",
            &["event"],
        )?;
        for event in ["redis_fallback", "evicted_active"] {
            rate_limit_events.with_label_values(&[event]);
        }
        let introspection_requests = counter(
            "introspection_requests_total",
            "Token introspection calls (RFC 7662) by issuer and result: active, inactive, error (timeout, refused, malformed, busy).",
            &["issuer", "result"],
        )?;
        let introspection_cache_hits = counter(
            "introspection_cache_hits_total",
            "Opaque tokens answered from the introspection cache (active or inactive), by issuer.",
            &["issuer"],
        )?;
        let introspection_seconds = prometheus::CounterVec::new(
            Opts::new(
                "introspection_seconds_total",
                "Time spent in introspection calls, by issuer (divide by the calls for the mean latency).",
            ),
            &["issuer"],
        )?;
        registry.register(Box::new(introspection_seconds.clone()))?;
        let log_lines_dropped = prometheus::IntCounter::new(
            "log_lines_dropped_total",
            "Log lines (access log included) dropped because stderr could not keep up and the writer's buffer was full.",
        )?;
        registry.register(Box::new(log_lines_dropped.clone()))?;
        registry.register(Box::new(crate::telemetry::handshake_failures().clone()))?;
        let build_info = Gauge::with_opts(
            Opts::new(
                "build_info",
                "Always 1; the version and commit labels name the running build.",
            )
            .const_label("version", env!("CARGO_PKG_VERSION"))
            .const_label("commit", env!("PORTCULLIS_COMMIT")),
        )?;
        build_info.set(1.0);
        registry.register(Box::new(build_info))?;
        let config_info = IntGaugeVec::new(
            Opts::new(
                "config_info",
                "Always 1; sha256 is the first 16 hex digits of the SHA-256 of the gateway.yaml serving now.",
            ),
            &["sha256"],
        )?;
        registry.register(Box::new(config_info.clone()))?;
        let config_applied_at = Gauge::new(
            "config_last_reload_success_timestamp_seconds",
            "When the configuration serving now was applied: at start, then by each applied reload.",
        )?;
        registry.register(Box::new(config_applied_at.clone()))?;
        // Every result from the first scrape, so rate() and increase() see the first change.
        for result in ["applied", "rejected"] {
            reloads.with_label_values(&[result]);
        }
        let process = Registry::new();
        process.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry,
            requests,
            rejections,
            request_duration,
            upstream_duration,
            key_fetches,
            unknown_kid_refreshes,
            keys_loaded,
            key_set_age,
            reloads,
            revocations,
            mirror_staleness,
            mirror_connected,
            certificate_reloads,
            certificate_expiry,
            token_cache_events,
            token_cache_size,
            token_cache_seen: std::sync::Arc::default(),
            rate_limited,
            rate_limit_events,
            rate_limit_seen: std::sync::Arc::default(),
            introspection_requests,
            introspection_cache_hits,
            introspection_seconds,
            introspection_seen: std::sync::Arc::default(),
            config_info,
            config_applied_at,
            process,
            log_lines_dropped,
            log_lines_dropped_seen: std::sync::Arc::default(),
        })
    }

    /// Count one finished request, on the handles its route's [`RouteMeters`] keeps.
    pub fn record_request(&self, r: &RequestRecord<'_>) {
        let m = r.meters;
        let route = &*m.route;
        let method = KNOWN_METHODS
            .iter()
            .position(|known| *known == r.method.as_str())
            .unwrap_or(KNOWN_METHODS.len());
        let class = status_class(r.status);
        if let Some(cell) = m.requests.get(method * STATUS_CLASSES.len() + class) {
            cell.get_or_init(|| {
                let method = KNOWN_METHODS.get(method).copied().unwrap_or("OTHER");
                self.requests
                    .with_label_values(&[route, method, STATUS_CLASSES[class], m.mode])
            })
            .inc();
        }
        if let Some(reason) = r.rejection {
            // The read guard is dropped at the end of this statement, before any write.
            let counted = (m.rejections.read().iter())
                .find(|(r, _)| *r == reason)
                .map(|(_, counter)| counter.inc())
                .is_some();
            if !counted {
                let mut rejections = m.rejections.write();
                match rejections.iter().find(|(r, _)| *r == reason) {
                    Some((_, counter)) => counter.inc(),
                    None => {
                        let counter = self.rejections.with_label_values(&[route, reason, m.mode]);
                        counter.inc();
                        rejections.push((reason, counter));
                    }
                }
            }
        }
        m.duration
            .get_or_init(|| self.request_duration.with_label_values(&[route]))
            .observe(r.duration.as_secs_f64());
        if let Some(d) = r.upstream_duration {
            m.upstream
                .get_or_init(|| self.upstream_duration.with_label_values(&[route]))
                .observe(d.as_secs_f64());
        }
    }

    /// Count one configuration reload attempt.
    pub fn record_reload(&self, result: &str) {
        self.reloads.with_label_values(&[result]).inc();
        if result == "applied" {
            self.record_config_applied();
        }
    }

    /// A configuration was applied now (the first at start).
    pub fn record_config_applied(&self) {
        self.config_applied_at.set(crate::clock::unix_now() as f64);
    }

    /// Count one certificate reload attempt.
    pub fn record_certificate_reload(&self, listener: &str, result: &str) {
        self.certificate_reloads
            .with_label_values(&[listener, result])
            .inc();
    }

    /// Count one remote key fetch.
    pub fn record_key_fetch(&self, issuer: &str, success: bool) {
        let result = if success { "success" } else { "error" };
        self.key_fetches.with_label_values(&[issuer, result]).inc();
    }

    /// A request a rate limit refused.
    pub fn record_rate_limited(&self, route: &str, limit: &str) {
        self.rate_limited.with_label_values(&[route, limit]).inc();
    }

    pub fn record_unknown_kid_refresh(&self, issuer: &str) {
        self.unknown_kid_refreshes
            .with_label_values(&[issuer])
            .inc();
    }

    /// Drop the series of routes the serving configuration no longer has (a reload removed or
    /// renamed them): they could never change again, and would stay on dashboards and in
    /// alerts' sums forever. A request still finishing on the old configuration counts into
    /// handles it already holds, which are simply no longer exported.
    fn prune_routes(&self, snapshot: &Snapshot) {
        use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
        let current: std::collections::HashSet<&str> = (snapshot.routes.iter())
            .map(|r| &*r.id)
            .chain(["-"])
            .collect();
        fn prune<B: MetricVecBuilder>(
            vec: &MetricVec<B>,
            current: &std::collections::HashSet<&str>,
        ) {
            for family in vec.collect() {
                for metric in family.get_metric() {
                    let labels: std::collections::HashMap<&str, &str> = (metric.get_label().iter())
                        .map(|l| (l.name(), l.value()))
                        .collect();
                    if labels.get("route").is_some_and(|r| !current.contains(r)) {
                        let _ = vec.remove(&labels);
                    }
                }
            }
        }
        prune(&self.requests, &current);
        prune(&self.rejections, &current);
        prune(&self.request_duration, &current);
        prune(&self.upstream_duration, &current);
        prune(&self.rate_limited, &current);
    }

    /// Each introspector's counters, added since the last scrape.
    fn render_introspection(&self, snapshot: &Snapshot) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut seen = self.introspection_seen.lock();
        for issuer in &snapshot.issuers {
            let Some(introspector) = &issuer.introspector else {
                continue;
            };
            let stats = &introspector.stats;
            let now = [
                stats.active.load(Relaxed),
                stats.inactive.load(Relaxed),
                stats.errors.load(Relaxed),
                stats.cache_hits.load(Relaxed),
                stats.call_micros.load(Relaxed),
            ];
            let id = std::sync::Arc::as_ptr(introspector) as usize;
            let before = seen
                .insert((issuer.id.to_string(), id), now)
                .unwrap_or_default();
            let delta = |i: usize| now[i].saturating_sub(before[i]);
            for (i, result) in ["active", "inactive", "error"].into_iter().enumerate() {
                self.introspection_requests
                    .with_label_values(&[&issuer.id, result])
                    .inc_by(delta(i));
            }
            self.introspection_cache_hits
                .with_label_values(&[&issuer.id])
                .inc_by(delta(3));
            self.introspection_seconds
                .with_label_values(&[&issuer.id])
                .inc_by(delta(4) as f64 / 1e6);
        }
    }

    /// The Prometheus text exposition, with key-set gauges read from `snapshot` at this moment.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        self.prune_routes(snapshot);
        self.config_info.reset();
        self.config_info
            .with_label_values(&[&snapshot.config_sha256])
            .set(1);
        for issuer in &snapshot.issuers {
            if issuer.keys.is_remote() {
                // Both results from the first scrape (rate() needs a starting point).
                for result in ["success", "error"] {
                    self.key_fetches.with_label_values(&[&issuer.id, result]);
                }
            }
            let loaded = issuer.keys.current().map(|k| k.len()).unwrap_or(0);
            self.keys_loaded
                .with_label_values(&[&issuer.id])
                .set(i64::try_from(loaded).unwrap_or(i64::MAX));
            if let Some(age) = issuer.keys.age() {
                self.key_set_age
                    .with_label_values(&[&issuer.id])
                    .set(age.as_secs_f64());
            }
        }
        // Every reason a route can be refused with, at 0 from the first scrape, so rate() and
        // "increase over 5m > 0" alerts work before the first refusal.
        let modes: &[&str] = match snapshot.decision {
            Some(_) => &["proxy", "decision"],
            None => &["proxy"],
        };
        for mode in modes {
            for route in &snapshot.routes {
                let protected = !matches!(route.auth, crate::snapshot::RouteAuth::Public);
                for reason in crate::error::GatewayError::route_reasons(protected) {
                    self.rejections
                        .with_label_values(&[&route.id, reason, mode]);
                }
            }
            for reason in crate::error::GatewayError::unrouted_reasons() {
                self.rejections.with_label_values(&["-", reason, mode]);
            }
        }
        let (jti, subject, client) = snapshot.revocations.counts();
        for (kind, n) in [("jti", jti), ("subject", subject), ("client", client)] {
            self.revocations
                .with_label_values(&[kind])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for listener in &snapshot.listeners {
            let Some(tls) = &listener.tls else { continue };
            for result in ["applied", "refused"] {
                self.certificate_reloads
                    .with_label_values(&[&listener.name, result]);
            }
            for (name, not_after) in &tls.store.current().not_after {
                self.certificate_expiry
                    .with_label_values(&[&listener.name, name])
                    .set(*not_after as f64);
            }
        }
        if let Some(mirror) = &snapshot.revocation_mirror {
            let status = mirror.status();
            self.mirror_staleness
                .with_label_values(&["redis"])
                .set(status.staleness.as_secs_f64());
            self.mirror_connected
                .with_label_values(&["redis"])
                .set(i64::from(status.connected));
        }
        if let Some(cache) = &snapshot.token_cache {
            let stats = cache.stats();
            for (i, (event, now)) in [
                ("hit", stats.hits),
                ("miss", stats.misses),
                ("eviction", stats.evictions),
            ]
            .into_iter()
            .enumerate()
            {
                let before =
                    self.token_cache_seen[i].swap(now, std::sync::atomic::Ordering::Relaxed);
                self.token_cache_events
                    .with_label_values(&[event])
                    .inc_by(now.saturating_sub(before));
            }
            for (unit, n) in [("entries", stats.entries), ("bytes", stats.bytes)] {
                self.token_cache_size
                    .with_label_values(&[unit])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        let store = &snapshot.rate_limiting.store;
        let counts = [store.fallbacks(), store.local.evicted_active()];
        for (i, (event, now)) in ["redis_fallback", "evicted_active"]
            .into_iter()
            .zip(counts)
            .enumerate()
        {
            let before = self.rate_limit_seen[i].swap(now, std::sync::atomic::Ordering::Relaxed);
            self.rate_limit_events
                .with_label_values(&[event])
                .inc_by(now.saturating_sub(before));
        }
        self.render_introspection(snapshot);
        let dropped = crate::telemetry::dropped_lines();
        let before = self
            .log_lines_dropped_seen
            .swap(dropped, std::sync::atomic::Ordering::Relaxed);
        self.log_lines_dropped
            .inc_by(dropped.saturating_sub(before));
        let mut out = Vec::new();
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The index of `status`'s class in [`STATUS_CLASSES`].
fn status_class(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(m: &Metrics) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn route_meters_keep_their_handles_and_count_into_the_same_series_across_snapshots() {
        let m = Metrics::new().unwrap();
        let record = |meters: &RouteMeters, method: &http::Method, status, rejection| {
            m.record_request(&RequestRecord {
                meters,
                method,
                status,
                rejection,
                duration: Duration::from_millis(2),
                upstream_duration: (status == 200).then_some(Duration::from_millis(1)),
            })
        };
        let (get, post) = (http::Method::GET, http::Method::POST);
        let orders = RouteMeters::new("orders".into());
        record(&orders, &get, 200, None);
        record(&orders, &get, 200, None);
        record(&orders, &post, 403, Some("insufficient_scope"));
        // Resolved once, then kept: the cells hold the handles.
        let get_2xx = KNOWN_METHODS.iter().position(|m| *m == "GET").unwrap() * 6 + 1;
        assert_eq!(orders.requests[get_2xx].get().unwrap().get(), 2);
        assert_eq!(
            orders.requests.iter().filter(|c| c.get().is_some()).count(),
            2
        );
        assert_eq!(orders.rejections.read().len(), 1);
        // A reload compiles new meters for the same route: the same series go on counting.
        let reloaded = RouteMeters::new("orders".into());
        record(&reloaded, &get, 200, None);
        record(&RouteMeters::new("-".into()), &get, 404, Some("no_route"));
        let text = exposition(&m);
        for line in [
            "portcullis_requests_total{method=\"GET\",mode=\"proxy\",route=\"orders\",status_class=\"2xx\"} 3",
            "portcullis_requests_total{method=\"POST\",mode=\"proxy\",route=\"orders\",status_class=\"4xx\"} 1",
            "portcullis_requests_total{method=\"GET\",mode=\"proxy\",route=\"-\",status_class=\"4xx\"} 1",
            "portcullis_rejections_total{mode=\"proxy\",reason=\"insufficient_scope\",route=\"orders\"} 1",
            "portcullis_rejections_total{mode=\"proxy\",reason=\"no_route\",route=\"-\"} 1",
            "portcullis_request_duration_seconds_count{route=\"orders\"} 4",
            "portcullis_upstream_duration_seconds_count{route=\"orders\"} 3",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn status_classes() {
        let class = |s| STATUS_CLASSES[status_class(s)];
        assert_eq!(
            [0, 99, 100, 204, 302, 499, 503, 599, 600].map(class),
            ["none", "none", "1xx", "2xx", "3xx", "4xx", "5xx", "5xx", "none"]
        );
    }

    #[test]
    fn unknown_methods_do_not_become_labels() {
        let m = Metrics::new().unwrap();
        let method = http::Method::from_bytes(b"BREW").unwrap();
        m.record_request(&RequestRecord {
            meters: &RouteMeters::new("r".into()),
            method: &method,
            status: 418,
            rejection: None,
            duration: Duration::from_millis(1),
            upstream_duration: None,
        });
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "portcullis_requests_total{method=\"OTHER\",mode=\"proxy\",route=\"r\",status_class=\"4xx\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("BREW"));
    }
}
