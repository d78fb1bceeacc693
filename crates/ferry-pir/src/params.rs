//! Every constant of the construction, named and justified in one place, the caller's
//! parameters ([`PirParams`]) and the table layout derived from them ([`TableLayout`]).

use crate::PirError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// LWE (SimplePIR) constants
// ---------------------------------------------------------------------------------------------

/// LWE secret dimension n. With `q = 2^32` and `σ = 6.4` this is the parameter set of
/// SimplePIR (Henzinger et al., USENIX Security 2023, §4.2), estimated there with the lattice
/// estimator at 128-bit security for up to [`MAX_COLUMNS`] = 2^20 LWE samples. The estimate is
/// the paper's; it was not re-run for this crate.
pub const LWE_N: usize = 1024;

/// log2 of the ciphertext modulus q: arithmetic mod q is plain wrapping `u32` arithmetic.
pub const LOG_Q: u32 = 32;

/// log2 of the plaintext modulus p: one database entry is one byte (p = 256).
///
/// SimplePIR picks p per database size, as large as correctness allows (up to 2^10). Here the
/// largest admissible p for 2^14 columns is 2^9, and for 2^20 columns 2^8 (see
/// [`correctness_log2`]); a byte per entry keeps the database one byte per entry in memory,
/// which is what the memory-bound answer loop reads, and needs no bit packing. p = 2^8 meets
/// the failure bound for every admissible number of columns, so it is fixed.
pub const PLAINTEXT_BITS: u32 = 8;

/// The scaling factor Δ = q / p = 2^24.
pub const DELTA: u32 = 1 << (LOG_Q - PLAINTEXT_BITS);

/// Database entries are used centred, `d − 128 ∈ [−128, 127]`, which halves the noise bound.
pub(crate) const CENTRE: u32 = 1 << (PLAINTEXT_BITS - 1);

/// Standard deviation of the discrete Gaussian LWE error (SimplePIR's σ = 6.4).
pub const NOISE_SIGMA: f64 = 6.4;

/// The error sampler's support is `|e| ≤ 12σ` (77); the mass beyond is below 2^-100.
pub const NOISE_TAIL: i32 = 77;

/// Largest number of database columns (buckets), which is the number of LWE samples one
/// query reveals: the bound for which SimplePIR's security estimate holds.
pub const MAX_COLUMNS: u32 = 1 << 20;

/// Largest number of database rows (the length of one answer), so an answer and the hint
/// (rows × n × 4 bytes) stay bounded.
pub const MAX_MATRIX_ROWS: u32 = 1 << 20;

/// Decryption failure probability allowed per query (every entry of the retrieved column):
/// 2^-40, the target of SimplePIR.
pub const CORRECTNESS_LOG2: f64 = -40.0;

// ---------------------------------------------------------------------------------------------
// Table constants
// ---------------------------------------------------------------------------------------------

/// Bytes of the tag that tells a querier which slot of its bucket holds its id. A bucket of
/// `C` slots gives a false match for an absent id with probability at most `C · 2^-64`.
pub const TAG_BYTES: usize = 8;

/// Bytes of the (encrypted) length prefix of a value.
pub const LEN_BYTES: usize = 2;

/// Largest fixed value length of a table.
pub const MAX_VALUE_LEN: u32 = 16_384;

/// Bucket overflow probability allowed when choosing the capacity (Chernoff bound over all
/// buckets). Should a build overflow anyway, it draws a fresh bucket salt and places again.
pub const OVERFLOW_LOG2: f64 = -40.0;

/// How many bucket salts a build tries before giving up (each fails with probability
/// ≤ 2^-40, so a second attempt is already a 2^-40 event).
pub const MAX_SALT_ATTEMPTS: u32 = 8;

/// Largest `max_rows` a configuration may set (row numbers are `u32` inside a build).
pub const MAX_TABLE_ROWS: u64 = u32::MAX as u64;

/// Bytes of the OPRF key (a Ristretto255 scalar).
pub const OPRF_KEY_BYTES: usize = 32;

/// Bytes of a Ristretto255 element on the wire.
pub const ELEMENT_BYTES: usize = 32;

/// log2 of the decryption failure probability of one query against a database of `columns`
/// columns and `rows` rows (union bound over the rows of the retrieved column).
///
/// A decrypted entry is `Δ·d + Σ_j d'_j e_j` with `|d'_j| ≤ 128` (centred entries) and `e_j`
/// independent discrete Gaussians of standard deviation σ, which are subgaussian with
/// parameter σ: the noise is subgaussian with parameter `σ·128·√columns`, and rounding is
/// correct while `|noise| < Δ/2`, which fails with probability at most `2·exp(−t²/2)` for
/// `t = (Δ/2) / (σ·128·√columns)`.
pub fn correctness_log2(columns: u64, rows: u64) -> f64 {
    let t = (DELTA as f64 / 2.0) / (NOISE_SIGMA * CENTRE as f64 * (columns.max(1) as f64).sqrt());
    (rows.max(1) as f64).log2() + 1.0 - t * t / 2.0 * std::f64::consts::LOG2_E
}

/// log2 of a Chernoff bound on the probability that some bucket gets more than `capacity` of
/// `rows` uniformly hashed rows: `buckets · exp(−rows · D(a ‖ 1/buckets))` with
/// `a = (capacity + 1) / rows` (D the binary relative entropy). `-inf` when no bucket can
/// overflow.
pub fn overflow_log2(rows: u64, buckets: u64, capacity: u64) -> f64 {
    if capacity >= rows || buckets <= 1 {
        return if capacity >= rows {
            f64::NEG_INFINITY
        } else {
            0.0
        };
    }
    let p = 1.0 / buckets as f64;
    let a = (capacity + 1) as f64 / rows as f64;
    if a <= p {
        return 0.0;
    }
    let mut kl = a * (a / p).ln();
    if a < 1.0 {
        kl += (1.0 - a) * ((1.0 - a) / (1.0 - p)).ln();
    }
    ((buckets as f64).log2() - rows as f64 * kl * std::f64::consts::LOG2_E).min(0.0)
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// What the provider chooses for a table. The cryptographic constants are not parameters:
/// they are the constants of this module, and both parties check them in the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PirParams {
    /// Length in bytes of a value. Every value is padded to it (shorter values come back at
    /// their own length), so all entries look alike. 0 gives a membership test.
    #[schemars(range(max = 16384))]
    pub value_len: u32,
    /// Average number of rows per bucket (database column). Larger buckets mean fewer
    /// columns (a smaller query, less slack per bucket) but taller columns (a larger answer
    /// and hint). 64 gives 2.2× slack and a 40 MiB hint at 10^6 rows of 64 bytes.
    #[schemars(range(min = 1, max = 65536))]
    pub bucket_load: u32,
    /// Largest number of rows a table may have; `build` and `from_bytes` refuse more.
    #[schemars(range(max = 4294967295u64))]
    pub max_rows: u64,
    /// Largest database matrix in bytes; `build` and `from_bytes` refuse larger ones.
    #[schemars(range(min = 1))]
    pub max_matrix_bytes: u64,
}

impl Default for PirParams {
    fn default() -> Self {
        PirParams {
            value_len: 64,
            bucket_load: 64,
            max_rows: 1 << 24,
            max_matrix_bytes: 4 << 30,
        }
    }
}

impl PirParams {
    /// Default parameters with this value length.
    pub fn with_value_len(value_len: u32) -> Self {
        PirParams {
            value_len,
            ..PirParams::default()
        }
    }

    /// Checks the ranges documented on each field.
    pub fn validate(&self) -> Result<(), PirError> {
        if self.value_len > MAX_VALUE_LEN {
            return Err(PirError::Params(format!(
                "value_len {} is above the maximum of {MAX_VALUE_LEN}",
                self.value_len
            )));
        }
        if !(1..=65536).contains(&self.bucket_load) {
            return Err(PirError::Params(format!(
                "bucket_load {} is outside 1..=65536",
                self.bucket_load
            )));
        }
        if self.max_rows > MAX_TABLE_ROWS {
            return Err(PirError::Params(format!(
                "max_rows {} is above the maximum of {MAX_TABLE_ROWS}",
                self.max_rows
            )));
        }
        if self.max_matrix_bytes == 0 {
            return Err(PirError::Params("max_matrix_bytes must be positive".into()));
        }
        Ok(())
    }
}

/// The shape of a built table: how many rows, and how they are laid out as a database matrix
/// of `capacity × entry_len` rows and `buckets` columns (one column per bucket). Public: the
/// provider sends it to the querier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TableLayout {
    /// Rows of the provider's table (revealed to the querier).
    pub rows: u64,
    /// Fixed value length.
    pub value_len: u32,
    /// Buckets = database columns.
    pub buckets: u32,
    /// Slots per bucket.
    pub capacity: u32,
}

impl TableLayout {
    /// The layout for a table of `rows` rows: `ceil(rows / bucket_load)` buckets, and the
    /// smallest capacity whose overflow bound ([`overflow_log2`]) is at most 2^-40.
    pub fn for_rows(rows: u64, params: &PirParams) -> Result<TableLayout, PirError> {
        params.validate()?;
        if rows > params.max_rows {
            return Err(PirError::TooManyRows {
                limit: params.max_rows,
            });
        }
        let buckets = rows
            .div_ceil(params.bucket_load as u64)
            .clamp(1, MAX_COLUMNS as u64);
        let mut capacity = rows.div_ceil(buckets).max(1);
        while overflow_log2(rows, buckets, capacity) > OVERFLOW_LOG2 {
            capacity += 1;
        }
        let layout = TableLayout {
            rows,
            value_len: params.value_len,
            buckets: buckets as u32,
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
        };
        let matrix_rows = capacity.saturating_mul(layout.entry_len() as u64);
        if matrix_rows > MAX_MATRIX_ROWS as u64 {
            return Err(PirError::TableTooLarge {
                what: "matrix height (capacity × entry length, in rows)",
                bytes: matrix_rows,
                limit: MAX_MATRIX_ROWS as u64,
            });
        }
        if layout.matrix_bytes() > params.max_matrix_bytes {
            return Err(PirError::TableTooLarge {
                what: "database matrix",
                bytes: layout.matrix_bytes(),
                limit: params.max_matrix_bytes,
            });
        }
        Ok(layout)
    }

    /// Bytes of one slot: tag, length prefix, value.
    pub fn entry_len(&self) -> usize {
        TAG_BYTES + LEN_BYTES + self.value_len as usize
    }

    /// Rows of the database matrix: the length of one bucket (column) in bytes.
    pub fn matrix_rows(&self) -> usize {
        self.capacity as usize * self.entry_len()
    }

    /// Columns of the database matrix.
    pub fn matrix_columns(&self) -> usize {
        self.buckets as usize
    }

    pub fn matrix_bytes(&self) -> u64 {
        self.matrix_rows() as u64 * self.buckets as u64
    }

    /// Bytes of the hint (`matrix_rows × n` elements of Z_q), the querier's one-time download.
    pub fn hint_bytes(&self) -> u64 {
        self.matrix_rows() as u64 * LWE_N as u64 * 4
    }

    /// Bytes of one PIR query vector (upload).
    pub fn query_bytes(&self) -> u64 {
        self.buckets as u64 * 4
    }

    /// Bytes of one PIR answer vector (download).
    pub fn answer_bytes(&self) -> u64 {
        self.matrix_rows() as u64 * 4
    }

    /// log2 of the decryption failure bound of one query ([`correctness_log2`]).
    pub fn correctness_log2(&self) -> f64 {
        correctness_log2(self.buckets as u64, self.matrix_rows() as u64)
    }

    /// log2 of the overflow bound the capacity was chosen for ([`overflow_log2`]).
    pub fn overflow_log2(&self) -> f64 {
        overflow_log2(self.rows, self.buckets as u64, self.capacity as u64)
    }

    /// Checks a layout received from a peer against the constants; the reason names what is
    /// wrong.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.buckets == 0 || self.buckets > MAX_COLUMNS {
            return Err(format!(
                "{} buckets, expected 1..={MAX_COLUMNS}",
                self.buckets
            ));
        }
        if self.capacity == 0 {
            return Err("bucket capacity 0".into());
        }
        if self.value_len > MAX_VALUE_LEN {
            return Err(format!(
                "value length {} above {MAX_VALUE_LEN}",
                self.value_len
            ));
        }
        if self.capacity as u64 * self.entry_len() as u64 > MAX_MATRIX_ROWS as u64 {
            return Err(format!(
                "matrix height {} above {MAX_MATRIX_ROWS}",
                self.capacity as u64 * self.entry_len() as u64
            ));
        }
        if self.rows > self.buckets as u64 * self.capacity as u64 {
            return Err(format!(
                "{} rows do not fit in {} buckets of {}",
                self.rows, self.buckets, self.capacity
            ));
        }
        if self.correctness_log2() > CORRECTNESS_LOG2 {
            return Err(format!(
                "decryption would fail with probability 2^{:.1}, above 2^{CORRECTNESS_LOG2}",
                self.correctness_log2()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_256_is_correct_for_every_admissible_column_count() {
        assert!(correctness_log2(MAX_COLUMNS as u64, MAX_MATRIX_ROWS as u64) < CORRECTNESS_LOG2);
        // ...and the bound is not vacuous: p = 2^9 would not be at 2^20 columns.
        let t = (DELTA as f64 / 4.0) / (NOISE_SIGMA * 256.0 * (MAX_COLUMNS as f64).sqrt());
        let log2_p9 = 20.0 + 1.0 - t * t / 2.0 * std::f64::consts::LOG2_E;
        assert!(log2_p9 > CORRECTNESS_LOG2, "{log2_p9}");
    }

    #[test]
    fn chernoff_bound_against_exact_small_cases() {
        // 2 rows in 2 buckets: both land in one bucket with probability 1/2.
        assert!(overflow_log2(2, 2, 1) >= -1.0);
        assert_eq!(overflow_log2(5, 3, 5), f64::NEG_INFINITY);
        // Monotone in the capacity.
        let a = overflow_log2(1_000_000, 15_625, 120);
        let b = overflow_log2(1_000_000, 15_625, 140);
        assert!(b < a && b < 0.0);
    }

    #[test]
    fn layouts_for_typical_sizes() {
        let params = PirParams::default();
        let l = TableLayout::for_rows(1_000_000, &params).unwrap();
        assert_eq!(l.buckets, 15_625);
        assert!(l.overflow_log2() <= OVERFLOW_LOG2);
        assert!((130..=160).contains(&l.capacity), "{}", l.capacity);
        assert!(l.check().is_ok());
        let empty = TableLayout::for_rows(0, &params).unwrap();
        assert_eq!((empty.buckets, empty.capacity), (1, 1));
        let small = TableLayout::for_rows(10, &params).unwrap();
        assert_eq!((small.buckets, small.capacity), (1, 10));
    }

    #[test]
    fn params_have_a_json_schema_and_refuse_unknown_fields() {
        let schema = serde_json::to_value(schemars::schema_for!(PirParams)).unwrap();
        let props = &schema["properties"];
        for field in ["value_len", "bucket_load", "max_rows", "max_matrix_bytes"] {
            assert!(props.get(field).is_some(), "{field} in {schema}");
        }
        assert_eq!(props["value_len"]["maximum"], 16384);
        let p: PirParams = serde_json::from_str(r#"{"value_len": 32}"#).unwrap();
        assert_eq!(p, PirParams::with_value_len(32));
        assert!(serde_json::from_str::<PirParams>(r#"{"value_length": 32}"#).is_err());
        let layout = TableLayout::for_rows(1000, &p).unwrap();
        let json = serde_json::to_string(&layout).unwrap();
        assert_eq!(serde_json::from_str::<TableLayout>(&json).unwrap(), layout);
    }

    #[test]
    fn limits_are_enforced() {
        let params = PirParams {
            max_rows: 10,
            ..PirParams::default()
        };
        assert!(matches!(
            TableLayout::for_rows(11, &params),
            Err(PirError::TooManyRows { limit: 10 })
        ));
        let params = PirParams {
            max_matrix_bytes: 1000,
            ..PirParams::default()
        };
        assert!(matches!(
            TableLayout::for_rows(100, &params),
            Err(PirError::TableTooLarge { .. })
        ));
        assert!(
            PirParams::with_value_len(MAX_VALUE_LEN + 1)
                .validate()
                .is_err()
        );
    }
}
