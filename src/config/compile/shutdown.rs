//! `shutdown`: the grace period for in-flight requests and the drain delay before it.

use super::*;

/// The longest `shutdown.drain_delay`: it only has to cover endpoint propagation, and the pod's
/// `terminationGracePeriodSeconds` must cover it and the grace period.
const MAX_DRAIN_DELAY: Duration = Duration::from_secs(600);

/// `(grace_period, drain_delay)`: defaults 10 s and 0 s.
pub(super) fn compile_shutdown(
    cx: &mut Ctx,
    shutdown: Option<&ShutdownFile>,
) -> (Duration, Duration) {
    let grace = shutdown
        .and_then(|s| s.grace_period.as_ref())
        .and_then(|t| parse_duration(cx, t, "shutdown.grace_period"))
        .unwrap_or(DEFAULT_SHUTDOWN_GRACE);
    let drain = match shutdown.and_then(|s| s.drain_delay.as_ref()) {
        None => Duration::ZERO,
        Some(t) => match parse_duration_or_zero(cx, t, "shutdown.drain_delay") {
            Some(d) if d > MAX_DRAIN_DELAY => {
                cx.error(
                    t.referenced,
                    "shutdown.drain_delay",
                    format!(
                        "\"{}\" is too long: at most 10m (it only has to cover the time the load balancer takes to stop sending)",
                        t.value
                    ),
                );
                Duration::ZERO
            }
            Some(d) => d,
            None => Duration::ZERO,
        },
    };
    (grace, drain)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn shutdown(yaml: &str) -> ((Duration, Duration), Vec<String>) {
        let mut cx = Ctx::default();
        let file: Option<ShutdownFile> = (!yaml.is_empty()).then(|| parse(yaml));
        let out = compile_shutdown(&mut cx, file.as_ref());
        (out, messages(&cx))
    }

    #[test]
    fn the_grace_period_and_drain_delay_default_and_are_bounded() {
        let s = Duration::from_secs;
        assert_eq!(shutdown(""), ((s(10), s(0)), vec![]));
        assert_eq!(shutdown("{ drain_delay: 15s }"), ((s(10), s(15)), vec![]));
        assert_eq!(
            shutdown("{ grace_period: 30s, drain_delay: 5s }"),
            ((s(30), s(5)), vec![])
        );
        let (out, errors) = shutdown("{ drain_delay: 11m }");
        assert_eq!(out, (s(10), s(0)));
        assert!(errors[0].contains("at most 10m"), "{errors:?}");
        let (_, errors) = shutdown("{ drain_delay: soon }");
        assert!(errors[0].contains("is not a duration"), "{errors:?}");
    }
}
