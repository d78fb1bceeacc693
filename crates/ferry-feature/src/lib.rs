//! Feature engineering for joint risk control (the scorecard workflow).
//!
//! * [`binning`]: quantile, equal-width and optimal (monotonic bad rate) bins per feature,
//!   a bin of its own for missing values, a bin per category with rare ones merged.
//! * [`woe`]: WOE and IV from per-bin counts, computed centrally or, for a host's features,
//!   federated: the guest's labels travel encrypted and only per-bin counts come back.
//! * [`selection`]: choosing features by IV, missing rate, distinct values, variance and
//!   correlation.
//! * [`table`]: a party's table with text columns kept as text, for encoders.
//! * [`transform`]: fitted, serialisable transforms (WOE, scaling, encoding, imputation,
//!   clipping) applied again at prediction.
//! * [`scorecard`]: points per bin from a logistic regression on WOE features.
//!
//! Security model: semi-honest parties (see each protocol's documentation for what each
//! party learns).

pub mod binning;
pub mod scorecard;
pub mod selection;
pub mod table;
pub mod transform;
pub mod woe;
