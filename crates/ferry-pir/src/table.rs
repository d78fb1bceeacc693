//! The provider's preprocessed table: OPRF outputs placed into buckets, the database matrix,
//! and its hint; answering queries; storing and loading.

use crate::PirError;
use crate::matrix::{self, mul_vecs, wrapping_sum};
use crate::oprf::{self, OprfKey, OprfOutput};
use crate::params::{
    CENTRE, LEN_BYTES, LWE_N, MAX_SALT_ATTEMPTS, OPRF_KEY_BYTES, PirParams, TAG_BYTES, TableLayout,
};
use rand::seq::SliceRandom;
use rand::{CryptoRng, Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Instant;

/// The fingerprint of one version of a provider's table: SHA-256 over its layout, the seed
/// of A, the bucket salt and the whole database matrix. A rebuilt table has a fresh OPRF key,
/// hence different bytes and a different id. Sessions, hint caches and every message after
/// the setup carry it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableId(pub [u8; 32]);

impl std::fmt::Display for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableId({self})")
    }
}

/// Where the preprocessing time went.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BuildReport {
    pub rows: u64,
    /// Reading and checking the rows.
    pub input_seconds: f64,
    /// OPRF evaluation of every key, tags and encrypted values.
    pub oprf_seconds: f64,
    /// Bucket placement and the database matrix.
    pub layout_seconds: f64,
    /// The hint `D·A` (with generating A).
    pub hint_seconds: f64,
    pub total_seconds: f64,
    /// Bucket salts tried (1 unless a bucket overflowed, probability ≤ 2^-40).
    pub salt_attempts: u32,
}

/// What a provider serves: built once from its rows ([`ProviderTable::build`]), stored with
/// [`ProviderTable::to_bytes`], answered from by [`crate::serve`].
///
/// Holds the OPRF key: `to_bytes` output is a secret (store it like a private key). `Debug`
/// prints the id and layout only.
pub struct ProviderTable {
    pub(crate) id: TableId,
    pub(crate) layout: TableLayout,
    pub(crate) key: OprfKey,
    pub(crate) a_seed: [u8; 32],
    pub(crate) salt: [u8; 32],
    /// `matrix_rows × buckets` bytes, row-major; column b is bucket b.
    pub(crate) matrix: Vec<u8>,
    /// `matrix_rows × n` elements of Z_q, row-major: `(D − 128)·A`.
    pub(crate) hint: Vec<u32>,
    report: Option<BuildReport>,
}

impl std::fmt::Debug for ProviderTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderTable")
            .field("id", &self.id)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// Where an id is, as the querier would derive it (provider-side, for tests and audits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// `H(id)`, the id hashed to the group (encoded).
    pub hashed: [u8; 32],
    /// `k·H(id)`, the unblinded OPRF element (encoded).
    pub evaluated: [u8; 32],
    /// `F_k(id)`.
    pub oprf: OprfOutput,
    pub bucket: u32,
    pub tag: [u8; TAG_BYTES],
}

struct Prepared {
    f: OprfOutput,
    entry: Vec<u8>,
}

impl ProviderTable {
    /// Preprocesses a table: draws a fresh OPRF key, evaluates it on every key, encrypts
    /// every value under its key's OPRF output, places the entries into buckets, lays the
    /// buckets out as the database matrix and computes the hint.
    ///
    /// Keys must be distinct; values at most `params.value_len` bytes. Refuses more than
    /// `params.max_rows` rows (as soon as the iterator yields one too many) and a matrix above
    /// `params.max_matrix_bytes`, before any heavy work; nothing is returned on error.
    pub fn build<I, K, V, R>(
        rows: I,
        params: &PirParams,
        rng: &mut R,
    ) -> Result<ProviderTable, PirError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
        R: CryptoRng + ?Sized,
    {
        params.validate()?;
        let start = Instant::now();
        let value_len = params.value_len as usize;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut values: Vec<Vec<u8>> = Vec::new();
        for (i, (k, v)) in rows.into_iter().enumerate() {
            if i as u64 >= params.max_rows {
                return Err(PirError::TooManyRows {
                    limit: params.max_rows,
                });
            }
            let v = v.as_ref();
            if v.len() > value_len {
                return Err(PirError::Row {
                    row: i as u64,
                    reason: format!(
                        "value of {} bytes is longer than value_len {value_len}",
                        v.len()
                    ),
                });
            }
            keys.push(k.as_ref().to_vec());
            values.push(v.to_vec());
        }
        let layout = TableLayout::for_rows(keys.len() as u64, params)?;
        let mut report = BuildReport {
            rows: keys.len() as u64,
            input_seconds: start.elapsed().as_secs_f64(),
            ..BuildReport::default()
        };

        let t = Instant::now();
        let key = OprfKey::random(rng);
        let outputs = key.evaluate_many(&keys);
        let prepared: Vec<Prepared> = outputs
            .into_par_iter()
            .zip(values.par_iter())
            .map(|(f, v)| Prepared {
                entry: encrypt_entry(&f, v, value_len),
                f,
            })
            .collect();
        drop((keys, values));
        report.oprf_seconds = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let a_seed: [u8; 32] = random_bytes(rng);
        let fill_seed: [u8; 32] = random_bytes(rng);
        let Placement {
            salt,
            slots,
            attempts,
        } = place(&prepared, &layout, rng)?;
        report.salt_attempts = attempts;
        let matrix = lay_out(&prepared, &slots, &layout, &fill_seed);
        drop(prepared);
        report.layout_seconds = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let hint = compute_hint(&matrix, &layout, &a_seed);
        report.hint_seconds = t.elapsed().as_secs_f64();
        report.total_seconds = start.elapsed().as_secs_f64();
        let id = fingerprint(&layout, &a_seed, &salt, &matrix);
        Ok(ProviderTable {
            id,
            layout,
            key,
            a_seed,
            salt,
            matrix,
            hint,
            report: Some(report),
        })
    }

    pub fn id(&self) -> TableId {
        self.id
    }

    pub fn layout(&self) -> &TableLayout {
        &self.layout
    }

    /// Rows of the table.
    pub fn len(&self) -> u64 {
        self.layout.rows
    }

    pub fn is_empty(&self) -> bool {
        self.layout.rows == 0
    }

    /// The preprocessing times, for a table built in this process (`None` when loaded).
    pub fn build_report(&self) -> Option<&BuildReport> {
        self.report.as_ref()
    }

    /// The hint as sent: `matrix_rows × n` little-endian `u32`.
    pub(crate) fn hint_le_bytes(&self) -> Vec<u8> {
        u32s_to_le(&self.hint)
    }

    /// Where `key` is (whether or not it is in the table): its OPRF output, bucket and tag.
    /// Provider-local; never sent.
    pub fn locate(&self, key: &[u8]) -> Located {
        let (hashed, evaluated, f) = self.key.evaluate_parts(key);
        Located {
            hashed,
            evaluated,
            oprf: f,
            bucket: oprf::bucket_of(&f, &self.salt, self.layout.buckets),
            tag: oprf::tag_of(&f),
        }
    }

    /// Answers query vectors: `queries` is `count × buckets` elements of Z_q (one vector after
    /// the other), the result `count × matrix_rows`: `(D − 128) · query` for each.
    pub fn answer(&self, queries: &[u32]) -> Result<Vec<u32>, PirError> {
        let m = self.layout.matrix_columns();
        if !queries.len().is_multiple_of(m) {
            return Err(PirError::Params(format!(
                "{} query elements are not whole vectors of {m}",
                queries.len()
            )));
        }
        let vecs: Vec<&[u32]> = queries.chunks_exact(m).collect();
        let outs = mul_vecs(&self.matrix, m, &vecs);
        let mut answers = Vec::with_capacity(vecs.len() * self.layout.matrix_rows());
        for (v, mut out) in vecs.iter().zip(outs) {
            let correction = CENTRE.wrapping_mul(wrapping_sum(v));
            for x in out.iter_mut() {
                *x = x.wrapping_sub(correction);
            }
            answers.extend_from_slice(&out);
        }
        Ok(answers)
    }

    /// The table as bytes, to store on disk (contains the OPRF key: keep it secret).
    ///
    /// Format (version [`STORED_VERSION`]), little-endian:
    /// `"FERRYPIR"` ‖ version u32 ‖ rows u64 ‖ value_len u32 ‖ buckets u32 ‖ capacity u32 ‖
    /// table id (32) ‖ OPRF key (32) ‖ seed of A (32) ‖ bucket salt (32) ‖ matrix ‖ hint (u32
    /// each) ‖ SHA-256 of everything before.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(HEADER_BYTES + self.matrix.len() + self.hint.len() * 4 + 32);
        out.extend_from_slice(STORED_MAGIC);
        out.extend_from_slice(&STORED_VERSION.to_le_bytes());
        out.extend_from_slice(&self.layout.rows.to_le_bytes());
        out.extend_from_slice(&self.layout.value_len.to_le_bytes());
        out.extend_from_slice(&self.layout.buckets.to_le_bytes());
        out.extend_from_slice(&self.layout.capacity.to_le_bytes());
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.key.to_bytes());
        out.extend_from_slice(&self.a_seed);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.matrix);
        out.extend_from_slice(&u32s_to_le(&self.hint));
        let digest: [u8; 32] = Sha256::digest(&out).into();
        out.extend_from_slice(&digest);
        out
    }

    /// Loads a table stored by [`ProviderTable::to_bytes`], checking the format version, the
    /// layout against `params` (rows, matrix size, value length), every length, the
    /// checksum and the table id.
    pub fn from_bytes(bytes: &[u8], params: &PirParams) -> Result<ProviderTable, PirError> {
        params.validate()?;
        let bad = |m: String| Err(PirError::Stored(m));
        if bytes.len() < HEADER_BYTES + 32 {
            return bad(format!("{} bytes, shorter than the header", bytes.len()));
        }
        if &bytes[..8] != STORED_MAGIC {
            return bad("not a Ferry PIR table (bad magic)".into());
        }
        let mut r = Reader {
            bytes,
            pos: STORED_MAGIC.len(),
        };
        let version = r.u32();
        if version != STORED_VERSION {
            return bad(format!(
                "format version {version}, this build reads version {STORED_VERSION}"
            ));
        }
        let layout = TableLayout {
            rows: r.u64(),
            value_len: r.u32(),
            buckets: r.u32(),
            capacity: r.u32(),
        };
        if let Err(reason) = layout.check() {
            return bad(format!("layout: {reason}"));
        }
        if layout.rows > params.max_rows {
            return Err(PirError::TooManyRows {
                limit: params.max_rows,
            });
        }
        if layout.matrix_bytes() > params.max_matrix_bytes {
            return Err(PirError::TableTooLarge {
                what: "database matrix",
                bytes: layout.matrix_bytes(),
                limit: params.max_matrix_bytes,
            });
        }
        if layout.value_len != params.value_len {
            return bad(format!(
                "value length {} differs from the configured {}",
                layout.value_len, params.value_len
            ));
        }
        let expected = HEADER_BYTES as u64 + layout.matrix_bytes() + layout.hint_bytes() + 32;
        if bytes.len() as u64 != expected {
            return bad(format!(
                "{} bytes, the layout needs {expected}",
                bytes.len()
            ));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return bad("checksum mismatch (the file is corrupt or truncated)".into());
        }
        let id = TableId(r.array());
        let key = OprfKey::from_bytes(r.array())
            .ok_or_else(|| PirError::Stored("the OPRF key is not a valid scalar".into()))?;
        let a_seed = r.array();
        let salt = r.array();
        let matrix = r.take(layout.matrix_bytes() as usize).to_vec();
        let hint = le_to_u32s(r.take(layout.hint_bytes() as usize));
        if fingerprint(&layout, &a_seed, &salt, &matrix) != id {
            return bad("the table id does not match its contents".into());
        }
        Ok(ProviderTable {
            id,
            layout,
            key,
            a_seed,
            salt,
            matrix,
            hint,
            report: None,
        })
    }
}

const STORED_MAGIC: &[u8; 8] = b"FERRYPIR";

/// Version of the stored table format.
pub const STORED_VERSION: u32 = 1;

const HEADER_BYTES: usize = 8 + 4 + 8 + 4 + 4 + 4 + 32 + OPRF_KEY_BYTES + 32 + 32;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Callers check the total length first.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N));
        a
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}

pub(crate) fn u32s_to_le(v: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// `bytes.len()` must be a multiple of 4 (callers check).
pub(crate) fn le_to_u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn random_bytes<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; 32] {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    b
}

/// `tag ‖ (len ‖ value ‖ zero padding) XOR keystream(F)`.
pub(crate) fn encrypt_entry(f: &OprfOutput, value: &[u8], value_len: usize) -> Vec<u8> {
    let mut entry = vec![0u8; TAG_BYTES + LEN_BYTES + value_len];
    entry[..TAG_BYTES].copy_from_slice(&oprf::tag_of(f));
    let payload = &mut entry[TAG_BYTES..];
    payload[..LEN_BYTES].copy_from_slice(&(value.len() as u16).to_le_bytes());
    payload[LEN_BYTES..LEN_BYTES + value.len()].copy_from_slice(value);
    oprf::apply_pad(f, payload);
    entry
}

/// Where the rows went: the bucket salt, each row's `(bucket, slot)`, salts tried.
struct Placement {
    salt: [u8; 32],
    slots: Vec<(u32, u32)>,
    attempts: u32,
}

/// Chooses a bucket salt under which no bucket overflows and assigns each row a slot. Slots
/// are a random permutation per bucket, so a slot's position says nothing about the input
/// order.
fn place<R: CryptoRng + ?Sized>(
    prepared: &[Prepared],
    layout: &TableLayout,
    rng: &mut R,
) -> Result<Placement, PirError> {
    let buckets = layout.buckets as usize;
    let capacity = layout.capacity as usize;
    for attempt in 1..=MAX_SALT_ATTEMPTS {
        let salt: [u8; 32] = random_bytes(rng);
        let bucket_of: Vec<u32> = prepared
            .par_iter()
            .map(|p| oprf::bucket_of(&p.f, &salt, layout.buckets))
            .collect();
        let mut loads = vec![0u32; buckets];
        for &b in &bucket_of {
            loads[b as usize] += 1;
        }
        if loads.iter().any(|&l| l as usize > capacity) {
            continue;
        }
        // Rows of each bucket, in input order (counting sort).
        let mut start = vec![0usize; buckets + 1];
        for b in 0..buckets {
            start[b + 1] = start[b] + loads[b] as usize;
        }
        let mut members = vec![0u32; prepared.len()];
        let mut next = start.clone();
        for (row, &b) in bucket_of.iter().enumerate() {
            members[next[b as usize]] = row as u32;
            next[b as usize] += 1;
        }
        let perm_seed: [u8; 32] = random_bytes(rng);
        let per_bucket: Vec<Result<Vec<(u32, u32)>, PirError>> = (0..buckets)
            .into_par_iter()
            .map(|b| {
                let rows = &members[start[b]..start[b + 1]];
                // Equal keys have equal OPRF outputs: refuse duplicates.
                let mut fs: Vec<(&OprfOutput, u32)> =
                    rows.iter().map(|&r| (&prepared[r as usize].f, r)).collect();
                fs.sort_unstable();
                for w in fs.windows(2) {
                    if w[0].0 == w[1].0 {
                        return Err(PirError::Row {
                            row: w[0].1.max(w[1].1) as u64,
                            reason: format!(
                                "duplicate key (same key as row {})",
                                w[0].1.min(w[1].1)
                            ),
                        });
                    }
                }
                let mut rng = ChaCha20Rng::from_seed(perm_seed);
                rng.set_stream(b as u64);
                let mut slots: Vec<u32> = (0..capacity as u32).collect();
                slots.shuffle(&mut rng);
                Ok(rows.iter().zip(slots).map(|(&r, s)| (r, s)).collect())
            })
            .collect();
        let mut assignment = vec![(0u32, 0u32); prepared.len()];
        for (b, rows) in per_bucket.into_iter().enumerate() {
            for (r, s) in rows? {
                assignment[r as usize] = (b as u32, s);
            }
        }
        return Ok(Placement {
            salt,
            slots: assignment,
            attempts: attempt,
        });
    }
    Err(PirError::Params(format!(
        "a bucket overflowed under {MAX_SALT_ATTEMPTS} salts (each attempt fails with \
         probability below 2^-40: the rows are probably not distinct)"
    )))
}

/// The database matrix: bucket b is column b, its `capacity` slots of `entry_len` bytes one
/// under the other. Empty slots hold random bytes, which look like encrypted entries.
fn lay_out(
    prepared: &[Prepared],
    slots: &[(u32, u32)],
    layout: &TableLayout,
    fill_seed: &[u8; 32],
) -> Vec<u8> {
    let rows = layout.matrix_rows();
    let buckets = layout.buckets as usize;
    let entry_len = layout.entry_len();
    // Bucket-major first (each bucket contiguous), then transposed to row-major.
    let mut columns = vec![0u8; rows * buckets];
    columns
        .par_chunks_mut(rows.max(1))
        .enumerate()
        .for_each(|(b, col)| {
            let mut rng = ChaCha20Rng::from_seed(*fill_seed);
            rng.set_stream(b as u64);
            rng.fill_bytes(col);
        });
    for (p, &(b, s)) in prepared.iter().zip(slots) {
        let at = b as usize * rows + s as usize * entry_len;
        columns[at..at + entry_len].copy_from_slice(&p.entry);
    }
    matrix::transpose(&columns, buckets, rows)
}

/// `(D − 128)·A`, row-major `rows × n`: each column c of the hint is `D · A[:, c]` (the kernel
/// with the columns of A as vectors) minus the centring correction `128 · Σ_j A[j][c]`.
fn compute_hint(matrix: &[u8], layout: &TableLayout, a_seed: &[u8; 32]) -> Vec<u32> {
    let m = layout.matrix_columns();
    let a = matrix::lwe_matrix(a_seed, m);
    let a_t = matrix::transpose(&a, m, LWE_N);
    drop(a);
    let cols: Vec<&[u32]> = a_t.chunks_exact(m.max(1)).take(LWE_N).collect();
    let mut hint_t = mul_vecs(matrix, m, &cols);
    hint_t
        .par_iter_mut()
        .zip(cols.par_iter())
        .for_each(|(h, c)| {
            let correction = CENTRE.wrapping_mul(wrapping_sum(c));
            for x in h.iter_mut() {
                *x = x.wrapping_sub(correction);
            }
        });
    let rows = layout.matrix_rows();
    let flat: Vec<u32> = hint_t.concat();
    matrix::transpose(&flat, LWE_N, rows)
}

fn fingerprint(layout: &TableLayout, a_seed: &[u8; 32], salt: &[u8; 32], matrix: &[u8]) -> TableId {
    let mut h = Sha256::new();
    h.update(b"ferry/pir/v1/table-id/");
    h.update(layout.rows.to_le_bytes());
    h.update(layout.value_len.to_le_bytes());
    h.update(layout.buckets.to_le_bytes());
    h.update(layout.capacity.to_le_bytes());
    h.update(a_seed);
    h.update(salt);
    h.update(matrix);
    TableId(h.finalize().into())
}
