use ferry_context::{FederationError, PartyId};
use ferry_secagg::SecAggError;

/// Why horizontal federated training, evaluation or model loading failed.
#[derive(Debug, thiserror::Error)]
pub enum HflError {
    #[error(transparent)]
    Federation(#[from] FederationError),

    #[error("secure aggregation failed: {0}")]
    SecAgg(#[from] SecAggError),

    /// The parameters are inconsistent; the message names the parameter and what to change.
    #[error("invalid horizontal FL parameters: {0}")]
    Config(String),

    /// The data does not fit the model or the task.
    #[error("data problem: {0}")]
    Data(String),

    #[error("invalid model: {0}")]
    Model(String),

    /// A peer sent something the protocol does not allow.
    #[error("party '{party}' sent an invalid message: {reason}")]
    Protocol { party: PartyId, reason: String },

    /// The privacy budget does not allow even one round.
    #[error("{0}")]
    PrivacyBudget(String),

    #[error("every client dropped out: {0}")]
    NoClients(String),

    /// A checkpoint could not be saved, or the one to resume from could not be used.
    #[error("{0}")]
    Checkpoint(#[from] ferry_ml::CheckpointError),
}

impl HflError {
    pub(crate) fn protocol(party: &PartyId, reason: impl Into<String>) -> Self {
        HflError::Protocol {
            party: party.clone(),
            reason: reason.into(),
        }
    }
}
