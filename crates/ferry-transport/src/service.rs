//! The receiving half: the gRPC `Exchange` service and the TLS listener feeding it.

use crate::inbox::{Delivery, Inbox, Reservation, Verdict};
use crate::tls::PinStore;
use crate::wire::{
    Ack, EXCHANGE_PATH, Frame, FrameLimits, INCARNATION_HEADER, Reassembly, Refusal, SERVICE_NAME,
    VERSION_HEADER, format_incarnation, parse_incarnation, validate_frame,
};
use ferry_context::PartyId;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{BoxFuture, http};
use tonic::server::NamedService;
use tonic::{Request, Response, Status, Streaming};

/// Accepts TCP connections, runs the TLS handshake (pinned client certificates only) and
/// serves HTTP/2 on each authenticated connection. Handshakes and connections run in tasks
/// owned by this future, so a slow or hostile client cannot hold up others, and dropping or
/// aborting the future closes the listener and resets every connection it accepted.
///
/// When `shutdown` turns true the listener closes, every receiving stream stops reading and
/// ends its acknowledgement stream (so the acknowledgements already queued reach the peers),
/// and each connection shuts down gracefully; the future returns when they are all done.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    pins: Arc<PinStore>,
    server: FederationServer,
    shutdown: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        let (tcp, addr) = tokio::select! {
            _ = async { let _ = stop.wait_for(|down| *down).await.map(|_| ()); } => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let pins = pins.clone();
        let mut server = server.clone();
        let mut shutdown = shutdown.clone();
        connections.spawn(async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                    .await;
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake with {addr} failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake with {addr} timed out");
                    return;
                }
            };
            // The verifier already refused unknown certificates; this lookup names the peer.
            let Some(cert) = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec())
            else {
                return;
            };
            let Some(peer) = pins.party_of(&cert) else {
                return;
            };
            server.peer = Some(peer.clone());
            let service = hyper_util::service::TowerToHyperService::new(server);
            let mut builder =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .initial_connection_window_size(16 << 20)
                .initial_stream_window_size(8 << 20)
                .max_frame_size(1 << 20)
                .keep_alive_interval(std::time::Duration::from_secs(10))
                .keep_alive_timeout(std::time::Duration::from_secs(20));
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tls), service);
            tokio::pin!(conn);
            let stop = async {
                let _ = shutdown.wait_for(|down| *down).await.map(|_| ());
            };
            // A partner removed (or a certificate rotated out) while connected is cut at
            // once: the pins announce every change, and a rotation's overlap is waited out
            // to the moment it ends.
            let mut pin_changes = pins.subscribe();
            let unpinned = async {
                loop {
                    let until_expiry = pins
                        .valid_until(&cert)
                        .map(|t| {
                            t.duration_since(std::time::SystemTime::now())
                                .unwrap_or_default()
                        })
                        .unwrap_or(std::time::Duration::from_secs(3600));
                    tokio::select! {
                        _ = pin_changes.changed() => {}
                        _ = tokio::time::sleep(until_expiry) => {}
                    }
                    if pins.party_of(&cert).as_ref() != Some(&peer) {
                        break;
                    }
                }
            };
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
                _ = unpinned => {
                    tracing::info!("closed the connection of '{peer}': its certificate is no longer pinned");
                    return;
                }
            };
            if let Err(e) = result {
                tracing::debug!("connection from '{peer}' ended: {e}");
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// What the transport does when a stream opens: told the peer and the incarnation it says it
/// is, it records it (handling a restart of the peer) or refuses the stream with the reason
/// (an instance of the peer that a newer one replaced).
pub type HelloHook = Arc<dyn Fn(&PartyId, u64) -> Result<(), String> + Send + Sync>;

/// The gRPC service of a node's federation endpoint.
#[derive(Clone)]
pub struct FederationServer {
    inbox: Arc<Inbox>,
    limits: FrameLimits,
    version: u32,
    /// This transport's incarnation, sent back on every stream it accepts.
    incarnation: u64,
    hello: HelloHook,
    /// The party this connection is authenticated as (set per connection).
    peer: Option<PartyId>,
    shutdown: watch::Receiver<bool>,
}

impl FederationServer {
    pub fn new(
        inbox: Arc<Inbox>,
        limits: FrameLimits,
        version: u32,
        incarnation: u64,
        hello: HelloHook,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        FederationServer {
            inbox,
            limits,
            version,
            incarnation,
            hello,
            peer: None,
            shutdown,
        }
    }
}

impl NamedService for FederationServer {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> tower::Service<http::Request<B>> for FederationServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXCHANGE_PATH {
            return Box::pin(async {
                Ok(Status::unimplemented("unknown federation method").into_http())
            });
        }
        let svc = ExchangeService {
            server: self.clone(),
        };
        let max = self.limits.max_chunk_bytes + 64 * 1024;
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<Ack, Frame>::default();
            let mut grpc =
                tonic::server::Grpc::new(codec).apply_max_message_size_config(Some(max), Some(max));
            Ok(grpc.streaming(svc, req).await)
        })
    }
}

struct ExchangeService {
    server: FederationServer,
}

impl tonic::server::StreamingService<Frame> for ExchangeService {
    type Response = Ack;
    type ResponseStream = ReceiverStream<Result<Ack, Status>>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<Frame>>) -> Self::Future {
        let server = self.server.clone();
        Box::pin(async move {
            let Some(peer) = server.peer.clone() else {
                return Err(Status::unauthenticated("connection is not authenticated"));
            };
            if let Some(v) = request
                .metadata()
                .get(VERSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok())
                && v != server.version
            {
                server.inbox.peer_failed(
                    &peer,
                    crate::inbox::PeerProblem::Version {
                        theirs: v,
                        ours: server.version,
                    },
                );
                return Err(Status::failed_precondition(format!(
                    "peer speaks federation protocol version {v}; this node speaks version {}",
                    server.version
                )));
            }
            let Some(incarnation) = request
                .metadata()
                .get(INCARNATION_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_incarnation)
            else {
                return Err(Status::invalid_argument(format!(
                    "the stream does not say which instance of party '{peer}' opened it \
                     ({INCARNATION_HEADER} header)"
                )));
            };
            // Before any frame of the stream is read: a restart of the peer is handled first.
            (server.hello)(&peer, incarnation).map_err(Status::failed_precondition)?;
            let (tx, rx) = mpsc::channel(64);
            let ours = format_incarnation(server.incarnation)
                .parse()
                .expect("hex digits are a valid header value");
            tokio::spawn(receive_stream(
                server,
                peer,
                incarnation,
                request.into_inner(),
                tx,
            ));
            let mut response = Response::new(ReceiverStream::new(rx));
            response.metadata_mut().insert(INCARNATION_HEADER, ours);
            Ok(response)
        })
    }
}

fn refusal(session: &str, seq: u64, kind: Refusal, reason: String, version: u32) -> Ack {
    Ack {
        protocol_version: version,
        session: session.to_string(),
        seq,
        error: reason,
        error_kind: kind as u32,
    }
}

/// Whether the stream goes on after refusing a message for this reason. Admission and the
/// session count concern one session and leave the stream consistent (the message is consumed
/// whole, nothing of it kept), so the peer's other sessions go on without a reconnect; the
/// other refusals mean the peer or its stream misbehaves, and the stream ends.
fn stream_survives(kind: Refusal) -> bool {
    matches!(kind, Refusal::NotAdmitted | Refusal::TooManySessions)
}

/// The message being received on a stream: what to do with it and the bytes it holds.
struct Incoming {
    verdict: Verdict,
    reservation: Reservation,
}

/// Reads one peer's frames, reassembles messages, stores them and acknowledges each.
///
/// Every message is judged on its first chunk ([`Inbox::verdict`]): refused (the refusal is
/// sent at once and the rest of the message is read and discarded), dropped (a closed
/// session: discarded, acknowledged when complete) or stored. A stored message's chunks are
/// reserved against the peer's buffer cap before they are kept; while the peer is at its cap
/// this task does not read, and HTTP/2 flow control holds the peer's sender back.
///
/// The acknowledgement stream ends cleanly (dropping `acks`) only when this task returns, and
/// every message it stored was acknowledged before: a sender that sees the clean end knows
/// that what it wrote and saw no acknowledgement for was not stored.
async fn receive_stream(
    server: FederationServer,
    peer: PartyId,
    incarnation: u64,
    mut frames: Streaming<Frame>,
    acks: mpsc::Sender<Result<Ack, Status>>,
) {
    let mut reassembly = Reassembly::default();
    let mut incoming: Option<Incoming> = None;
    let version = server.version;
    let mut shutdown = server.shutdown.clone();
    let stopped = |mut shutdown: watch::Receiver<bool>| async move {
        let _ = shutdown.wait_for(|down| *down).await.map(|_| ());
    };
    loop {
        let next = tokio::select! {
            biased;
            // Stop reading on shutdown; dropping `acks` ends the response stream after the
            // acknowledgements already queued, so every stored message is acknowledged.
            _ = async { let _ = shutdown.wait_for(|down| *down).await.map(|_| ()); } => return,
            next = frames.message() => next,
        };
        let frame = match next {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(status) => {
                tracing::debug!("stream from '{peer}' ended: {status}");
                return;
            }
        };
        server.inbox.heard_from(&peer);
        let (session, seq) = (frame.session.clone(), frame.seq);
        if frame.sender != peer.as_str() {
            let reason = format!(
                "frame claims sender '{}' but the connection is authenticated as '{peer}'",
                frame.sender
            );
            let _ = acks
                .send(Ok(refusal(
                    &session,
                    seq,
                    Refusal::WrongSender,
                    reason,
                    version,
                )))
                .await;
            return;
        }
        if let Err(e) = validate_frame(&frame, &server.limits) {
            if e.kind == Refusal::Version {
                server.inbox.peer_failed(
                    &peer,
                    crate::inbox::PeerProblem::Version {
                        theirs: frame.protocol_version,
                        ours: version,
                    },
                );
            }
            let _ = acks
                .send(Ok(refusal(&session, seq, e.kind, e.reason, version)))
                .await;
            return;
        }
        let first = frame.chunk_index == 0;
        if first {
            let verdict = server.inbox.verdict(&peer, &session);
            if let Verdict::Refuse(kind, reason) = &verdict {
                // Refused before any of it is kept; the sender drops the session's messages.
                let ack = refusal(&session, seq, *kind, reason.clone(), version);
                if acks.send(Ok(ack)).await.is_err() || !stream_survives(*kind) {
                    return;
                }
            }
            incoming = Some(Incoming {
                verdict,
                reservation: Reservation::new(server.inbox.clone(), peer.clone(), incarnation),
            });
        }
        // A chunk that does not continue the message (a malformed stream) is refused by
        // `push` below; its reservation goes with the stream.
        if let Some(msg) = incoming.as_mut()
            && msg.verdict == Verdict::Store
        {
            let reserve = server.inbox.reserve(&mut msg.reservation, frame.data.len());
            tokio::select! {
                biased;
                _ = stopped(shutdown.clone()) => return,
                _ = reserve => {}
            }
        }
        let keep = incoming
            .as_ref()
            .is_some_and(|m| m.verdict == Verdict::Store);
        let message = match reassembly.push(frame) {
            Ok(m) => {
                if first && !keep {
                    reassembly.discard_current();
                }
                match m {
                    Some(m) => m,
                    None => continue,
                }
            }
            Err(e) => {
                let _ = acks
                    .send(Ok(refusal(&session, seq, e.kind, e.reason, version)))
                    .await;
                return;
            }
        };
        let Some(Incoming {
            verdict,
            mut reservation,
        }) = incoming.take()
        else {
            // A complete message always began with a first chunk, which set `incoming`.
            continue;
        };
        let delivery = match verdict {
            Verdict::Refuse(..) => continue,
            Verdict::Drop => Delivery::Dropped,
            Verdict::Store => {
                let deliver = server.inbox.deliver(&peer, message, &mut reservation);
                tokio::select! {
                    biased;
                    _ = stopped(shutdown.clone()) => return,
                    d = deliver => d,
                }
            }
        };
        match delivery {
            Delivery::Stored | Delivery::Duplicate | Delivery::Dropped => {
                let ack = Ack {
                    protocol_version: version,
                    session,
                    seq,
                    error: String::new(),
                    error_kind: 0,
                };
                if acks.send(Ok(ack)).await.is_err() {
                    return;
                }
            }
            Delivery::Refused(kind, reason) => {
                let sent = acks
                    .send(Ok(refusal(&session, seq, kind, reason, version)))
                    .await;
                if sent.is_err() || !stream_survives(kind) {
                    return;
                }
            }
        }
    }
}
