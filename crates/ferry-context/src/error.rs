use crate::party::{PartyId, Role};
use std::time::Duration;

/// Why a federated exchange failed. Every variant names the peer and, where there is one, the
/// tag, so a user can tell which step of which protocol broke.
#[derive(Clone, Debug, thiserror::Error)]
pub enum FederationError {
    #[error(
        "timed out after {timeout:?} waiting for '{tag}' from party '{peer}' (session {session})"
    )]
    Timeout {
        peer: PartyId,
        tag: String,
        session: String,
        timeout: Duration,
    },
    #[error("party '{0}' is not part of this job")]
    UnknownParty(PartyId),
    #[error("this step needs the {needed} role, but party '{party}' is {actual}")]
    WrongRole {
        party: PartyId,
        needed: Role,
        actual: Role,
    },
    #[error("the job has no {0}")]
    MissingRole(Role),
    #[error(
        "message '{tag}' for/from party '{peer}' is {size} bytes, above the limit of {limit} bytes"
    )]
    MessageTooLarge {
        peer: PartyId,
        tag: String,
        size: usize,
        limit: usize,
    },
    #[error("session {session} exceeded its limit of {limit} bytes received from party '{peer}'")]
    SessionTooLarge {
        peer: PartyId,
        session: String,
        limit: u64,
    },
    #[error("could not encode message '{tag}' for party '{peer}': {reason}")]
    Encode {
        peer: PartyId,
        tag: String,
        reason: String,
    },
    #[error("could not decode message '{tag}' from party '{peer}' as {expected}: {reason}")]
    Decode {
        peer: PartyId,
        tag: String,
        expected: &'static str,
        reason: String,
    },
    #[error("party '{peer}' failed: {reason}")]
    PeerFailed { peer: PartyId, reason: String },
    #[error(
        "party '{peer}' speaks federation protocol version {theirs}; this node speaks version {ours}"
    )]
    VersionMismatch {
        peer: PartyId,
        theirs: u32,
        ours: u32,
    },
    #[error("cannot reach party '{peer}': {reason}")]
    Unreachable { peer: PartyId, reason: String },
    #[error("session {0} was cancelled")]
    Cancelled(String),
    #[error("protocol error with party '{peer}': {reason}")]
    Protocol { peer: PartyId, reason: String },
}

impl FederationError {
    /// Shorthand for a peer that sent something the protocol does not allow.
    pub fn protocol(peer: &PartyId, reason: impl Into<String>) -> Self {
        FederationError::Protocol {
            peer: peer.clone(),
            reason: reason.into(),
        }
    }
}
