//! Synthetic vertically partitioned data for the demo and for benchmarks at sizes no public
//! dataset has. Deterministic from a seed, so every party can generate its own part alone.
//!
//! The table is credit-like: a binary label drawn from a logistic model over features held by
//! *every* party, so a federated model beats what any party could learn alone. Feature
//! weights, correlations and a few missing values are fixed by the seed.

use crate::Dataset;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Shape of a synthetic vertical split.
#[derive(Clone, Debug)]
pub struct VerticalSpec {
    /// Rows of the whole (union) table.
    pub rows: usize,
    /// Features of the guest, then of each host in order.
    pub features: Vec<usize>,
    /// Fraction of the union each party holds (1.0: every row). Parties hold overlapping,
    /// different subsets so that PSI has work to do.
    pub coverage: f64,
    /// Fraction of feature values left missing.
    pub missing: f64,
    pub seed: u64,
}

impl VerticalSpec {
    /// default_credit's shape: guest 13 features, one host 10, all rows at both.
    pub fn credit_like(rows: usize, seed: u64) -> Self {
        VerticalSpec {
            rows,
            features: vec![13, 10],
            coverage: 1.0,
            missing: 0.0,
            seed,
        }
    }
}

fn normal(rng: &mut ChaCha20Rng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The parties' tables: `parts[0]` is the guest's (with label `y`), then the hosts'.
/// Row ids are `u<index>`; with `coverage < 1` each party keeps a seeded subset of rows.
pub fn vertical(spec: &VerticalSpec) -> Vec<Dataset> {
    let total: usize = spec.features.iter().sum();
    let mut rng = ChaCha20Rng::seed_from_u64(spec.seed);
    let weights: Vec<f64> = (0..total)
        .map(|j| {
            if j % 3 == 2 {
                0.0
            } else {
                normal(&mut rng) * 0.8
            }
        })
        .collect();
    let mut features = vec![0.0; spec.rows * total];
    let mut labels = Vec::with_capacity(spec.rows);
    for i in 0..spec.rows {
        let latent = normal(&mut rng);
        let mut score = -0.5;
        for j in 0..total {
            // Half of each feature's variance is shared through the latent factor.
            let v = 0.7 * latent * if j % 2 == 0 { 1.0 } else { -1.0 } + 0.7 * normal(&mut rng);
            features[i * total + j] = v;
            score += weights[j] * v + 0.3 * (v * v - 1.0) * if j % 5 == 0 { 1.0 } else { 0.0 };
        }
        let p = 1.0 / (1.0 + (-score).exp());
        labels.push(if rng.random::<f64>() < p { 1.0 } else { 0.0 });
        for j in 0..total {
            if rng.random::<f64>() < spec.missing {
                features[i * total + j] = f64::NAN;
            }
        }
    }
    let mut parts = Vec::new();
    let mut offset = 0;
    for (party, &d) in spec.features.iter().enumerate() {
        let mut keep = ChaCha20Rng::seed_from_u64(spec.seed ^ (0x9e37_79b9 + party as u64));
        let rows: Vec<usize> = (0..spec.rows)
            .filter(|_| spec.coverage >= 1.0 || keep.random::<f64>() < spec.coverage)
            .collect();
        let mut f = Vec::with_capacity(rows.len() * d);
        for &i in &rows {
            f.extend_from_slice(&features[i * total + offset..i * total + offset + d]);
        }
        let prefix = if party == 0 { "g" } else { "h" };
        let names = (0..d).map(|j| format!("{prefix}{party}_x{j}")).collect();
        let ids = rows.iter().map(|i| format!("u{i}")).collect();
        let (label_name, label) = if party == 0 {
            (
                Some("y".to_string()),
                Some(rows.iter().map(|&i| labels[i]).collect()),
            )
        } else {
            (None, None)
        };
        parts.push(
            Dataset::from_parts(ids, names, f, label_name, label)
                .expect("shapes agree by construction"),
        );
        offset += d;
        let _ = keep.next_u64();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_deterministic_and_overlap() {
        let spec = VerticalSpec {
            rows: 2000,
            features: vec![4, 3, 2],
            coverage: 0.8,
            missing: 0.01,
            seed: 7,
        };
        let a = vertical(&spec);
        let b = vertical(&spec);
        assert_eq!(a.len(), 3);
        assert_eq!(a[1].ids, b[1].ids);
        assert_eq!(a[0].n_features(), 4);
        assert!(a[0].labels().is_some() && a[1].labels().is_none());
        let common = a[0].ids.iter().filter(|id| a[1].ids.contains(id)).count();
        assert!(
            common > 1000 && common < a[0].n_rows(),
            "partial overlap: {common}"
        );
        let positives = a[0].labels().unwrap().iter().sum::<f64>() / a[0].n_rows() as f64;
        assert!(
            (0.2..0.8).contains(&positives),
            "balanced enough: {positives}"
        );
        assert!(a[0].features.iter().any(|v| v.is_nan()));
    }
}
