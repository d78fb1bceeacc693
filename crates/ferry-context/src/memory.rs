//! In-memory backend: every party is a thread, messages go through a shared mailbox.
//!
//! Same semantics as the TLS transport (ordered per sender and tag, timeouts that name the
//! peer and tag), plus fail-fast: when a party's function returns an error or panics, the
//! others' pending receives from it fail at once instead of waiting for the timeout.

use crate::context::{Context, SessionConfig};
use crate::error::FederationError;
use crate::party::{PartyId, Roster};
use crate::record::{CountersSnapshot, Transcript};
use crate::transport::Transport;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type MailboxKey = (String, PartyId, PartyId, String); // (session, from, to, tag)

#[derive(Default)]
struct State {
    mailboxes: HashMap<MailboxKey, VecDeque<Vec<u8>>>,
    failed: HashSet<PartyId>,
}

/// A set of in-memory endpoints that can reach each other.
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    state: Arc<(Mutex<State>, Condvar)>,
}

impl MemoryNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// The endpoint of party `me`.
    pub fn endpoint(&self, me: PartyId) -> Arc<dyn Transport> {
        Arc::new(MemoryEndpoint {
            me,
            net: self.clone(),
        })
    }

    /// Marks a party as failed: receives from it fail once its queued messages are consumed.
    pub fn mark_failed(&self, party: &PartyId) {
        let (lock, cv) = &*self.state;
        lock.lock()
            .expect("network lock")
            .failed
            .insert(party.clone());
        cv.notify_all();
    }
}

struct MemoryEndpoint {
    me: PartyId,
    net: MemoryNetwork,
}

impl Transport for MemoryEndpoint {
    fn send(
        &self,
        session: &str,
        to: &PartyId,
        tag: &str,
        payload: Vec<u8>,
    ) -> Result<(), FederationError> {
        let (lock, cv) = &*self.net.state;
        let key = (
            session.to_string(),
            self.me.clone(),
            to.clone(),
            tag.to_string(),
        );
        lock.lock()
            .expect("network lock")
            .mailboxes
            .entry(key)
            .or_default()
            .push_back(payload);
        cv.notify_all();
        Ok(())
    }

    fn recv(
        &self,
        session: &str,
        from: &PartyId,
        tag: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, FederationError> {
        let (lock, cv) = &*self.net.state;
        let key = (
            session.to_string(),
            from.clone(),
            self.me.clone(),
            tag.to_string(),
        );
        let deadline = Instant::now() + timeout;
        let mut state = lock.lock().expect("network lock");
        loop {
            if let Some(msg) = state.mailboxes.get_mut(&key).and_then(|q| q.pop_front()) {
                return Ok(msg);
            }
            if state.failed.contains(from) {
                return Err(FederationError::PeerFailed {
                    peer: from.clone(),
                    reason: format!("it stopped before sending '{tag}'"),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(FederationError::Timeout {
                    peer: from.clone(),
                    tag: tag.to_string(),
                    session: session.to_string(),
                    timeout,
                });
            }
            state = cv
                .wait_timeout(state, deadline - now)
                .expect("network lock")
                .0;
        }
    }
}

/// What one party's run produced.
pub struct PartyOutcome<T> {
    pub party: PartyId,
    pub result: Result<T, String>,
    pub counters: CountersSnapshot,
    pub transcript: Option<Arc<Transcript>>,
}

/// Runs one function per party of a roster, each in its own thread over a [`MemoryNetwork`].
pub struct LocalCluster {
    roster: Roster,
    config: SessionConfig,
    capture_payloads: bool,
    session: String,
}

impl LocalCluster {
    pub fn new(roster: Roster) -> Self {
        LocalCluster {
            roster,
            config: SessionConfig {
                timeout: Duration::from_secs(120),
                ..SessionConfig::default()
            },
            capture_payloads: false,
            session: "local".to_string(),
        }
    }

    /// Records every message with its payload (for privacy assertions).
    pub fn capture_transcripts(mut self) -> Self {
        self.capture_payloads = true;
        self
    }

    pub fn config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// Runs `f` for every party; outcomes are in roster order.
    pub fn run<T, E, F>(&self, f: F) -> Vec<PartyOutcome<T>>
    where
        T: Send,
        E: std::fmt::Display,
        F: Fn(Context) -> Result<T, E> + Sync,
    {
        let net = MemoryNetwork::new();
        let parties: Vec<PartyId> = self.roster.parties().map(|(p, _)| p.clone()).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = parties
                .iter()
                .map(|party| {
                    let transcript = self
                        .capture_payloads
                        .then(|| Arc::new(Transcript::with_payloads()));
                    let mut builder = Context::builder(
                        party.clone(),
                        self.roster.clone(),
                        &self.session,
                        net.endpoint(party.clone()),
                    )
                    .config(self.config.clone());
                    if let Some(t) = &transcript {
                        builder = builder.transcript(t.clone());
                    }
                    let ctx = builder.build().expect("party is in the roster");
                    let net = net.clone();
                    let f = &f;
                    scope.spawn(move || {
                        let party = ctx.me().clone();
                        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            f(ctx.clone())
                        }));
                        let result = match run {
                            Ok(Ok(v)) => Ok(v),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(panic) => Err(panic_message(&panic)),
                        };
                        if result.is_err() {
                            net.mark_failed(&party);
                        }
                        PartyOutcome {
                            party,
                            result,
                            counters: ctx.counters(),
                            transcript,
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .expect("party thread does not panic outside catch_unwind")
                })
                .collect()
        })
    }

    /// Like [`LocalCluster::run`] but panics with every party's error if any party failed.
    pub fn run_ok<T, E, F>(&self, f: F) -> Vec<PartyOutcome<T>>
    where
        T: Send,
        E: std::fmt::Display,
        F: Fn(Context) -> Result<T, E> + Sync,
    {
        let outcomes = self.run(f);
        let errors: Vec<String> = outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}: {e}", o.party)))
            .collect();
        assert!(errors.is_empty(), "parties failed:\n{}", errors.join("\n"));
        outcomes
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

impl<T> PartyOutcome<T> {
    /// The successful value; panics with the party's error otherwise (tests).
    pub fn unwrap(self) -> T {
        match self.result {
            Ok(v) => v,
            Err(e) => panic!("party {} failed: {e}", self.party),
        }
    }
}
