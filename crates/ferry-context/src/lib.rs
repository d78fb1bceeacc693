//! The federation interface of Ferry's protocols and algorithms.
//!
//! A protocol is a function of a [`Context`]: it learns its own party and role, the other
//! parties of the job, and sends and receives serde values by tag. It never sees sockets,
//! certificates or the database, so every protocol runs unchanged
//!
//! * in-process, one thread per party, over [`memory::MemoryNetwork`] (unit tests), and
//! * between nodes over gRPC with mutual TLS (the `ferry-transport` crate implements
//!   [`Transport`] for that).
//!
//! Payloads are encoded with bincode under a size limit ([`SessionConfig::max_message_bytes`]);
//! everything received is untrusted and decoding failures are errors that name the peer, the
//! tag and the expected type.

pub mod blob;
pub mod context;
pub mod error;
pub mod memory;
pub mod observer;
pub mod party;
pub mod probes;
pub mod record;
pub mod transport;

pub use blob::Blob;
pub use context::{Context, ContextBuilder, SessionConfig};
pub use error::FederationError;
pub use memory::{LocalCluster, MemoryNetwork, PartyOutcome};
pub use observer::{NoopObserver, Observer, RecordingObserver};
pub use party::{PartyId, Role, Roster};
pub use record::{CountersSnapshot, Direction, PeerCounters, Transcript, TranscriptEntry};
pub use transport::Transport;
