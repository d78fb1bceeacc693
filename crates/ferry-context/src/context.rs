//! [`Context`]: everything a protocol may know about the federation, and nothing more.

use crate::error::FederationError;
use crate::observer::{NoopObserver, Observer};
use crate::party::{PartyId, Role, Roster};
use crate::record::{Counters, CountersSnapshot, Direction, Transcript};
use crate::transport::Transport;
use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a waiting receive checks whether its session was cancelled: the longest a
/// cancelled party keeps waiting. Short enough to feel immediate, long enough to cost nothing.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// The tag of [`Context::abort`]'s notice. The leading NUL keeps it apart from every protocol
/// tag (tags are written by protocols and never start with one).
const ABORT_TAG: &str = "\u{0}abort";

/// How long [`Context::abort`] waits for its notices to be delivered.
const ABORT_DELIVERY: Duration = Duration::from_secs(1);

/// Limits and timeouts of a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// How long `recv` waits for one message before failing with [`FederationError::Timeout`].
    pub timeout: Duration,
    /// Largest single message (after serialisation) a party sends or accepts.
    pub max_message_bytes: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            timeout: Duration::from_secs(600),
            max_message_bytes: 1 << 30,
        }
    }
}

struct Shared {
    me: PartyId,
    role: Role,
    roster: Roster,
    session: String,
    transport: Arc<dyn Transport>,
    config: SessionConfig,
    transcript: Option<Arc<Transcript>>,
    counters: Arc<Counters>,
    observer: Arc<dyn Observer>,
    cancelled: Arc<AtomicBool>,
    /// The peer whose abort notice arrived (see [`Context::abort`]).
    aborted_by: std::sync::Mutex<Option<PartyId>>,
}

/// A party's view of one federated session (a task of a job).
///
/// Protocols receive a `Context` and use only it: who am I, who else is there, send and receive
/// typed messages by tag. The same protocol code runs over the in-memory backend in tests and
/// over mutually authenticated TLS between nodes.
///
/// Tags are namespaced: [`Context::sub`] returns a context whose tags are prefixed (`tree-3/…`),
/// so loops can reuse tag names per iteration without colliding.
#[derive(Clone)]
pub struct Context {
    shared: Arc<Shared>,
    namespace: String,
}

/// Builds a [`Context`].
pub struct ContextBuilder {
    me: PartyId,
    roster: Roster,
    session: String,
    transport: Arc<dyn Transport>,
    config: SessionConfig,
    transcript: Option<Arc<Transcript>>,
    observer: Arc<dyn Observer>,
    cancelled: Arc<AtomicBool>,
}

impl ContextBuilder {
    pub fn config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// Records every message sent and received (with payloads when `transcript` captures them).
    pub fn transcript(mut self, transcript: Arc<Transcript>) -> Self {
        self.transcript = Some(transcript);
        self
    }

    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// A flag that, once set, makes every further send/receive fail with `Cancelled`.
    pub fn cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancelled = flag;
        self
    }

    pub fn build(self) -> Result<Context, FederationError> {
        let role = self
            .roster
            .role_of(&self.me)
            .ok_or_else(|| FederationError::UnknownParty(self.me.clone()))?;
        Ok(Context {
            shared: Arc::new(Shared {
                me: self.me,
                role,
                roster: self.roster,
                session: self.session,
                transport: self.transport,
                config: self.config,
                transcript: self.transcript,
                counters: Arc::new(Counters::default()),
                observer: self.observer,
                cancelled: self.cancelled,
                aborted_by: std::sync::Mutex::new(None),
            }),
            namespace: String::new(),
        })
    }
}

fn codec(limit: usize) -> impl Options {
    bincode::DefaultOptions::new().with_limit(limit as u64)
}

impl Context {
    pub fn builder(
        me: PartyId,
        roster: Roster,
        session: impl Into<String>,
        transport: Arc<dyn Transport>,
    ) -> ContextBuilder {
        ContextBuilder {
            me,
            roster,
            session: session.into(),
            transport,
            config: SessionConfig::default(),
            transcript: None,
            observer: Arc::new(NoopObserver),
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn me(&self) -> &PartyId {
        &self.shared.me
    }

    pub fn role(&self) -> Role {
        self.shared.role
    }

    pub fn roster(&self) -> &Roster {
        &self.shared.roster
    }

    pub fn session(&self) -> &str {
        &self.shared.session
    }

    pub fn config(&self) -> &SessionConfig {
        &self.shared.config
    }

    /// The guest, or an error naming the missing role.
    pub fn guest(&self) -> Result<PartyId, FederationError> {
        self.shared
            .roster
            .guest()
            .ok_or(FederationError::MissingRole(Role::Guest))
    }

    pub fn arbiter(&self) -> Result<PartyId, FederationError> {
        self.shared
            .roster
            .arbiter()
            .ok_or(FederationError::MissingRole(Role::Arbiter))
    }

    pub fn has_arbiter(&self) -> bool {
        self.shared.roster.arbiter().is_some()
    }

    /// Hosts in roster order.
    pub fn hosts(&self) -> Vec<PartyId> {
        self.shared.roster.hosts()
    }

    /// Every party except this one, in roster order.
    pub fn others(&self) -> Vec<PartyId> {
        self.shared
            .roster
            .parties()
            .filter(|(p, _)| *p != &self.shared.me)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Fails unless this party plays `role`.
    pub fn require_role(&self, role: Role) -> Result<(), FederationError> {
        if self.shared.role == role {
            Ok(())
        } else {
            Err(FederationError::WrongRole {
                party: self.shared.me.clone(),
                needed: role,
                actual: self.shared.role,
            })
        }
    }

    /// A context whose tags live under `name/` (per iteration, per tree, per node...).
    pub fn sub(&self, name: impl std::fmt::Display) -> Context {
        let namespace = if self.namespace.is_empty() {
            format!("{name}")
        } else {
            format!("{}/{name}", self.namespace)
        };
        Context {
            shared: self.shared.clone(),
            namespace,
        }
    }

    fn full_tag(&self, tag: &str) -> String {
        if self.namespace.is_empty() {
            tag.to_string()
        } else {
            format!("{}/{tag}", self.namespace)
        }
    }

    fn check_peer(&self, peer: &PartyId) -> Result<(), FederationError> {
        if self.shared.roster.role_of(peer).is_none() || *peer == self.shared.me {
            return Err(FederationError::UnknownParty(peer.clone()));
        }
        self.check_cancelled()
    }

    /// Tells every other party of the session that this party stopped with an error, so a
    /// peer waiting on a receive fails within [`CANCEL_POLL`] naming this party instead of
    /// waiting out its timeout. The notice carries no reason: why a party failed may concern
    /// its own data, which stays with it. Best effort: waits briefly for delivery.
    pub fn abort(&self) {
        // The peer that aborted first is gone: no notice back (it would only wait for
        // delivery to a party that left).
        let gone = self.shared.aborted_by.lock().expect("abort lock").clone();
        for (peer, _) in self.shared.roster.parties() {
            if *peer != self.shared.me && Some(peer) != gone.as_ref() {
                let _ =
                    self.shared
                        .transport
                        .send(&self.shared.session, peer, ABORT_TAG, Vec::new());
            }
        }
        let _ = self
            .shared
            .transport
            .flush(&self.shared.session, ABORT_DELIVERY);
    }

    /// Fails with `PeerFailed` once a peer's abort notice has arrived.
    fn check_aborted(&self) -> Result<(), FederationError> {
        let mut aborted = self.shared.aborted_by.lock().expect("abort lock");
        if aborted.is_none() {
            for (peer, _) in self.shared.roster.parties() {
                if *peer != self.shared.me
                    && self
                        .shared
                        .transport
                        .recv(&self.shared.session, peer, ABORT_TAG, Duration::ZERO)
                        .is_ok()
                {
                    *aborted = Some(peer.clone());
                    break;
                }
            }
        }
        match &*aborted {
            Some(peer) => Err(FederationError::PeerFailed {
                peer: peer.clone(),
                reason: "it stopped with an error (the reason is in its own log)".into(),
            }),
            None => Ok(()),
        }
    }

    /// Fails with `Cancelled` once the session was cancelled; long loops call this between steps.
    pub fn check_cancelled(&self) -> Result<(), FederationError> {
        if self.shared.cancelled.load(Ordering::Relaxed) {
            Err(FederationError::Cancelled(self.shared.session.clone()))
        } else {
            Ok(())
        }
    }

    fn encode<T: Serialize + ?Sized>(
        &self,
        to: &PartyId,
        tag: &str,
        value: &T,
    ) -> Result<Vec<u8>, FederationError> {
        let limit = self.shared.config.max_message_bytes;
        codec(limit).serialize(value).map_err(|e| match *e {
            bincode::ErrorKind::SizeLimit => {
                let size = bincode::DefaultOptions::new()
                    .serialized_size(value)
                    .unwrap_or(u64::MAX) as usize;
                FederationError::MessageTooLarge {
                    peer: to.clone(),
                    tag: tag.to_string(),
                    size,
                    limit,
                }
            }
            other => FederationError::Encode {
                peer: to.clone(),
                tag: tag.to_string(),
                reason: other.to_string(),
            },
        })
    }

    fn send_bytes(
        &self,
        to: &PartyId,
        full_tag: &str,
        bytes: Vec<u8>,
        type_name: &'static str,
    ) -> Result<(), FederationError> {
        let len = bytes.len();
        if let Some(t) = &self.shared.transcript {
            t.record(Direction::Sent, to, full_tag, type_name, &bytes);
        }
        self.shared
            .transport
            .send(&self.shared.session, to, full_tag, bytes)?;
        self.shared.counters.add(to, Direction::Sent, len);
        Ok(())
    }

    /// Sends `value` to `to` under `tag`.
    pub fn send<T: Serialize + ?Sized>(
        &self,
        to: &PartyId,
        tag: &str,
        value: &T,
    ) -> Result<(), FederationError> {
        self.check_peer(to)?;
        let full_tag = self.full_tag(tag);
        let bytes = self.encode(to, &full_tag, value)?;
        self.send_bytes(to, &full_tag, bytes, std::any::type_name::<T>())
    }

    /// Receives the next `tag` message from `from`, waiting up to the session timeout.
    pub fn recv<T: DeserializeOwned>(
        &self,
        from: &PartyId,
        tag: &str,
    ) -> Result<T, FederationError> {
        self.recv_within(from, tag, self.shared.config.timeout)
    }

    /// Like [`Context::recv`], but waits at most `timeout` instead of the session timeout
    /// (shorter or longer). For protocols that give a step its own deadline, e.g. a server that
    /// declares a client dropped when a stage's messages are late. A message that has already
    /// arrived is returned even with a zero timeout. A late message is not discarded: it stays
    /// queued for the next receive of the same tag from the same peer.
    pub fn recv_timeout<T: DeserializeOwned>(
        &self,
        from: &PartyId,
        tag: &str,
        timeout: Duration,
    ) -> Result<T, FederationError> {
        self.recv_within(from, tag, timeout)
    }

    /// The one receive path: peer and cancellation checks, size limit, counters, transcript,
    /// bounded decoding.
    fn recv_within<T: DeserializeOwned>(
        &self,
        from: &PartyId,
        tag: &str,
        timeout: Duration,
    ) -> Result<T, FederationError> {
        self.check_peer(from)?;
        let full_tag = self.full_tag(tag);
        // Wait in slices so a cancelled session (a partner failed, a user cancelled the job)
        // stops a waiting party within one slice instead of after the whole timeout.
        let deadline = Instant::now() + timeout;
        let bytes = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.shared.transport.recv(
                &self.shared.session,
                from,
                &full_tag,
                left.min(CANCEL_POLL),
            ) {
                Ok(bytes) => break bytes,
                Err(FederationError::Timeout { .. }) if left > CANCEL_POLL => {
                    self.check_cancelled()?;
                    self.check_aborted()?;
                }
                Err(FederationError::Timeout {
                    peer, tag, session, ..
                }) => {
                    return Err(FederationError::Timeout {
                        peer,
                        tag,
                        session,
                        timeout,
                    });
                }
                Err(e) => return Err(e),
            }
        };
        let limit = self.shared.config.max_message_bytes;
        if bytes.len() > limit {
            return Err(FederationError::MessageTooLarge {
                peer: from.clone(),
                tag: full_tag,
                size: bytes.len(),
                limit,
            });
        }
        self.shared
            .counters
            .add(from, Direction::Received, bytes.len());
        if let Some(t) = &self.shared.transcript {
            t.record(
                Direction::Received,
                from,
                &full_tag,
                std::any::type_name::<T>(),
                &bytes,
            );
        }
        codec(limit)
            .deserialize(&bytes)
            .map_err(|e| FederationError::Decode {
                peer: from.clone(),
                tag: full_tag,
                expected: std::any::type_name::<T>(),
                reason: e.to_string(),
            })
    }

    /// Sends the same value to several parties (serialised once).
    pub fn broadcast<T: Serialize + ?Sized>(
        &self,
        to: &[PartyId],
        tag: &str,
        value: &T,
    ) -> Result<(), FederationError> {
        let full_tag = self.full_tag(tag);
        let Some(first) = to.first() else {
            return Ok(());
        };
        let bytes = self.encode(first, &full_tag, value)?;
        for peer in to {
            self.check_peer(peer)?;
            self.send_bytes(peer, &full_tag, bytes.clone(), std::any::type_name::<T>())?;
        }
        Ok(())
    }

    /// Receives one `tag` message from each of `from`, in that order.
    pub fn gather<T: DeserializeOwned>(
        &self,
        from: &[PartyId],
        tag: &str,
    ) -> Result<Vec<T>, FederationError> {
        from.iter().map(|p| self.recv(p, tag)).collect()
    }

    /// Waits until everything this party sent has been delivered (a no-op in memory).
    pub fn flush(&self) -> Result<(), FederationError> {
        self.shared
            .transport
            .flush(&self.shared.session, self.shared.config.timeout)
    }

    /// Bytes and messages exchanged so far in this session, per peer.
    pub fn counters(&self) -> CountersSnapshot {
        self.shared.counters.snapshot()
    }

    pub fn transcript(&self) -> Option<&Arc<Transcript>> {
        self.shared.transcript.as_ref()
    }

    /// Reports progress in `[0, 1]` of the running task.
    pub fn progress(&self, fraction: f64, message: &str) {
        self.shared
            .observer
            .progress(fraction.clamp(0.0, 1.0), message);
    }

    /// Reports a metric value at a step (e.g. loss per iteration).
    pub fn metric(&self, name: &str, step: u64, value: f64) {
        self.shared.observer.metric(name, step, value);
    }

    /// Writes a line to the task's log.
    pub fn log(&self, message: &str) {
        self.shared.observer.log(message);
    }
}
