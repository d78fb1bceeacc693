//! The KKRT16 batched OPRF: a 1-out-of-∞ OT extension (Kolesnikov, Kumaresan, Rosulek,
//! Trieu, CCS 2016, ePrint 2016/799), built like IKNP with a pseudo-random code instead of
//! the repetition code.
//!
//! The OPRF receiver R has one input `r_j` per row `j`; the OPRF sender S gets a key that
//! lets it evaluate `F_j(x)` on any `x`, and R learns `F_j(r_j)` only.
//!
//! ```text
//! S: s ← {0,1}^k                      R: seed pairs (k_c^0, k_c^1), c < k     [k base OTs,
//! S learns k_c^{s_c}                                                           roles swapped]
//! R: T0 = column c: G(k_c^0),  U = column c: G(k_c^0) ⊕ G(k_c^1) ⊕ column c of C(r_j) rows
//! R → S: U (by columns, in chunks of rows)
//! S: Q = column c: G(k_c^{s_c}) ⊕ s_c·U_c   ⇒  row q_j = t0_j ⊕ (C(r_j) ∧ s)
//! F_j(x) = H(j, q_j ⊕ (C(x) ∧ s))           R: F_j(r_j) = H(j, t0_j)
//! ```
//!
//! * `G`: AES-128 in counter mode keyed by the base-OT key, so any chunk of rows is computed
//!   on its own.
//! * `C`: the pseudo-random code, `C(x) = AES_{c0}(x) ‖ AES_{c1}(x) ‖ AES_{c2}(x) ‖ AES_{c3}(x)`
//!   ([`CODE_BITS`] = 512 bits) with keys derived from a fresh seed the sender draws per run.
//!   KKRT16 §4 (and their Table 2) need the code's minimum distance to reach the computational
//!   parameter κ = 128 except with probability 2^-σ (σ = 40) over all pairs of inputs; for up
//!   to 2^24–2^28 OPRF instances and 128-bit inputs their analysis gives 424–448 bits. We round
//!   up to 512 = 4 AES blocks, as libOTe's implementation of KKRT does: the matrices stay
//!   aligned to 128-bit words and the cost of the extra columns is about 15 %.
//! * `H`: SHA-256 over a domain tag, the row index and the 512-bit row, truncated by the
//!   caller (SHA-NI when the CPU has it); a random oracle in the proof.
//!
//! Security: semi-honest; `U` is masked by `G(k_c^{1-s_c})`, which S does not know, and S's
//! view of `Q` is determined by `s` and `U`; R's outputs on inputs other than `r_j` need
//! `s`. This file knows nothing about parties or sets: `crate::kkrt` runs it.

use super::base::OtKey;
use super::prg::Aes;
use super::transpose::transpose128;
use rayon::prelude::*;

/// Width of the pseudo-random code in bits (see the module docs).
pub(crate) const CODE_BITS: usize = 512;
/// The code in 128-bit words.
pub(crate) const CODE_WORDS: usize = CODE_BITS / 128;

/// One row of the OT-extension matrices: bit `c` is bit `c % 128` of word `c / 128`.
pub(crate) type Row = [u128; CODE_WORDS];

const HASH_DST: &[u8] = b"ferry-psi/kkrt/oprf-output/v1";

/// Rows processed per parallel task.
const PAR_ROWS: usize = 1024;

/// The pseudo-random code `C`.
pub(crate) struct Code {
    keys: Vec<Aes>,
}

impl Code {
    pub fn new(seed: [u8; 16]) -> Self {
        let root = Aes::new(seed);
        let mut derived = [0u128; CODE_WORDS];
        root.ctr(0, &mut derived);
        Code {
            keys: derived.iter().map(|k| Aes::new(k.to_le_bytes())).collect(),
        }
    }

    /// `C(x)` for every input.
    pub fn encode(&self, inputs: &[u128]) -> Vec<Row> {
        let mut rows = vec![[0u128; CODE_WORDS]; inputs.len()];
        rows.par_chunks_mut(PAR_ROWS)
            .zip(inputs.par_chunks(PAR_ROWS))
            .for_each(|(rows, inputs)| {
                let mut word = vec![0u128; inputs.len()];
                for (w, key) in self.keys.iter().enumerate() {
                    key.encrypt_u128(inputs, &mut word);
                    for (row, x) in rows.iter_mut().zip(&word) {
                        row[w] = *x;
                    }
                }
            });
        rows
    }
}

/// `H(j, row)` as 128 bits (little-endian), before truncation.
pub(crate) fn output_hash(index: u64, row: &Row) -> u128 {
    let mut bytes = [0u8; 16 * CODE_WORDS];
    for (chunk, w) in bytes.chunks_exact_mut(16).zip(row) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    super::sha::sha256_prefix128(&[HASH_DST, &index.to_le_bytes(), &bytes])
}

/// Bytes of one chunk of `U` for `rows` rows (a multiple of 128).
pub(crate) fn columns_bytes(rows: usize) -> usize {
    CODE_BITS * rows / 8
}

/// Columns (`CODE_BITS` of them, each `blocks` words: column `c` at `c * blocks`) to rows.
fn columns_to_rows(cols: &[u128], blocks: usize) -> Vec<Row> {
    let mut rows = vec![[0u128; CODE_WORDS]; blocks * 128];
    rows.par_chunks_mut(128).enumerate().for_each(|(b, rows)| {
        let mut m = [0u128; 128];
        for w in 0..CODE_WORDS {
            for (i, slot) in m.iter_mut().enumerate() {
                *slot = cols[(w * 128 + i) * blocks + b];
            }
            transpose128(&mut m);
            for (row, x) in rows.iter_mut().zip(&m) {
                row[w] = *x;
            }
        }
    });
    rows
}

/// Rows (a multiple of 128) to columns laid out as [`columns_to_rows`] reads them.
fn rows_to_columns(rows: &[Row]) -> Vec<u128> {
    let blocks = rows.len() / 128;
    // Per row block, its CODE_BITS column words; then scattered into column-major order.
    let per_block: Vec<Vec<u128>> = rows
        .par_chunks(128)
        .map(|rows| {
            let mut out = Vec::with_capacity(CODE_BITS);
            let mut m = [0u128; 128];
            for w in 0..CODE_WORDS {
                for (slot, row) in m.iter_mut().zip(rows) {
                    *slot = row[w];
                }
                transpose128(&mut m);
                out.extend_from_slice(&m);
            }
            out
        })
        .collect();
    let mut cols = vec![0u128; CODE_BITS * blocks];
    for (b, words) in per_block.iter().enumerate() {
        for (c, w) in words.iter().enumerate() {
            cols[c * blocks + b] = *w;
        }
    }
    cols
}

/// The OPRF receiver: holds both keys of every base OT.
pub(crate) struct OprfReceiver {
    prg: Vec<(Aes, Aes)>,
    code: Code,
}

impl OprfReceiver {
    pub fn new(pairs: &[(OtKey, OtKey)], code: Code) -> Self {
        debug_assert_eq!(pairs.len(), CODE_BITS);
        OprfReceiver {
            prg: pairs
                .iter()
                .map(|(a, b)| (Aes::new(*a), Aes::new(*b)))
                .collect(),
            code,
        }
    }

    /// For the rows starting at 128-row block `first_block` with inputs `inputs` (a multiple
    /// of 128 of them): the chunk of `U` to send (column-major, little-endian words) and the
    /// rows `t0_j` the outputs are hashed from.
    pub fn chunk(&self, first_block: u64, inputs: &[u128]) -> (Vec<u8>, Vec<Row>) {
        assert!(inputs.len().is_multiple_of(128), "whole 128-row blocks");
        let blocks = inputs.len() / 128;
        let code_cols = rows_to_columns(&self.code.encode(inputs));
        let mut t0 = vec![0u128; CODE_BITS * blocks];
        let mut u = vec![0u8; columns_bytes(inputs.len())];
        t0.par_chunks_mut(blocks)
            .zip(u.par_chunks_mut(blocks * 16))
            .zip(code_cols.par_chunks(blocks))
            .zip(self.prg.par_iter())
            .for_each(|(((t0, u), code), (g0, g1))| {
                g0.ctr(first_block, t0);
                let mut t1 = vec![0u128; blocks];
                g1.ctr(first_block, &mut t1);
                for (i, ((a, b), c)) in t0.iter().zip(&t1).zip(code).enumerate() {
                    u[i * 16..(i + 1) * 16].copy_from_slice(&(a ^ b ^ c).to_le_bytes());
                }
            });
        (u, columns_to_rows(&t0, blocks))
    }
}

/// The OPRF sender: the choice bits `s` and the chosen base-OT keys.
pub(crate) struct OprfSender {
    prg: Vec<Aes>,
    s: Row,
    code: Code,
}

impl OprfSender {
    /// `choices[c]` is bit `c` of `s`; `keys[c]` the base-OT key it chose.
    pub fn new(choices: &[bool], keys: &[OtKey], code: Code) -> Self {
        debug_assert_eq!(choices.len(), CODE_BITS);
        let mut s = [0u128; CODE_WORDS];
        for (c, &bit) in choices.iter().enumerate() {
            if bit {
                s[c / 128] |= 1 << (c % 128);
            }
        }
        OprfSender {
            prg: keys.iter().map(|k| Aes::new(*k)).collect(),
            s,
            code,
        }
    }

    /// The rows `q_j` of a chunk of `rows` rows (a multiple of 128) from the receiver's `U`.
    /// The caller has checked the length ([`columns_bytes`]).
    pub fn chunk(&self, first_block: u64, rows: usize, u: &[u8]) -> Vec<Row> {
        assert_eq!(u.len(), columns_bytes(rows), "checked by the caller");
        let blocks = rows / 128;
        let mut q = vec![0u128; CODE_BITS * blocks];
        q.par_chunks_mut(blocks)
            .zip(u.par_chunks(blocks * 16))
            .zip(self.prg.par_iter())
            .enumerate()
            .for_each(|(c, ((q, u), g))| {
                g.ctr(first_block, q);
                if (self.s[c / 128] >> (c % 128)) & 1 == 1 {
                    for (x, bytes) in q.iter_mut().zip(u.chunks_exact(16)) {
                        *x ^= u128::from_le_bytes(bytes.try_into().expect("16 bytes"));
                    }
                }
            });
        columns_to_rows(&q, blocks)
    }

    /// `F_j(x)` for pairs of (row index `j`, row `q_j`, input `x`), before truncation.
    pub fn evaluate(&self, points: &[(u64, &Row, u128)]) -> Vec<u128> {
        points
            .par_chunks(PAR_ROWS)
            .flat_map_iter(|points| {
                let inputs: Vec<u128> = points.iter().map(|p| p.2).collect();
                let codes = self.code.encode_serial(&inputs);
                points
                    .iter()
                    .zip(codes)
                    .map(|(&(j, q, _), code)| {
                        let mut row = *q;
                        for w in 0..CODE_WORDS {
                            row[w] ^= code[w] & self.s[w];
                        }
                        output_hash(j, &row)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Code {
    /// [`Code::encode`] on the calling thread (inside an already parallel loop).
    fn encode_serial(&self, inputs: &[u128]) -> Vec<Row> {
        let mut rows = vec![[0u128; CODE_WORDS]; inputs.len()];
        let mut word = vec![0u128; inputs.len()];
        for (w, key) in self.keys.iter().enumerate() {
            key.encrypt_u128(inputs, &mut word);
            for (row, x) in rows.iter_mut().zip(&word) {
                row[w] = *x;
            }
        }
        rows
    }
}

/// The receiver's outputs `H(j, t0_j)` for rows `first_row + i`.
pub(crate) fn receiver_outputs(first_row: u64, t0: &[Row], wanted: &[usize]) -> Vec<u128> {
    wanted
        .par_iter()
        .map(|&i| output_hash(first_row + i as u64, &t0[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// The extension with the base OTs done in the clear: the sender's evaluation on the
    /// receiver's input equals the receiver's output, and on any other input it does not.
    #[test]
    fn sender_and_receiver_agree_on_the_chosen_inputs_only() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut key = || {
            let mut k = [0u8; 16];
            rng.fill_bytes(&mut k);
            k
        };
        let pairs: Vec<(OtKey, OtKey)> = (0..CODE_BITS).map(|_| (key(), key())).collect();
        let code_seed = key();
        let choices: Vec<bool> = (0..CODE_BITS).map(|c| c % 5 < 2).collect();
        let chosen: Vec<OtKey> = pairs
            .iter()
            .zip(&choices)
            .map(|(p, &c)| if c { p.1 } else { p.0 })
            .collect();
        let receiver = OprfReceiver::new(&pairs, Code::new(code_seed));
        let sender = OprfSender::new(&choices, &chosen, Code::new(code_seed));
        let rows = 256;
        let inputs: Vec<u128> = (0..rows as u128).map(|i| i * 7919 + 11).collect();
        // Second chunk of a longer run: rows 256..512.
        let (u, t0) = receiver.chunk(2, &inputs);
        assert_eq!(u.len(), columns_bytes(rows));
        let q = sender.chunk(2, rows, &u);
        let all: Vec<usize> = (0..rows).collect();
        let mine = receiver_outputs(256, &t0, &all);
        let points: Vec<(u64, &Row, u128)> = (0..rows)
            .map(|i| (256 + i as u64, &q[i], inputs[i]))
            .collect();
        assert_eq!(sender.evaluate(&points), mine);
        let others: Vec<(u64, &Row, u128)> = (0..rows)
            .map(|i| (256 + i as u64, &q[i], inputs[i] ^ 1))
            .collect();
        let theirs = sender.evaluate(&others);
        assert!(theirs.iter().zip(&mine).all(|(a, b)| a != b));
        // The same input on another row gives another output.
        let shifted: Vec<(u64, &Row, u128)> = (1..rows)
            .map(|i| (256 + i as u64, &q[i], inputs[i - 1]))
            .collect();
        assert!(
            sender
                .evaluate(&shifted)
                .iter()
                .zip(&mine)
                .all(|(a, b)| a != b)
        );
    }

    #[test]
    fn rows_and_columns_round_trip() {
        let rows: Vec<Row> = (0..384u128).map(|i| [i, i * 3 + 1, !i, i << 64]).collect();
        let cols = rows_to_columns(&rows);
        assert_eq!(columns_to_rows(&cols, 3), rows);
        // Column c, row r is bit c of row r.
        let (c, r) = (130, 257);
        let bit = (cols[c * 3 + r / 128] >> (r % 128)) & 1;
        assert_eq!(bit, (rows[r][1] >> 2) & 1);
    }
}
