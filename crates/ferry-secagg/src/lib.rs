//! Secure aggregation: a server learns the sum of the clients' vectors and nothing else about
//! any single vector, even when some clients drop out mid-round.
//!
//! The protocol follows Bonawitz et al., *Practical Secure Aggregation for Privacy-Preserving
//! Machine Learning* (CCS 2017), in its semi-honest (honest-but-curious) form. The server is the
//! job's arbiter; the clients are any set of other parties. All messages go between a client and
//! the server (a star), so clients need no connections to each other.
//!
//! # Inputs
//!
//! Each client contributes a vector of `L` elements of the ring `Z_{2^k}` (`k` = [`SecAggConfig::ring_bits`],
//! a multiple of 8 up to 64; elements travel as `k/8` little-endian bytes). Real numbers are
//! encoded with [`FixedPointRing`]: clip to `[-c, c]`, scale by `2^f`, round to nearest, two's
//! complement. A sum of `m` such values decodes exactly while `m·c·2^f < 2^(k-1)`
//! ([`FixedPointRing::max_summands`]); the rounding error is at most `2^-(f+1)` per value.
//!
//! # Message flow (one aggregation)
//!
//! | stage | client `u` → server | server → clients |
//! | --- | --- | --- |
//! | 0 advertise keys | `(c_u^PK, s_u^PK)`: two ephemeral Ristretto255 public keys | directory of U1 (who advertised), threshold `t` |
//! | 1 share keys | for each other `v ∈ U1`: `AEAD_{k_uv}(share_v(s_u^SK), share_v(b_u))` | each `v ∈ U2` gets the ciphertexts addressed to it |
//! | 2 masked input | `y_u = x_u + PRG(b_u) + Σ_{v∈U2, v≠u} ±PRG(s_uv)` | U3 (whose `y` arrived) |
//! | 3 unmasking | for `v ∈ U3`: share of `b_v`; for `v ∈ U2 \ U3`: share of `s_v^SK` | — |
//!
//! * `c_u`, `s_u`: Diffie–Hellman key pairs on Ristretto255 (curve25519-dalek). `k_uv` is derived
//!   from `c_u^SK · c_v^PK` with SHA-512 under a domain-separation label and the ordered pair
//!   of party names, so each direction has its own key and a fixed nonce is never reused; the
//!   cipher is ChaCha20-Poly1305 with the pair of names as associated data, so the server
//!   can neither read nor redirect shares.
//! * `s_uv`: the pairwise secret `s_u^SK · s_v^PK = s_v^SK · s_u^PK`, hashed to a 32-byte seed;
//!   `PRG` is ChaCha20 keyed by that seed. `u` adds the pad towards clients after it in the
//!   directory and subtracts it towards clients before it, so the pads cancel in the sum.
//! * `b_u`: a fresh random self-mask seed per aggregation. It makes `y_u` uniformly random
//!   even to a server that has reconstructed `s_u^SK`, which it does when `u` looks dropped.
//!   Without it, a masked input that arrives *after* the server declared `u` dropped would
//!   reveal `x_u`.
//! * Shamir sharing is over the Ristretto255 scalar field (prime order ≈ 2^252); share
//!   `i` is the evaluation at `x = i + 1` where `i` is the client's position in the directory.
//!
//! The server computes `Σ_{u∈U3} y_u − Σ_{u∈U3} PRG(b_u) ∓ Σ_{u∈U3, v∈U2\U3} PRG(s_uv)`,
//! reconstructing each `b_u` and each dropped client's `s_v^SK` from `t` shares (it checks the
//! reconstructed `s_v^SK` against the advertised `s_v^PK`). The result is exactly
//! `Σ_{u∈U3} x_u mod 2^k`: **the inputs of every client whose masked input arrived**, including
//! clients that drop out afterwards, during unmasking.
//!
//! # Threat model
//!
//! * **Semi-honest** server and clients: everyone follows the protocol but may try to learn
//!   more from what they see. Parties are authenticated by the transport (mutual TLS), so the
//!   server cannot impersonate clients to each other.
//! * **What the server learns**: the sum over U3, the sets U1 ⊇ U2 ⊇ U3 (who dropped when),
//!   and the public keys. Each masked input on its own is uniformly distributed in
//!   `Z_{2^k}^L` (it carries the self mask `PRG(b_u)`), so no single message reveals an input.
//! * **What a client learns**: the other clients' public keys, its own Shamir shares (fewer
//!   than `t` of anyone's secret), and who survived. Nothing about other inputs.
//! * **Collusion**: the server together with up to `t − 1` clients learns nothing beyond the
//!   sum of the honest clients' inputs in U3 (the colluders hold fewer than `t` shares of any
//!   honest secret). With `t` colluding clients the guarantee is lost.
//! * **Not covered**: an actively malicious server can lie about who dropped (asking some clients
//!   for `b_v` shares and others for `s_v` shares of the same `v`); defending against that needs
//!   the signed consistency-check round of the paper's active variant, which this crate does not
//!   implement. Traffic analysis (message sizes, timing) and the sum itself are out of scope: the
//!   sum of two inputs reveals one given the other, which is why at least `t ≥ 2` inputs must be
//!   in any sum, and why differential privacy is applied on top by the learning layer.
//!
//! # Dropout threshold
//!
//! With `n` invited clients, the threshold is `t = ⌊n/2⌋ + 1` unless configured
//! ([`SecAggConfig::threshold`]), and always `2 ≤ t ≤ n`. The aggregation completes while at least
//! `t` clients remain at every stage, so up to `n − t` clients may drop at any point: before or
//! after sending their masked input, or during unmasking. With fewer than `t` left it stops with
//! [`SecAggError::TooFewClients`], naming the stage and the dropped clients. Choose `t` larger
//! than the number of clients that might collude with the server, and at most the number you
//! expect to stay online. For two clients `t = 2`: no dropout is tolerated (and a sum of one
//! would reveal that client's input anyway).
//!
//! A dropout is a failure to deliver: a peer reported failed, an unreachable peer, or a stage
//! message that is not there within [`SecAggConfig::stage_timeout`] (default 60 s) of the
//! stage's start. The server gives each stage one deadline for all clients
//! ([`ferry_context::Context::recv_timeout`] with the time left), so a silent client costs at
//! most one stage timeout per stage, independent of the session's receive timeout and of the
//! number of clients; messages that are already there are taken even after the deadline. A
//! late message is ignored, and a late masked input reveals nothing even though the server
//! reconstructs that client's mask key (the self mask still hides it). A client the server has
//! dropped gets no further message of this aggregation and fails when its own receive reaches
//! the session timeout. Clients wait with the session timeout throughout, since a stage on the
//! server can legitimately take up to the stage timeout. Malformed messages are errors, not
//! dropouts.
//!
//! # Cost
//!
//! Per client: 2 key generations and `2(n−1)` Diffie–Hellman operations, `n − 1` AEAD
//! encryptions and decryptions, and `n` PRG expansions of `L` elements. Per server: the same
//! PRG work per survivor and `n` per dropped client, plus Lagrange interpolation. Traffic per
//! client: `64 + 80(n−1)` bytes of keys and shares twice (to the server and forwarded), `L·k/8`
//! bytes of masked input, and `64n` bytes of unmasking shares.

mod error;
mod keys;
mod protocol;
mod ring;
mod shamir;

pub use error::SecAggError;
pub use protocol::{
    AdvertiseKeys, Advertised, Aggregate, ClientSummary, DEFAULT_STAGE_TIMEOUT, DirectoryEntry,
    EncryptedShares, ForwardedShares, InputSent, KeyDirectory, KeysShared, MaskedInput,
    PROTOCOL_VERSION, SecAggConfig, SurvivorList, UnmaskShares, advertise, aggregate, run_client,
};
pub use ring::{FixedPointRing, Ring};
