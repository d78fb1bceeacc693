//! Machine-learning pieces shared by Ferry's federated algorithms.
//!
//! * [`binning`]: per-feature quantile bins with a dedicated missing-value bin.
//! * [`metrics`]: AUC, KS, accuracy/precision/recall/F1, log loss, lift, RMSE/MAE/R²,
//!   multi-class accuracy, with ROC and KS curve points for plotting, and the KS (gains) table.
//! * [`stability`]: the population stability index (PSI).
//! * [`model`]: [`FederatedModel`], the interface training, prediction, storage and
//!   benchmarks use for every algorithm.
//! * [`checkpoint`]: where long training saves its state after every tree, epoch or round, and
//!   where a resumed run reads it back.

pub mod binning;
pub mod checkpoint;
pub mod metrics;
pub mod model;
pub mod stability;

pub use checkpoint::{CheckpointError, CheckpointStore, Checkpoints};
pub use model::{FederatedModel, Fitted, LabelFacts};
