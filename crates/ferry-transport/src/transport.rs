//! [`FederationTransport`]: a node's endpoint into the federation, implementing
//! [`ferry_context::Transport`] over gRPC with mutual TLS.
//!
//! # Sending
//! Each peer has one outgoing *link*: a queue of messages not yet acknowledged and a task that
//! keeps one bidirectional `Exchange` stream open to the peer. Messages are numbered per
//! (session, receiver), split into chunks, written in order, and removed from the queue when
//! the receiver acknowledges that the whole message is stored. If the connection drops (the
//! peer restarts its listener, a reset), the task reconnects with backoff and resends every
//! unacknowledged message; the receiver drops duplicates by sequence number. A link that
//! cannot deliver for longer than the delivery timeout fails the affected sessions with an
//! error naming the peer.
//!
//! Backpressure: `send` blocks while the link holds more than `max_outbox_bytes` of
//! unacknowledged data; the receiver stops reading while the session's unread buffer or the
//! sending peer's buffer cap is full, and HTTP/2 flow control carries that back to the sender.
//!
//! # A peer restarts
//! Sequence numbers, acknowledgements and de-duplication state live in memory, so a peer that
//! restarts (its process, not just its listener) starts from nothing. Each transport draws a
//! random *incarnation* when it starts and both ends say theirs when a stream opens (see
//! [`crate::wire`]); a peer that answers, or connects, with a new incarnation has restarted.
//! This node then, before any frame is exchanged with the new instance:
//! * ends every session it sent in to the old instance, except the sessions that outlive
//!   restarts (those admitted for every peer, i.e. the node's control session): their
//!   unacknowledged messages are not sent to the new instance, and `send`, `flush` and `recv`
//!   in them fail with "party 'P' failed: it restarted, and session S of its previous instance
//!   is gone" until the session is closed;
//! * in a session that outlives restarts, drops the messages that may have reached the old
//!   instance — written to it and not acknowledged, unless its stream ended cleanly, which
//!   means it stored nothing more — (the next `flush` of the session reports it once, and a
//!   warning is logged), and sends the others to the new instance, numbered from 0 again;
//! * forgets the old instance's sequence numbers on the receiving side: in a session that
//!   outlives restarts the new instance numbers from 0 and unread messages stay; every other
//!   session the old instance sent in is freed and its receives fail with the restart.
//!
//! A stream from an instance that has been replaced is refused. A reconnect to the same
//! instance (a dropped connection, a listener restart) changes nothing of this: unacknowledged
//! messages are resent and duplicates dropped as above.
//!
//! # Receiving
//! What a peer can make this node hold is bounded per peer (bytes buffered, open sessions) and
//! per session; under [`SessionAdmission::Restricted`] only sessions admitted for the peer are
//! buffered at all. See the module docs of `inbox.rs` for the rules, and the `DEFAULT_*`
//! constants below for the limits and why they are what they are.

use crate::error::TransportError;
use crate::identity::Identity;
use crate::inbox::{Inbox, InboxLimits};
use crate::service::{FederationServer, HelloHook, serve};
use crate::tls::{PinStore, client_config, server_config};
use crate::wire::{
    Ack, EXCHANGE_PATH, Frame, FrameLimits, INCARNATION_HEADER, Refusal, VERSION_HEADER,
    chunk_message, format_incarnation, parse_incarnation,
};
use bytes::Bytes;
use ferry_context::{FederationError, PartyId, Transport};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;

/// Largest message a peer may send (`max_message_bytes`). Protocols split bulk data into
/// messages far below this (PSI chunks stay under 64 MiB, SecureBoost sends 1024 ciphertexts,
/// about 0.5 MiB, per gradient message); 256 MiB leaves room for a large model or histogram
/// while making one message a bounded fraction of a peer's buffer cap.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 256 << 20;

/// Most bytes one peer may send into one session (`max_session_bytes`). This bounds the
/// volume of a session, not memory (receivers consume as data arrives; memory is bounded by
/// [`DEFAULT_MAX_PEER_BUFFERED_BYTES`]). SecureBoost moves about 0.5 KiB per row and tree from
/// guest to host (156.5 MB for 30,000 rows and 10 trees), so a 1M-row, 30-tree job moves about
/// 15 GiB in one session: 16 GiB admits that, where a few GiB would refuse real jobs.
pub const DEFAULT_MAX_SESSION_BYTES: u64 = 16 << 30;

/// Unread bytes one session may hold before the receiver stops reading its sender's stream
/// (`max_buffered_bytes`). A receiver consumes while the sender produces, so little is unread
/// at once; 256 MiB lets a sender run well ahead (the HTTP/2 windows are 8-16 MiB) and a
/// single message is always admitted into an empty session whatever its size.
pub const DEFAULT_MAX_SESSION_BUFFERED_BYTES: usize = 256 << 20;

/// Bytes one peer may make this node hold at once, over all its sessions: unread messages plus
/// the message being reassembled (`max_peer_buffered_bytes`). Sessions move hundreds of MB but
/// buffer far less because receivers consume; 1 GiB is four largest messages or several
/// concurrent jobs' worth of read-ahead, and bounds what a misbehaving partner can pin here to
/// 1 GiB (plus the in-flight HTTP/2 windows) however many sessions it opens. Must be at least
/// `max_message_bytes`, or a largest message could never be received.
pub const DEFAULT_MAX_PEER_BUFFERED_BYTES: usize = 1 << 30;

/// Sessions one peer may have open on this node at once (`max_sessions_per_peer`). A node runs
/// one session per task of a job, so a partner's open sessions are about its concurrent jobs
/// with this node, plus the control session and the next task of a job whose partner moved
/// ahead. 128 leaves room for dozens of concurrent jobs and bounds the per-session bookkeeping
/// (names up to 1 KiB each) a partner can create.
pub const DEFAULT_MAX_SESSIONS_PER_PEER: usize = 128;

/// How long a closed session is remembered, so late messages for it are acknowledged and
/// dropped (`closed_session_retention`). A sender stops resending after its delivery timeout
/// (10 minutes by default) and a closed session acknowledges stragglers at once, so an hour
/// covers every straggler; see the inbox's `ClosedSessions` for why forgetting is safe.
pub const DEFAULT_CLOSED_SESSION_RETENTION: Duration = Duration::from_secs(3600);

/// Most closed sessions remembered at once (`max_closed_sessions`), oldest forgotten first: a
/// busy node closing a session per task every second stays within it for the retention
/// window, and it bounds the set to a few MiB even with 1 KiB session names.
pub const DEFAULT_MAX_CLOSED_SESSIONS: usize = 4096;

/// Earlier incarnations of a peer remembered, so that streams of an instance a newer one
/// replaced are refused (a process hung while its successor started). A peer restarting this
/// often within one run of this node is already far from healthy.
const MAX_RETIRED_INCARNATIONS: usize = 16;

/// Which sessions peers may send to (see [`FederationTransport::admit_session`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SessionAdmission {
    /// Every session of every pinned peer is buffered: for protocol tests, benchmarks and
    /// `ferry run-party`, where the session is agreed out of band.
    #[default]
    Open,
    /// A peer's message is buffered only if its session lies in a scope admitted for that
    /// peer with [`FederationTransport::admit_session`], or in one of these scopes, which are
    /// admitted for every pinned peer (a node passes its control session). Other messages are
    /// refused at their first chunk ([`crate::wire::Refusal::NotAdmitted`]).
    Restricted { always: Vec<String> },
}

/// Settings of a [`FederationTransport`].
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub party: PartyId,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    pub identity: Identity,
    /// Pinned peers: name, `host:port`, DER certificate.
    pub peers: Vec<(PartyId, String, Vec<u8>)>,
    /// Certificates being rotated out: accepted for their party next to its pinned one until
    /// the time given (the overlap of a rotation that began before this start).
    pub previous_peer_certs: Vec<(PartyId, Vec<u8>, std::time::SystemTime)>,
    /// Largest message accepted from (and sent to) a peer ([`DEFAULT_MAX_MESSAGE_BYTES`]).
    pub max_message_bytes: u64,
    /// Most bytes one peer may send into one session ([`DEFAULT_MAX_SESSION_BYTES`]).
    pub max_session_bytes: u64,
    /// Unread bytes a session may buffer before the receiver stops reading
    /// ([`DEFAULT_MAX_SESSION_BUFFERED_BYTES`]).
    pub max_buffered_bytes: usize,
    /// Bytes one peer may make this node hold at once, over all its sessions
    /// ([`DEFAULT_MAX_PEER_BUFFERED_BYTES`]); at least `max_message_bytes`.
    pub max_peer_buffered_bytes: usize,
    /// Sessions one peer may have open on this node ([`DEFAULT_MAX_SESSIONS_PER_PEER`]).
    pub max_sessions_per_peer: usize,
    /// Which sessions peers may send to (default: all).
    pub session_admission: SessionAdmission,
    /// How long closed sessions are remembered ([`DEFAULT_CLOSED_SESSION_RETENTION`]).
    pub closed_session_retention: Duration,
    /// Most closed sessions remembered ([`DEFAULT_MAX_CLOSED_SESSIONS`]).
    pub max_closed_sessions: usize,
    /// Unacknowledged bytes a link may hold before `send` blocks.
    pub max_outbox_bytes: usize,
    pub chunk_bytes: usize,
    /// How long a message may stay undelivered before its session fails.
    pub delivery_timeout: Duration,
    /// Wire protocol version spoken (tests simulate an incompatible peer with it).
    pub protocol_version: u32,
}

impl TransportConfig {
    pub fn new(party: PartyId, listen: impl Into<String>, identity: Identity) -> Self {
        TransportConfig {
            party,
            listen: listen.into(),
            identity,
            peers: Vec::new(),
            previous_peer_certs: Vec::new(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_session_bytes: DEFAULT_MAX_SESSION_BYTES,
            max_buffered_bytes: DEFAULT_MAX_SESSION_BUFFERED_BYTES,
            max_peer_buffered_bytes: DEFAULT_MAX_PEER_BUFFERED_BYTES,
            max_sessions_per_peer: DEFAULT_MAX_SESSIONS_PER_PEER,
            session_admission: SessionAdmission::Open,
            closed_session_retention: DEFAULT_CLOSED_SESSION_RETENTION,
            max_closed_sessions: DEFAULT_MAX_CLOSED_SESSIONS,
            max_outbox_bytes: 256 << 20,
            chunk_bytes: 1 << 20,
            delivery_timeout: Duration::from_secs(600),
            protocol_version: crate::wire::PROTOCOL_VERSION,
        }
    }

    /// Reads identity, peers and limits from a node directory. Admission stays
    /// [`SessionAdmission::Open`]; a node sets it before starting the transport.
    pub fn from_node_dir(dir: &crate::config::NodeDir) -> Result<Self, TransportError> {
        let mut cfg = TransportConfig::new(
            dir.party(),
            dir.config.federation_listen.clone(),
            dir.identity()?,
        );
        cfg.peers = dir.peer_certs()?;
        cfg.previous_peer_certs = dir.previous_peer_certs()?;
        let limits = &dir.config.limits;
        let mb = |v: u64| v.saturating_mul(1 << 20);
        cfg.max_message_bytes = mb(limits.max_message_mb);
        cfg.max_session_bytes = mb(limits.max_session_mb);
        cfg.max_peer_buffered_bytes =
            usize::try_from(mb(limits.max_peer_buffered_mb)).unwrap_or(usize::MAX);
        cfg.max_sessions_per_peer = limits.max_sessions_per_peer;
        cfg.delivery_timeout = Duration::from_secs(limits.timeout_secs);
        Ok(cfg)
    }

    /// Checks that the limits fit together.
    fn check(&self) -> Result<(), TransportError> {
        if (self.max_peer_buffered_bytes as u64) < self.max_message_bytes {
            return Err(TransportError::Invalid(format!(
                "the per-peer buffer limit ({} bytes, max_peer_buffered_mb) is below the message limit ({} bytes, max_message_mb): a largest message could never be received",
                self.max_peer_buffered_bytes, self.max_message_bytes
            )));
        }
        if self.max_sessions_per_peer == 0 {
            return Err(TransportError::Invalid(
                "max_sessions_per_peer must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

struct Outgoing {
    session: String,
    tag: String,
    seq: u64,
    data: Bytes,
    /// Connection epoch in which the message was last written (0: not yet).
    written_in: u64,
}

#[derive(Default)]
struct LinkState {
    pending: VecDeque<Outgoing>,
    next_seq: HashMap<String, u64>,
    outbox_bytes: usize,
    /// Sessions that failed on this link, with the reason.
    failed_sessions: HashMap<String, FederationError>,
    /// Sessions that outlive restarts in which messages were lost to a restart of the peer;
    /// the next `flush` of the session reports it.
    lost: HashMap<String, FederationError>,
    last_progress: Option<Instant>,
    epoch: u64,
    /// The peer's instance this link talks to (see [`hello`]); `None` before the first stream.
    peer_incarnation: Option<u64>,
    /// A stream to the peer is open now (its hello was answered).
    open: bool,
    /// The connection of the open stream, which probes reuse.
    channel: Option<tonic::transport::Channel>,
}

struct Link {
    peer: PartyId,
    state: Mutex<LinkState>,
    changed: Condvar,
    wake: Notify,
    /// Notified when the link switches to a new instance of the peer (see [`switch_link`]).
    switched: Notify,
    /// The task that keeps the link's stream open (aborted when the peer is removed).
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

/// Counters of the transport's own work (not of protocol traffic: see `Context::counters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Streams opened to peers (one per connection; more than one per peer means reconnects).
    pub streams_opened: u64,
    /// Messages written again after a reconnect because they had not been acknowledged.
    pub retransmitted: u64,
    /// Received messages dropped as duplicates of ones already stored.
    pub duplicates_dropped: u64,
    /// Received messages refused because their session was not admitted for their sender.
    pub refused_not_admitted: u64,
    /// Received messages refused because their sender had too many open sessions.
    pub refused_session_limit: u64,
    /// Received messages for sessions already closed, acknowledged and dropped.
    pub late_dropped: u64,
    /// Restarts of peers noticed (a peer came back as a new instance).
    pub peer_restarts: u64,
}

#[derive(Default)]
struct StatCounters {
    streams_opened: std::sync::atomic::AtomicU64,
    retransmitted: std::sync::atomic::AtomicU64,
    peer_restarts: std::sync::atomic::AtomicU64,
}

/// The instances of one peer this transport has heard from.
#[derive(Default)]
struct PeerIncarnations {
    current: Option<u64>,
    /// Replaced instances, oldest first (at most [`MAX_RETIRED_INCARNATIONS`]).
    retired: VecDeque<u64>,
}

struct Shared {
    stats: StatCounters,
    me: PartyId,
    /// This transport's incarnation: random, drawn at start.
    incarnation: u64,
    /// Lock order: `incarnations`, then `links`, then a link's state, then the inbox.
    incarnations: Mutex<HashMap<PartyId, PeerIncarnations>>,
    config: TransportConfig,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    pins: Arc<PinStore>,
    addrs: RwLock<HashMap<PartyId, String>>,
    inbox: Arc<Inbox>,
    links: Mutex<HashMap<PartyId, Arc<Link>>>,
    /// Connections kept for probes of peers with no open link ([`FederationTransport::probe`]).
    probe_channels: Mutex<HashMap<PartyId, tonic::transport::Channel>>,
    runtime: tokio::runtime::Handle,
}

struct ServerHandle {
    stop: oneshot::Sender<()>,
    graceful: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

/// A running federation endpoint (listener + outgoing links). Cheap to share behind `Arc`.
pub struct FederationTransport {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    server: Mutex<Option<ServerHandle>>,
    local_addr: SocketAddr,
}

impl FederationTransport {
    /// Starts the listener on its own small runtime.
    pub fn start(config: TransportConfig) -> Result<Arc<Self>, TransportError> {
        config.check()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferry-transport")
            .enable_all()
            .build()
            .map_err(|e| {
                TransportError::Invalid(format!("cannot start the transport runtime: {e}"))
            })?;
        let cert = config.identity.cert_der()?;
        let key = config.identity.key_der()?;
        let pins = Arc::new(PinStore::default());
        let mut addrs = HashMap::new();
        for (party, addr, der) in &config.peers {
            pins.pin(party.clone(), CertificateDer::from(der.clone()));
            addrs.insert(party.clone(), addr.clone());
        }
        for (party, der, until) in &config.previous_peer_certs {
            if addrs.contains_key(party) {
                pins.pin_until(party.clone(), CertificateDer::from(der.clone()), *until);
            }
        }
        let always_admitted = match &config.session_admission {
            SessionAdmission::Open => None,
            SessionAdmission::Restricted { always } => Some(
                always
                    .iter()
                    .map(|s| normalise_scope(s).to_string())
                    .collect(),
            ),
        };
        let inbox = Arc::new(Inbox::new(InboxLimits {
            max_session_buffered_bytes: config.max_buffered_bytes,
            max_session_bytes: config.max_session_bytes,
            max_peer_buffered_bytes: config.max_peer_buffered_bytes,
            max_sessions_per_peer: config.max_sessions_per_peer,
            closed_retention: config.closed_session_retention,
            max_closed_sessions: config.max_closed_sessions,
            always_admitted,
        }));
        let shared = Arc::new(Shared {
            stats: StatCounters::default(),
            me: config.party.clone(),
            incarnation: {
                use rand::RngExt;
                rand::rng().random()
            },
            incarnations: Mutex::new(HashMap::new()),
            cert,
            key,
            pins,
            addrs: RwLock::new(addrs),
            inbox,
            links: Mutex::new(HashMap::new()),
            probe_channels: Mutex::new(HashMap::new()),
            runtime: runtime.handle().clone(),
            config,
        });
        let listener = runtime
            .block_on(TcpListener::bind(&shared.config.listen))
            .map_err(|e| TransportError::Listen {
                addr: shared.config.listen.clone(),
                reason: e.to_string(),
            })?;
        let local_addr = listener.local_addr().map_err(|e| TransportError::Listen {
            addr: shared.config.listen.clone(),
            reason: e.to_string(),
        })?;
        let transport = FederationTransport {
            shared,
            runtime: Some(runtime),
            server: Mutex::new(None),
            local_addr,
        };
        transport.serve(listener)?;
        Ok(Arc::new(transport))
    }

    fn serve(&self, listener: TcpListener) -> Result<(), TransportError> {
        let shared = &self.shared;
        let tls = server_config(
            shared.cert.clone(),
            shared.key.clone_key(),
            shared.pins.clone(),
        )?;
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let limits = FrameLimits {
            max_message_bytes: shared.config.max_message_bytes,
            max_chunk_bytes: shared.config.chunk_bytes.max(1 << 20),
        };
        let (graceful, graceful_rx) = watch::channel(false);
        let hello_shared = shared.clone();
        let on_hello: HelloHook =
            Arc::new(move |peer: &PartyId, incarnation| hello(&hello_shared, peer, incarnation));
        let service = FederationServer::new(
            shared.inbox.clone(),
            limits,
            shared.config.protocol_version,
            shared.incarnation,
            on_hello,
            graceful_rx.clone(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let pins = shared.pins.clone();
        let done = shared.runtime.spawn(async move {
            tokio::select! {
                _ = serve(listener, acceptor, pins, service, graceful_rx) => {}
                _ = stopped => {}
            }
        });
        *self.server.lock().expect("server lock") = Some(ServerHandle {
            stop,
            graceful,
            done,
        });
        Ok(())
    }

    fn stop_server(&self) {
        if let Some(h) = self.server.lock().expect("server lock").take() {
            // The serving future owns the listener and every connection task; ending it drops
            // them all (peers see their connections reset).
            let _ = h.stop.send(());
            let _ = self
                .shared
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), h.done).await });
        }
    }

    /// Closes the listener and every incoming connection, then listens again on the same
    /// address. Mailboxes survive; peers reconnect and resend what was not acknowledged.
    /// (What an operator's listener restart looks like to the peers; used by tests.)
    pub fn restart_listener(&self) -> Result<(), TransportError> {
        self.stop_server();
        let addr = self.local_addr;
        let listener = self.shared.runtime.block_on(async {
            // The old socket may take a moment to be released.
            for _ in 0..50 {
                match TcpListener::bind(addr).await {
                    Ok(l) => return Ok(l),
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            TcpListener::bind(addr).await
        });
        let listener = listener.map_err(|e| TransportError::Listen {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        self.serve(listener)
    }

    /// Shuts down gracefully: waits until what this party sent is acknowledged (up to
    /// `timeout`), then stops accepting, lets every acknowledgement already due reach its
    /// sender and closes the connections. Call it before a process exits, so that the peer
    /// whose last message we consumed is not left waiting for its acknowledgement.
    pub fn shutdown(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let links: Vec<Arc<Link>> = self
            .shared
            .links
            .lock()
            .expect("links lock")
            .values()
            .cloned()
            .collect();
        for link in links {
            let mut st = link.state.lock().expect("link lock");
            while !st.pending.is_empty() && Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                st = link.changed.wait_timeout(st, left).expect("link lock").0;
            }
        }
        if let Some(h) = self.server.lock().expect("server lock").take() {
            let _ = h.graceful.send(true);
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(500));
            let _ = self
                .shared
                .runtime
                .block_on(async { tokio::time::timeout(left, h.done).await });
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn party(&self) -> &PartyId {
        &self.shared.me
    }

    /// This transport's incarnation: a random number drawn at start, which peers use to tell
    /// a restart of this node from a reconnect.
    pub fn incarnation(&self) -> u64 {
        self.shared.incarnation
    }

    /// Pins (or re-pins) a peer at run time: from now on its connections are accepted and
    /// messages to it go to `addr`. Re-pinning replaces every certificate the party had.
    pub fn add_peer(&self, party: PartyId, addr: String, cert_der: Vec<u8>) {
        self.shared
            .pins
            .pin(party.clone(), CertificateDer::from(cert_der));
        self.shared
            .addrs
            .write()
            .expect("addr lock")
            .insert(party.clone(), addr);
        self.shared.inbox.peer_recovered(&party);
    }

    /// Starts a rotation of `party`'s certificate: `new_cert_der` is pinned, and the
    /// certificates it had are still accepted until `overlap_until`, so the partner can switch
    /// to its new key at any moment of the overlap without a failed connection. `addr`, when
    /// given, replaces its address. Returns false (and changes nothing) for an unknown party.
    pub fn rotate_peer(
        &self,
        party: &PartyId,
        new_cert_der: Vec<u8>,
        overlap_until: std::time::SystemTime,
        addr: Option<String>,
    ) -> bool {
        let mut addrs = self.shared.addrs.write().expect("addr lock");
        let Some(current) = addrs.get_mut(party) else {
            return false;
        };
        if let Some(a) = addr {
            *current = a;
        }
        drop(addrs);
        self.shared
            .probe_channels
            .lock()
            .expect("probe lock")
            .remove(party);
        self.shared.pins.rotate(
            party.clone(),
            CertificateDer::from(new_cert_der),
            overlap_until,
        );
        true
    }

    /// Removes a peer at run time: its certificates are unpinned (new handshakes are refused,
    /// open connections from it are cut), messages still queued for it fail, and every wait
    /// for a message from it fails with `reason`. Returns whether it was a peer.
    pub fn remove_peer(&self, party: &PartyId, reason: &str) -> bool {
        let had_addr = self
            .shared
            .addrs
            .write()
            .expect("addr lock")
            .remove(party)
            .is_some();
        let had_pin = self.shared.pins.unpin(party);
        self.shared
            .probe_channels
            .lock()
            .expect("probe lock")
            .remove(party);
        let link = self.shared.links.lock().expect("links lock").remove(party);
        if let Some(link) = link {
            if let Some(task) = link.task.lock().expect("link task lock").take() {
                // Ends the outgoing stream: dropping its channel closes the connection.
                task.abort();
            }
            let peer = party.clone();
            fail_pending(&link, &self.shared, None, || FederationError::Unreachable {
                peer: peer.clone(),
                reason: reason.to_string(),
            });
        }
        self.shared.inbox.peer_failed(
            party,
            crate::inbox::PeerProblem::Removed {
                reason: reason.to_string(),
            },
        );
        had_addr || had_pin
    }

    /// When anything (a message, a chunk, an acknowledgement) last arrived from `peer`;
    /// `None` if nothing has since this transport started. Liveness is judged from this, not
    /// from whether a protocol's next message came: a partner busy computing still answers
    /// heartbeats and acknowledgements.
    pub fn last_heard(&self, peer: &PartyId) -> Option<Instant> {
        self.shared.inbox.last_heard(peer)
    }

    /// One reachability check of `peer`, outside its link's queue (nothing is queued, nothing
    /// is retried): an `Exchange` stream opened with the peer and answered with its instance,
    /// then closed without a frame. It goes over the link's connection when one is open, else
    /// over a connection kept for probes (one per peer, kept open by HTTP/2 keep-alive), else
    /// a new connection with mutual TLS against the pinned certificate; a failure over a kept
    /// connection is checked once more over a new one, so the error says why (connection
    /// refused, certificate not pinned or mismatched, protocol version, no answer within
    /// `timeout`). A probe carries no frame, so the peer does not count it as hearing from this
    /// node (its jobs' liveness is not kept up by it), and it does not change
    /// [`FederationTransport::last_heard`] here either. Runs on the transport's runtime and
    /// calls `done` with the outcome.
    pub fn probe(
        &self,
        peer: &PartyId,
        timeout: Duration,
        done: impl FnOnce(Result<(), String>) + Send + 'static,
    ) {
        if !self.is_peer(peer) {
            done(Err(format!("'{peer}' is not pinned")));
            return;
        }
        let shared = self.shared.clone();
        let peer = peer.clone();
        self.shared.runtime.spawn(async move {
            let outcome = tokio::time::timeout(timeout, probe_once(&shared, &peer))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
            done(outcome);
        });
    }

    /// The parties pinned now, in name order.
    pub fn peers(&self) -> Vec<PartyId> {
        self.shared.pins.parties()
    }

    /// Whether `party` is pinned now (a removed partner is not).
    pub fn is_peer(&self, party: &PartyId) -> bool {
        self.shared.pins.is_pinned(party)
    }

    pub fn stats(&self) -> TransportStats {
        use std::sync::atomic::Ordering::Relaxed;
        TransportStats {
            streams_opened: self.shared.stats.streams_opened.load(Relaxed),
            retransmitted: self.shared.stats.retransmitted.load(Relaxed),
            duplicates_dropped: self.shared.inbox.counters.duplicates.load(Relaxed),
            refused_not_admitted: self.shared.inbox.counters.not_admitted.load(Relaxed),
            refused_session_limit: self.shared.inbox.counters.session_limit.load(Relaxed),
            late_dropped: self.shared.inbox.counters.late.load(Relaxed),
            peer_restarts: self.shared.stats.peer_restarts.load(Relaxed),
        }
    }

    /// Lets `peer` send to the sessions of `scope`: the session named `scope` and every
    /// session under it (`scope/...`), so admitting a job id admits `<job_id>/<task>` for every
    /// task. A trailing `/` is ignored; an empty scope admits nothing. Admitting a scope twice
    /// is the same as once.
    ///
    /// Only matters under [`SessionAdmission::Restricted`]. The contract: admit a job's scope
    /// for each of its partners before any party can send in it, i.e. when the job is proposed
    /// (on the proposing node) or accepted (on the others) and before `start` is sent or acted
    /// on; a message that arrives for a scope not (or no longer) admitted is refused, and its
    /// sender's session fails with an error naming this node and the session.
    pub fn admit_session(&self, peer: &PartyId, scope: &str) {
        let scope = normalise_scope(scope);
        if !scope.is_empty() {
            self.shared.inbox.admit(peer, scope);
        }
    }

    /// Withdraws a scope admitted with [`FederationTransport::admit_session`] and frees what
    /// `peer` sent in sessions that are no longer admitted (unread messages, sequence state,
    /// its session slots); later messages for them are refused. Sessions still covered by
    /// another admitted or always-admitted scope keep their data. Call it when the job ends
    /// (in any state): sessions a task never opened on this node, e.g. later tasks of a
    /// failed job that a partner already sent to, are freed only here. Sessions this node
    /// closed with `close_session` still acknowledge (and drop) late messages after the
    /// revocation, so a partner finishing its side of a task is not refused; only sessions
    /// that were never closed here refuse.
    pub fn revoke_session(&self, peer: &PartyId, scope: &str) {
        let scope = normalise_scope(scope);
        if !scope.is_empty() {
            self.shared.inbox.revoke(peer, scope);
        }
    }

    /// Whether a message of `session` from `peer` would be admitted now (always true under
    /// [`SessionAdmission::Open`]).
    pub fn is_session_admitted(&self, peer: &PartyId, session: &str) -> bool {
        self.shared.inbox.is_admitted(peer, session)
    }

    /// Bytes `peer` makes this node hold now: messages received and not yet read, plus the
    /// part of a message being reassembled. At most `max_peer_buffered_bytes`.
    pub fn buffered_bytes_from(&self, peer: &PartyId) -> usize {
        self.shared.inbox.held_from(peer)
    }

    /// Sessions `peer` has open on this node now (received in, not yet closed or revoked).
    /// At most `max_sessions_per_peer`.
    pub fn open_sessions_from(&self, peer: &PartyId) -> usize {
        self.shared.inbox.sessions_from(peer)
    }

    /// Closed sessions remembered now (at most `max_closed_sessions`).
    pub fn closed_sessions_remembered(&self) -> usize {
        self.shared.inbox.closed_remembered()
    }

    /// The next message of `session` from any peer under any tag, or `None` after `timeout`
    /// (for control planes that do not know in advance who will write, or what).
    pub fn recv_any(&self, session: &str, timeout: Duration) -> Option<(PartyId, String, Vec<u8>)> {
        self.shared.inbox.recv_any(session, timeout)
    }

    /// Log lines of refused TLS handshakes (unknown or mismatched certificates).
    pub fn refusals(&self) -> Vec<String> {
        self.shared.pins.refusals()
    }

    fn link(&self, peer: &PartyId) -> Result<Arc<Link>, FederationError> {
        let mut links = self.shared.links.lock().expect("links lock");
        if let Some(l) = links.get(peer) {
            return Ok(l.clone());
        }
        if !self
            .shared
            .addrs
            .read()
            .expect("addr lock")
            .contains_key(peer)
        {
            return Err(FederationError::Unreachable {
                peer: peer.clone(),
                reason: "no address or certificate is pinned for it (ferry peer add)".into(),
            });
        }
        let link = Arc::new(Link {
            peer: peer.clone(),
            state: Mutex::new(LinkState::default()),
            changed: Condvar::new(),
            wake: Notify::new(),
            switched: Notify::new(),
            task: Mutex::new(None),
        });
        links.insert(peer.clone(), link.clone());
        let task = self
            .shared
            .runtime
            .spawn(run_link(self.shared.clone(), link.clone()));
        *link.task.lock().expect("link task lock") = Some(task.abort_handle());
        Ok(link)
    }
}

impl Drop for FederationTransport {
    fn drop(&mut self) {
        if let Some(h) = self.server.lock().expect("server lock").take() {
            let _ = h.stop.send(());
            h.done.abort();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Transport for FederationTransport {
    fn send(
        &self,
        session: &str,
        to: &PartyId,
        tag: &str,
        payload: Vec<u8>,
    ) -> Result<(), FederationError> {
        if payload.len() as u64 > self.shared.config.max_message_bytes {
            return Err(FederationError::MessageTooLarge {
                peer: to.clone(),
                tag: tag.to_string(),
                size: payload.len(),
                limit: self.shared.config.max_message_bytes as usize,
            });
        }
        let link = self.link(to)?;
        let deadline = Instant::now() + self.shared.config.delivery_timeout;
        let mut st = link.state.lock().expect("link lock");
        loop {
            if let Some(e) = st.failed_sessions.get(session) {
                return Err(e.clone());
            }
            // Admit into an empty outbox regardless of size, so one large message cannot wedge.
            if st.outbox_bytes == 0
                || st.outbox_bytes + payload.len() <= self.shared.config.max_outbox_bytes
            {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(FederationError::Unreachable {
                    peer: to.clone(),
                    reason: format!(
                        "it has not accepted queued messages for {:?}",
                        self.shared.config.delivery_timeout
                    ),
                });
            }
            st = link
                .changed
                .wait_timeout(st, deadline - now)
                .expect("link lock")
                .0;
        }
        let seq = {
            let s = st.next_seq.entry(session.to_string()).or_insert(0);
            *s += 1;
            *s - 1
        };
        st.outbox_bytes += payload.len();
        if st.pending.is_empty() {
            st.last_progress = Some(Instant::now());
        }
        st.pending.push_back(Outgoing {
            session: session.to_string(),
            tag: tag.to_string(),
            seq,
            data: Bytes::from(payload),
            written_in: 0,
        });
        drop(st);
        link.wake.notify_one();
        Ok(())
    }

    fn recv(
        &self,
        session: &str,
        from: &PartyId,
        tag: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, FederationError> {
        // A session whose outgoing messages failed fails its receives too, at once.
        if let Some(link) = self
            .shared
            .links
            .lock()
            .expect("links lock")
            .get(from)
            .cloned()
            && let Some(e) = link
                .state
                .lock()
                .expect("link lock")
                .failed_sessions
                .get(session)
        {
            return Err(e.clone());
        }
        self.shared.inbox.recv(session, from, tag, timeout)
    }

    fn flush(&self, session: &str, timeout: Duration) -> Result<(), FederationError> {
        let links: Vec<Arc<Link>> = self
            .shared
            .links
            .lock()
            .expect("links lock")
            .values()
            .cloned()
            .collect();
        let deadline = Instant::now() + timeout;
        for link in links {
            let mut st = link.state.lock().expect("link lock");
            loop {
                if let Some(e) = st.failed_sessions.get(session) {
                    return Err(e.clone());
                }
                if let Some(e) = st.lost.remove(session) {
                    return Err(e);
                }
                if !st.pending.iter().any(|m| m.session == session) {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(FederationError::Unreachable {
                        peer: link.peer.clone(),
                        reason: format!(
                            "messages of session {session} were not acknowledged within {timeout:?}"
                        ),
                    });
                }
                st = link
                    .changed
                    .wait_timeout(st, deadline - now)
                    .expect("link lock")
                    .0;
            }
        }
        Ok(())
    }

    fn close_session(&self, session: &str) {
        self.shared.inbox.close_session(session);
        for link in self.shared.links.lock().expect("links lock").values() {
            let mut st = link.state.lock().expect("link lock");
            st.failed_sessions.remove(session);
            st.lost.remove(session);
            // Sessions are not reused once closed; without this the map grows with every
            // session this node ever sent in. Messages still pending keep their numbers.
            st.next_seq.remove(session);
        }
    }
}

/// A scope without its trailing separators (`job-1/` is `job-1`).
fn normalise_scope(scope: &str) -> &str {
    scope.trim_end_matches('/')
}

/// Fails every pending message of the sessions in `sessions` (or all) with `error`.
fn fail_pending(
    link: &Link,
    shared: &Shared,
    only_session: Option<&str>,
    error: impl Fn() -> FederationError,
) {
    let mut st = link.state.lock().expect("link lock");
    let mut failed = Vec::new();
    st.pending.retain(|m| {
        let hit = only_session.is_none_or(|s| s == m.session);
        if hit {
            failed.push((m.session.clone(), m.data.len()));
        }
        !hit
    });
    for (session, len) in failed {
        st.outbox_bytes -= len;
        st.failed_sessions
            .entry(session.clone())
            .or_insert_with(&error);
        shared.inbox.session_failed(&session, error().to_string());
    }
    if let Some(s) = only_session {
        st.failed_sessions
            .entry(s.to_string())
            .or_insert_with(&error);
    }
    drop(st);
    link.changed.notify_all();
}

/// Why a session with a peer that restarted is over.
fn restart_reason(session: &str) -> String {
    format!(
        "it restarted, and session {session} of its previous instance is gone (messages it had \
         not acknowledged are not sent to the new instance)"
    )
}

fn restarted(peer: &PartyId, session: &str) -> FederationError {
    FederationError::PeerFailed {
        peer: peer.clone(),
        reason: restart_reason(session),
    }
}

/// A stream to or from `peer` says it is `peer`'s instance `incarnation`. The first instance
/// heard of is recorded; a new one means the peer restarted, and the link and the inbox forget
/// the old one (see the module docs) before any frame goes to or comes from the new one. An
/// instance that a newer one replaced is refused with the reason.
fn hello(shared: &Shared, peer: &PartyId, incarnation: u64) -> Result<(), String> {
    let mut seen = shared.incarnations.lock().expect("incarnations lock");
    let known = seen.entry(peer.clone()).or_default();
    if known.retired.contains(&incarnation) {
        return Err(format!(
            "instance {} of party '{peer}' has been replaced by a newer one (it restarted)",
            format_incarnation(incarnation)
        ));
    }
    let previous = known.current.replace(incarnation);
    let restarted_now = previous.is_some_and(|old| old != incarnation);
    if let Some(old) = previous.filter(|_| restarted_now) {
        known.retired.push_back(old);
        if known.retired.len() > MAX_RETIRED_INCARNATIONS {
            known.retired.pop_front();
        }
        shared
            .stats
            .peer_restarts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            "party '{peer}' restarted (instance {} replaced {}): its sessions with this node \
             start afresh, except the control session, which goes on",
            format_incarnation(incarnation),
            format_incarnation(old)
        );
    }
    // Still under the incarnation lock, so that the link and the inbox switch together and a
    // stream of either direction sees them switched.
    let link = shared.links.lock().expect("links lock").get(peer).cloned();
    if let Some(link) = link {
        switch_link(shared, &link, incarnation);
    }
    shared
        .inbox
        .hello(peer, incarnation, restarted_now, |session| {
            format!("party '{peer}' {}", restart_reason(session))
        });
    Ok(())
}

/// Points `link` at the peer's instance `incarnation`. If the link talked to another instance
/// before, that one is gone: sessions that outlive restarts keep their unwritten messages,
/// renumbered from 0, and lose those written to the old instance and not acknowledged; every
/// other session the link sent in fails with the restart.
fn switch_link(shared: &Shared, link: &Link, incarnation: u64) {
    let mut st = link.state.lock().expect("link lock");
    let previous = st.peer_incarnation.replace(incarnation);
    if previous.is_none_or(|old| old == incarnation) {
        return;
    }
    let peer = &link.peer;
    let sessions: HashSet<String> = st
        .next_seq
        .keys()
        .cloned()
        .chain(st.pending.iter().map(|m| m.session.clone()))
        .collect();
    let (kept, ended): (HashSet<String>, HashSet<String>) = sessions
        .into_iter()
        .partition(|session| shared.inbox.outlives_restarts(session));
    let mut next: HashMap<String, u64> = HashMap::new();
    let mut lost: HashMap<String, usize> = HashMap::new();
    let mut ended_pending: HashSet<String> = HashSet::new();
    let mut freed = 0;
    st.pending.retain_mut(|m| {
        if ended.contains(&m.session) {
            freed += m.data.len();
            ended_pending.insert(m.session.clone());
            return false;
        }
        if m.written_in != 0 {
            // It may or may not have reached the old instance; it is not sent again.
            freed += m.data.len();
            *lost.entry(m.session.clone()).or_default() += 1;
            return false;
        }
        let n = next.entry(m.session.clone()).or_default();
        m.seq = *n;
        *n += 1;
        true
    });
    st.outbox_bytes -= freed;
    for session in &kept {
        match next.get(session) {
            Some(n) => st.next_seq.insert(session.clone(), *n),
            None => st.next_seq.remove(session),
        };
    }
    for session in &ended {
        st.next_seq.remove(session);
        st.failed_sessions
            .entry(session.clone())
            .or_insert_with(|| restarted(peer, session));
    }
    for (session, n) in lost {
        tracing::warn!(
            "{n} message(s) of session {session} to party '{peer}' were lost: it restarted \
             before acknowledging them"
        );
        st.lost
            .entry(session.clone())
            .or_insert_with(|| FederationError::PeerFailed {
                peer: peer.clone(),
                reason: format!(
                    "it restarted before acknowledging {n} message(s) of session {session}; \
                     they are not sent to its new instance"
                ),
            });
    }
    st.last_progress = Some(Instant::now());
    drop(st);
    // A stream still open to the old instance ends, so that the link reconnects to the new one.
    link.switched.notify_waiters();
    for session in ended_pending {
        shared.inbox.session_failed(
            &session,
            format!("party '{peer}' {}", restart_reason(&session)),
        );
    }
    link.changed.notify_all();
}

async fn connect(shared: &Shared, peer: &PartyId) -> Result<tonic::transport::Channel, String> {
    let addr = shared
        .addrs
        .read()
        .expect("addr lock")
        .get(peer)
        .cloned()
        .ok_or("no address pinned")?;
    let tls = client_config(
        shared.cert.clone(),
        shared.key.clone_key(),
        peer,
        shared.pins.clone(),
    )
    .map_err(|e| e.to_string())?;
    let connector = TlsConnector::from(Arc::new(tls));
    let endpoint = tonic::transport::Endpoint::from_static("http://peer.ferry")
        .initial_connection_window_size(16 << 20)
        .initial_stream_window_size(8 << 20)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20))
        .connect_timeout(Duration::from_secs(10));
    endpoint
        .connect_with_connector(tower::service_fn(move |_uri| {
            let addr = addr.clone();
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(&addr).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from("peer.ferry").expect("static name");
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| {
            use std::error::Error;
            let mut msg = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            msg
        })
}

/// See [`FederationTransport::probe`].
async fn probe_once(shared: &Shared, peer: &PartyId) -> Result<(), String> {
    let kept = {
        let link = shared.links.lock().expect("links lock").get(peer).cloned();
        link.and_then(|l| l.state.lock().expect("link lock").channel.clone())
    }
    .or_else(|| {
        shared
            .probe_channels
            .lock()
            .expect("probe lock")
            .get(peer)
            .cloned()
    });
    if let Some(channel) = kept
        && probe_stream(shared, peer, channel).await.is_ok()
    {
        return Ok(());
    }
    shared
        .probe_channels
        .lock()
        .expect("probe lock")
        .remove(peer);
    let channel = connect(shared, peer).await?;
    probe_stream(shared, peer, channel.clone()).await?;
    shared
        .probe_channels
        .lock()
        .expect("probe lock")
        .insert(peer.clone(), channel);
    Ok(())
}

/// An `Exchange` request over `frames`, carrying this node's protocol version and instance:
/// what both a link's stream and a probe open.
fn exchange_request(
    shared: &Shared,
    frames: mpsc::Receiver<Frame>,
) -> tonic::Request<ReceiverStream<Frame>> {
    let mut request = tonic::Request::new(ReceiverStream::new(frames));
    request.metadata_mut().insert(
        VERSION_HEADER,
        shared
            .config
            .protocol_version
            .to_string()
            .parse()
            .expect("a number is a valid header value"),
    );
    request.metadata_mut().insert(
        INCARNATION_HEADER,
        format_incarnation(shared.incarnation)
            .parse()
            .expect("hex digits are a valid header value"),
    );
    request
}

/// Opens an `Exchange` stream on `channel` and waits for the peer's answer (its instance).
async fn probe_stream(
    shared: &Shared,
    peer: &PartyId,
    channel: tonic::transport::Channel,
) -> Result<(), String> {
    // The stream carries no frame; its sender is held until the answer came.
    let (_frames_tx, frames_rx) = mpsc::channel::<Frame>(1);
    let request = exchange_request(shared, frames_rx);
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(EXCHANGE_PATH);
    let response = grpc
        .streaming(
            request,
            path,
            tonic_prost::ProstCodec::<Frame, Ack>::default(),
        )
        .await
        .map_err(|status| status.to_string())?;
    response
        .metadata()
        .get(INCARNATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_incarnation)
        .map(|_| ())
        .ok_or_else(|| {
            format!("party '{peer}' did not say which instance of it answered ({INCARNATION_HEADER} header)")
        })
}

/// Keeps a stream open to `link.peer` while messages are pending; resends after reconnects.
async fn run_link(shared: Arc<Shared>, link: Arc<Link>) {
    let timeout = shared.config.delivery_timeout;
    let mut backoff = Duration::from_millis(50);
    loop {
        // Sleep until something is pending.
        loop {
            let notified = link.wake.notified();
            if !link.state.lock().expect("link lock").pending.is_empty() {
                break;
            }
            notified.await;
        }
        let stalled = {
            let st = link.state.lock().expect("link lock");
            st.last_progress.is_some_and(|t| t.elapsed() > timeout)
        };
        let channel = match connect(&shared, &link.peer).await {
            Ok(c) => c,
            Err(reason) => {
                tracing::debug!("cannot connect to '{}': {reason}", link.peer);
                if stalled {
                    let peer = link.peer.clone();
                    fail_pending(&link, &shared, None, || FederationError::Unreachable {
                        peer: peer.clone(),
                        reason: reason.clone(),
                    });
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let epoch = {
            let mut st = link.state.lock().expect("link lock");
            st.epoch += 1;
            st.epoch
        };
        match exchange(&shared, &link, channel, epoch).await {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(reason) => {
                tracing::debug!("stream to '{}' ended: {reason}", link.peer);
                let stalled = link
                    .state
                    .lock()
                    .expect("link lock")
                    .last_progress
                    .is_some_and(|t| t.elapsed() > timeout);
                if stalled {
                    let peer = link.peer.clone();
                    fail_pending(&link, &shared, None, || FederationError::Unreachable {
                        peer: peer.clone(),
                        reason: reason.clone(),
                    });
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// One stream's lifetime: a writer task sends pending messages, this task reads acks.
async fn exchange(
    shared: &Arc<Shared>,
    link: &Arc<Link>,
    channel: tonic::transport::Channel,
    epoch: u64,
) -> Result<(), String> {
    let (frames_tx, frames_rx) = mpsc::channel::<Frame>(8);
    let request = exchange_request(shared, frames_rx);
    let max = shared.config.chunk_bytes + (64 << 10);
    let mut grpc = tonic::client::Grpc::new(channel.clone())
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(EXCHANGE_PATH);
    // The receiver answers before reading any frame; nothing is written until its answer
    // says which instance of the peer this is.
    let response = grpc
        .streaming(
            request,
            path,
            tonic_prost::ProstCodec::<Frame, Ack>::default(),
        )
        .await
        .map_err(|status| status_error(shared, link, status))?;
    let incarnation = response
        .metadata()
        .get(INCARNATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_incarnation)
        .ok_or_else(|| {
            format!(
                "party '{}' did not say which instance of it answered ({INCARNATION_HEADER} \
                 header)",
                link.peer
            )
        })?;
    hello(shared, &link.peer, incarnation)?;
    {
        let mut st = link.state.lock().expect("link lock");
        st.open = true;
        st.channel = Some(channel);
    }
    shared
        .stats
        .streams_opened
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let writer = tokio::spawn(write_pending(
        shared.clone(),
        link.clone(),
        frames_tx,
        epoch,
        incarnation,
    ));
    let mut acks = response.into_inner();
    let mut clean_end = false;
    let result = loop {
        let switched = link.switched.notified();
        tokio::pin!(switched);
        switched.as_mut().enable();
        if link.state.lock().expect("link lock").peer_incarnation != Some(incarnation) {
            break Err(format!(
                "party '{}' restarted; the stream to its previous instance ends",
                link.peer
            ));
        }
        tokio::select! {
            next = acks.message() => match next {
                Ok(Some(ack)) => handle_ack(shared, link, ack, incarnation),
                Ok(None) => {
                    clean_end = true;
                    break Err("the peer closed the stream".to_string());
                }
                Err(status) => break Err(status_error(shared, link, status)),
            },
            _ = &mut switched => {}
        }
    };
    writer.abort();
    let _ = writer.await;
    {
        let mut st = link.state.lock().expect("link lock");
        st.open = false;
        st.channel = None;
    }
    if clean_end {
        // The receiver ends its acknowledgements cleanly only after it stopped reading the
        // stream, and acknowledges every message it stored before that: what was written on
        // this stream and not acknowledged was not stored, and counts as never written (after
        // a restart of the peer it goes to the new instance, in a session that outlives it).
        let mut st = link.state.lock().expect("link lock");
        if st.peer_incarnation == Some(incarnation) {
            for m in st.pending.iter_mut().filter(|m| m.written_in == epoch) {
                m.written_in = 0;
            }
        }
    }
    result
}

/// A status ending the stream: a version refusal fails everything pending for this peer.
fn status_error(shared: &Shared, link: &Link, status: tonic::Status) -> String {
    if status.code() == tonic::Code::FailedPrecondition
        && status.message().contains("protocol version")
    {
        let ours = shared.config.protocol_version;
        let theirs = parse_version(status.message()).unwrap_or(0);
        let peer = link.peer.clone();
        fail_pending(link, shared, None, || FederationError::VersionMismatch {
            peer: peer.clone(),
            theirs,
            ours,
        });
    }
    status.to_string()
}

/// The receiver's version from "…; this node speaks version N".
fn parse_version(message: &str) -> Option<u32> {
    message
        .rsplit("version ")
        .next()?
        .trim()
        .trim_end_matches('.')
        .parse()
        .ok()
}

/// Handles an acknowledgement or refusal read from a stream to the peer's instance
/// `incarnation` (ignored if the peer has been found restarted since: its numbers are not
/// this link's any more).
fn handle_ack(shared: &Shared, link: &Link, ack: Ack, incarnation: u64) {
    shared.inbox.heard_from(&link.peer);
    if ack.error.is_empty() {
        let mut st = link.state.lock().expect("link lock");
        if st.peer_incarnation != Some(incarnation) {
            return;
        }
        if let Some(pos) = st
            .pending
            .iter()
            .position(|m| m.session == ack.session && m.seq == ack.seq)
        {
            let m = st.pending.remove(pos).expect("position is valid");
            st.outbox_bytes -= m.data.len();
            st.last_progress = Some(Instant::now());
        }
        drop(st);
        link.changed.notify_all();
        return;
    }
    let peer = link.peer.clone();
    let kind = Refusal::from_u32(ack.error_kind);
    tracing::warn!(
        "party '{peer}' refused a message of session {}: {}",
        ack.session,
        ack.error
    );
    let tag = {
        let st = link.state.lock().expect("link lock");
        if st.peer_incarnation != Some(incarnation) {
            return;
        }
        st.pending
            .iter()
            .find(|m| m.session == ack.session && m.seq == ack.seq)
            .map(|m| (m.tag.clone(), m.data.len()))
    };
    match kind {
        Some(Refusal::Version) => {
            let ours = shared.config.protocol_version;
            let theirs = ack.protocol_version;
            fail_pending(link, shared, None, || FederationError::VersionMismatch {
                peer: peer.clone(),
                theirs,
                ours,
            });
        }
        Some(Refusal::MessageTooLarge) => {
            let (tag, size) = tag.unwrap_or_default();
            fail_pending(link, shared, Some(&ack.session), || {
                FederationError::MessageTooLarge {
                    peer: peer.clone(),
                    tag: tag.clone(),
                    size,
                    limit: 0,
                }
            });
        }
        _ => {
            let reason = format!("it refused a message: {}", ack.error);
            fail_pending(link, shared, Some(&ack.session), || {
                FederationError::PeerFailed {
                    peer: peer.clone(),
                    reason: reason.clone(),
                }
            });
        }
    }
}

/// Writes every message not yet written on this connection, in queue order; stops if the
/// peer's instance at the other end (`incarnation`) has been replaced meanwhile.
async fn write_pending(
    shared: Arc<Shared>,
    link: Arc<Link>,
    frames: mpsc::Sender<Frame>,
    epoch: u64,
    incarnation: u64,
) {
    loop {
        let notified = link.wake.notified();
        let next = {
            let mut st = link.state.lock().expect("link lock");
            if st.peer_incarnation != Some(incarnation) {
                return;
            }
            st.pending
                .iter_mut()
                .find(|m| m.written_in != epoch)
                .map(|m| {
                    if m.written_in != 0 {
                        shared
                            .stats
                            .retransmitted
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    m.written_in = epoch;
                    (m.session.clone(), m.tag.clone(), m.seq, m.data.clone())
                })
        };
        let Some((session, tag, seq, data)) = next else {
            notified.await;
            continue;
        };
        for frame in chunk_message(
            shared.me.as_str(),
            &session,
            &tag,
            seq,
            &data,
            shared.config.chunk_bytes,
        ) {
            if frames.send(frame).await.is_err() {
                return;
            }
        }
    }
}
