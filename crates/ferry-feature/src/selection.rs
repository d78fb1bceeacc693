//! Feature selection by information value, missing rate, distinct values, variance and
//! correlation.
//!
//! # Rules ([`select`]), in this order
//! 1. *Local checks* (only for candidates whose values are given): missing rate above
//!    `max_missing_rate`, fewer than `min_distinct` distinct non-missing values, population
//!    variance of the non-missing values not above `min_variance` (so the default 0 drops
//!    constant columns).
//! 2. *IV range*: IV below `min_iv` or above `max_iv`. When any IV rule is on (`min_iv > 0`,
//!    `max_iv` or `top_k` set), a candidate without an IV is dropped ([`DropReason::NoIv`]).
//! 3. *Correlation within one party*: survivors are visited by decreasing IV (ties: input
//!    order); a candidate whose absolute Pearson correlation (over the rows where both values
//!    are present) with an already kept candidate **of the same party** is above
//!    `max_correlation` is dropped — so of a correlated pair the lower-IV one goes. Pairs
//!    known to be correlated without values (a host's, see below) count the same.
//! 4. *Top k*: only the `top_k` survivors with the highest IV are kept (ties: input order).
//!
//! # Federated ([`federated_selection`])
//! Host values never cross. Each host runs the local checks on its own columns with its own
//! parameters, and finds the pairs of its remaining features whose correlation is above its
//! own `max_correlation`. It sends the guest the indices of its remaining features and of
//! those pairs (**this discloses which host features failed the host's own checks and which
//! pairs are strongly correlated**, not any value or the correlations themselves). The guest
//! applies the IV rules with its parameters to all candidates at once (its own and every
//! host's, by the names it knows them by: `top_k` is over all parties), drops the lower-IV
//! feature of each reported host pair, and sends each host the indices of its kept features.
//! A host thus learns which of its features passed the guest's IV rules (and, with `top_k`,
//! something of their rank among all features), nothing else.

use crate::woe::WoeOutcome;
use ferry_context::{Context, FederationError, PartyId, Role};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Thresholds of [`select`]. In [`federated_selection`] the guest's IV rules apply to every
/// party's features; each party's local checks and correlation threshold apply to its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SelectionParams {
    /// Drop features whose IV is below this (0 turns the rule off).
    #[schemars(range(min = 0.0))]
    pub min_iv: f64,
    /// Drop features whose IV is above this (often a sign of leakage); none by default.
    pub max_iv: Option<f64>,
    /// Keep at most this many features, those with the highest IV.
    #[schemars(range(min = 1))]
    pub top_k: Option<usize>,
    /// Drop features with a larger share of missing values (1 turns the rule off).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_missing_rate: f64,
    /// Drop features with fewer distinct non-missing values (0 or 1 turns the rule off).
    pub min_distinct: usize,
    /// Drop features whose variance is not above this (0: drop constant features).
    #[schemars(range(min = 0.0))]
    pub min_variance: f64,
    /// Of two features of one party with a larger absolute correlation, drop the one with the
    /// lower IV (1 turns the rule off).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_correlation: f64,
}

impl Default for SelectionParams {
    fn default() -> Self {
        SelectionParams {
            min_iv: 0.02,
            max_iv: None,
            top_k: None,
            max_missing_rate: 0.95,
            min_distinct: 2,
            min_variance: 0.0,
            max_correlation: 0.9,
        }
    }
}

impl SelectionParams {
    /// Range checks; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.min_iv.is_finite() && self.min_iv >= 0.0) {
            return Err(format!("min_iv must be 0 or more, got {}", self.min_iv));
        }
        if let Some(max) = self.max_iv
            && !(max.is_finite() && max > self.min_iv)
        {
            return Err(format!(
                "max_iv must be above min_iv ({}), got {max}",
                self.min_iv
            ));
        }
        if self.top_k == Some(0) {
            return Err("top_k must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.max_missing_rate) {
            return Err(format!(
                "max_missing_rate must be between 0 and 1, got {}",
                self.max_missing_rate
            ));
        }
        if !(self.min_variance.is_finite() && self.min_variance >= 0.0) {
            return Err(format!(
                "min_variance must be 0 or more, got {}",
                self.min_variance
            ));
        }
        if !(0.0..=1.0).contains(&self.max_correlation) {
            return Err(format!(
                "max_correlation must be between 0 and 1, got {}",
                self.max_correlation
            ));
        }
        Ok(())
    }

    fn iv_rules_on(&self) -> bool {
        self.min_iv > 0.0 || self.max_iv.is_some() || self.top_k.is_some()
    }
}

/// Why a feature was dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    MissingRate {
        rate: f64,
        max: f64,
    },
    FewDistinct {
        distinct: usize,
        min: usize,
    },
    LowVariance {
        variance: f64,
        min: f64,
    },
    NoIv,
    LowIv {
        iv: f64,
        min: f64,
    },
    HighIv {
        iv: f64,
        max: f64,
    },
    /// Correlated with `with`, which has a higher IV; the correlation is unknown for a host's
    /// pair (the host reported only that it is above its threshold).
    Correlated {
        with: String,
        correlation: Option<f64>,
    },
    NotInTopK {
        rank: usize,
        k: usize,
    },
    /// (Guest's view) the host dropped it by its own local checks.
    ByOwner,
    /// (Host's view) the guest's IV rules dropped it.
    ByGuest,
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DropReason::MissingRate { rate, max } => {
                write!(f, "missing rate {rate:.4} is above {max}")
            }
            DropReason::FewDistinct { distinct, min } => {
                write!(f, "{distinct} distinct values, fewer than {min}")
            }
            DropReason::LowVariance { variance, min } => {
                write!(f, "variance {variance} is not above {min}")
            }
            DropReason::NoIv => write!(f, "no IV is known"),
            DropReason::LowIv { iv, min } => write!(f, "IV {iv:.4} is below {min}"),
            DropReason::HighIv { iv, max } => write!(f, "IV {iv:.4} is above {max}"),
            DropReason::Correlated {
                with,
                correlation: Some(r),
            } => write!(f, "correlation {r:.4} with '{with}', which has a higher IV"),
            DropReason::Correlated {
                with,
                correlation: None,
            } => write!(
                f,
                "strongly correlated with '{with}', which has a higher IV"
            ),
            DropReason::NotInTopK { rank, k } => write!(f, "IV rank {rank} is not in the top {k}"),
            DropReason::ByOwner => write!(f, "dropped by its owner's local checks"),
            DropReason::ByGuest => write!(f, "dropped by the guest's IV rules"),
        }
    }
}

/// A feature offered to [`select`].
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub name: String,
    /// Correlation is only compared between candidates of the same party.
    pub party: String,
    pub iv: Option<f64>,
    /// The column (`NaN` = missing), when this party holds it; categorical columns can be
    /// given as bin indices or codes.
    pub values: Option<&'a [f64]>,
}

/// What [`select`] decided: kept names in input order, and dropped ones with the reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectionOutcome {
    pub kept: Vec<String>,
    pub dropped: Vec<(String, DropReason)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("selection parameters: {0}")]
    Params(String),
    #[error("feature '{0}' is offered twice")]
    DuplicateName(String),
    #[error("feature '{0}' is unknown here")]
    UnknownFeature(String),
    #[error("feature '{feature}' has IV {iv}; an IV must be a finite number ≥ 0")]
    BadIv { feature: String, iv: f64 },
    #[error("feature '{feature}' has {rows} rows, but '{other}' of the same party has {expected}")]
    RowCount {
        feature: String,
        rows: usize,
        other: String,
        expected: usize,
    },
    #[error("party '{party}' sent an invalid {what}: {reason}")]
    Peer {
        party: PartyId,
        what: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Federation(#[from] FederationError),
}

/// Share of `NaN` values (1 for an empty column).
pub fn missing_rate(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 1.0;
    }
    values.iter().filter(|v| v.is_nan()).count() as f64 / values.len() as f64
}

/// Number of distinct non-missing values (`-0.0` and `0.0` are one).
pub fn distinct_count(values: &[f64]) -> usize {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    v.dedup_by(|a, b| a == b);
    v.len()
}

/// Population variance of the non-missing values; `None` when there are none.
pub fn variance(values: &[f64]) -> Option<f64> {
    let present: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if present.is_empty() {
        return None;
    }
    let n = present.len() as f64;
    let mean = present.iter().sum::<f64>() / n;
    Some(present.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n)
}

/// Pearson correlation over the rows where both values are present; `None` with fewer than
/// two such rows or a constant column among them.
pub fn correlation(a: &[f64], b: &[f64]) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| !x.is_nan() && !y.is_nan())
        .map(|(x, y)| (*x, *y))
        .collect();
    if pairs.len() < 2 {
        return None;
    }
    let n = pairs.len() as f64;
    let (ma, mb) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        return None;
    }
    Some((sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0))
}

/// The local checks (missing rate, distinct values, variance) of one column.
pub fn local_check(values: &[f64], params: &SelectionParams) -> Option<DropReason> {
    let rate = missing_rate(values);
    if rate > params.max_missing_rate {
        return Some(DropReason::MissingRate {
            rate,
            max: params.max_missing_rate,
        });
    }
    let distinct = distinct_count(values);
    if distinct < params.min_distinct {
        return Some(DropReason::FewDistinct {
            distinct,
            min: params.min_distinct,
        });
    }
    let var = variance(values).unwrap_or(0.0);
    if var <= params.min_variance {
        return Some(DropReason::LowVariance {
            variance: var,
            min: params.min_variance,
        });
    }
    None
}

/// Applies the rules of the module documentation. `known_correlated` lists pairs (by name,
/// either order) known to be correlated above the threshold though their values are not
/// here; they are treated like measured pairs, and must be of one party.
pub fn select(
    candidates: &[Candidate<'_>],
    known_correlated: &[(String, String)],
    params: &SelectionParams,
) -> Result<SelectionOutcome, SelectionError> {
    params.validate().map_err(SelectionError::Params)?;
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, c) in candidates.iter().enumerate() {
        if index.insert(c.name.as_str(), i).is_some() {
            return Err(SelectionError::DuplicateName(c.name.clone()));
        }
        if let Some(iv) = c.iv
            && !(iv.is_finite() && iv >= 0.0)
        {
            return Err(SelectionError::BadIv {
                feature: c.name.clone(),
                iv,
            });
        }
    }
    let mut known: HashSet<(usize, usize)> = HashSet::new();
    for (a, b) in known_correlated {
        let ia = *index
            .get(a.as_str())
            .ok_or_else(|| SelectionError::UnknownFeature(a.clone()))?;
        let ib = *index
            .get(b.as_str())
            .ok_or_else(|| SelectionError::UnknownFeature(b.clone()))?;
        known.insert((ia.min(ib), ia.max(ib)));
    }
    // Columns of one party must have the same rows to be correlated.
    let mut rows_of: HashMap<&str, (usize, &str)> = HashMap::new();
    for c in candidates {
        if let Some(v) = c.values {
            let (expected, other) = *rows_of
                .entry(c.party.as_str())
                .or_insert((v.len(), c.name.as_str()));
            if v.len() != expected {
                return Err(SelectionError::RowCount {
                    feature: c.name.clone(),
                    rows: v.len(),
                    other: other.to_string(),
                    expected,
                });
            }
        }
    }

    let mut reason: Vec<Option<DropReason>> = vec![None; candidates.len()];
    for (i, c) in candidates.iter().enumerate() {
        if let Some(v) = c.values {
            reason[i] = local_check(v, params);
        }
        if reason[i].is_some() || !params.iv_rules_on() {
            continue;
        }
        reason[i] = match c.iv {
            None => Some(DropReason::NoIv),
            Some(iv) if iv < params.min_iv => Some(DropReason::LowIv {
                iv,
                min: params.min_iv,
            }),
            Some(iv) if params.max_iv.is_some_and(|m| iv > m) => Some(DropReason::HighIv {
                iv,
                max: params.max_iv.unwrap_or(f64::INFINITY),
            }),
            Some(_) => None,
        };
    }
    // By decreasing IV, ties in input order.
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|&i| reason[i].is_none())
        .collect();
    let iv = |i: usize| candidates[i].iv.unwrap_or(f64::NEG_INFINITY);
    order.sort_by(|&a, &b| iv(b).total_cmp(&iv(a)).then(a.cmp(&b)));
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    for &i in &order {
        let c = &candidates[i];
        let clash = kept.iter().find_map(|&k| {
            let other = &candidates[k];
            if other.party != c.party {
                return None;
            }
            if known.contains(&(i.min(k), i.max(k))) {
                return Some((k, None));
            }
            if params.max_correlation >= 1.0 {
                return None;
            }
            match (c.values, other.values) {
                (Some(a), Some(b)) => correlation(a, b)
                    .filter(|r| r.abs() > params.max_correlation)
                    .map(|r| (k, Some(r))),
                _ => None,
            }
        });
        match clash {
            Some((k, correlation)) => {
                reason[i] = Some(DropReason::Correlated {
                    with: candidates[k].name.clone(),
                    correlation,
                })
            }
            None => kept.push(i),
        }
    }
    if let Some(k) = params.top_k {
        for (rank, &i) in kept.iter().enumerate().skip(k) {
            reason[i] = Some(DropReason::NotInTopK { rank: rank + 1, k });
        }
    }
    let mut out = SelectionOutcome::default();
    for (c, r) in candidates.iter().zip(reason) {
        match r {
            None => out.kept.push(c.name.clone()),
            Some(r) => out.dropped.push((c.name.clone(), r)),
        }
    }
    Ok(out)
}

/// Host → guest, `selection/candidates`: indices (in the order of the host's features in
/// [`crate::woe::federated_woe`]) of the features that passed the host's local checks, and
/// pairs of them correlated above the host's threshold.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostCandidates {
    pub eligible: Vec<u32>,
    pub correlated: Vec<(u32, u32)>,
}

/// Guest → host, `selection/kept`: indices of the host's features the guest keeps.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeptList {
    pub kept: Vec<u32>,
}

const NAMESPACE: &str = "selection";

/// Federated selection (see the module documentation).
///
/// * Guest: `own` are its features (values and IV; a missing IV is taken from its
///   [`crate::woe::GuestWoe`]), `woe` its outcome of [`crate::woe::federated_woe`], which holds
///   the host features' IVs. Returns the decision on every feature, host features by the names
///   it knows them by (`<host>:…`).
/// * Host: `own` are its features with their real names and values (IV is ignored), `woe` its
///   outcome of the same WOE run. Returns the decision on its own features by real name.
pub fn federated_selection(
    ctx: &Context,
    own: &[Candidate<'_>],
    woe: &WoeOutcome,
    params: &SelectionParams,
) -> Result<SelectionOutcome, SelectionError> {
    params.validate().map_err(SelectionError::Params)?;
    let ctx = ctx.sub(NAMESPACE);
    let me = ctx.me().as_str().to_string();
    match (ctx.role(), woe) {
        (Role::Guest, WoeOutcome::Guest(g)) => {
            let mut candidates: Vec<Candidate<'_>> = own
                .iter()
                .map(|c| Candidate {
                    name: c.name.clone(),
                    party: me.clone(),
                    iv: c.iv.or_else(|| {
                        g.features
                            .iter()
                            .find(|f| f.party == me && f.feature == c.name)
                            .map(|f| f.iv)
                    }),
                    values: c.values,
                })
                .collect();
            let mut by_owner: Vec<String> = Vec::new();
            let mut pairs: Vec<(String, String)> = Vec::new();
            let hosts = ctx.hosts();
            let mut host_names: Vec<Vec<String>> = Vec::with_capacity(hosts.len());
            for h in &hosts {
                let features: Vec<_> = g
                    .features
                    .iter()
                    .filter(|f| f.party == h.as_str())
                    .collect();
                let msg: HostCandidates = ctx.recv(h, "candidates")?;
                let bad = |reason: String| SelectionError::Peer {
                    party: h.clone(),
                    what: "candidate list",
                    reason,
                };
                let n = features.len();
                let mut eligible = vec![false; n];
                for &j in &msg.eligible {
                    let slot = eligible
                        .get_mut(j as usize)
                        .ok_or_else(|| bad(format!("feature {j} does not exist ({n} features)")))?;
                    if *slot {
                        return Err(bad(format!("feature {j} is listed twice")));
                    }
                    *slot = true;
                }
                for &(a, b) in &msg.correlated {
                    if a == b
                        || !eligible.get(a as usize).copied().unwrap_or(false)
                        || !eligible.get(b as usize).copied().unwrap_or(false)
                    {
                        return Err(bad(format!(
                            "pair ({a}, {b}) is not a pair of two listed features"
                        )));
                    }
                    pairs.push((
                        features[a as usize].feature.clone(),
                        features[b as usize].feature.clone(),
                    ));
                }
                for (f, ok) in features.iter().zip(&eligible) {
                    if *ok {
                        candidates.push(Candidate {
                            name: f.feature.clone(),
                            party: h.as_str().to_string(),
                            iv: Some(f.iv),
                            values: None,
                        });
                    } else {
                        by_owner.push(f.feature.clone());
                    }
                }
                host_names.push(features.iter().map(|f| f.feature.clone()).collect());
            }
            let mut outcome = select(&candidates, &pairs, params)?;
            let kept: HashSet<&str> = outcome.kept.iter().map(String::as_str).collect();
            for (h, names) in hosts.iter().zip(&host_names) {
                let list = KeptList {
                    kept: names
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| kept.contains(n.as_str()))
                        .map(|(j, _)| j as u32)
                        .collect(),
                };
                ctx.send(h, "kept", &list)?;
            }
            outcome
                .dropped
                .extend(by_owner.into_iter().map(|n| (n, DropReason::ByOwner)));
            Ok(outcome)
        }
        (Role::Host, WoeOutcome::Host(hw)) => {
            let guest = ctx.guest()?;
            let mut values: Vec<Option<&[f64]>> = vec![None; hw.features.len()];
            let mut seen = HashSet::new();
            for c in own {
                if !seen.insert(c.name.as_str()) {
                    return Err(SelectionError::DuplicateName(c.name.clone()));
                }
                let j = hw
                    .features
                    .iter()
                    .position(|f| f.name == c.name)
                    .ok_or_else(|| SelectionError::UnknownFeature(c.name.clone()))?;
                values[j] = c.values;
            }
            let mut local: Vec<Option<DropReason>> = values
                .iter()
                .map(|v| v.and_then(|v| local_check(v, params)))
                .collect();
            let eligible: Vec<u32> = (0..local.len())
                .filter(|&j| local[j].is_none())
                .map(|j| j as u32)
                .collect();
            let mut correlated = Vec::new();
            if params.max_correlation < 1.0 {
                for (x, &a) in eligible.iter().enumerate() {
                    for &b in &eligible[x + 1..] {
                        if let (Some(va), Some(vb)) = (values[a as usize], values[b as usize])
                            && correlation(va, vb).is_some_and(|r| r.abs() > params.max_correlation)
                        {
                            correlated.push((a, b));
                        }
                    }
                }
            }
            ctx.send(
                &guest,
                "candidates",
                &HostCandidates {
                    eligible: eligible.clone(),
                    correlated,
                },
            )?;
            let list: KeptList = ctx.recv(&guest, "kept")?;
            let mut kept = vec![false; local.len()];
            for &j in &list.kept {
                let ok = local.get(j as usize).is_some_and(|r| r.is_none());
                if !ok || kept[j as usize] {
                    return Err(SelectionError::Peer {
                        party: guest.clone(),
                        what: "kept list",
                        reason: format!("feature {j} was not offered or is listed twice"),
                    });
                }
                kept[j as usize] = true;
            }
            let mut out = SelectionOutcome::default();
            for (j, f) in hw.features.iter().enumerate() {
                if kept[j] {
                    out.kept.push(f.name.clone());
                } else {
                    let r = local[j].take().unwrap_or(DropReason::ByGuest);
                    out.dropped.push((f.name.clone(), r));
                }
            }
            Ok(out)
        }
        (role, _) => Err(SelectionError::Params(format!(
            "federated selection runs between a guest and hosts with their own WOE outcome; \
             this party is the {role} with a WOE outcome of another role"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_by_hand() {
        let v = [1.0, f64::NAN, 3.0, 3.0];
        assert_eq!(missing_rate(&v), 0.25);
        assert_eq!(distinct_count(&v), 2);
        // mean 7/3; deviations -4/3, 2/3, 2/3 → (16 + 4 + 4)/9/3 = 8/9.
        assert!((variance(&v).unwrap() - 8.0 / 9.0).abs() < 1e-12);
        let close = |r: Option<f64>, want: f64| (r.unwrap() - want).abs() < 1e-12;
        assert!(close(correlation(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]), 1.0));
        assert!(close(correlation(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0));
        // Rows with a missing value are left out of the pair.
        assert!(close(
            correlation(&[1.0, 2.0, f64::NAN, 3.0], &[1.0, 2.0, 9.0, 3.0]),
            1.0
        ));
        assert_eq!(correlation(&[1.0, 1.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn params_are_range_checked() {
        let p = SelectionParams {
            max_correlation: 1.5,
            ..SelectionParams::default()
        };
        assert_eq!(
            p.validate().unwrap_err(),
            "max_correlation must be between 0 and 1, got 1.5"
        );
    }
}
