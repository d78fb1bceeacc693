//! The receiving side's mailboxes: messages wait here, per (session, sender, tag), until the
//! protocol asks for them.
//!
//! A peer is authenticated, not trusted: everything it can make this node keep is bounded.
//!
//! * De-duplication: messages of one (session, sender) carry consecutive sequence numbers; a
//!   retransmitted message (its acknowledgement was lost in a disconnect) is acknowledged again
//!   and dropped.
//! * Admission: with [`crate::transport::SessionAdmission::Restricted`], a message is kept only
//!   if its session lies in a scope admitted for its sender (the node admits a job's scope for
//!   the job's parties) or in an always-admitted scope (the control session). Anything else is
//!   refused at its first chunk, before a byte of it is kept.
//! * Per-peer memory: the bytes a peer has made this node hold — messages waiting unread plus
//!   the message being reassembled — never exceed `max_peer_buffered_bytes`. A receiving stream
//!   reserves each chunk before keeping it and, when the peer is at its cap, stops reading, so
//!   HTTP/2 flow control stops that peer's sender. Other peers have their own streams and caps
//!   and are not slowed down.
//! * Per-session backpressure: while a session has more than `max_session_buffered_bytes`
//!   waiting unread, the receiving stream stops reading too (fairness between the sessions of
//!   one peer; a single message is always admitted into an empty session so it cannot wedge).
//! * Per-peer sessions: a peer may have at most `max_sessions_per_peer` sessions open here. A
//!   message opening one more is refused (not held back: the sessions blocking it may only
//!   close once messages behind it in the same stream arrive, which would deadlock the link).
//! * Per-session volume: a session may receive at most `max_session_bytes` from one peer.
//! * Closed sessions are remembered for `closed_retention` (at most `max_closed_sessions` of
//!   them) so that late messages for them are acknowledged and dropped; see [`ClosedSessions`].
//! * Restarts: a peer's streams say which incarnation of it sends ([`Inbox::hello`]). When a
//!   new incarnation appears, the old one's sequence numbers are forgotten: in the sessions that
//!   outlive restarts (the always-admitted ones, i.e. the control session) the new incarnation
//!   numbers from 0 again and unread messages stay; every other session the old incarnation
//!   sent in is freed and fails for local receivers with the restart as the reason. A message
//!   still arriving on a stream of the old incarnation is refused.

use crate::wire::{Message, Refusal};
use ferry_context::{FederationError, PartyId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Sessions per peer whose refusal was already logged; past this the record starts over (a
/// peer sending to many refused sessions gets a log line per session again, never an
/// unbounded set).
const MAX_WARNED_SESSIONS_PER_PEER: usize = 256;

/// Something wrong with a peer as a whole (every receive from it fails fast).
#[derive(Clone, Debug)]
pub enum PeerProblem {
    Version {
        theirs: u32,
        ours: u32,
    },
    /// The operator removed the peer from this node's partners.
    Removed {
        reason: String,
    },
}

/// The receiver's limits (see the module docs).
#[derive(Clone, Debug)]
pub struct InboxLimits {
    pub max_session_buffered_bytes: usize,
    pub max_session_bytes: u64,
    pub max_peer_buffered_bytes: usize,
    pub max_sessions_per_peer: usize,
    pub closed_retention: Duration,
    pub max_closed_sessions: usize,
    /// `None`: every session is admitted. `Some(always)`: only admitted scopes, plus `always`.
    pub always_admitted: Option<HashSet<String>>,
}

/// One sender's progress in one session.
#[derive(Clone, Copy, Default)]
struct SenderState {
    next_seq: u64,
    /// Bytes stored from this sender in this session, for `max_session_bytes`.
    received: u64,
}

#[derive(Default)]
struct SessionState {
    /// Bytes waiting unread in this session, from every sender.
    buffered: usize,
    senders: HashMap<PartyId, SenderState>,
}

#[derive(Default)]
struct PeerState {
    /// The incarnation of this peer whose streams are current (see [`Inbox::hello`]).
    incarnation: Option<u64>,
    /// Bytes of this peer held here: stored unread plus reserved for messages in reassembly.
    held: usize,
    /// Sessions in which this peer has a [`SenderState`].
    sessions: usize,
    /// Scopes admitted for this peer (see [`Inbox::admit`]).
    admitted: HashSet<String>,
    /// Refused sessions already logged.
    warned: HashSet<String>,
}

/// Sessions closed on this node, remembered for a while.
///
/// Why remember them at all: a message can reach a session after this node closed it — a
/// message stored and consumed whose acknowledgement was lost in a disconnect is resent after
/// the reconnect, and a partner that failed sends its abort notice to a session this node may
/// already have finished. Such a message must be acknowledged (else its sender resends it until
/// its delivery timeout and then fails) and must not be buffered (nobody will read it; it would
/// hold the peer's byte budget and a session slot forever).
///
/// Why forgetting is safe: a sender resends a message only while it is unacknowledged, and
/// gives up on it after its delivery timeout without progress (10 minutes by default); a
/// closed session acknowledges whatever reaches it, so its stragglers arrive within about one
/// reconnect of the close. Past the retention window, or when more than the count limit closed
/// later, a straggler is treated like any message of an unknown session: refused if it does
/// not start at sequence number 0 (its sender fails a session it had finished anyway), or
/// stored under the peer's caps until the session's scope is revoked.
#[derive(Default)]
struct ClosedSessions {
    at: HashMap<String, Instant>,
    /// Closing order (the same entries as `at`), oldest first.
    order: VecDeque<(String, Instant)>,
}

impl ClosedSessions {
    fn contains(&self, session: &str, now: Instant, retention: Duration) -> bool {
        self.at
            .get(session)
            .is_some_and(|t| now.saturating_duration_since(*t) < retention)
    }

    fn insert(&mut self, session: &str, now: Instant, retention: Duration, max: usize) {
        // Closing again keeps the first close time: nothing was buffered in between.
        if !self.at.contains_key(session) {
            self.at.insert(session.to_string(), now);
            self.order.push_back((session.to_string(), now));
        }
        self.prune(now, retention, max);
    }

    fn prune(&mut self, now: Instant, retention: Duration, max: usize) {
        while let Some((session, t)) = self.order.front() {
            let expired = now.saturating_duration_since(*t) >= retention;
            if !expired && self.order.len() <= max {
                break;
            }
            self.at.remove(session);
            self.order.pop_front();
        }
    }

    fn len(&self) -> usize {
        self.at.len()
    }
}

#[derive(Default)]
struct State {
    mailboxes: HashMap<(String, PartyId, String), VecDeque<Vec<u8>>>,
    sessions: HashMap<String, SessionState>,
    peers: HashMap<PartyId, PeerState>,
    closed: ClosedSessions,
    peer_problems: HashMap<PartyId, PeerProblem>,
    /// Errors of a session raised on the sending side (e.g. a peer refused our message), so
    /// that a receive in that session fails at once instead of waiting for its timeout.
    session_errors: HashMap<String, String>,
}

/// Counters of what the inbox refused or dropped.
#[derive(Default)]
pub struct InboxCounters {
    /// Retransmitted messages dropped because they were already stored.
    pub duplicates: AtomicU64,
    /// Messages refused because their session was not admitted for their sender.
    pub not_admitted: AtomicU64,
    /// Messages refused because their sender had too many open sessions.
    pub session_limit: AtomicU64,
    /// Messages for closed sessions, acknowledged and dropped.
    pub late: AtomicU64,
}

pub struct Inbox {
    pub counters: InboxCounters,
    state: Mutex<State>,
    arrived: Condvar,
    space: Notify,
    limits: InboxLimits,
    /// When each peer was last heard from (its own lock: touched on every frame).
    heard: Mutex<HashMap<PartyId, Instant>>,
}

/// What to do with a message, decided from its first chunk and again when it is complete.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Reassemble and store it.
    Store,
    /// Its session is closed: acknowledge it and drop it.
    Drop,
    /// Refuse it with this reason.
    Refuse(Refusal, String),
}

/// What happened to a delivered message.
#[derive(Debug)]
pub enum Delivery {
    Stored,
    Duplicate,
    /// For a closed session: acknowledged, not kept.
    Dropped,
    Refused(Refusal, String),
}

/// Bytes of one incoming message reserved against its sender's cap; released when dropped
/// unless the message was stored (its bytes then belong to the mailbox until read).
pub struct Reservation {
    inbox: Arc<Inbox>,
    peer: PartyId,
    /// The incarnation of `peer` whose stream carries the message.
    incarnation: u64,
    bytes: usize,
}

impl Reservation {
    pub fn new(inbox: Arc<Inbox>, peer: PartyId, incarnation: u64) -> Self {
        Reservation {
            inbox,
            peer,
            incarnation,
            bytes: 0,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.inbox.release(&self.peer, self.bytes);
        }
    }
}

/// Whether `session` is `scope` or lies under it (`scope/...`).
pub fn in_scope(session: &str, scope: &str) -> bool {
    session
        .strip_prefix(scope)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Inbox {
    pub fn new(limits: InboxLimits) -> Self {
        Inbox {
            counters: InboxCounters::default(),
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            space: Notify::new(),
            limits,
            heard: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `session` or one of its parent scopes is admitted for every peer
    /// ([`crate::transport::SessionAdmission::Restricted`]'s `always`, the control session):
    /// such a session belongs to the node rather than to a job, and outlives a peer's
    /// restart. Under open admission no session does.
    pub fn outlives_restarts(&self, session: &str) -> bool {
        let Some(always) = &self.limits.always_admitted else {
            return false;
        };
        always.contains(session)
            || session
                .match_indices('/')
                .any(|(i, _)| always.contains(&session[..i]))
    }

    /// Records that a stream of `peer`'s instance `incarnation` opened. With `restarted`, that
    /// instance replaces an earlier one, which lost what it held: its sequence numbers are
    /// forgotten (the new instance numbers from 0), in the sessions that outlive restarts
    /// ([`Inbox::outlives_restarts`]) its unread messages stay, and every other session it sent
    /// in is freed and fails for local receivers with `reason(session)`. Returns those
    /// sessions.
    pub fn hello(
        &self,
        peer: &PartyId,
        incarnation: u64,
        restarted: bool,
        reason: impl Fn(&str) -> String,
    ) -> Vec<String> {
        let mut s = self.state.lock().expect("inbox lock");
        s.peers.entry(peer.clone()).or_default().incarnation = Some(incarnation);
        if !restarted {
            return Vec::new();
        }
        let sessions: Vec<String> = s
            .sessions
            .iter()
            .filter(|(_, st)| st.senders.contains_key(peer))
            .map(|(session, _)| session.clone())
            .collect();
        let mut ended = Vec::new();
        for session in sessions {
            if self.outlives_restarts(&session) {
                if let Some(sender) = s
                    .sessions
                    .get_mut(&session)
                    .and_then(|st| st.senders.get_mut(peer))
                {
                    sender.next_seq = 0;
                }
            } else {
                Self::drop_sender(&mut s, &session, peer);
                s.session_errors
                    .entry(session.clone())
                    .or_insert_with(|| reason(&session));
                ended.push(session);
            }
        }
        drop(s);
        self.arrived.notify_all();
        self.space.notify_waiters();
        ended
    }

    /// Whether `peer` may use `session`: the session or one of its parent scopes (`a` and
    /// `a/b` for `a/b/c`) is always admitted or admitted for the peer.
    fn admitted(&self, s: &State, peer: &PartyId, session: &str) -> bool {
        let Some(always) = &self.limits.always_admitted else {
            return true;
        };
        let scopes = s.peers.get(peer).map(|p| &p.admitted);
        let covered =
            |scope: &str| always.contains(scope) || scopes.is_some_and(|set| set.contains(scope));
        covered(session)
            || session
                .match_indices('/')
                .any(|(i, _)| covered(&session[..i]))
    }

    fn verdict_locked(&self, s: &mut State, peer: &PartyId, session: &str) -> Verdict {
        if s.closed
            .contains(session, Instant::now(), self.limits.closed_retention)
        {
            self.counters.late.fetch_add(1, Ordering::Relaxed);
            return Verdict::Drop;
        }
        if !self.admitted(s, peer, session) {
            self.counters.not_admitted.fetch_add(1, Ordering::Relaxed);
            let reason = format!(
                "session '{session}' is not open to party '{peer}' on this node (it is not a \
                 session of a job that party takes part in)"
            );
            self.warn_once(s, peer, session, &reason);
            return Verdict::Refuse(Refusal::NotAdmitted, reason);
        }
        let known = s
            .sessions
            .get(session)
            .is_some_and(|st| st.senders.contains_key(peer));
        let open = s.peers.get(peer).map_or(0, |p| p.sessions);
        if !known && open >= self.limits.max_sessions_per_peer {
            self.counters.session_limit.fetch_add(1, Ordering::Relaxed);
            let reason = format!(
                "party '{peer}' already has {open} open sessions on this node, its limit \
                 (max_sessions_per_peer); session '{session}' was refused"
            );
            self.warn_once(s, peer, session, &reason);
            return Verdict::Refuse(Refusal::TooManySessions, reason);
        }
        Verdict::Store
    }

    fn warn_once(&self, s: &mut State, peer: &PartyId, session: &str, reason: &str) {
        let p = s.peers.entry(peer.clone()).or_default();
        if p.warned.len() >= MAX_WARNED_SESSIONS_PER_PEER {
            p.warned.clear();
        }
        if p.warned.insert(session.to_string()) {
            tracing::warn!("refused messages from party '{peer}': {reason}");
        }
    }

    /// What to do with a message of `session` from `peer` (called on its first chunk, so a
    /// refused or dropped message is never reassembled).
    pub fn verdict(&self, peer: &PartyId, session: &str) -> Verdict {
        let mut s = self.state.lock().expect("inbox lock");
        self.verdict_locked(&mut s, peer, session)
    }

    /// Reserves `n` more bytes of `peer`'s cap for the message `reservation` belongs to,
    /// waiting while the peer holds too much (the caller is not reading its stream meanwhile).
    pub async fn reserve(&self, reservation: &mut Reservation, n: usize) {
        loop {
            let notified = self.space.notified();
            {
                let mut s = self.state.lock().expect("inbox lock");
                let p = s.peers.entry(reservation.peer.clone()).or_default();
                if p.held + n <= self.limits.max_peer_buffered_bytes {
                    p.held += n;
                    reservation.bytes += n;
                    return;
                }
            }
            notified.await;
        }
    }

    fn release(&self, peer: &PartyId, n: usize) {
        let mut s = self.state.lock().expect("inbox lock");
        if let Some(p) = s.peers.get_mut(peer) {
            p.held = p.held.saturating_sub(n);
        }
        drop(s);
        self.space.notify_waiters();
    }

    /// Stores a reassembled message from `peer`, waiting while its session's buffer is full.
    /// On success the reserved bytes move to the mailbox (they are released when read).
    pub async fn deliver(
        &self,
        peer: &PartyId,
        msg: Message,
        reservation: &mut Reservation,
    ) -> Delivery {
        loop {
            let notified = self.space.notified();
            {
                let mut s = self.state.lock().expect("inbox lock");
                let current = s.peers.get(peer).and_then(|p| p.incarnation);
                if current.is_some_and(|c| c != reservation.incarnation) {
                    return Delivery::Refused(
                        Refusal::Superseded,
                        format!(
                            "this stream of party '{peer}' belongs to an instance of it that has \
                             restarted since"
                        ),
                    );
                }
                match self.verdict_locked(&mut s, peer, &msg.session) {
                    Verdict::Store => {}
                    Verdict::Drop => return Delivery::Dropped,
                    Verdict::Refuse(kind, reason) => return Delivery::Refused(kind, reason),
                }
                let sender = s
                    .sessions
                    .get(&msg.session)
                    .and_then(|st| st.senders.get(peer))
                    .copied();
                let expected = sender.map_or(0, |st| st.next_seq);
                if msg.seq < expected {
                    self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
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
                let len = msg.data.len();
                let total = sender.map_or(0, |st| st.received) + len as u64;
                if total > self.limits.max_session_bytes {
                    return Delivery::Refused(
                        Refusal::SessionTooLarge,
                        format!(
                            "session {} exceeded the receiver's limit of {} bytes from party '{peer}'",
                            msg.session, self.limits.max_session_bytes
                        ),
                    );
                }
                let buffered = s.sessions.get(&msg.session).map_or(0, |st| st.buffered);
                // Always admit a message into an empty buffer, so one large message cannot wedge.
                if buffered == 0 || buffered + len <= self.limits.max_session_buffered_bytes {
                    let session = s.sessions.entry(msg.session.clone()).or_default();
                    session.buffered += len;
                    session.senders.insert(
                        peer.clone(),
                        SenderState {
                            next_seq: expected + 1,
                            received: total,
                        },
                    );
                    let p = s.peers.entry(peer.clone()).or_default();
                    if sender.is_none() {
                        p.sessions += 1;
                    }
                    // The reservation becomes mailbox bytes (it covers exactly this message;
                    // the adjustment only guards against a mismatch).
                    p.held = (p.held + len).saturating_sub(reservation.bytes);
                    reservation.bytes = 0;
                    s.mailboxes
                        .entry((msg.session, peer.clone(), msg.tag))
                        .or_default()
                        .push_back(msg.data);
                    self.arrived.notify_all();
                    return Delivery::Stored;
                }
            }
            notified.await;
        }
    }

    /// Takes the first message of mailbox `key` and accounts for it being read.
    fn take(&self, s: &mut State, key: &(String, PartyId, String)) -> Option<Vec<u8>> {
        let queue = s.mailboxes.get_mut(key)?;
        let msg = queue.pop_front()?;
        if queue.is_empty() {
            // Tags come and go within a session (`iter-7/gradient`); keep only live ones.
            s.mailboxes.remove(key);
        }
        if let Some(st) = s.sessions.get_mut(&key.0) {
            st.buffered = st.buffered.saturating_sub(msg.len());
        }
        if let Some(p) = s.peers.get_mut(&key.1) {
            p.held = p.held.saturating_sub(msg.len());
        }
        Some(msg)
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
            if let Some(msg) = self.take(&mut s, &key) {
                drop(s);
                self.space.notify_waiters();
                return Ok(msg);
            }
            match s.peer_problems.get(from) {
                Some(PeerProblem::Version { theirs, ours }) => {
                    return Err(FederationError::VersionMismatch {
                        peer: from.clone(),
                        theirs: *theirs,
                        ours: *ours,
                    });
                }
                Some(PeerProblem::Removed { reason }) => {
                    return Err(FederationError::PeerFailed {
                        peer: from.clone(),
                        reason: reason.clone(),
                    });
                }
                None => {}
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
            if let Some(key) = key
                && let Some(msg) = self.take(&mut s, &key)
            {
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

    /// Notes that something (a message, a chunk, an acknowledgement) just arrived from `peer`.
    pub fn heard_from(&self, peer: &PartyId) {
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        match heard.get_mut(peer) {
            Some(t) => *t = Instant::now(),
            None => {
                heard.insert(peer.clone(), Instant::now());
            }
        }
    }

    /// When something last arrived from `peer` (`None`: nothing since this transport started).
    pub fn last_heard(&self, peer: &PartyId) -> Option<Instant> {
        self.heard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(peer)
            .copied()
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

    /// Forgets what `peer` sent in `session`: its unread messages and its sequence state.
    fn drop_sender(s: &mut State, session: &str, peer: &PartyId) {
        let mut freed = 0;
        s.mailboxes.retain(|(sess, from, _), queue| {
            let hit = sess == session && from == peer;
            if hit {
                freed += queue.iter().map(Vec::len).sum::<usize>();
            }
            !hit
        });
        let mut had_state = false;
        if let Some(st) = s.sessions.get_mut(session) {
            st.buffered = st.buffered.saturating_sub(freed);
            had_state = st.senders.remove(peer).is_some();
            if st.senders.is_empty() && st.buffered == 0 {
                s.sessions.remove(session);
            }
        }
        if let Some(p) = s.peers.get_mut(peer) {
            p.held = p.held.saturating_sub(freed);
            if had_state {
                p.sessions = p.sessions.saturating_sub(1);
            }
        }
    }

    /// Frees a finished session's buffers and state; late messages for it are acknowledged
    /// and dropped while it is remembered as closed.
    pub fn close_session(&self, session: &str) {
        let mut s = self.state.lock().expect("inbox lock");
        let senders: Vec<PartyId> = s
            .mailboxes
            .keys()
            .filter(|(sess, _, _)| sess == session)
            .map(|(_, from, _)| from.clone())
            .chain(
                s.sessions
                    .get(session)
                    .into_iter()
                    .flat_map(|st| st.senders.keys().cloned()),
            )
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for peer in &senders {
            Self::drop_sender(&mut s, session, peer);
        }
        s.sessions.remove(session);
        s.session_errors.remove(session);
        s.closed.insert(
            session,
            Instant::now(),
            self.limits.closed_retention,
            self.limits.max_closed_sessions,
        );
        drop(s);
        self.space.notify_waiters();
    }

    /// Admits `scope` (a session and every session under it) for `peer`.
    pub fn admit(&self, peer: &PartyId, scope: &str) {
        let mut s = self.state.lock().expect("inbox lock");
        s.peers
            .entry(peer.clone())
            .or_default()
            .admitted
            .insert(scope.to_string());
    }

    /// Withdraws `scope` from `peer` and frees what it sent in sessions that are no longer
    /// admitted for it.
    pub fn revoke(&self, peer: &PartyId, scope: &str) {
        let mut s = self.state.lock().expect("inbox lock");
        if let Some(p) = s.peers.get_mut(peer) {
            p.admitted.remove(scope);
        }
        let sessions: HashSet<String> = s
            .mailboxes
            .keys()
            .filter(|(sess, from, _)| from == peer && in_scope(sess, scope))
            .map(|(sess, _, _)| sess.clone())
            .chain(
                s.sessions
                    .iter()
                    .filter(|(sess, st)| st.senders.contains_key(peer) && in_scope(sess, scope))
                    .map(|(sess, _)| sess.clone()),
            )
            .collect();
        for session in sessions {
            if !self.admitted(&s, peer, &session) {
                Self::drop_sender(&mut s, &session, peer);
            }
        }
        drop(s);
        // Frees bytes, and a stream waiting to store a message of a revoked session refuses it.
        self.space.notify_waiters();
    }

    pub fn is_admitted(&self, peer: &PartyId, session: &str) -> bool {
        let s = self.state.lock().expect("inbox lock");
        self.admitted(&s, peer, session)
    }

    /// Bytes `peer` makes this node hold: unread messages plus messages in reassembly.
    pub fn held_from(&self, peer: &PartyId) -> usize {
        let s = self.state.lock().expect("inbox lock");
        s.peers.get(peer).map_or(0, |p| p.held)
    }

    /// Sessions `peer` has open on this node.
    pub fn sessions_from(&self, peer: &PartyId) -> usize {
        let s = self.state.lock().expect("inbox lock");
        s.peers.get(peer).map_or(0, |p| p.sessions)
    }

    /// Closed sessions currently remembered.
    pub fn closed_remembered(&self) -> usize {
        self.state.lock().expect("inbox lock").closed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> InboxLimits {
        InboxLimits {
            max_session_buffered_bytes: 1 << 20,
            max_session_bytes: 1 << 30,
            max_peer_buffered_bytes: 1000,
            max_sessions_per_peer: 3,
            closed_retention: Duration::from_secs(3600),
            max_closed_sessions: 100,
            always_admitted: None,
        }
    }

    fn party(name: &str) -> PartyId {
        PartyId::new(name).unwrap()
    }

    fn msg(session: &str, seq: u64, len: usize) -> Message {
        Message {
            session: session.into(),
            tag: "t".into(),
            seq,
            data: vec![seq as u8; len],
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Delivers a message the way a receiving stream does: judge it, reserve, then store.
    fn deliver(inbox: &Arc<Inbox>, peer: &PartyId, m: Message) -> Delivery {
        block_on(async {
            match inbox.verdict(peer, &m.session) {
                Verdict::Refuse(kind, reason) => Delivery::Refused(kind, reason),
                Verdict::Drop => Delivery::Dropped,
                Verdict::Store => {
                    let mut r = Reservation::new(inbox.clone(), peer.clone(), 1);
                    inbox.reserve(&mut r, m.data.len()).await;
                    inbox.deliver(peer, m, &mut r).await
                }
            }
        })
    }

    #[test]
    fn scopes_cover_their_sessions_and_nothing_else() {
        assert!(in_scope("job-1", "job-1"));
        assert!(in_scope("job-1/train", "job-1"));
        assert!(in_scope("job-1/train/x", "job-1/train"));
        assert!(!in_scope("job-10/train", "job-1"));
        assert!(!in_scope("job", "job-1"));

        let inbox = Inbox::new(InboxLimits {
            always_admitted: Some(HashSet::from(["ferry-control".to_string()])),
            ..limits()
        });
        let (bank, telco) = (party("bank"), party("telco"));
        inbox.admit(&bank, "job-1");
        assert!(inbox.is_admitted(&bank, "job-1/train"));
        assert!(inbox.is_admitted(&bank, "job-1"));
        assert!(!inbox.is_admitted(&bank, "job-10/train"));
        assert!(!inbox.is_admitted(&bank, "job-2/train"));
        // Admission is per peer; the control session is open to everyone.
        assert!(!inbox.is_admitted(&telco, "job-1/train"));
        assert!(inbox.is_admitted(&telco, "ferry-control"));
        assert!(!inbox.is_admitted(&telco, "ferry-control-2"));
        // Without a restriction everything is admitted, as before admission existed.
        assert!(Inbox::new(limits()).is_admitted(&telco, "anything/at-all"));
    }

    #[test]
    fn a_non_admitted_session_is_refused_and_keeps_nothing() {
        let inbox = Arc::new(Inbox::new(InboxLimits {
            always_admitted: Some(HashSet::new()),
            ..limits()
        }));
        let bank = party("bank");
        match deliver(&inbox, &bank, msg("job-9/t", 0, 100)) {
            Delivery::Refused(Refusal::NotAdmitted, reason) => {
                assert!(
                    reason.contains("'bank'") && reason.contains("job-9/t"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(inbox.held_from(&bank), 0);
        assert_eq!(inbox.sessions_from(&bank), 0);
        assert_eq!(inbox.counters.not_admitted.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_session_count_is_capped_per_peer_and_freed_by_close() {
        let inbox = Arc::new(Inbox::new(limits()));
        let (bank, telco) = (party("bank"), party("telco"));
        for i in 0..3 {
            assert!(matches!(
                deliver(&inbox, &bank, msg(&format!("s{i}"), 0, 1)),
                Delivery::Stored
            ));
        }
        match deliver(&inbox, &bank, msg("s3", 0, 1)) {
            Delivery::Refused(Refusal::TooManySessions, reason) => assert!(
                reason.contains("'bank'") && reason.contains("max_sessions_per_peer"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        // A known session still takes messages; another peer has its own count.
        assert!(matches!(
            deliver(&inbox, &bank, msg("s0", 1, 1)),
            Delivery::Stored
        ));
        assert!(matches!(
            deliver(&inbox, &telco, msg("s3", 0, 1)),
            Delivery::Stored
        ));
        assert_eq!(inbox.sessions_from(&bank), 3);
        inbox.close_session("s1");
        assert_eq!(inbox.sessions_from(&bank), 2);
        assert!(matches!(
            deliver(&inbox, &bank, msg("s3", 0, 1)),
            Delivery::Stored
        ));
    }

    #[test]
    fn a_peer_at_its_byte_cap_waits_until_its_messages_are_read() {
        let inbox = Arc::new(Inbox::new(limits()));
        let bank = party("bank");
        for seq in 0..2 {
            assert!(matches!(
                deliver(&inbox, &bank, msg("s", seq, 400)),
                Delivery::Stored
            ));
        }
        assert_eq!(inbox.held_from(&bank), 800);
        // 400 more would pass the 1000-byte cap: the reservation waits.
        let waiting = {
            let inbox = inbox.clone();
            let bank = bank.clone();
            std::thread::spawn(move || deliver(&inbox, &bank, msg("s", 2, 400)))
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!waiting.is_finished(), "the third message must wait");
        assert_eq!(inbox.held_from(&bank), 800);
        let first = inbox.recv("s", &bank, "t", Duration::from_secs(1)).unwrap();
        assert_eq!(first, vec![0u8; 400]);
        assert!(matches!(waiting.join().unwrap(), Delivery::Stored));
        assert_eq!(inbox.held_from(&bank), 800);
    }

    #[test]
    fn revoking_frees_what_the_peer_sent_in_sessions_no_longer_admitted() {
        let inbox = Arc::new(Inbox::new(InboxLimits {
            always_admitted: Some(HashSet::from(["ferry-control".to_string()])),
            ..limits()
        }));
        let (bank, telco) = (party("bank"), party("telco"));
        inbox.admit(&bank, "job-1");
        inbox.admit(&bank, "job-2");
        inbox.admit(&telco, "job-1");
        for (peer, session) in [
            (&bank, "job-1/a"),
            (&bank, "job-2/a"),
            (&bank, "ferry-control"),
            (&telco, "job-1/a"),
        ] {
            assert!(matches!(
                deliver(&inbox, peer, msg(session, 0, 100)),
                Delivery::Stored
            ));
        }
        assert_eq!(
            (inbox.held_from(&bank), inbox.sessions_from(&bank)),
            (300, 3)
        );
        inbox.revoke(&bank, "job-1");
        assert_eq!(
            (inbox.held_from(&bank), inbox.sessions_from(&bank)),
            (200, 2)
        );
        // telco's messages in the same session stay, and so do bank's other sessions.
        assert_eq!(inbox.held_from(&telco), 100);
        assert!(inbox.recv("job-1/a", &telco, "t", Duration::ZERO).is_ok());
        assert!(inbox.recv("job-2/a", &bank, "t", Duration::ZERO).is_ok());
        assert!(matches!(
            deliver(&inbox, &bank, msg("job-1/a", 1, 1)),
            Delivery::Refused(Refusal::NotAdmitted, _)
        ));
    }

    #[test]
    fn late_messages_for_a_closed_session_are_acknowledged_not_kept() {
        let inbox = Arc::new(Inbox::new(limits()));
        let bank = party("bank");
        assert!(matches!(
            deliver(&inbox, &bank, msg("s", 0, 100)),
            Delivery::Stored
        ));
        inbox.close_session("s");
        assert_eq!((inbox.held_from(&bank), inbox.sessions_from(&bank)), (0, 0));
        // A resent message 0 (its acknowledgement was lost) and an abort notice after the end.
        for seq in [0, 1] {
            assert!(matches!(
                deliver(&inbox, &bank, msg("s", seq, 100)),
                Delivery::Dropped
            ));
        }
        assert_eq!((inbox.held_from(&bank), inbox.sessions_from(&bank)), (0, 0));
        assert_eq!(inbox.counters.late.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_restarted_peer_numbers_from_zero_and_its_job_sessions_fail() {
        let inbox = Arc::new(Inbox::new(InboxLimits {
            always_admitted: Some(HashSet::from(["ferry-control".to_string()])),
            ..limits()
        }));
        let bank = party("bank");
        inbox.admit(&bank, "job-1");
        inbox.hello(&bank, 1, false, |_| unreachable!());
        let store = |inbox: &Arc<Inbox>, incarnation: u64, m: Message| {
            block_on(async {
                let mut r = Reservation::new(inbox.clone(), bank.clone(), incarnation);
                inbox.reserve(&mut r, m.data.len()).await;
                inbox.deliver(&bank, m, &mut r).await
            })
        };
        for seq in 0..3 {
            for session in ["ferry-control", "job-1/t"] {
                assert!(matches!(
                    store(&inbox, 1, msg(session, seq, 10)),
                    Delivery::Stored
                ));
            }
        }
        assert_eq!(inbox.held_from(&bank), 60);
        let ended = inbox.hello(&bank, 2, true, |s| format!("bank restarted ({s})"));
        assert_eq!(ended, vec!["job-1/t".to_string()]);
        // The control session keeps its unread messages; the job session is freed and fails.
        assert_eq!(
            (inbox.held_from(&bank), inbox.sessions_from(&bank)),
            (30, 1)
        );
        let e = inbox
            .recv("job-1/t", &bank, "t", Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bank restarted (job-1/t)"), "{e}");
        // The new instance numbers from 0; its message 0 is not taken for a duplicate.
        assert!(matches!(
            store(&inbox, 2, msg("ferry-control", 0, 10)),
            Delivery::Stored
        ));
        for expected in [0u8, 1, 2, 0] {
            let got = inbox
                .recv("ferry-control", &bank, "t", Duration::ZERO)
                .unwrap();
            assert_eq!(got, vec![expected; 10]);
        }
        // A late message on a stream of the old instance is refused.
        assert!(matches!(
            store(&inbox, 1, msg("ferry-control", 1, 10)),
            Delivery::Refused(Refusal::Superseded, _)
        ));
        assert_eq!(inbox.held_from(&bank), 0);
    }

    #[test]
    fn the_closed_session_set_stays_bounded() {
        // By count: the oldest are forgotten first.
        let inbox = Arc::new(Inbox::new(limits()));
        let bank = party("bank");
        for i in 0..10_000 {
            inbox.close_session(&format!("job-{i}/t"));
        }
        assert_eq!(inbox.closed_remembered(), 100);
        assert!(matches!(
            deliver(&inbox, &bank, msg("job-9999/t", 3, 1)),
            Delivery::Dropped
        ));
        assert!(matches!(
            deliver(&inbox, &bank, msg("job-0/t", 3, 1)),
            Delivery::Refused(Refusal::Malformed, _)
        ));

        // By age, with explicit instants (no sleeping).
        let retention = Duration::from_secs(60);
        let mut closed = ClosedSessions::default();
        let t0 = Instant::now();
        closed.insert("a", t0, retention, 100);
        closed.insert("b", t0 + Duration::from_secs(30), retention, 100);
        closed.insert("a", t0 + Duration::from_secs(40), retention, 100);
        assert_eq!(closed.len(), 2);
        assert!(closed.contains("a", t0 + Duration::from_secs(59), retention));
        assert!(!closed.contains("a", t0 + Duration::from_secs(60), retention));
        closed.insert("c", t0 + Duration::from_secs(61), retention, 100);
        assert_eq!(closed.len(), 2, "a expired when c was closed");
        closed.prune(t0 + Duration::from_secs(200), retention, 100);
        assert_eq!(closed.len(), 0);
    }
}
