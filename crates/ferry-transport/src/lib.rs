//! Ferry's federation runtime between nodes.
//!
//! * [`identity`]: a node's key and self-signed certificate; fingerprints.
//! * [`config`]: the node directory (`ferry init`, `ferry peer add`).
//! * [`tls`]: mutual TLS that accepts only pinned certificates, in both directions.
//! * [`wire`]: the gRPC messages (`Frame`, `Ack`), validation, chunking and reassembly.
//! * [`transport`]: [`FederationTransport`], a [`ferry_context::Transport`] over gRPC streams
//!   with sequence numbers, acknowledgements, retransmission after reconnects,
//!   de-duplication, backpressure, limits and timeouts. A partner that restarts is noticed by
//!   its new incarnation: the sessions it lost fail naming the restart, the control session
//!   goes on (see "A peer restarts" in [`transport`]).
//!
//! Protocols never see any of this: they get a [`ferry_context::Context`] built with
//! [`FederationTransport`] underneath (see [`session_context`]).

pub mod config;
pub mod error;
pub mod identity;
mod inbox;
pub mod service;
pub mod tls;
pub mod transport;
pub mod wire;

pub use config::{NodeConfig, NodeDir, PeerEntry, PreviousCert, unused_loopback_port};
pub use error::TransportError;
pub use identity::Identity;
pub use transport::{FederationTransport, SessionAdmission, TransportConfig, TransportStats};

use ferry_context::{Context, ContextBuilder, Roster};
use std::sync::Arc;

/// A context builder for one session over a running transport.
pub fn session_context(
    transport: &Arc<FederationTransport>,
    roster: Roster,
    session: impl Into<String>,
) -> ContextBuilder {
    Context::builder(
        transport.party().clone(),
        roster,
        session,
        transport.clone(),
    )
}
