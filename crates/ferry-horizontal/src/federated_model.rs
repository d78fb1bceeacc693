//! FedAvg as a [`FederatedModel`]: the interface the node's training component, prediction
//! path, model store and benchmarks use for every algorithm.

use crate::error::HflError;
use crate::fedavg::{StopReason, train_with_checkpoints};
use crate::model::{Model, predict};
use crate::params::FedAvgParams;
use ferry_context::{Context, Role};
use ferry_data::Dataset;
use ferry_ml::{Checkpoints, FederatedModel, Fitted};
use serde_json::json;

impl FederatedModel for Model {
    const KIND: &'static str = "fedavg";
    type Params = FedAvgParams;
    type Error = HflError;

    /// [`FedAvgParams::validate_ranges`]: the checks against the number of clients run when
    /// training starts, where the roster is known.
    fn validate(params: &FedAvgParams) -> Result<(), String> {
        params.validate_ranges().map_err(|e| e.to_string())
    }

    /// Every client (guest and hosts) trains on its own labelled rows; only the server (the
    /// arbiter) has none.
    fn needs_label(role: Role) -> bool {
        role != Role::Arbiter
    }

    /// `validation` is a party's test file: the server evaluates the global model on it after
    /// every round, a client reports the global model's metrics on it.
    fn fit(
        ctx: &Context,
        train_data: Option<&Dataset>,
        params: &FedAvgParams,
        validation: Option<&Dataset>,
    ) -> Result<Fitted<Self>, HflError> {
        Self::fit_with_checkpoints(ctx, train_data, params, validation, Checkpoints::NONE)
    }

    /// Every party saves its state after every round ([`crate::checkpoint`]).
    const CHECKPOINTS: bool = true;

    fn fit_with_checkpoints(
        ctx: &Context,
        train_data: Option<&Dataset>,
        params: &FedAvgParams,
        validation: Option<&Dataset>,
        checkpoints: Checkpoints<'_>,
    ) -> Result<Fitted<Self>, HflError> {
        let outcome = train_with_checkpoints(ctx, train_data, params, validation, checkpoints)?;
        let (stop, stop_detail) = match &outcome.stop {
            StopReason::Completed => ("completed", None),
            StopReason::PrivacyBudget(why) => ("privacy_budget", Some(why.clone())),
        };
        // Under DP the report says how the job was accounted; without it, what every client
        // sent in the clear is still worth keeping with the model.
        let privacy = match &outcome.privacy {
            Some(report) => json!(report),
            None => json!({ "cleartext": params.cleartext_statistics() }),
        };
        let summary = json!({
            "rounds": outcome.rounds_completed,
            "epsilon": outcome.epsilon.filter(|e| e.is_finite()),
            "stop": stop,
            "stop_detail": stop_detail,
            "train_loss": outcome.rounds.iter().rev().find(|r| !r.skipped).map(|r| r.train_loss),
            "privacy": privacy,
        });
        let report = json!({
            "rounds": outcome.rounds,
            "evaluations": outcome.evaluations,
        });
        Ok(Fitted {
            model: outcome.model,
            summary,
            report,
        })
    }

    /// Every party holds the whole model, so scoring is local: any party with rows gets their
    /// scores (one per row, or one per class per row); a party without rows gets `None`.
    fn predict(
        &self,
        _ctx: &Context,
        data: Option<&Dataset>,
    ) -> Result<Option<Vec<f64>>, HflError> {
        data.map(|d| predict(self, d)).transpose()
    }

    fn to_bytes(&self) -> Result<Vec<u8>, HflError> {
        Ok(self.to_json()?.into_bytes())
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, HflError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| HflError::Model(format!("not a horizontal FL model file: {e}")))?;
        Model::from_json(text)
    }
}
