//! Private set intersection (PSI, 隐私求交) for Ferry: the parties of a job find the
//! identifiers they all hold, and each receiving party gets *its own rows* for them, without
//! anyone revealing the identifiers outside the intersection.
//!
//! # Entry points
//!
//! * [`run_psi`]`(ctx, &PsiInput, &PsiConfig)`: a CSV or Parquet file and its key column(s)
//!   in; the party's rows in the intersection written as a new CSV file, the 0-based row
//!   numbers, and a [`PsiReport`] out.
//! * [`intersect_ids`]`(ctx, &IdList, &PsiConfig)`: the protocol on a list of identifiers
//!   (what the benchmark uses, with [`synthetic_ids`]).
//!
//! Both run on a [`ferry_context::Context`] and are generic over
//! [`ferry_crypto::ecdh::EcdhGroup`] ([`run_psi_in`], [`intersect_ids_in`]); [`GroupKind`]
//! names the groups a configuration can choose, one per crypto suite: Ristretto255 (suite
//! `default`) and SM2 with SM3 (suite `gm`, the Chinese national algorithms; see
//! [the GM suite](#the-gm-suite-国密)). Every data party of the context's roster (the guest and the hosts)
//! takes part; an arbiter, if the job has one, holds no identifiers and does not take part.
//! Two data parties run the two-party protocol, three or more the n-party one.
//!
//! [`PsiConfig::protocol`] chooses between ECDH-PSI ([`PsiProtocol::Ecdh`], the library's
//! default; any number of parties) and KKRT16 ([`PsiProtocol::Kkrt`]; two parties, an order of
//! magnitude faster, see [below](#kkrt16-two-parties-kkrt-psi-2p)); a provider with a very
//! large, precomputed set and small queriers use [`unbalanced`] instead. The node's `psi`
//! component and `ferry psi` use [`PsiProtocol::default_for`]: KKRT for two parties, ECDH for three or
//! more and whenever a party wants a cached key. Inputs, outputs (rows in an order every
//! receiver shares) and the report are the same for both.
//!
//! # Security model
//!
//! Semi-honest (honest-but-curious) parties; for three or more parties, no two parties
//! collude (see the n-party section for exactly which coalitions break what). Security rests
//! on the Decisional Diffie–Hellman assumption in the group and on hashing to the group being
//! a random oracle: `H(x) = Ristretto255 one-way map(SHA-512(DST ‖ x))`. A blinded element
//! `k·H(x)` under a key `k` a party does not know looks random to it, so it cannot test a
//! guess of `x` against it; it could if it saw `x`, `H(x)` or any plain hash of `x`, which is
//! why no such value is ever sent (a test checks every transcript for them).
//!
//! Before anything is sent, each party drops empty keys and duplicates (keeping the first
//! row of each key), so every element it sends is distinct, and shuffles its set with a fresh
//! permutation from the OS generator, so the order of what it sends says nothing about its
//! file order.
//!
//! # The GM suite (国密)
//!
//! With [`PsiConfig::group`] = [`GroupKind::Sm2`] (`GroupKind::of_suite(Suite::Gm)`; `suite:
//! gm` in the node's `psi` component, `ferry psi --suite gm`) ECDH-PSI runs unchanged over
//! [`ferry_crypto::ecdh::Sm2Sm3`]: `H(x)` is RFC 9380 `hash_to_curve` onto the SM2 curve with
//! SM3 (suite `SM2_XMD:SM3_SSWU_RO_`, tag `ferry/psi/v1/SM2_XMD:SM3_SSWU_RO_`), elements are
//! 33-byte compressed points, and each one a peer sends is validated (on the curve, not the
//! identity) before it is multiplied. The security argument is the same (DDH on the SM2
//! curve, 128-bit security; random-oracle hashing). KKRT is refused under `gm` (its OT
//! extension is AES-128 and Ristretto255), so the default protocol there is ECDH for any
//! number of parties ([`PsiProtocol::default_for_suite`]). Both parties must use the same
//! suite: the hello carries the group, and a party on the other suite stops with an error
//! naming both suites. Cost: every group operation is about ten times a Ristretto255 one
//! (measured side by side by `ferry bench crypto` and `ferry bench psi --suite gm`).
//!
//! # Two parties (`ecdh-psi-2p`)
//!
//! Parties A and B with sets X and Y, fresh keys a and b, chunks of `chunk_size` elements:
//!
//! ```text
//! A ↔ B   hello: version, protocol, group, receivers, number of key columns, set size, chunk size
//! A → B   a·H(x) for x ∈ X, shuffled, in chunks      B → A   b·H(y) for y ∈ Y, shuffled, in chunks
//! B → A   b·(a·H(x)) per chunk, same order            A → B   a·(b·H(y)) per chunk, same order
//!         (only if A receives the result)                      (only if B receives the result)
//! ```
//!
//! A receiving party knows `ab·H(x)` for each of its own elements (by position) and has
//! computed `ab·H(y)` for the peer's: equal values are the intersection. Both directions run
//! at once and are streamed: a party sends each chunk as soon as it is blinded and re-blinds
//! the peer's chunks as they arrive, so with both parties on one machine both cores stay
//! busy until the end (the total CPU is the floor: every party does |X| + |Y| group
//! operations).
//!
//! **What is revealed.** With `receivers: all`: each party learns the other's set size (after
//! de-duplication) and the intersection — which of its own rows are in it, hence its size.
//! With `receivers: party(A)`: A learns |Y| and the intersection; B learns |X| only (B
//! does not even learn the intersection size). Nothing about identifiers outside the
//! intersection is revealed to anyone.
//!
//! # KKRT16, two parties (`kkrt-psi-2p`)
//!
//! Kolesnikov, Kumaresan, Rosulek, Trieu, "Efficient batched oblivious PRF with applications
//! to private set intersection", CCS 2016 (ePrint 2016/799): symmetric-key cryptography for
//! all but 512 base OTs, so its cost per id is a few AES and SHA-256 calls instead of four
//! curve operations. The *receiver* R is the one party of `receivers: <party>`, or with
//! `receivers: all` the leader (the guest, or [`PsiConfig::leader`]); the other is the sender S.
//!
//! ```text
//! R ↔ S   hello: version, protocol, receivers, number of key columns, set size
//!         (both: x = SHA-256("ferry-psi/kkrt/item/v1" ‖ id) to 126 bits, never sent)
//! R       cuckoo-hashes its x into m bins with 3 hash functions h_i (AES under a fresh key)
//! R → S   base-OT point A, the hash key
//! S → R   512 base-OT points B_c (S's secret choice bits s), the code's seed
//! R → S   U: 512 bits per bin, 16384 bins per message (the OPRF, `ot::kkrt`)
//! S → R   for i = 0, 1, 2: F(h_i(y), y ‖ i) for every y of S, in a fresh shuffled order
//!         per i, truncated to ℓ bytes, 65536 per message
//! R       a match of F(bin of x, x ‖ i) with S's list i means x ∈ Y
//! R → S   positions of the matched values, in the agreed order   [if S receives]
//! ```
//!
//! * **Security.** Semi-honest, in the random-oracle model (the OPRF's output hash,
//!   SHA-256), with 128-bit computational security (AES-128 for the PRGs, the code and the
//!   cuckoo hashes; SHA-256; Ristretto255 for the base OTs, Chou–Orlandi "Simplest OT") and
//!   40-bit statistical security. Every run draws fresh randomness (base OTs, code, hash key,
//!   shuffles); there is no long-term key, so `keys: cached` is refused with KKRT.
//! * **What is revealed** is what two-party ECDH-PSI reveals: each party learns the other's set
//!   size (the hello; the sender could also infer the receiver's from the number of bins, m);
//!   receivers learn the intersection. With `receivers: <party>` the other party learns
//!   nothing else (not even the intersection size). With `all`, S learns the intersection from
//!   the positions R sends back, exactly the result. The OPRF outputs S sends are
//!   pseudo-random to R except for ids R holds; the order of each list is a fresh shuffle.
//! * **Parameters** (constants in `kkrt.rs` and `ot/kkrt.rs`): code width 512 bits (KKRT16
//!   Table 2 needs 424–448 for 40-bit statistical security at these set sizes; 4 AES blocks
//!   keep rows word-aligned, as libOTe does); m = ⌈1.27·n⌉ bins for n ≥ 4096 and 2n + 256
//!   below, 3 hash functions, no stash: insertion fails with probability below 2^-40
//!   (Pinkas–Schneider–Zohner, ACM TOPS 2018); on a failure R retries with a fresh key (a
//!   2^-40 event, whose only trace is which key S receives) up to 3 times, then stops with an
//!   error saying to run again. Outputs are compared on ℓ = ⌈(40 + log₂ n_R + log₂ n_S)/8⌉
//!   bytes, so a false match among all n_R·n_S comparisons has probability below 2^-40 (each
//!   receiver id is compared only with the list of the hash function that placed it).
//! * **Limits.** At most [`MAX_KKRT_SET_SIZE`] (2^28) distinct ids per party; a peer's
//!   announced size is checked against it before anything is allocated, and every message is
//!   checked against the exact length the sizes imply (points, U chunks, values, positions).
//! * **Cost.** R sends 64 bytes per bin (≈ 81 bytes per id), S 3·ℓ bytes per id; 1e6 × 1e6 is
//!   about 115 MB in all. CPU: AES-CTR for 512 (S) or 1024 (R) PRG columns, 128×128 bit
//!   transposes (`ot::transpose`), 4 AES calls per code word, one SHA-256 per OPRF output;
//!   parallel over rayon's pool, streamed in chunks of 16384 bins, so memory is the ids plus
//!   about 50 bytes per id (S keeps its 3 outputs per id until it sends them). Measured with
//!   `examples/kkrt_inprocess.rs` and `ferry bench psi --protocol kkrt`: see the README.
//!
//! # Three or more parties (`ecdh-psi-np`)
//!
//! Result: the intersection of all sets. Roles: a *leader* L (the guest, or
//! [`PsiConfig::leader`]), a *helper* H₁ (the first other party in roster order), and the other
//! hosts H₂…. L holds a fresh key r; the hosts share a fresh key s that H₁ draws and sends to
//! the other hosts directly (L never sees it).
//!
//! ```text
//! hosts → L   hello                    L → hosts   start (to H₁ with |X_L| and L's chunk size)
//! H₁ → Hᵢ    s (32-byte seed)
//! Hᵢ → L      s·H(x) for x ∈ Xᵢ, shuffled, in chunks; L re-blinds: rs·H(x)
//! L → H₁      r·H(x) for x ∈ X_L, shuffled, in chunks; H₁ re-blinds: rs·H(x)
//! H₁ → L      the comparison keys of rs·H(X_L) in a fresh shuffled order
//! L           intersects all sets under rs; the agreed order is the sorted comparison keys
//! L → Hᵢ      positions (in Hᵢ's sent order) of its elements in the intersection   [if Hᵢ receives]
//! L ↔ H₁      L sends the intersection's keys, H₁ answers their positions in L's sent order [if L receives]
//! L → hosts   done
//! ```
//!
//! Waiting: a host that has sent its set may wait for L far longer than one receive timeout
//! (L does the most work), and L waits for H₁'s keys until H₁ has re-blinded all of L's set.
//! So every computing party sends a small `working` notice every `min(timeout/4, 20 s)` to
//! the parties waiting for its stream (and L to the hosts, on the tag of its final
//! messages); the notices carry nothing and are not counted as chunks.
//!
//! Group operations: each party blinds its own set once; L re-blinds every host set and H₁
//! re-blinds L's set: 2·Σ|Xᵢ| in total, as in the two-party case.
//!
//! **What is revealed, beyond the result to the receivers:**
//! * L sees every set as unlinkable values under rs (it cannot tie its own elements to them:
//!   H₁ shuffled them, and it does not know s). So L learns every set size and the size of
//!   every region of the Venn diagram of the sets: for each subset of parties, how many
//!   identifiers exactly those parties hold — in particular the pairwise intersection sizes
//!   |X_L ∩ Xᵢ|, |Xᵢ ∩ Xⱼ| and the final intersection size, even when L is not a receiver.
//!   It does not learn which identifiers.
//! * H₁ learns |X_L|; if L receives the result, also the intersection size (the number of
//!   keys L asks it to locate).
//! * The other hosts learn nothing beyond their result (if they receive it).
//!
//! **Collusion.** L together with any host knows r and s and can test guessed identifiers
//! against every host's set, so L must not collude with a host; hosts colluding among
//! themselves learn nothing about L's set or each other's beyond what each already has.
//! The two-party protocol has no such caveat. A collusion-resistant variant (every set
//! blinded by every party's key in a ring, m·Σ|Xᵢ| operations) is not implemented.
//!
//! # Keys: fresh or cached
//!
//! [`KeyMode::Fresh`] (default) draws every key from the OS generator per run: two runs over
//! the same data send unrelated elements, so a peer cannot link runs. [`KeyMode::Cached`]
//! keeps a long-term 32-byte secret in a file (created with mode 0600); the key is derived
//! from it, the group, the protocol role and the sorted party names, so it stays the same
//! across runs with the same parties. That is what one needs to precompute or reuse a
//! blinded set (e.g. unbalanced PSI, where a large set is blinded once and queried many
//! times), and it costs **linkability**: a peer that keeps what it received can compare runs
//! and see which of this party's identifiers stayed, came or went between runs, and the
//! intersection changes over time, without learning the identifiers. A leaked cache file
//! lets its holder re-identify every element this party ever sent under it. Shuffles are
//! always fresh. The file is created atomically (written in full, then linked into place),
//! so runs starting together on one node share one secret and never read a partial file.
//!
//! # Keys from files
//!
//! A key is read from the key column(s) as text, with surrounding ASCII whitespace trimmed
//! (a Parquet cell is turned into text first: integers in decimal, strings as they are; see
//! `ferry_data::parquet::cell_text`), so a CSV `123` and a Parquet `INT64 123` match. One key
//! column: the key is its bytes. Several columns (a composite key): each part is prefixed by
//! its length (4 bytes, little-endian) and the parts are concatenated, so no value can make
//! two different tuples collide (a separator character could occur inside a value). Every
//! party must list the same number of key columns, in the same meaning; the handshake
//! checks the number. A row whose key columns are all empty (or null) is dropped and counted
//! in `empty_keys`; a repeated key is dropped (the first row is kept) and counted in
//! `duplicates_dropped`. Neither is an error.
//!
//! # Output order
//!
//! Receivers write their rows in the same order: ascending by the 128-bit comparison key of
//! the identifier blinded by every party (`ab·H(x)` with two parties, `rs·H(x)` with more),
//! which every receiver computes or is told without any extra message. The order is a
//! pseudo-random permutation of the intersection that changes with fresh keys, so it reveals
//! nothing about the identifiers, and row i of one party's output is the same identifier as
//! row i of every other receiver's: outputs can be joined by position.
//!
//! # Memory
//!
//! Per party, for n own and m peer identifiers: the keys themselves, stored back to back
//! ([`IdList`]: bytes + 8 per id; a hash set of them while de-duplicating, 16 bytes per id),
//! the shuffle (4 bytes per id), and 16-byte comparison keys instead of whole elements (own
//! and peer's, plus 8 bytes per own id while sorting). Blinded chunks are streamed and freed
//! as soon as they are sent or re-blinded; the in-memory transport and the receiver thread
//! may buffer chunks a peer sent ahead (32 bytes per element at most). The file is read
//! twice, streaming: keys only, then the selected rows. Matching sorts the comparison keys
//! and merges them (no hash table). At 10⁷ × 10⁷ this stays far below the 4 GiB per party
//! (see the example's measurements). No bucketing by a public hash of the identifiers is
//! done: sending per-bucket streams would reveal per-bucket set sizes, and the memory is
//! already bounded without it.
//!
//! # Performance
//!
//! Every party does one hash-to-group + scalar multiplication + compression per own id and
//! one decompression + multiplication + compression per id it re-blinds: a two-party run
//! on N × N ids is 4N group operations, spread over all the cores both parties have. The
//! group code is curve25519-dalek's; the workspace builds it with its AVX-512 IFMA backend
//! compiled in (`--cfg curve25519_dalek_backend="avx512"` in `.cargo/config.toml`) and
//! selected at run time on CPUs with avx512ifma + avx512vl, so release binaries need no
//! `-C target-cpu=native` and still run on any x86-64 CPU, where dalek falls back to its
//! AVX2 (or serial) backend, about 1.5× slower per operation. Measured on the 2-core
//! development machine with `examples/psi_inprocess.rs` (both parties in one process):
//! 35.8k hash+mul+compress and 43.1k decompress+mul+compress per core-second, so the floor
//! of 1e6 × 1e6 is about 51–53 s; the protocol's CPU time came to 1.02–1.05× the floor's
//! (hashing of ids, shuffles, sorting, messages and threads included), and 1e7 × 1e7 took
//! 625 s wall with both parties at a peak RSS of 1.76 GB together (the machine was shared
//! with other builds, so wall times there were above CPU/2).
//!
//! # Unbalanced PSI (`unbalanced-psi-2hdh`, module [`unbalanced`])
//!
//! A *provider* P with a very large set X (1e7 to 1e9 ids, e.g. a telco's subscribers) and a
//! *querier* Q with a small set Y. P precomputes its OPRF outputs once, Q downloads them once as
//! a compact filter, and each run's online cost grows with |Y| only. The OPRF is 2HashDH
//! (Jarecki–Kiayias–Krawczyk 2014) over Ristretto255 under P's long-lived key k:
//! `F(x) = SHA-256("ferry-psi/unbalanced/oprf/v1" ‖ len(x) ‖ x ‖ k·H(x))`, H the same
//! hash-to-group as ECDH-PSI.
//!
//! ```text
//! P, once per key and dataset version: F(x) for every x ∈ X (parallel), truncated to t bits,
//!         sorted, written as the filter file (header: format version, key id, dataset
//!         version, creation time, count, t)                      [Filter::build, preprocess_input]
//! Q → P   hello: version, |Y| (distinct), chunk size, the (key id, dataset version) of its
//!         cached filter if any, whether it may download
//! P → Q   go: the current (key id, dataset version), |X|, k·G; or a refusal (|Y| above the
//!         per-run cap, stale filter and no download allowed, P's filter predating a rotation)
//! P → Q   the filter, 4 MiB per message                           [only if Q's copy is stale]
//! Q → P   H(y) + r_y·G for y ∈ Y (a fresh uniform r_y per id), in chunks
//! P → Q   k·(H(y) + r_y·G), same order
//! Q       k·H(y) = answer − r_y·(k·G); F(y) looked up in the filter: y ∈ X iff found
//! ```
//!
//! The blinding is additive (RFC 9497 discusses it beside the multiplicative `r·H(y)`): each
//! point Q sends is uniformly random whatever y is, and both of Q's multiplications are by
//! fixed bases (G, and k·G with a table built once per run), about three times cheaper than
//! the two variable-base ones of `r·H(y)` and `r⁻¹·answer`. It relies on P answering with the
//! k of its k·G, which the semi-honest model grants.
//!
//! * **Key and rotation.** [`OprfKey`] lives in a file created with mode 0600 (atomically, as
//!   the cached ECDH key): a random 128-bit key id, the creation time, the scalar.
//!   [`OprfKey::rotate`] writes a new key (new id); P then refuses to serve a filter of the old
//!   id ("rebuild the filter"), and a querier's cached filter of the old id is replaced by a
//!   download, or refused with "stale filter" if it may not download. Queriers cache one filter
//!   per provider (`<cache>/<provider>.filter`), named by key id and dataset version.
//! * **Tag width.** `t = 8·⌈(40 + ⌈log₂ n⌉)/8⌉` bits for n distinct provider ids
//!   ([`unbalanced::tag_bits`]). A query id not in X has an output that is pseudo-random to
//!   everyone, so it matches one of the n tags with probability at most `n·2^-t ≤ 2^-40`
//!   (per query element; at 1e5 queries, below 2^-23 per run). 1e7 ids: 64-bit tags (80 MB of
//!   filter); 1e8: 72 bits (900 MB); 1.3e9: 72 bits (11.7 GB).
//! * **Security.** Semi-honest, random-oracle model, one-more-Diffie–Hellman assumption in
//!   Ristretto255 (the 2HashDH OPRF's). P sees only `H(y) + r_y·G`: uniformly random points,
//!   independent of Y. Q sees k·H(y) for its own y only, and the filter, whose
//!   tags for ids outside Y are outputs of a PRF keyed by k it cannot evaluate offline.
//! * **What is revealed.** P learns |Y| (distinct ids; duplicates are dropped before blinding)
//!   and whether Q already had the current filter. Q learns |X| (the filter's count) and
//!   Y ∩ X, nothing else about X. P learns nothing about the result. Across runs: P can count
//!   how often Q asks and how many ids; the r_y are fresh, so P cannot link Q's ids between
//!   runs. Q keeps the filter, but testing any id against it needs one online evaluation by
//!   P (k never leaves P), which P counts and caps.
//! * **A querier asking many ids.** Each OPRF evaluation lets Q test one id of its choice
//!   against X; a Q that lies about its set could test up to the per-run cap. So P caps every
//!   run ([`Provider::max_query`], default [`unbalanced::DEFAULT_MAX_QUERY`] = 2^20) and
//!   reports the count ([`ProviderStats::query_size`]) for its audit log. This is the
//!   semi-honest model's limit: the protocol does not stop a querier from spreading a
//!   dictionary over many runs; policy (caps per period, who may query) does.
//! * **Untrusted input.** Q parses the filter with every length checked (magic, version,
//!   count ≤ 2^33, `t` wide enough for the count, body exactly `count·t/8` bytes, tags
//!   sorted) and refuses a filter larger than [`Querier::max_filter_bytes`] before receiving
//!   it. Both sides check every chunk's number and length and every point (invalid encodings
//!   and the identity are refused).
//! * **Cost.** Preprocessing: one hash-to-group, one scalar multiplication, one compression and
//!   one SHA-256 per provider id, on every core, then a sort (16 bytes per id while building).
//!   Online: Q does 2 fixed-base multiplications per id, P one variable-base; 64 bytes per id
//!   cross. Measured with
//!   `ferry bench psi --protocol unbalanced`: see the README.
//!
//! # Not implemented
//!
//! VOLE-based PSI (RR22) and KKRT for three or more parties are not built. Unbalanced PSI
//! is this library, `ferry psi --protocol unbalanced` and `ferry bench psi --protocol
//! unbalanced`; the node's `psi` component does not offer it yet.

mod config;
mod engine;
mod error;
pub mod ids;
mod input;
mod keys;
mod kkrt;
mod ot;
mod protocol;
mod run;
pub mod unbalanced;
mod wire;

pub use config::{
    DEFAULT_CHUNK_SIZE, GroupKind, KeyMode, MAX_CHUNK_SIZE, PsiConfig, PsiProtocol, Receivers,
};
pub use error::PsiError;
pub use ids::{IdList, synthetic_ids, synthetic_overlap_count};
pub use input::{InputFormat, PsiInput};
pub use kkrt::{MAX_KKRT_SET_SIZE, PROTOCOL_KKRT, bin_count, value_bytes};
pub use protocol::{
    IdIntersection, IdStats, PROTOCOL_MULTI_PARTY, PROTOCOL_TWO_PARTY, intersect_ids,
    intersect_ids_in,
};
pub use run::{PsiOutcome, PsiReport, peak_rss_bytes, run_psi, run_psi_in};
pub use unbalanced::{
    Filter, FilterId, OprfKey, PROTOCOL_UNBALANCED, Provider, ProviderStats, Querier, QueryOutcome,
};
pub use wire::{MAX_SET_SIZE, PROTOCOL_VERSION};
