//! What the API does with failed credentials: each failure and each refusal of a permission
//! is an entry of the action log (who, or `anonymous`; what was tried; from where; why), and a
//! client address that fails too often is locked out for a while.
//!
//! The lockout counts failures per client IP address (`[users] max_failed_attempts` within
//! `lockout_minutes`, defaults 10 and 5). While an address is locked out its requests are
//! answered 429 without checking a password or token — which also keeps password guessing from
//! costing the node an Argon2 hash per guess — and only the first refusal of each lockout is
//! recorded, so a flood cannot fill the action log. The lockout is per address, not per user
//! name: locking a user out after failures from anywhere would let anyone lock out the admin.

use super::audit_log;
use crate::node::Node;
use axum::extract::{ConnectInfo, Extension, MatchedPath, OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferry_store::NewAction;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Addresses remembered at most (the oldest are forgotten first), so that failures from many
/// addresses cannot grow the table without bound.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
    /// Whether the refusal that started the current lockout was recorded.
    lockout_recorded: bool,
}

/// Failed-credential counts per client address.
pub struct FailureGuard {
    max_failures: u32,
    window: Duration,
    by_address: Mutex<HashMap<Option<IpAddr>, Window>>,
}

/// What the guard says of a request from an address.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Locked out for this long still; `first` is true for the first refusal of the lockout.
    LockedOut {
        remaining: Duration,
        first: bool,
    },
}

impl FailureGuard {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        FailureGuard {
            max_failures: max_failures.max(1),
            window,
            by_address: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, Window>> {
        self.by_address.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `addr` may try its credentials now.
    pub fn check(&self, addr: Option<IpAddr>) -> Verdict {
        let mut table = self.table();
        let Some(w) = table.get_mut(&addr) else {
            return Verdict::Allowed;
        };
        let elapsed = w.started.elapsed();
        if elapsed >= self.window {
            table.remove(&addr);
            return Verdict::Allowed;
        }
        if w.failures < self.max_failures {
            return Verdict::Allowed;
        }
        let first = !w.lockout_recorded;
        w.lockout_recorded = true;
        Verdict::LockedOut {
            remaining: self.window - elapsed,
            first,
        }
    }

    /// Counts a failure of `addr`.
    pub fn failed(&self, addr: Option<IpAddr>) {
        let mut table = self.table();
        if table.len() >= MAX_TRACKED_ADDRESSES && !table.contains_key(&addr) {
            let oldest = table.iter().min_by_key(|(_, w)| w.started).map(|(a, _)| *a);
            if let Some(a) = oldest {
                table.remove(&a);
            }
        }
        let window = self.window;
        let w = table.entry(addr).or_insert(Window {
            started: Instant::now(),
            failures: 0,
            lockout_recorded: false,
        });
        if w.started.elapsed() >= window {
            *w = Window {
                started: Instant::now(),
                failures: 0,
                lockout_recorded: false,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }

    /// Forgets the failures of `addr` (after a successful sign-in).
    pub fn succeeded(&self, addr: Option<IpAddr>) {
        let mut table = self.table();
        if table
            .get(&addr)
            .is_some_and(|w| w.failures < self.max_failures)
        {
            table.remove(&addr);
        }
    }
}

/// The outermost layer of the API and of sign-in: a locked-out address is answered 429 before
/// anything else looks at the request (only the first refusal of a lockout is recorded).
pub async fn lockout(
    State(node): State<Arc<Node>>,
    Extension(failures): Extension<Arc<FailureGuard>>,
    req: Request,
    next: Next,
) -> Response {
    let addr = client_addr(&req);
    if let Verdict::LockedOut { remaining, first } = failures.check(addr.map(|a| a.ip())) {
        let why = format!(
            "too many failed sign-ins or invalid tokens from this address: try again in {} s",
            remaining.as_secs() + 1
        );
        if first {
            record_refusal(node, None, &Attempt::of(&req), 429, &why).await;
        }
        return super::ApiError::new(StatusCode::TOO_MANY_REQUESTS, why).into_response();
    }
    next.run(req).await
}

/// The client's socket address of a request (none without `ConnectInfo`, as in tests).
pub fn client_addr(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// The route a request matched (its template), or its path.
pub fn route_of(req: &Request) -> String {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    if route.starts_with("/api/v1") {
        route
    } else {
        format!("/api/v1{route}")
    }
}

/// What a refused request tried: method, route template, concrete path, client address.
pub struct Attempt {
    pub method: String,
    pub route: String,
    pub path: String,
    pub addr: Option<SocketAddr>,
}

impl Attempt {
    pub fn of(req: &Request) -> Attempt {
        Attempt {
            method: req.method().to_string(),
            route: route_of(req),
            // Under the nested router the URI has lost its `/api/v1` prefix.
            path: req
                .extensions()
                .get::<OriginalUri>()
                .map(|u| u.path().to_string())
                .unwrap_or_else(|| req.uri().path().to_string()),
            addr: client_addr(req),
        }
    }
}

/// Records a refused request: `actor` (or `anonymous`), the method and route, the path it
/// named, the status and why.
pub async fn record_refusal(
    node: Arc<Node>,
    actor: Option<String>,
    attempt: &Attempt,
    status: u16,
    why: &str,
) {
    let mut action = NewAction::ok(
        actor.unwrap_or_else(|| "anonymous".into()),
        format!("{} {}", attempt.method, attempt.route),
        format!("path={}", attempt.path),
        attempt
            .addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unknown".into()),
    )
    .failed(why.to_string());
    action.status = Some(status);
    audit_log::record(node, action).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_out_after_too_many_failures_and_only_its_first_refusal_is_new() {
        let guard = FailureGuard::new(3, Duration::from_secs(60));
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(guard.check(a), Verdict::Allowed);
            guard.failed(a);
        }
        match guard.check(a) {
            Verdict::LockedOut { remaining, first } => {
                assert!(first);
                assert!(remaining <= Duration::from_secs(60));
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            guard.check(a),
            Verdict::LockedOut { first: false, .. }
        ));
        // Another address is not affected; a success does not lift a lockout.
        assert_eq!(guard.check(b), Verdict::Allowed);
        guard.succeeded(a);
        assert!(matches!(guard.check(a), Verdict::LockedOut { .. }));
    }

    #[test]
    fn the_lockout_ends_with_its_window_and_a_success_clears_earlier_failures() {
        let guard = FailureGuard::new(2, Duration::from_millis(50));
        let a = Some("10.0.0.1".parse().unwrap());
        guard.failed(a);
        guard.failed(a);
        assert!(matches!(guard.check(a), Verdict::LockedOut { .. }));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(guard.check(a), Verdict::Allowed);
        guard.failed(a);
        guard.succeeded(a);
        guard.failed(a);
        assert_eq!(
            guard.check(a),
            Verdict::Allowed,
            "the success reset the count"
        );
    }
}
