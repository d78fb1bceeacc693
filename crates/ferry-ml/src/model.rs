//! The one interface every federated learning algorithm offers the layers above it.
//!
//! Training, prediction, storage and benchmarks are generic over [`FederatedModel`]: the node
//! has one training component and one prediction path for all algorithms, and adding an
//! algorithm means implementing this trait in its crate and naming it in the node's registry.

use ferry_context::Context;
use ferry_data::{Dataset, LabelKind};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a party knows about the labels of its training data, for defaults that follow the
/// data (the SecureBoost objective, the evaluation kind). Only the label holder has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelFacts {
    pub kind: LabelKind,
    /// Distinct label values (classes for a categorical label).
    pub distinct: usize,
}

/// A trained model's part at one party, with what training reported.
pub struct Fitted<M> {
    pub model: M,
    /// Figures worth keeping with the model (final loss, rounds, seconds, ...), as JSON.
    pub summary: serde_json::Value,
    /// The algorithm's whole training report (per-round timings, operation counts), for
    /// benchmarks and logs; larger than the summary and not stored with the model.
    pub report: serde_json::Value,
}

/// A federated learning algorithm and the part of a trained model one party holds.
///
/// Every party calls [`fit`](Self::fit) (and later [`predict`](Self::predict)) with the same
/// parameters in the same session; what each party holds differs by role.
pub trait FederatedModel: Sized {
    /// The model kind stored with every version (`"hetero_secureboost"`); also the name of
    /// the training component.
    const KIND: &'static str;
    /// The algorithm's parameters as a job spec gives them.
    type Params: Clone + Default + Serialize + DeserializeOwned + JsonSchema;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Range checks that need no data; runs at submission on every node.
    fn validate(params: &Self::Params) -> Result<(), String>;

    /// The homomorphic-encryption settings the parameters use, if any, so that a node's
    /// policy can check (and, for tests, relax) the key size in one place.
    /// Default: the algorithm does not encrypt.
    fn he_settings(_params: &mut Self::Params) -> Option<&mut ferry_crypto::HeSettings> {
        None
    }

    /// Adjusts defaults to the label holder's data where the job left them unset (`set` are
    /// the keys the job spec gave). Default: nothing follows the data.
    fn follow_labels(
        _params: &mut Self::Params,
        _set: &serde_json::Map<String, serde_json::Value>,
        _labels: LabelFacts,
    ) {
    }

    /// Whether a party in `role` needs the training data's label (only the label holder).
    fn needs_label(role: ferry_context::Role) -> bool {
        role == ferry_context::Role::Guest
    }

    /// Trains. `train` is `None` at a party without data (an arbiter).
    fn fit(
        ctx: &Context,
        train: Option<&Dataset>,
        params: &Self::Params,
        validation: Option<&Dataset>,
    ) -> Result<Fitted<Self>, Self::Error>;

    /// Scores `data`; `Some` at the parties that learn the scores (one per row, or one per
    /// class per row, row-major).
    /// Whether [`fit_with_checkpoints`](Self::fit_with_checkpoints) saves and resumes.
    const CHECKPOINTS: bool = false;

    /// [`fit`](Self::fit) that saves the party's state into `checkpoints.save` after every
    /// step (tree, epoch, round) and, given `checkpoints.resume_from`, continues from the last
    /// step every party has there; the result equals an uninterrupted run's. Only when
    /// [`CHECKPOINTS`](Self::CHECKPOINTS) is true; the default trains from scratch, and callers
    /// must not ask an algorithm without checkpoints to resume.
    fn fit_with_checkpoints(
        ctx: &Context,
        train: Option<&Dataset>,
        params: &Self::Params,
        validation: Option<&Dataset>,
        _checkpoints: crate::Checkpoints<'_>,
    ) -> Result<Fitted<Self>, Self::Error> {
        Self::fit(ctx, train, params, validation)
    }

    fn predict(
        &self,
        ctx: &Context,
        data: Option<&Dataset>,
    ) -> Result<Option<Vec<f64>>, Self::Error>;

    fn to_bytes(&self) -> Result<Vec<u8>, Self::Error>;
    fn from_bytes(bytes: &[u8]) -> Result<Self, Self::Error>;
}
