//! The backend interface under [`crate::Context`]: moves opaque byte payloads between parties.

use crate::error::FederationError;
use crate::party::PartyId;
use std::time::Duration;

/// One party's endpoint into the federation. Implementations: [`crate::memory`] (threads and
/// channels) and ferry-transport (gRPC over mutually authenticated TLS).
///
/// Semantics every backend keeps: messages from one sender under one (session, tag) arrive in
/// the order they were sent, exactly once; a receive waits at most `timeout`; errors name the
/// peer and the tag.
pub trait Transport: Send + Sync {
    /// Hands a message to the transport. May block while the transport applies backpressure;
    /// returns once the message is queued (not necessarily delivered; see [`Transport::flush`]).
    fn send(
        &self,
        session: &str,
        to: &PartyId,
        tag: &str,
        payload: Vec<u8>,
    ) -> Result<(), FederationError>;

    /// Waits for the next message under `tag` from `from`.
    fn recv(
        &self,
        session: &str,
        from: &PartyId,
        tag: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, FederationError>;

    /// Waits until every message sent in `session` has been delivered to its receiver.
    fn flush(&self, _session: &str, _timeout: Duration) -> Result<(), FederationError> {
        Ok(())
    }

    /// Releases the buffers of a finished session.
    fn close_session(&self, _session: &str) {}
}
