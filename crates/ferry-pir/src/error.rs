//! Why a PIR step failed.

use crate::TableId;
use ferry_context::{FederationError, PartyId};

/// Why building, loading, serving or querying a table failed.
///
/// Errors about a peer name the peer and the message field; errors about the provider's own
/// rows name the row (they stay on the provider's node: `serve` never sends them).
#[derive(Debug, thiserror::Error)]
pub enum PirError {
    #[error(transparent)]
    Federation(#[from] FederationError),
    /// A peer sent something the protocol does not allow: a wrong length, an element that is
    /// not a group element, a count outside the announced range... Under the semi-honest model
    /// this is a bug or a different implementation on the other side; the session stops.
    #[error("PIR protocol error with party '{peer}': field '{field}': {reason}")]
    Protocol {
        peer: PartyId,
        field: &'static str,
        reason: String,
    },
    /// The peer speaks another version of the PIR messages.
    #[error(
        "party '{peer}' speaks PIR message version {theirs} in '{field}'; this party speaks {ours}"
    )]
    Version {
        peer: PartyId,
        field: &'static str,
        theirs: u32,
        ours: u32,
    },
    /// A message belongs to another version of the provider's table than the one this
    /// session set up (the table was rebuilt while the querier held the old one).
    #[error(
        "party '{peer}' sent '{field}' for table {got}, but this session uses table {expected}"
    )]
    TableChanged {
        peer: PartyId,
        field: &'static str,
        expected: TableId,
        got: TableId,
    },
    /// The provider refused the session (too many ids, wrong version); the reason is its own.
    #[error("party '{peer}' refused the PIR session: {reason}")]
    Refused { peer: PartyId, reason: String },
    /// The roster does not have exactly two parties.
    #[error("PIR runs between exactly two parties; {0}")]
    Roster(String),
    /// This party's own parameters are unusable.
    #[error("PIR parameters: {0}")]
    Params(String),
    /// The provider's table has more rows than its parameters allow (nothing was built).
    #[error("the table has more than {limit} rows (max_rows); nothing was built")]
    TooManyRows { limit: u64 },
    /// The database matrix would exceed a size limit (nothing was built or loaded).
    #[error("the table needs a {what} of {bytes} bytes, above the limit of {limit} bytes")]
    TableTooLarge {
        what: &'static str,
        bytes: u64,
        limit: u64,
    },
    /// A row of the provider's own input is unusable (value too long, duplicate key).
    #[error("row {row} of the table: {reason}")]
    Row { row: u64, reason: String },
    /// Bytes given to `ProviderTable::from_bytes` are not a stored table.
    #[error("stored PIR table: {0}")]
    Stored(String),
}

impl PirError {
    pub(crate) fn protocol(peer: &PartyId, field: &'static str, reason: impl Into<String>) -> Self {
        PirError::Protocol {
            peer: peer.clone(),
            field,
            reason: reason.into(),
        }
    }
}
