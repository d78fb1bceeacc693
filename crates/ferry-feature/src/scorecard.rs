//! Scorecards: points per bin from a logistic regression on WOE features.
//!
//! # Scaling
//! A scorecard turns the model's log-odds into points with three numbers
//! ([`ScorecardParams`]): the score `base_score` at which the **good:bad** odds are
//! `base_odds`, and `pdo`, the points that double those odds. The defaults (600 points at
//! 50:1, 20 points to double the odds) are the textbook example (N. Siddiqi, *Credit Risk
//! Scorecards*, Wiley 2006, ch. 6), and odds are good:bad in that convention, so that a
//! higher score means a lower risk. With
//!
//! ```text
//!     factor = pdo / ln 2
//!     offset = base_score − factor · ln(base_odds)
//!     score  = offset + factor · ln(odds_good) = offset − factor · logit
//! ```
//!
//! where `logit = ln(p_bad / (1 − p_bad)) = intercept + Σ_j w_j · woe_j` is what a logistic
//! regression trained on labels 1 = bad predicts (Ferry's hetero LR: label 1 is the positive
//! class). Checks: at `logit = −ln(base_odds)` the score is `base_score`; lowering the logit by
//! `ln 2` (doubling the good:bad odds) adds `pdo` points.
//!
//! # Points
//! The score splits over features and bins:
//!
//! ```text
//!     score = (offset − factor · intercept) + Σ_j points_j[bin_j],
//!     points_j[b] = −factor · w_j · woe_j[b]
//! ```
//!
//! The sign needs no assumption about how WOE is oriented (Ferry's [`crate::woe`] uses
//! `ln(bad share / good share)`, so riskier bins have larger WOE): it only needs the WOE
//! values the model was trained on.
//!
//! # Parties
//! In vertical federated learning each party holds the weights of its own features and the
//! guest alone the intercept, so each party builds the card of its own features
//! ([`PartyScorecard`]): the guest's card carries the base points `offset − factor ·
//! intercept`, a host's card has base points 0. A party scores its rows with
//! [`score_rows`] (partial scores); the total score of a row is the sum of every party's
//! partial score ([`total_scores`]), which only the party that gathers the partial scores
//! (normally the guest) learns.

use crate::binning::FeatureBinning;
use crate::table::{ColumnValues, Table};
use crate::transform::WoeColumn;
use ferry_context::Role;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::f64::consts::LN_2;

/// What went wrong building or using a scorecard.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScorecardError {
    #[error("invalid scorecard parameters: {0}")]
    InvalidParams(String),
    #[error("feature '{feature}': {reason}")]
    Feature { feature: String, reason: String },
    #[error("a {role} cannot hold {what}")]
    Role { role: String, what: &'static str },
    #[error("{0}")]
    Shape(String),
    #[error("row {row}: score {value} is not a finite number")]
    NotFinite { row: usize, value: f64 },
    #[error("row {row}: label {value} is not 0 (good) or 1 (bad)")]
    BadLabel { row: usize, value: f64 },
    #[error("no column named '{column}' (columns are: {available})")]
    NoColumn { column: String, available: String },
}

/// How log-odds become points (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScorecardParams {
    /// The score at which the good:bad odds are `base_odds` (default 600).
    pub base_score: f64,
    /// Points to double the good:bad odds (default 20; must be positive).
    pub pdo: f64,
    /// Good:bad odds at `base_score` (default 50, i.e. 50 goods per bad).
    pub base_odds: f64,
}

impl Default for ScorecardParams {
    fn default() -> Self {
        ScorecardParams {
            base_score: 600.0,
            pdo: 20.0,
            base_odds: 50.0,
        }
    }
}

impl ScorecardParams {
    /// Range checks; the error names the field.
    pub fn validate(&self) -> Result<(), ScorecardError> {
        let bad = |m: String| Err(ScorecardError::InvalidParams(m));
        if !self.base_score.is_finite() || self.base_score.abs() > 1e9 {
            return bad(format!(
                "base_score must be a finite number of at most 1e9 in magnitude, got {}",
                self.base_score
            ));
        }
        if !(self.pdo.is_finite() && self.pdo > 0.0 && self.pdo <= 1e6) {
            return bad(format!(
                "pdo (points to double the odds) must be in (0, 1e6], got {}",
                self.pdo
            ));
        }
        if !(self.base_odds.is_finite() && self.base_odds > 0.0) {
            return bad(format!(
                "base_odds (good:bad odds at base_score) must be a positive finite number, got {}",
                self.base_odds
            ));
        }
        Ok(())
    }

    /// `pdo / ln 2`: points per unit of log-odds.
    pub fn factor(&self) -> f64 {
        self.pdo / LN_2
    }

    /// `base_score − factor · ln(base_odds)`: the score at even odds (logit 0).
    pub fn offset(&self) -> f64 {
        self.base_score - self.factor() * self.base_odds.ln()
    }

    /// The score of a log-odds of bad: `offset − factor · logit`.
    pub fn score_of_logit(&self, logit: f64) -> f64 {
        self.offset() - self.factor() * logit
    }
}

/// One feature of a party's model: its weight and the WOE of each of its bins.
#[derive(Clone, Debug, PartialEq)]
pub struct ScorecardFeature {
    pub feature: String,
    pub weight: f64,
    /// WOE per bin, in bin order (the missing bin last).
    pub woe: Vec<f64>,
    /// One per bin (may be empty: `"bin <i>"`).
    pub bin_labels: Vec<String>,
}

impl ScorecardFeature {
    /// The feature a fitted `woe` transform step encodes, with its model weight.
    pub fn from_woe_column(column: &WoeColumn, weight: f64) -> Self {
        ScorecardFeature {
            feature: column.name.clone(),
            weight,
            woe: column.woe.clone(),
            bin_labels: column.binning.bin_labels(),
        }
    }
}

/// The points of one feature's bins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeaturePoints {
    pub feature: String,
    pub bin_labels: Vec<String>,
    /// `−factor · weight · woe[bin]`, one per bin.
    pub points: Vec<f64>,
}

/// The scorecard part one party holds: the points of its own features, and (guest only) the
/// base points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartyScorecard {
    /// `offset − factor · intercept` at the guest (intercept 0 when the model has none);
    /// 0 at a host.
    pub base_points: f64,
    pub features: Vec<FeaturePoints>,
}

impl PartyScorecard {
    /// The card of one party's part of a logistic regression on WOE features: `role` and
    /// `intercept` as in the model part (only the guest has an intercept), `features` its
    /// features with their weights and WOE.
    pub fn build(
        params: &ScorecardParams,
        role: Role,
        intercept: Option<f64>,
        features: &[ScorecardFeature],
    ) -> Result<Self, ScorecardError> {
        params.validate()?;
        let base_points = match (role, intercept) {
            (Role::Guest, b) => params.score_of_logit(b.unwrap_or(0.0)),
            (Role::Host, None) => 0.0,
            (Role::Host, Some(_)) => {
                return Err(ScorecardError::Role {
                    role: role.to_string(),
                    what: "an intercept (only the guest's model part has one)",
                });
            }
            (_, _) => {
                return Err(ScorecardError::Role {
                    role: role.to_string(),
                    what: "a scorecard (it has no features)",
                });
            }
        };
        if !base_points.is_finite() {
            return Err(ScorecardError::InvalidParams(format!(
                "the intercept {intercept:?} gives base points {base_points}"
            )));
        }
        let factor = params.factor();
        let mut out = Vec::with_capacity(features.len());
        for (j, f) in features.iter().enumerate() {
            let err = |reason: String| ScorecardError::Feature {
                feature: f.feature.clone(),
                reason,
            };
            if features[..j].iter().any(|o| o.feature == f.feature) {
                return Err(err("appears twice".into()));
            }
            if !f.weight.is_finite() {
                return Err(err(format!("the weight {} is not finite", f.weight)));
            }
            if f.woe.is_empty() {
                return Err(err("has no bins".into()));
            }
            if let Some(b) = f.woe.iter().position(|w| !w.is_finite()) {
                return Err(err(format!("the WOE of bin {b} is {}", f.woe[b])));
            }
            if !f.bin_labels.is_empty() && f.bin_labels.len() != f.woe.len() {
                return Err(err(format!(
                    "{} bin labels for {} bins",
                    f.bin_labels.len(),
                    f.woe.len()
                )));
            }
            out.push(FeaturePoints {
                feature: f.feature.clone(),
                bin_labels: if f.bin_labels.is_empty() {
                    (0..f.woe.len()).map(|i| format!("bin {i}")).collect()
                } else {
                    f.bin_labels.clone()
                },
                points: f.woe.iter().map(|w| -factor * f.weight * w).collect(),
            });
        }
        Ok(PartyScorecard {
            base_points,
            features: out,
        })
    }

    /// Partial scores of the rows of `table`: each card feature's column is binned with the
    /// binning of the same name in `binnings`.
    pub fn score_table(
        &self,
        table: &Table,
        binnings: &[FeatureBinning],
    ) -> Result<Vec<f64>, ScorecardError> {
        table
            .check()
            .map_err(|e| ScorecardError::Shape(e.to_string()))?;
        let columns = self
            .features
            .iter()
            .map(|f| {
                let binning = binnings
                    .iter()
                    .find(|b| b.feature == f.feature)
                    .ok_or_else(|| ScorecardError::Feature {
                        feature: f.feature.clone(),
                        reason: "no binning was given for it".into(),
                    })?;
                let column = table
                    .column(&f.feature)
                    .ok_or_else(|| ScorecardError::NoColumn {
                        column: f.feature.clone(),
                        available: table.column_names().join(", "),
                    })?;
                Ok(match &column.values {
                    ColumnValues::Numeric(v) => binning.bin_numbers(v),
                    ColumnValues::Text(v) => binning.bin_texts(v),
                })
            })
            .collect::<Result<Vec<_>, ScorecardError>>()?;
        let rows: Vec<Vec<u32>> = (0..table.n_rows())
            .map(|i| columns.iter().map(|c| c[i]).collect())
            .collect();
        score_rows(self, &rows)
    }
}

/// Partial scores of one party's rows: `base_points + Σ_j points_j[bins[row][j]]`.
/// `bins[row]` holds the row's bin index for each of the card's features, in card order (bin
/// numbers as [`FeatureBinning::bin_numbers`] / [`FeatureBinning::bin_texts`] give them).
pub fn score_rows(card: &PartyScorecard, bins: &[Vec<u32>]) -> Result<Vec<f64>, ScorecardError> {
    bins.iter()
        .enumerate()
        .map(|(row, row_bins)| {
            if row_bins.len() != card.features.len() {
                return Err(ScorecardError::Shape(format!(
                    "row {row} has bins for {} features, but the card has {} ({})",
                    row_bins.len(),
                    card.features.len(),
                    card.features
                        .iter()
                        .map(|f| f.feature.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let mut score = card.base_points;
            for (f, &b) in card.features.iter().zip(row_bins) {
                score += f
                    .points
                    .get(b as usize)
                    .ok_or_else(|| ScorecardError::Feature {
                        feature: f.feature.clone(),
                        reason: format!(
                            "row {row} is in bin {b}, but the card has {} bins",
                            f.points.len()
                        ),
                    })?;
            }
            Ok(score)
        })
        .collect()
}

/// Total scores: the sum of every party's partial scores, row by row.
pub fn total_scores(partials: &[Vec<f64>]) -> Result<Vec<f64>, ScorecardError> {
    let Some(first) = partials.first() else {
        return Err(ScorecardError::Shape("no partial scores to add".into()));
    };
    let mut total = first.clone();
    for (k, p) in partials.iter().enumerate().skip(1) {
        if p.len() != total.len() {
            return Err(ScorecardError::Shape(format!(
                "party {k} scored {} rows, party 0 scored {}",
                p.len(),
                total.len()
            )));
        }
        for (t, x) in total.iter_mut().zip(p) {
            *t += x;
        }
    }
    Ok(total)
}

/// One band of a [`ScoreDistribution`]: scores `s` with `lower ≤ s < upper`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreBand {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
    /// Share of all rows.
    pub share: f64,
    /// Rows labelled 1 (bad), when labels are known.
    pub bad: Option<u64>,
    /// `bad / count` (`None` without labels or for an empty band).
    pub bad_rate: Option<f64>,
}

/// A histogram of scores over fixed-width bands, with bad rates when labels are known.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreDistribution {
    /// From the lowest scores up, contiguous (empty bands in between are kept).
    pub bands: Vec<ScoreBand>,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Overall bad rate, when labels are known.
    pub bad_rate: Option<f64>,
}

/// Most bands [`score_distribution`] makes.
pub const MAX_SCORE_BANDS: usize = 10_000;

/// Scores in bands `[k·band_width, (k+1)·band_width)` (aligned to multiples of the width, so
/// that bands read like `580–600`), from the band of the lowest score to that of the highest.
/// `labels` (1 = bad, 0 = good), when given, add bad counts and rates per band.
pub fn score_distribution(
    scores: &[f64],
    labels: Option<&[f64]>,
    band_width: f64,
) -> Result<ScoreDistribution, ScorecardError> {
    if scores.is_empty() {
        return Err(ScorecardError::Shape("no scores".into()));
    }
    if !(band_width.is_finite() && band_width > 0.0) {
        return Err(ScorecardError::InvalidParams(format!(
            "band_width must be a positive number, got {band_width}"
        )));
    }
    if let Some((row, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(ScorecardError::NotFinite { row, value });
    }
    if let Some(l) = labels {
        if l.len() != scores.len() {
            return Err(ScorecardError::Shape(format!(
                "{} labels for {} scores",
                l.len(),
                scores.len()
            )));
        }
        if let Some((row, &value)) = l.iter().enumerate().find(|(_, y)| **y != 0.0 && **y != 1.0) {
            return Err(ScorecardError::BadLabel { row, value });
        }
    }
    let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let first = (min / band_width).floor();
    let last = (max / band_width).floor();
    let n_bands = last - first + 1.0;
    if n_bands > MAX_SCORE_BANDS as f64 {
        return Err(ScorecardError::InvalidParams(format!(
            "scores from {min} to {max} make {n_bands} bands of width {band_width} (at most \
             {MAX_SCORE_BANDS}): use wider bands"
        )));
    }
    let n_bands = n_bands as usize;
    let band_of = |s: f64| (((s / band_width).floor() - first) as usize).min(n_bands - 1);
    let mut counts = vec![0u64; n_bands];
    let mut bads = vec![0u64; n_bands];
    for (i, &s) in scores.iter().enumerate() {
        let b = band_of(s);
        counts[b] += 1;
        if let Some(l) = labels {
            bads[b] += (l[i] == 1.0) as u64;
        }
    }
    let n = scores.len() as f64;
    let bands = (0..n_bands)
        .map(|b| {
            let k = first + b as f64;
            ScoreBand {
                lower: k * band_width,
                upper: (k + 1.0) * band_width,
                count: counts[b],
                share: counts[b] as f64 / n,
                bad: labels.map(|_| bads[b]),
                bad_rate: labels
                    .filter(|_| counts[b] > 0)
                    .map(|_| bads[b] as f64 / counts[b] as f64),
            }
        })
        .collect();
    Ok(ScoreDistribution {
        bands,
        count: scores.len() as u64,
        min,
        max,
        mean: scores.iter().sum::<f64>() / n,
        bad_rate: labels.map(|l| l.iter().sum::<f64>() / n),
    })
}
