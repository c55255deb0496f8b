//! The `RateLimit-Policy` and `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers-11
//! (§3 and §4): Structured Field lists of items named by an sf-string, one per limit.
//!
//! A GCRA limit of `burst` requests and one more per interval is advertised as its burst over
//! the time the burst takes to come back: `"name";q=<burst>;w=<seconds>` (§3.1.1, §3.1.3).
//! `RateLimit` gives each limit's remaining requests `r` and the seconds `t` until they are all
//! back (§4.1.1, §4.1.2); on a `429` the refusing limit's `t` is the `Retry-After`. The
//! partition key `pk` is not sent: it would tell the client how it is identified.

use std::sync::Arc;

use http::HeaderValue;

use super::{Checked, Outcome, RateLimit};

const SECOND: u64 = 1_000_000_000;

pub const RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");
pub const RATELIMIT_POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");

/// Nanoseconds as whole seconds, rounded up (a client told `t=0` early would be refused).
pub fn seconds(ns: u64) -> u64 {
    ns.div_ceil(SECOND)
}

/// `RateLimit-Policy` for `limits`; `None` without limits.
pub fn policy(limits: &[Arc<RateLimit>]) -> Option<HeaderValue> {
    let items: Vec<String> = limits
        .iter()
        .map(|l| {
            let window = seconds(l.quota.capacity()).max(1);
            format!("\"{}\";q={};w={window}", l.name, l.quota.burst)
        })
        .collect();
    (!items.is_empty())
        .then(|| HeaderValue::from_str(&items.join(", ")).ok())
        .flatten()
}

/// `RateLimit` for the outcomes of `checked`; `None` when there are none.
pub fn ratelimit(checked: &[Checked]) -> Option<HeaderValue> {
    let items: Vec<String> = checked
        .iter()
        .map(|c| {
            let (r, t) = match c.outcome {
                Outcome::Allowed { remaining, full_in } => (remaining, seconds(full_in)),
                Outcome::Refused { retry_in } => (0, seconds(retry_in)),
            };
            format!("\"{}\";r={r};t={t}", c.limit.name)
        })
        .collect();
    (!items.is_empty())
        .then(|| HeaderValue::from_str(&items.join(", ")).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::{KeyPart, Quota};

    fn limit(name: &str, per_second: u64, burst: u32) -> Arc<RateLimit> {
        Arc::new(RateLimit {
            name: Arc::from(name),
            budget: Arc::from("default"),
            key: vec![KeyPart::Ip],
            quota: Quota {
                interval: SECOND / per_second,
                burst,
            },
            rate: format!("{per_second}/s"),
        })
    }

    #[test]
    fn policies_are_a_list_of_named_quotas_over_their_window() {
        let limits = [limit("ip", 100, 200), limit("client_id", 10, 5)];
        assert_eq!(
            policy(&limits).unwrap(),
            "\"ip\";q=200;w=2, \"client_id\";q=5;w=1"
        );
        assert_eq!(policy(&[]), None);
    }

    #[test]
    fn ratelimit_items_name_their_policy_with_remaining_and_reset() {
        let l = limit("ip", 100, 200);
        let sub = limit("sub", 1, 1);
        let checked = [
            Checked {
                limit: &l,
                outcome: Outcome::Allowed {
                    remaining: 150,
                    full_in: SECOND / 2,
                },
            },
            Checked {
                limit: &sub,
                outcome: Outcome::Refused {
                    retry_in: 3 * SECOND + 1,
                },
            },
        ];
        assert_eq!(
            ratelimit(&checked).unwrap(),
            "\"ip\";r=150;t=1, \"sub\";r=0;t=4"
        );
    }
}
