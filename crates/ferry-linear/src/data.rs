//! A party's local view of its data: checked features and labels, the quadratic loss model,
//! and the fixed-point encoding of what enters homomorphic arithmetic.

use crate::error::LinearError;
use crate::messages::RowsFingerprint;
use crate::params::{Precision, Task};
use ferry_crypto::packing::PackingLayout;
use ferry_data::Dataset;
use rayon::prelude::*;
use rug::Integer;

/// Column magnitudes the per-column fixed-point scaling handles (powers of two up to about
/// 2^±1000 must stay representable in f64).
const MIN_MAGNITUDE: f64 = 1e-200;
const MAX_MAGNITUDE: f64 = 1e200;

/// Checked numeric features (row-major, no missing values) and, at the guest, labels.
#[derive(Clone, Debug)]
pub(crate) struct LocalData {
    pub n: usize,
    pub d: usize,
    pub x: Vec<f64>,
    pub feature_names: Vec<String>,
    pub labels: Option<Vec<f64>>,
    pub rows: RowsFingerprint,
}

impl LocalData {
    /// Checks `data` for training: at least one row, no missing feature values, and at the
    /// guest (`needs_labels`) labels that fit the task.
    pub(crate) fn prepare(
        data: &Dataset,
        needs_labels: bool,
        task: Task,
        what: &str,
    ) -> Result<Self, LinearError> {
        let n = data.n_rows();
        let d = data.n_features();
        if n == 0 {
            return Err(LinearError::Data(format!("the {what} data has no rows")));
        }
        if data.features.len() != n * d {
            return Err(LinearError::Data(format!(
                "the {what} data holds {} values, not {n} rows × {d} features",
                data.features.len()
            )));
        }
        if let Some(pos) = data.features.iter().position(|v| !v.is_finite()) {
            let (i, j) = (pos / d, pos % d);
            let v = data.features[pos];
            let what_is = if v.is_nan() {
                "a missing value"
            } else {
                "an infinite value"
            };
            return Err(LinearError::Data(format!(
                "{what} row '{}' has {what_is} in feature '{}': linear models need complete \
                 numeric features; impute or drop missing values first",
                data.ids[i], data.feature_names[j]
            )));
        }
        let in_range = |m: f64| m == 0.0 || (MIN_MAGNITUDE..=MAX_MAGNITUDE).contains(&m);
        for j in 0..d {
            let m = (0..n)
                .map(|i| data.features[i * d + j].abs())
                .fold(0.0, f64::max);
            if !in_range(m) {
                return Err(LinearError::Data(format!(
                    "feature '{}' has largest magnitude {m:e}, outside {MIN_MAGNITUDE:e} to \
                     {MAX_MAGNITUDE:e}; rescale the column",
                    data.feature_names[j]
                )));
            }
        }
        let labels = if needs_labels {
            let labels = data.labels().ok_or_else(|| {
                LinearError::Data(format!(
                    "the guest's {what} data has no label column; read it with a label \
                     (e.g. DatasetSpec::with_label(\"y\", LabelKind::Binary))"
                ))
            })?;
            if labels.len() != n {
                return Err(LinearError::Data(format!(
                    "{} labels for {n} {what} rows",
                    labels.len()
                )));
            }
            for (i, &y) in labels.iter().enumerate() {
                let ok = match task {
                    Task::Logistic => y == 0.0 || y == 1.0,
                    Task::Linear => y.is_finite(),
                };
                if !ok {
                    let expected = match task {
                        Task::Logistic => "logistic regression needs labels 0 or 1",
                        Task::Linear => "linear regression needs finite numeric targets",
                    };
                    return Err(LinearError::Data(format!(
                        "{what} row '{}' has label {y}: {expected}",
                        data.ids[i]
                    )));
                }
            }
            let m = labels.iter().map(|y| y.abs()).fold(0.0, f64::max);
            if !in_range(m) {
                return Err(LinearError::Data(format!(
                    "the {what} labels have largest magnitude {m:e}, outside {MIN_MAGNITUDE:e} \
                     to {MAX_MAGNITUDE:e}; rescale the target"
                )));
            }
            Some(labels.to_vec())
        } else {
            None
        };
        Ok(LocalData {
            n,
            d,
            x: data.features.clone(),
            feature_names: data.feature_names.clone(),
            labels,
            rows: RowsFingerprint::of(&data.ids),
        })
    }

    pub(crate) fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.d..(i + 1) * self.d]
    }

    /// `x_i · w + intercept` for the given rows.
    pub(crate) fn scores(
        &self,
        rows: impl Iterator<Item = usize>,
        w: &[f64],
        intercept: f64,
    ) -> Vec<f64> {
        rows.map(|i| self.row(i).iter().zip(w).map(|(x, w)| x * w).sum::<f64>() + intercept)
            .collect()
    }
}

/// The loss of one row as a quadratic in the score `u`: `a + b·u + c/2·u²`, whose derivative
/// `b + c·u` is the residual. Exact for least squares; for the logistic loss
/// `log(1 + e^u) − y·u` it is the second-order Taylor expansion at `u = 0`.
pub(crate) struct Quadratic {
    pub c: f64,
    task: Task,
}

impl Quadratic {
    pub(crate) fn of(task: Task) -> Self {
        let c = match task {
            Task::Logistic => 0.25,
            Task::Linear => 1.0,
        };
        Quadratic { c, task }
    }

    pub(crate) fn a(&self, y: f64) -> f64 {
        match self.task {
            Task::Logistic => std::f64::consts::LN_2,
            Task::Linear => 0.5 * y * y,
        }
    }

    pub(crate) fn b(&self, y: f64) -> f64 {
        match self.task {
            Task::Logistic => 0.5 - y,
            Task::Linear => -y,
        }
    }
}

/// `⌈log2 m⌉` for `m > 0`: the smallest `k` with `m ≤ 2^k`.
fn ceil_log2(m: f64) -> i32 {
    let mut k = m.log2().ceil() as i32;
    while m > (k as f64).exp2() {
        k += 1;
    }
    while k > i32::MIN / 2 && m <= ((k - 1) as f64).exp2() {
        k -= 1;
    }
    k
}

/// How a party's columns are quantised and packed into plaintexts.
///
/// Column `j` is scaled by `2^frac_bits[j]`, chosen so its largest magnitude becomes at most
/// `2^(feature_bits-1)`: every column keeps `feature_bits` bits of relative precision whatever
/// its range. Slots are wide enough for a sum over `max_terms` rows of products with residual
/// integers of `exponent_bits` bits, so the packed sums never carry into each other.
#[derive(Clone, Debug)]
pub(crate) struct PackedColumns {
    pub frac_bits: Vec<i32>,
    pub layout: PackingLayout,
    pub n_columns: usize,
    pub ciphertexts_per_row: usize,
}

impl PackedColumns {
    pub(crate) fn new(
        max_abs: &[f64],
        precision: &Precision,
        max_terms: usize,
        plaintext_budget_bits: u32,
    ) -> Result<Self, LinearError> {
        let exponent_bits = precision.residual_frac_bits + precision.residual_int_bits;
        let layout = PackingLayout::new(
            plaintext_budget_bits,
            precision.feature_bits + exponent_bits,
            max_terms as u64,
        )
        .map_err(|e| {
            LinearError::InvalidParams(format!(
                "the key is too small for the configured precision: {e}; use a larger \
                 he.key_bits or lower precision"
            ))
        })?;
        let top = precision.feature_bits as i32 - 1;
        let frac_bits = max_abs
            .iter()
            .map(|&m| if m > 0.0 { top - ceil_log2(m) } else { 0 })
            .collect();
        let n_columns = max_abs.len();
        Ok(PackedColumns {
            frac_bits,
            layout,
            n_columns,
            ciphertexts_per_row: n_columns.div_ceil(layout.slots()).max(1),
        })
    }

    /// Columns held by ciphertext `k` of a row.
    pub(crate) fn columns_of(&self, k: usize) -> std::ops::Range<usize> {
        let s = self.layout.slots();
        (k * s).min(self.n_columns)..((k + 1) * s).min(self.n_columns)
    }

    /// Bits of the largest packed plaintext of ciphertext `k` (masks must exceed this).
    pub(crate) fn packed_bits(&self, k: usize) -> u32 {
        self.columns_of(k).len() as u32 * self.layout.slot_bits()
    }

    /// Quantises and packs every row: `result[k][i]` is ciphertext column `k` of row `i`.
    pub(crate) fn pack_rows(
        &self,
        n_rows: usize,
        value: &(dyn Fn(usize, usize) -> f64 + Sync),
    ) -> Result<Vec<Vec<Integer>>, LinearError> {
        (0..self.ciphertexts_per_row)
            .map(|k| {
                let cols = self.columns_of(k);
                (0..n_rows)
                    .into_par_iter()
                    .map(|i| {
                        let slots: Vec<Integer> = cols
                            .clone()
                            .map(|j| quantise(value(i, j), self.frac_bits[j]))
                            .collect();
                        self.layout
                            .pack(&slots)
                            .map_err(|e| LinearError::Crypto(e.to_string()))
                    })
                    .collect()
            })
            .collect()
    }

    /// Per column, `Σ_i e_i·q_ij` read from the decrypted plaintexts and scaled back to
    /// `Σ_i d_i·x_ij` (the residual integers carry `residual_frac_bits` fractional bits).
    pub(crate) fn decode(&self, plaintexts: &[Integer], residual_frac_bits: u32) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.n_columns);
        for (k, p) in plaintexts.iter().enumerate() {
            let cols = self.columns_of(k);
            for (j, slot) in cols.clone().zip(self.layout.unpack(p, cols.len())) {
                let scale = -(self.frac_bits[j] + residual_frac_bits as i32);
                out.push(slot.to_f64() * (scale as f64).exp2());
            }
        }
        out
    }
}

/// `round(x · 2^frac)` as an integer.
fn quantise(x: f64, frac: i32) -> Integer {
    let scaled = (x * (frac as f64).exp2()).round();
    Integer::from_f64(scaled).unwrap_or_default()
}

/// Residual shares as integers with `residual_frac_bits` fractional bits, refusing values at or
/// beyond `2^residual_int_bits` (the packing was sized for that bound).
pub(crate) fn quantise_residuals(
    shares: &[f64],
    precision: &Precision,
) -> Result<Vec<i64>, LinearError> {
    let bound = (precision.residual_int_bits as f64).exp2();
    let scale = (precision.residual_frac_bits as f64).exp2();
    shares
        .iter()
        .map(|&d| {
            if d.is_nan() || d.abs() >= bound {
                return Err(LinearError::ResidualOutOfRange {
                    value: d,
                    bound_bits: precision.residual_int_bits,
                });
            }
            Ok((d * scale).round() as i64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_log2_is_exact_at_powers_of_two() {
        assert_eq!(ceil_log2(1.0), 0);
        assert_eq!(ceil_log2(1.5), 1);
        assert_eq!(ceil_log2(2.0), 1);
        assert_eq!(ceil_log2(2.0000001), 2);
        assert_eq!(ceil_log2(0.25), -2);
        assert_eq!(ceil_log2(0.3), -1);
    }

    #[test]
    fn packed_sums_decode_to_the_weighted_column_sums() {
        let precision = Precision::default();
        let xs: [[f64; 4]; 3] = [
            [1.5, -300.0, 0.0, 1e-3],
            [-2.0, 120.5, 0.0, -4e-3],
            [0.25, 7.0, 0.0, 0.0],
        ];
        let max_abs: Vec<f64> = (0..4)
            .map(|j| xs.iter().map(|r| r[j].abs()).fold(0.0, f64::max))
            .collect();
        // A small budget forces two ciphertexts per row.
        let cols = PackedColumns::new(&max_abs, &precision, 3, 200).unwrap();
        assert_eq!(cols.ciphertexts_per_row, 2);
        let packed = cols.pack_rows(3, &|i, j| xs[i][j]).unwrap();
        let d = [0.75, -1.25, 3.0];
        let e = quantise_residuals(&d, &precision).unwrap();
        let sums: Vec<Integer> = (0..2)
            .map(|k| (0..3).map(|i| Integer::from(&packed[k][i] * e[i])).sum())
            .collect();
        let got = cols.decode(&sums, precision.residual_frac_bits);
        for j in 0..4 {
            let want: f64 = (0..3).map(|i| d[i] * xs[i][j]).sum();
            let tol = 1e-6 * max_abs[j].max(1e-300);
            assert!(
                (got[j] - want).abs() <= tol,
                "column {j}: {} vs {want}",
                got[j]
            );
        }
    }

    #[test]
    fn residuals_beyond_the_bound_are_refused() {
        let p = Precision::default();
        assert_eq!(
            quantise_residuals(&[0.5, -1.0], &p).unwrap(),
            vec![1 << 19, -(1 << 20)]
        );
        let err = quantise_residuals(&[1e6], &p).unwrap_err().to_string();
        assert!(err.contains("diverging"), "{err}");
        assert!(quantise_residuals(&[f64::NAN], &p).is_err());
    }

    #[test]
    fn bad_labels_and_missing_values_are_named() {
        let ds = |labels: Vec<f64>, x: Vec<f64>| {
            Dataset::from_parts(
                vec!["r1".into(), "r2".into()],
                vec!["age".into()],
                x,
                Some("y".into()),
                Some(labels),
            )
            .unwrap()
        };
        let err = LocalData::prepare(
            &ds(vec![0.0, 2.0], vec![1.0, 2.0]),
            true,
            Task::Logistic,
            "training",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("'r2'") && err.contains("label 2") && err.contains("0 or 1"),
            "{err}"
        );
        assert!(
            LocalData::prepare(
                &ds(vec![0.0, 2.0], vec![1.0, 2.0]),
                true,
                Task::Linear,
                "training"
            )
            .is_ok()
        );
        let err = LocalData::prepare(
            &ds(vec![0.0, 1.0], vec![f64::NAN, 2.0]),
            true,
            Task::Logistic,
            "training",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("'r1'") && err.contains("'age'") && err.contains("missing"),
            "{err}"
        );
        let tiny = ds(vec![0.0, 1.0], vec![1e-250, 0.0]);
        let err = LocalData::prepare(&tiny, true, Task::Logistic, "training")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'age'") && err.contains("rescale"), "{err}");
        let unlabelled =
            Dataset::from_parts(vec!["a".into()], vec!["f".into()], vec![1.0], None, None).unwrap();
        let err = LocalData::prepare(&unlabelled, true, Task::Logistic, "training")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no label column"), "{err}");
    }
}
