//! The receiving side's mailboxes: messages wait here, per (session, sender, tag), until the
//! protocol asks for them.
//!
//! * De-duplication: messages of one (session, sender) carry consecutive sequence numbers; a
//!   retransmitted message (its acknowledgement was lost in a disconnect) is acknowledged again
//!   and dropped.
//! * Backpressure: while a session has more than `max_buffered_bytes` waiting unread, the
//!   receiving stream stops reading, so HTTP/2 flow control stops the sender.
//! * Limits: a session may receive at most `max_session_bytes` from one peer.

use crate::wire::{Message, Refusal};
use ferry_context::{FederationError, PartyId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Something wrong with a peer as a whole (every receive from it fails fast).
#[derive(Clone, Debug)]
pub enum PeerProblem {
    Version { theirs: u32, ours: u32 },
}

#[derive(Default)]
struct State {
    mailboxes: HashMap<(String, PartyId, String), VecDeque<Vec<u8>>>,
    buffered: HashMap<String, usize>,
    received: HashMap<(String, PartyId), u64>,
    next_seq: HashMap<(String, PartyId), u64>,
    closed: HashSet<String>,
    peer_problems: HashMap<PartyId, PeerProblem>,
    /// Errors of a session raised on the sending side (e.g. a peer refused our message), so
    /// that a receive in that session fails at once instead of waiting for its timeout.
    session_errors: HashMap<String, String>,
}

pub struct Inbox {
    /// Retransmitted messages dropped because they were already stored.
    pub duplicates: std::sync::atomic::AtomicU64,
    state: Mutex<State>,
    arrived: Condvar,
    space: Notify,
    max_buffered_bytes: usize,
    max_session_bytes: u64,
}

/// What happened to a delivered message.
pub enum Delivery {
    Stored,
    Duplicate,
    Refused(Refusal, String),
}

impl Inbox {
    pub fn new(max_buffered_bytes: usize, max_session_bytes: u64) -> Self {
        Inbox {
            duplicates: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            space: Notify::new(),
            max_buffered_bytes,
            max_session_bytes,
        }
    }

    /// Stores a reassembled message from `peer`, waiting while its session's buffer is full.
    pub async fn deliver(&self, peer: &PartyId, msg: Message) -> Delivery {
        let key = (msg.session.clone(), peer.clone());
        loop {
            let notified = self.space.notified();
            {
                let mut s = self.state.lock().expect("inbox lock");
                let expected = s.next_seq.get(&key).copied().unwrap_or(0);
                if msg.seq < expected {
                    self.duplicates
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Delivery::Duplicate;
                }
                if msg.seq > expected {
                    return Delivery::Refused(
                        Refusal::Malformed,
                        format!(
                            "message {} of session {} arrived before message {expected}",
                            msg.seq, msg.session
                        ),
                    );
                }
                let total = s.received.get(&key).copied().unwrap_or(0) + msg.data.len() as u64;
                if total > self.max_session_bytes {
                    return Delivery::Refused(
                        Refusal::SessionTooLarge,
                        format!(
                            "session {} exceeded the receiver's limit of {} bytes from party '{peer}'",
                            msg.session, self.max_session_bytes
                        ),
                    );
                }
                let buffered = s.buffered.get(&msg.session).copied().unwrap_or(0);
                // Always admit a message into an empty buffer, so one large message cannot wedge.
                if buffered == 0 || buffered + msg.data.len() <= self.max_buffered_bytes {
                    s.next_seq.insert(key.clone(), expected + 1);
                    s.received.insert(key, total);
                    if !s.closed.contains(&msg.session) {
                        *s.buffered.entry(msg.session.clone()).or_default() += msg.data.len();
                        s.mailboxes
                            .entry((msg.session, peer.clone(), msg.tag))
                            .or_default()
                            .push_back(msg.data);
                    }
                    self.arrived.notify_all();
                    return Delivery::Stored;
                }
            }
            notified.await;
        }
    }

    /// Waits for the next `tag` message of `session` from `from`.
    pub fn recv(
        &self,
        session: &str,
        from: &PartyId,
        tag: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, FederationError> {
        let key = (session.to_string(), from.clone(), tag.to_string());
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock().expect("inbox lock");
        loop {
            if let Some(msg) = s.mailboxes.get_mut(&key).and_then(|q| q.pop_front()) {
                if let Some(b) = s.buffered.get_mut(session) {
                    *b -= msg.len();
                }
                drop(s);
                self.space.notify_waiters();
                return Ok(msg);
            }
            if let Some(PeerProblem::Version { theirs, ours }) = s.peer_problems.get(from) {
                return Err(FederationError::VersionMismatch {
                    peer: from.clone(),
                    theirs: *theirs,
                    ours: *ours,
                });
            }
            if let Some(reason) = s.session_errors.get(session) {
                return Err(FederationError::PeerFailed {
                    peer: from.clone(),
                    reason: reason.clone(),
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
            s = self
                .arrived
                .wait_timeout(s, deadline - now)
                .expect("inbox lock")
                .0;
        }
    }

    /// Waits for the next message of `session` from anyone, under any tag (the node's control
    /// plane, where the tag names the kind of message). Messages of one sender and tag still
    /// come out in order.
    pub fn recv_any(&self, session: &str, timeout: Duration) -> Option<(PartyId, String, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock().expect("inbox lock");
        loop {
            let key = s
                .mailboxes
                .iter()
                .find(|((sess, _, _), q)| sess == session && !q.is_empty())
                .map(|(k, _)| k.clone());
            if let Some(key) = key {
                let msg = s
                    .mailboxes
                    .get_mut(&key)
                    .and_then(|q| q.pop_front())
                    .expect("queue is not empty");
                if let Some(b) = s.buffered.get_mut(session) {
                    *b -= msg.len();
                }
                drop(s);
                self.space.notify_waiters();
                return Some((key.1, key.2, msg));
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            s = self
                .arrived
                .wait_timeout(s, deadline - now)
                .expect("inbox lock")
                .0;
        }
    }

    pub fn peer_failed(&self, peer: &PartyId, problem: PeerProblem) {
        self.state
            .lock()
            .expect("inbox lock")
            .peer_problems
            .insert(peer.clone(), problem);
        self.arrived.notify_all();
    }

    pub fn peer_recovered(&self, peer: &PartyId) {
        self.state
            .lock()
            .expect("inbox lock")
            .peer_problems
            .remove(peer);
    }

    pub fn session_failed(&self, session: &str, reason: String) {
        self.state
            .lock()
            .expect("inbox lock")
            .session_errors
            .entry(session.to_string())
            .or_insert(reason);
        self.arrived.notify_all();
    }

    pub fn session_error(&self, session: &str) -> Option<String> {
        self.state
            .lock()
            .expect("inbox lock")
            .session_errors
            .get(session)
            .cloned()
    }

    /// Frees a finished session's buffers; late messages for it are acknowledged and dropped.
    pub fn close_session(&self, session: &str) {
        let mut s = self.state.lock().expect("inbox lock");
        s.mailboxes.retain(|(sess, _, _), _| sess != session);
        s.buffered.remove(session);
        s.session_errors.remove(session);
        s.closed.insert(session.to_string());
        drop(s);
        self.space.notify_waiters();
    }
}
