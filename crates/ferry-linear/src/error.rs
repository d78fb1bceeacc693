use ferry_context::{FederationError, PartyId};

/// Why training or prediction failed. Messages say what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LinearError {
    #[error("invalid hetero linear parameters: {0}")]
    InvalidParams(String),
    #[error(
        "parameters differ between this party and the guest: {0}; give every party the same configuration"
    )]
    ParamsMismatch(String),
    #[error("invalid input data: {0}")]
    Data(String),
    #[error(
        "the parties' data do not line up: {0}; align the parties' rows first (private set intersection) so every party has the same ids in the same order"
    )]
    Misaligned(String),
    #[error("{0}")]
    Aborted(String),
    #[error(
        "a residual share reached {value:.3e}, beyond the configured bound 2^{bound_bits}: the model is diverging (lower the learning rate, standardise the features or the regression target) or raise precision.residual_int_bits"
    )]
    ResidualOutOfRange { value: f64, bound_bits: u32 },
    #[error("party '{peer}' broke the protocol: {reason}")]
    Protocol { peer: PartyId, reason: String },
    #[error("cryptographic error: {0}")]
    Crypto(String),
    #[error("model: {0}")]
    Model(String),
    #[error(transparent)]
    Federation(#[from] FederationError),
    #[error(transparent)]
    Checkpoint(#[from] ferry_ml::CheckpointError),
}

/// What peers are told when this party's own data fails a check: that it failed, not how
/// (a message like "label 2 in row 'row7'" would hand a host one of the guest's labels).
pub(crate) const OWN_DATA_PROBLEM: &str =
    "its own data failed a check; the details stay with that party";

impl LinearError {
    /// This error as it may be sent to peers: messages about this party's data are replaced
    /// by [`OWN_DATA_PROBLEM`]; parameter, alignment and protocol errors are kept.
    pub(crate) fn for_peers(&self) -> String {
        match self {
            LinearError::Data(_) => OWN_DATA_PROBLEM.into(),
            // Checkpoint errors name this party's files.
            LinearError::Checkpoint(_) => {
                "its checkpoint is missing or unusable; the details stay with that party".into()
            }
            other => other.to_string(),
        }
    }

    pub(crate) fn protocol(peer: &PartyId, reason: impl Into<String>) -> Self {
        LinearError::Protocol {
            peer: peer.clone(),
            reason: reason.into(),
        }
    }
}

impl From<ferry_crypto::encoding::EncodingError> for LinearError {
    fn from(e: ferry_crypto::encoding::EncodingError) -> Self {
        LinearError::Crypto(e.to_string())
    }
}

impl From<ferry_crypto::HeError> for LinearError {
    fn from(e: ferry_crypto::HeError) -> Self {
        LinearError::Crypto(e.to_string())
    }
}

impl From<ferry_crypto::KeyGenError> for LinearError {
    fn from(e: ferry_crypto::KeyGenError) -> Self {
        LinearError::Crypto(e.to_string())
    }
}
