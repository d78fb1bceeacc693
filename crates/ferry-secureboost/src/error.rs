use crate::model::ModelError;
use crate::params::ParamError;
use ferry_context::{FederationError, PartyId, Role};
use ferry_crypto::encoding::EncodingError;
use ferry_crypto::{HeError, KeyGenError};
use ferry_ml::binning::BinningError;

/// Why SecureBoost training or prediction failed.
#[derive(Debug, thiserror::Error)]
pub enum SecureBoostError {
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error(transparent)]
    Federation(#[from] FederationError),
    #[error("invalid data: {0}")]
    Data(String),
    #[error(
        "party '{party}' has {theirs} rows but this party ('{me}') has {ours}: every party must \
         pass the same rows in the same order (align the datasets on their ids first)"
    )]
    RowMismatch {
        me: PartyId,
        party: PartyId,
        ours: usize,
        theirs: usize,
    },
    #[error("host '{host}' sent an invalid message: {reason}")]
    BadHostMessage { host: PartyId, reason: String },
    #[error("the guest sent an invalid request: {reason}")]
    BadGuestMessage { reason: String },
    #[error("host '{host}' stopped: {reason}")]
    HostFailed { host: PartyId, reason: String },
    #[error("the guest stopped the job: {reason}")]
    GuestAborted { reason: String },
    #[error("the {0} role does not take part in SecureBoost (only the guest and hosts do)")]
    UnsupportedRole(Role),
    #[error(
        "the model part belongs to a {part} but this party is the {role}: load the part this \
         party stored"
    )]
    WrongModelPart { part: &'static str, role: Role },
    #[error("key generation failed: {0}")]
    KeyGen(#[from] KeyGenError),
    #[error("encoding failed: {0} (use a larger key or fewer precision_bits)")]
    Encoding(#[from] EncodingError),
    #[error("encryption failed: {0} (use a larger key or fewer precision_bits)")]
    He(#[from] HeError),
    #[error(transparent)]
    Binning(#[from] BinningError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Checkpoint(#[from] ferry_ml::CheckpointError),
}

/// What peers are told when this party's own data fails a check: that it failed, not how
/// (a message like "label of row 5 is 3" would hand a host one of the guest's labels).
pub(crate) const OWN_DATA_PROBLEM: &str =
    "its own training data failed a check; the details stay with that party";

impl SecureBoostError {
    /// This error as it may be sent to peers: messages about this party's data (rows, labels,
    /// values) are replaced by [`OWN_DATA_PROBLEM`]; protocol and parameter errors are kept.
    pub(crate) fn for_peers(&self) -> String {
        match self {
            SecureBoostError::Data(_) | SecureBoostError::Binning(_) => OWN_DATA_PROBLEM.into(),
            // Checkpoint errors name this party's files.
            SecureBoostError::Checkpoint(_) => {
                "its checkpoint is missing or unusable; the details stay with that party".into()
            }
            other => other.to_string(),
        }
    }

    pub(crate) fn bad_host(host: &PartyId, reason: impl Into<String>) -> Self {
        SecureBoostError::BadHostMessage {
            host: host.clone(),
            reason: reason.into(),
        }
    }

    pub(crate) fn bad_guest(reason: impl Into<String>) -> Self {
        SecureBoostError::BadGuestMessage {
            reason: reason.into(),
        }
    }
}
