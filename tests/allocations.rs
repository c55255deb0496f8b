//! The common request path allocates no more than it must: routing an already-normal
//! origin-form request with a canonical `Host` costs one allocation (the normalised path the
//! upstream receives), and stripping headers a backend could trust costs none when there are none.
//! Counted by `allocation-counter`'s global allocator, per thread.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use pingora::http::RequestHeader;
use portcullis::admission::{self, Silent};
use portcullis::forwarding::{self, Keep};

/// Allocations `f` makes on this thread.
fn allocations_of(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

fn request() -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/orders/7?page=2", None).unwrap();
    req.insert_header("host", "api.example.com").unwrap();
    req.insert_header("accept", "application/json").unwrap();
    req.insert_header("user-agent", "test").unwrap();
    req.insert_header("authorization", "Bearer x.y.z").unwrap();
    req
}

#[test]
fn routing_a_normal_request_allocates_only_the_forwarded_path() {
    let compiled = portcullis::config::load_str(
        &support::config(
            support::closed_port(),
            support::closed_port(),
            support::closed_port(),
        )
        .replace("{listen}", "127.0.0.1:8080"),
        &support::fixtures(),
    )
    .unwrap();
    let snapshot = compiled.snapshot;
    let req = request();
    assert!(admission::route(&req, &snapshot, &mut Silent).is_ok());
    let mut routed = None;
    let n = allocations_of(|| routed = Some(admission::route(&req, &snapshot, &mut Silent)));
    let routed = routed.unwrap().unwrap();
    assert_eq!(routed.path, "/orders/7");
    assert!(routed.upstream_host.is_none());
    assert_eq!(n, 1, "allocations while routing");
}

#[test]
fn stripping_a_clean_request_allocates_nothing() {
    let policy = forwarding::ForwardingPolicy::default();
    let mut req = request();
    let keep = Keep {
        method_override: false,
        forwarding: false,
    };
    let n = allocations_of(|| forwarding::strip(&mut req, &policy, keep));
    assert_eq!(n, 0);
    assert_eq!(req.headers.len(), 4);
}

#[test]
fn normalising_an_already_normal_path_allocates_nothing() {
    let mut normal = None;
    let n =
        allocations_of(|| normal = Some(portcullis::routes::normalize_path("/orders/42/items")));
    assert!(matches!(
        normal.unwrap(),
        Ok(std::borrow::Cow::Borrowed("/orders/42/items"))
    ));
    assert_eq!(n, 0, "allocations while normalising a normal path");
}

#[test]
fn normalising_a_long_path_does_not_allocate_per_segment() {
    // 2,000 segments that need work (`//` and a dot segment): the output and the segment index
    // grow a few times, never once per segment.
    let raw = format!("/{}x/./y", "a//".repeat(2000));
    let mut normal = None;
    let n = allocations_of(|| normal = Some(portcullis::routes::normalize_path(&raw)));
    let normal = normal.unwrap().unwrap();
    assert!(normal.ends_with("/a/x/y"));
    assert!(n < 40, "{n} allocations for 2,000 segments");
}

#[test]
fn reading_a_bracketed_query_allocates_nothing() {
    let query = "filter[status]=open&page[size]=10&page[number]=2&sort=-created";
    let n = allocations_of(|| {
        assert!(!portcullis::auth::bearer::query_has_access_token(query));
    });
    assert_eq!(n, 0);
}
