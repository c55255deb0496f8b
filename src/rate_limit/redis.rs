//! Limits shared by the replicas through Redis: one Lua script per check, atomic in Redis, on
//! Redis's clock (`TIME`), so replicas with skewed clocks share one budget.
//!
//! The script is GCRA over every limit of the check at once: it reads each key's TAT, and
//! stores the new TATs (each expiring when its key has its whole burst again) only when every
//! limit allows the request, so a refused request costs no limit anything. Writing after `TIME`
//! needs effects replication: the default from Redis 5, asked for on 3.2 and 4.

use std::sync::{Arc, LazyLock};

use super::{Checked, Outcome, Quota, RateLimit};

/// KEYS: the limits' keys. ARGV: per key, its interval and its burst (microseconds, requests).
/// Returns the 1-based index of the first refusing limit (0: allowed), Redis's time, then for
/// each key its new TAT when allowed or, when refused, the TAT that would have been.
const SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local refused = 0
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local capacity = interval * tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local new = tat + interval
  if new - now > capacity and refused == 0 then refused = i end
  tats[i] = new
end
if refused == 0 then
  for i = 1, #KEYS do
    local ms = math.ceil((tats[i] - now) / 1000)
    redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ms)
  end
end
local out = {refused, now}
for i = 1, #KEYS do out[i + 2] = tats[i] end
return out
";

static LUA: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(SCRIPT));

/// The script (loaded once per connection by `EVALSHA`, sent whole after a `NOSCRIPT`).
pub fn script() -> &'static ::redis::Script {
    &LUA
}

/// A limit's interval in whole microseconds, rounded up: Redis's limit is never looser than
/// the local one.
fn interval_micros(quota: Quota) -> u64 {
    quota.interval.div_ceil(1000).max(1)
}

/// The script's arguments for `limits`: interval (µs) and burst of each.
pub fn args(limits: &[Arc<RateLimit>]) -> Vec<u64> {
    limits
        .iter()
        .flat_map(|l| [interval_micros(l.quota), u64::from(l.quota.burst)])
        .collect()
}

/// The outcomes of a script's `reply` for `limits`; `None` for a reply of another shape.
pub fn outcomes<'a>(limits: &'a [Arc<RateLimit>], reply: &[i64]) -> Option<Vec<Checked<'a>>> {
    let (&refused, rest) = reply.split_first()?;
    let (&now, tats) = rest.split_first()?;
    if tats.len() != limits.len() {
        return None;
    }
    let micros = |v: i64| u64::try_from(v).unwrap_or(0).saturating_mul(1000);
    let now = micros(now);
    let mut checked = Vec::with_capacity(limits.len());
    for (i, (limit, &tat)) in limits.iter().zip(tats).enumerate() {
        let quota = Quota {
            interval: interval_micros(limit.quota) * 1000,
            burst: limit.quota.burst,
        };
        let new = micros(tat);
        let outcome = match usize::try_from(refused).ok() {
            Some(r) if r == i + 1 => Outcome::Refused {
                retry_in: (new - now.min(new)).saturating_sub(quota.capacity()),
            },
            // Nothing was counted: the others are as they were before this request.
            Some(r) if r != 0 => continue,
            _ => super::gcra::allowed(new, now, quota),
        };
        checked.push(Checked { limit, outcome });
    }
    Some(checked)
}
