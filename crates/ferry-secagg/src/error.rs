use ferry_context::{FederationError, PartyId};

/// Why a secure aggregation failed.
#[derive(Debug, thiserror::Error)]
pub enum SecAggError {
    #[error(transparent)]
    Federation(#[from] FederationError),

    /// Fewer clients than the threshold are left: the protocol cannot finish without weakening
    /// its guarantee, so it stops. Retry the round with the clients that are still reachable.
    #[error(
        "secure aggregation stopped at the '{stage}' stage: {got} clients responded but the threshold is {threshold} (dropped: {dropped})"
    )]
    TooFewClients {
        stage: &'static str,
        threshold: usize,
        got: usize,
        dropped: String,
    },

    #[error("invalid secure-aggregation configuration: {0}")]
    Config(String),

    /// A peer sent something the protocol does not allow (wrong length, unknown party, a key
    /// that is not a group element, a share that fails authentication...).
    #[error("party '{party}' sent an invalid '{stage}' message: {reason}")]
    BadMessage {
        party: PartyId,
        stage: &'static str,
        reason: String,
    },

    #[error("the input has {got} elements but this aggregation sums vectors of {expected}")]
    InputLength { expected: usize, got: usize },

    #[error(
        "input element {index} is {value}, which does not fit the {bits}-bit ring (encode values with FixedPointRing first)"
    )]
    InputRange { index: usize, value: u64, bits: u32 },

    #[error("cannot encode value {index} ({value}) as fixed point: {reason}")]
    Encoding {
        index: usize,
        value: f64,
        reason: String,
    },
}

impl SecAggError {
    pub(crate) fn bad(party: &PartyId, stage: &'static str, reason: impl Into<String>) -> Self {
        SecAggError::BadMessage {
            party: party.clone(),
            stage,
            reason: reason.into(),
        }
    }
}
