use ferry_context::{FederationError, PartyId};
use ferry_data::DataError;
use std::path::PathBuf;

/// Why a PSI run failed.
#[derive(Debug, thiserror::Error)]
pub enum PsiError {
    /// The input file is unreadable, empty, lacks a key column, or has a bad row (the message
    /// names the file, and the row and column where they apply).
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Federation(#[from] FederationError),
    /// A peer sent something the protocol does not allow (wrong chunk, invalid group element,
    /// out-of-range index...). Under the semi-honest model this means a bug or a different
    /// version on the other side; the run is aborted.
    #[error("PSI protocol error with party '{peer}': {reason}")]
    Protocol { peer: PartyId, reason: String },
    /// The parties were configured differently (group, receivers, key columns...).
    #[error("PSI configuration mismatch with party '{peer}': {reason}")]
    Mismatch { peer: PartyId, reason: String },
    /// This party's own configuration is unusable.
    #[error("PSI configuration: {0}")]
    Config(String),
    #[error("PSI key cache {file}: {reason}")]
    KeyCache { file: PathBuf, reason: String },
    /// An unbalanced-PSI filter (a file, or one a provider sent) is malformed, stale or
    /// cannot be stored; `origin` names the file or the party.
    #[error("unbalanced PSI filter ({origin}): {reason}")]
    Filter { origin: String, reason: String },
    #[error("{file}: cannot write the intersection: {reason}")]
    Output { file: PathBuf, reason: String },
}

impl PsiError {
    pub(crate) fn protocol(peer: &PartyId, reason: impl Into<String>) -> Self {
        PsiError::Protocol {
            peer: peer.clone(),
            reason: reason.into(),
        }
    }
}
