//! Keyword private information retrieval (PIR; "anonymous query", 匿踪查询) for Ferry.
//!
//! A *querier* (a bank) asks a *provider* (a telco) for the value of some ids in the
//! provider's table — "the value for phone number x" — so that the provider learns nothing
//! about which ids were asked (neither which, nor whether they matched), and the querier
//! learns the values of its ids that are present and the size of the table, nothing about
//! other rows.
//!
//! # Entry points
//!
//! * [`ProviderTable::build`]`(rows, &PirParams, rng)`: the provider's preprocessing, once per
//!   version of its table; [`ProviderTable::to_bytes`] / [`ProviderTable::from_bytes`] store
//!   it (versioned, checksummed; it holds the OPRF key, so it is a secret).
//! * [`serve`]`(ctx, &table, &ServeLimits)`: the provider's side of one session.
//! * [`query`]`(ctx, &ids)`: the querier's side; [`query_with`] also keeps the hint between
//!   sessions ([`HintCache`]) and takes the random generator.
//! * [`key_of`]: the key of a row identified by several columns.
//!
//! Both sides run on a [`ferry_context::Context`] of exactly two parties (roles do not
//! matter: each talks to the other party), with tags under `pir/`.
//!
//! # Construction
//!
//! **1. OPRF (2HashDH over Ristretto255, RFC 9497's construction).** The provider draws a
//! fresh key k for every build. `F_k(x) = SHA-256(DST ‖ len(x) ‖ x ‖ enc(2·k·H(x)))`, with `H`
//! the Ristretto255 one-way map of `SHA-512(DST' ‖ x)` (the doubling lets a batch of encodings
//! share one inversion; it is a bijection of the group). The querier sends `r·H(x)` for a fresh
//! random `r`, the provider returns `k·r·H(x)`, the querier removes `r`. From `F = F_k(x)` both
//! sides derive with SHA-256 under separate labels: the **bucket** (with the table's public
//! bucket salt), an 8-byte **tag**, and a **keystream** that encrypts the value.
//!
//! **2. Buckets.** The provider evaluates `F_k` on every key itself and stores each row as an
//! entry `tag ‖ E(len ‖ value ‖ padding)` (the value XOR the keystream, padded to the table's
//! fixed `value_len`) in the bucket of its key: simple hashing into
//! `B = ceil(rows / bucket_load)` buckets of `C` slots each, `C` the smallest capacity for which
//! a Chernoff bound puts the probability that any bucket overflows below 2^-40 (should it
//! happen anyway, the build draws a new bucket salt). Entries take random slots of their
//! bucket; free slots hold random bytes, which look exactly like entries. Bucket b is column b
//! of the **database matrix** D, its `C × entry_len` bytes one under the other.
//!
//! **3. SimplePIR (Henzinger et al. 2023) over D.** A is a public `B × n` matrix over
//! `Z_q` expanded from a seed (ChaCha20). The provider publishes the **hint** `H = (D − 128)·A`
//! (entries are used centred). To fetch column b the querier draws a fresh secret
//! `s ∈ Z_q^n` and error `e ← χ^B` and sends `q = A·s + e + Δ·u_b`; the provider answers
//! `(D − 128)·q`; the querier computes `answer − H·s = Δ·(D − 128)[:, b] + (D − 128)·e` and
//! rounds away the noise: it has its whole bucket, finds its tag and decrypts its value (no
//! tag: the id is absent).
//!
//! **4. Batches.** One OPRF message for all ids of a session, then one PIR query per id
//! (not per distinct bucket, which would reveal collisions), eight queries per pass over the
//! database, parallel over row blocks.
//!
//! # What each party learns (semi-honest parties)
//!
//! * **Provider**: the number of ids in the session (and whether the querier holds the
//!   current hint). The blinded elements `r·H(x)` are uniformly random group elements, and
//!   each query vector is an LWE sample plus a message, indistinguishable from uniform under
//!   LWE (a fresh `s` per query: reusing one would reveal the difference of two columns).
//!   It does not learn an id, a hash of one, an OPRF output, a bucket, or whether an id
//!   matched: nothing it sees depends on that. A test searches everything the provider
//!   receives for those values, and checks that the message sizes of different queries are
//!   equal.
//! * **Querier**: the table's size and layout, and, per id, its whole bucket. Entries of
//!   other ids in the bucket are encrypted under OPRF outputs it does not have, and tags and
//!   ciphertexts are pseudo-random: they reveal nothing, not even how full the bucket is.
//!   The hint is a linear function of D, whose bytes are all pseudo-random, so it reveals
//!   nothing either (even when, for tables with fewer buckets than n, it determines D).
//!   Testing an id needs an OPRF evaluation by the provider (One-More-Gap-DH), so the
//!   querier learns about exactly as many ids as it asks; [`ServeLimits::max_ids`] caps that
//!   per session.
//! * A **rebuilt** table has a fresh OPRF key: old and new tables are unrelated (a querier
//!   holding both cannot XOR ciphertexts of the same row), and a new [`TableId`].
//!
//! Not covered: a malicious provider (it can answer wrong values, or serve a table built for
//! one querier's ids — results are not verifiable) and a malicious querier beyond the id
//! limit. The number, sizes and timing of the messages depend only on the number of ids and
//! the table's layout (the provider's work is the same product whatever the query), so
//! traffic analysis learns the id count, which the provider knows anyway.
//!
//! # Parameters and their security
//!
//! All constants are in [`params`] with their justification:
//!
//! | | |
//! |---|---|
//! | LWE secret dimension | n = [`LWE_N`] = 1024, secret uniform in Z_q^n |
//! | ciphertext modulus | q = 2^32 ([`LOG_Q`]): wrapping `u32` arithmetic |
//! | error | discrete Gaussian, σ = [`NOISE_SIGMA`] = 6.4, support ±77 (12σ), CDT sampler |
//! | plaintext modulus | p = 2^8 ([`PLAINTEXT_BITS`]): one byte per entry, Δ = 2^24 |
//! | LWE samples per query | the number of buckets, at most [`MAX_COLUMNS`] = 2^20 |
//! | OPRF | Ristretto255, 32-byte key, ~128-bit security |
//! | tag | 8 bytes: false match of an absent id ≤ C·2^-64 |
//!
//! n = 1024, q = 2^32, σ = 6.4 is SimplePIR's parameter set, estimated in the paper (§4.2,
//! with the lattice estimator) at 128-bit security for up to 2^20 samples; the estimate was
//! not re-run here. **Correctness**: decryption fails only if the noise `(D−128)·e` reaches
//! Δ/2; it is subgaussian with parameter `σ·128·√B`, so the failure probability of a whole
//! column is below `2·C·entry_len·exp(−t²/2)` with `t = 2^23/(σ·128·√B)`
//! ([`correctness_log2`]): below 2^-40 for every admissible B (2^-51 at 2^20 buckets), far
//! below at typical sizes (at 15 625 buckets, t ≈ 82). That margin is why p is a byte
//! rather than chosen per size as in SimplePIR (which goes up to 2^10): 2^9 would work below
//! ~2^16 buckets, but bytes keep the database one byte per entry for the memory-bound product
//! and need no bit packing. Layouts are checked against the bound on both sides.
//!
//! # Messages and limits
//!
//! Bincode through [`ferry_context::Context`] (its per-message size limit applies), types in
//! [`wire`]; every message carries [`wire::PROTOCOL_VERSION`], and every message after the
//! setup the [`TableId`] of the session's table version.
//!
//! ```text
//! Q → P  hello        version, number of ids, id of the table whose hint Q holds
//! P → Q  setup        Ready{version, table id, layout (rows, value_len, buckets, capacity),
//!                     LWE constants, seed of A, bucket salt, hint pieces} | Refused{reason}
//! P → Q  hint ×k      pieces of ≤ 8 MiB of the hint (only if Q's cached hint is stale)
//! Q → P  oprf         32 bytes per id
//! P → Q  oprf-reply   32 bytes per id
//! Q → P  query ×…     first, count, count × buckets × 4 bytes (≤ 8 MiB, ≤ 64 vectors;
//!                     at most 2 messages ahead of the answers)
//! P → Q  answer ×…    first, count, count × matrix_rows × 4 bytes
//! ```
//!
//! The provider checks the version, the id count against [`ServeLimits::max_ids`], every
//! length and count, the table id, and that every element is a valid group element; the
//! querier checks the version, the LWE constants, the layout (bounds and the correctness
//! bound), the hint size against [`QueryLimits`], every length, and the table id of every
//! message — a provider whose table changes mid-session gives [`PirError::TableChanged`].
//! Errors name the peer and the field; nothing is returned on error.
//!
//! # Cost
//!
//! Per id: upload `32 + 4·B` bytes, download `32 + 4·C·entry_len` bytes, provider work one
//! pass over the `C·entry_len × B` database (eight ids share a pass in a batch). The hint
//! (`C·entry_len × n × 4` bytes) is a one-time download per table version. Preprocessing is
//! one OPRF evaluation per row (hash to the group, a scalar multiplication, a batched
//! encoding) plus the hint, `D·A`: n = 1024 multiply-adds per database byte.
//!
//! Measured with `examples/pir_bench.rs` (release build; both parties in one process on the
//! 2-core AMD EPYC development machine with AVX-512, otherwise idle), 10^6 rows of 64 bytes,
//! default parameters: B = 15 625 buckets of C = 144 slots of 74 bytes, a 166.5 MB database,
//! a 43.6 MB hint; decryption failure bound 2^-4827, overflow bound 2^-40.3.
//!
//! | | |
//! |---|---|
//! | preprocessing | 16.7 s wall, 32.3 CPU s (OPRF + encryption 13.1 s, matrix 0.4 s, hint 2.8 s) |
//! | one id, online (hint cached), end to end | 12–13 ms (provider answer 7 ms) |
//! | one id, first session (hint download, A from its seed) | 0.13 s |
//! | batch of 1000 ids | 3.6 s end to end (provider answers 3.1 s), 7.0 CPU s |
//! | bytes per id | up 62 639, down 42 845 (a one-id session, all messages) |
//! | provider CPU per id | 17 ms alone (memory-bound, 19–24 GB/s); 4.5–5 ms in a batch |
//! | peak memory | 0.73 GB for the process (both parties and the benchmark's own map) |
//!
//! With 256-byte values (10^6 rows): 599 MB database, 157 MB hint, preprocessing 26 s, one id
//! online 34 ms, 1000 ids 12 s; for such values a smaller `bucket_load` (say 16) trades a
//! smaller hint and answer for a larger query.
//!
//! # Not implemented
//!
//! DoublePIR (which shrinks the hint to a fixed `n × n` block by a second PIR over the
//! answer), a querier-side cache on disk, padding the number of ids in a session, and
//! verifiability against a malicious provider.

mod error;
mod keys;
pub mod matrix;
mod oprf;
pub mod params;
mod protocol;
mod table;
pub mod wire;

pub use error::PirError;
pub use keys::key_of;
pub use oprf::OprfOutput;
pub use params::{
    CORRECTNESS_LOG2, LOG_Q, LWE_N, MAX_COLUMNS, NOISE_SIGMA, PLAINTEXT_BITS, PirParams,
    TableLayout, correctness_log2,
};
pub use protocol::{
    HintCache, QueryLimits, QueryOutcome, QueryReport, ServeLimits, ServeReport, query, query_with,
    serve,
};
pub use table::{BuildReport, Located, ProviderTable, STORED_VERSION, TableId};
