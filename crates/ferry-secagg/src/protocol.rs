//! The four-round protocol: advertise keys → share keys → masked input → unmasking.
//!
//! Clients run the stages in order through a typed state machine ([`advertise`] →
//! [`Advertised::share_keys`] → [`KeysShared::send_masked_input`] → [`InputSent::unmask`]);
//! [`run_client`] chains them. The server runs [`aggregate`]. Every message goes between a
//! client and the server; client-to-client key shares travel through the server encrypted.

use crate::error::SecAggError;
use crate::keys::{self, KeyPair, SharePair};
use crate::ring::Ring;
use crate::shamir;
use curve25519_dalek::scalar::Scalar;
use ferry_context::{Context, FederationError, PartyId};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Version of the message formats below; both sides check it.
pub const PROTOCOL_VERSION: u32 = 1;

const TAG_ADVERTISE: &str = "secagg/advertise-keys";
const TAG_DIRECTORY: &str = "secagg/key-directory";
const TAG_SHARES: &str = "secagg/encrypted-shares";
const TAG_FORWARDED: &str = "secagg/forwarded-shares";
const TAG_MASKED: &str = "secagg/masked-input";
const TAG_SURVIVORS: &str = "secagg/survivors";
const TAG_UNMASK: &str = "secagg/unmask-shares";

/// Length of one encrypted share message: two 32-byte scalars and a 16-byte tag.
const SHARE_CIPHERTEXT_BYTES: usize = 80;

/// The server's default [`SecAggConfig::stage_timeout`].
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Parameters of an aggregation. `ring_bits` and `threshold` must be the same on the server
/// and every client (clients check them against the key directory); `stage_timeout` is used by
/// the server only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecAggConfig {
    /// Size of the ring `Z_{2^k}` the inputs are summed in (multiple of 8, at most 64).
    pub ring_bits: u32,
    /// Shamir threshold `t`: the least number of clients that must survive each stage, and
    /// one more than the number of clients that may collude with the server. `None`: a strict
    /// majority of the invited clients, `⌊n/2⌋ + 1`.
    pub threshold: Option<usize>,
    /// How long the server waits for one stage's messages from all clients, counted from the
    /// start of the stage (for advertise-keys: the call to [`aggregate`]). A client whose
    /// message is not there by then is dropped for the rest of the aggregation, however long
    /// the session timeout is. It bounds a stage by this time rather than by the session
    /// timeout per client. Must exceed the clients' work in a stage (key agreement, and for
    /// the masked input `n` mask expansions of `L` elements) plus network latency; a message
    /// that arrives later is ignored. Default [`DEFAULT_STAGE_TIMEOUT`] (60 s).
    pub stage_timeout: Duration,
}

impl Default for SecAggConfig {
    fn default() -> Self {
        SecAggConfig {
            ring_bits: 64,
            threshold: None,
            stage_timeout: DEFAULT_STAGE_TIMEOUT,
        }
    }
}

impl SecAggConfig {
    pub fn ring(&self) -> Result<Ring, SecAggError> {
        Ring::new(self.ring_bits)
    }

    /// The threshold used when `invited` clients are asked to take part.
    pub fn threshold_for(&self, invited: usize) -> Result<usize, SecAggError> {
        if invited < 2 {
            return Err(SecAggError::Config(format!(
                "secure aggregation needs at least 2 clients (got {invited}): the sum of one client's input is that input"
            )));
        }
        let t = self.threshold.unwrap_or(invited / 2 + 1);
        if t < 2 || t > invited {
            return Err(SecAggError::Config(format!(
                "threshold {t} must be between 2 and the number of clients ({invited})"
            )));
        }
        Ok(t)
    }
}

/// Client → server: the client's two ephemeral public keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdvertiseKeys {
    pub version: u32,
    pub vector_len: u64,
    /// Key for encrypting key shares between clients.
    pub cipher_public: [u8; 32],
    /// Key for pairwise masks.
    pub mask_public: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    pub party: PartyId,
    pub cipher_public: [u8; 32],
    pub mask_public: [u8; 32],
}

/// Server → clients: every client that advertised keys (U1), in a fixed order that also
/// fixes the Shamir evaluation points (`x = position + 1`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyDirectory {
    pub version: u32,
    pub invited: u64,
    pub threshold: u64,
    pub vector_len: u64,
    pub ring_bits: u32,
    pub entries: Vec<DirectoryEntry>,
}

/// Client → server: one encrypted share message per other client, keyed by recipient.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EncryptedShares {
    pub shares: Vec<(PartyId, Vec<u8>)>,
}

/// Server → client: the encrypted share messages addressed to it, keyed by sender (U2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForwardedShares {
    pub shares: Vec<(PartyId, Vec<u8>)>,
}

/// Client → server: the masked input, packed ring elements.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MaskedInput {
    pub data: ferry_context::Blob,
}

/// Server → clients: the clients whose masked input arrived (U3).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SurvivorList {
    pub parties: Vec<PartyId>,
}

/// Client → server: shares of the survivors' self-mask seeds and of the dropped clients'
/// mask keys — never both for the same client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnmaskShares {
    pub self_mask_shares: Vec<(PartyId, [u8; 32])>,
    pub mask_key_shares: Vec<(PartyId, [u8; 32])>,
}

/// What the server obtains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aggregate {
    /// `Σ x_u mod 2^k` over [`Aggregate::included`].
    pub sum: Vec<u64>,
    /// Clients whose inputs are in the sum (their masked input arrived: U3), in invitation order.
    pub included: Vec<PartyId>,
    /// Invited clients whose input is not in the sum (dropped before sending it).
    pub dropped: Vec<PartyId>,
    /// Clients that answered the unmasking round (at least `threshold`).
    pub unmasked_by: Vec<PartyId>,
    pub threshold: usize,
}

/// What a client learns: who is in the sum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSummary {
    pub included: Vec<PartyId>,
    pub threshold: usize,
}

/// A failure of a peer to deliver: the peer dropped out.
fn is_dropout(e: &FederationError) -> bool {
    matches!(
        e,
        FederationError::Timeout { .. }
            | FederationError::PeerFailed { .. }
            | FederationError::Unreachable { .. }
    )
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// Stage 0 (AdvertiseKeys): generates two ephemeral key pairs and sends the public halves.
pub fn advertise<R: CryptoRng + ?Sized>(
    ctx: &Context,
    server: &PartyId,
    vector_len: usize,
    config: &SecAggConfig,
    rng: &mut R,
) -> Result<Advertised, SecAggError> {
    let ring = config.ring()?;
    let cipher = KeyPair::generate(rng);
    let mask = KeyPair::generate(rng);
    ctx.send(
        server,
        TAG_ADVERTISE,
        &AdvertiseKeys {
            version: PROTOCOL_VERSION,
            vector_len: vector_len as u64,
            cipher_public: cipher.public,
            mask_public: mask.public,
        },
    )?;
    Ok(Advertised {
        server: server.clone(),
        config: *config,
        ring,
        vector_len,
        cipher,
        mask,
    })
}

/// A client that advertised its keys.
pub struct Advertised {
    server: PartyId,
    config: SecAggConfig,
    ring: Ring,
    vector_len: usize,
    cipher: KeyPair,
    mask: KeyPair,
}

impl Advertised {
    /// Stage 1 (ShareKeys): receives the key directory, Shamir-shares the mask key and a fresh
    /// self-mask seed, and sends each other client its shares encrypted under the pairwise key.
    pub fn share_keys<R: CryptoRng + ?Sized>(
        self,
        ctx: &Context,
        rng: &mut R,
    ) -> Result<KeysShared, SecAggError> {
        const STAGE: &str = "key-directory";
        let dir: KeyDirectory = ctx.recv(&self.server, TAG_DIRECTORY)?;
        let bad = |reason: String| SecAggError::bad(&self.server, STAGE, reason);
        if dir.version != PROTOCOL_VERSION {
            return Err(bad(format!(
                "protocol version {} (this client speaks {PROTOCOL_VERSION})",
                dir.version
            )));
        }
        if dir.vector_len != self.vector_len as u64 || dir.ring_bits != self.config.ring_bits {
            return Err(bad(format!(
                "aggregates {} elements of {} bits; this client has {} elements of {} bits",
                dir.vector_len, dir.ring_bits, self.vector_len, self.config.ring_bits
            )));
        }
        let invited = usize::try_from(dir.invited).map_err(|_| bad("invited count".into()))?;
        let threshold = self.config.threshold_for(invited)?;
        if dir.threshold != threshold as u64 {
            return Err(bad(format!(
                "threshold {} for {invited} clients, but this client's configuration gives {threshold}",
                dir.threshold
            )));
        }
        if dir.entries.len() > invited {
            return Err(bad("more key entries than invited clients".into()));
        }
        if dir.entries.len() < threshold {
            return Err(SecAggError::TooFewClients {
                stage: "advertise-keys",
                threshold,
                got: dir.entries.len(),
                dropped: format!("{} of {invited}", invited - dir.entries.len()),
            });
        }
        let mut seen = HashSet::new();
        for e in &dir.entries {
            if !seen.insert(&e.party)
                || e.party == self.server
                || ctx.roster().role_of(&e.party).is_none()
            {
                return Err(bad(format!(
                    "party '{}' is listed twice or is not a client",
                    e.party
                )));
            }
            if !keys::valid_public_key(&e.cipher_public) || !keys::valid_public_key(&e.mask_public)
            {
                return Err(bad(format!(
                    "the keys of '{}' are not valid group elements",
                    e.party
                )));
            }
        }
        let me = ctx.me();
        let my_index = dir
            .entries
            .iter()
            .position(|e| &e.party == me)
            .ok_or_else(|| bad("this client is missing from the key directory".into()))?;
        let mine = &dir.entries[my_index];
        if mine.cipher_public != self.cipher.public || mine.mask_public != self.mask.public {
            return Err(bad("the directory lists other keys for this client".into()));
        }

        let n = dir.entries.len();
        let self_mask = keys::random_nonzero_scalar(rng);
        let mask_key_shares = shamir::share(&self.mask.secret, threshold, n, rng);
        let self_mask_shares = shamir::share(&self_mask, threshold, n, rng);
        let mut shares = Vec::with_capacity(n - 1);
        for (j, entry) in dir.entries.iter().enumerate() {
            if j == my_index {
                continue;
            }
            let shared = keys::agree(&self.cipher.secret, &entry.cipher_public)
                .ok_or_else(|| bad(format!("invalid key for '{}'", entry.party)))?;
            let pair = SharePair {
                mask_key_share: mask_key_shares[j],
                self_mask_share: self_mask_shares[j],
            };
            shares.push((
                entry.party.clone(),
                keys::seal_shares(me, &entry.party, &shared, &pair),
            ));
        }
        ctx.send(&self.server, TAG_SHARES, &EncryptedShares { shares })?;
        Ok(KeysShared {
            server: self.server,
            ring: self.ring,
            vector_len: self.vector_len,
            threshold,
            cipher: self.cipher,
            mask: self.mask,
            directory: dir.entries,
            my_index,
            self_mask,
            own_shares: SharePair {
                mask_key_share: mask_key_shares[my_index],
                self_mask_share: self_mask_shares[my_index],
            },
        })
    }
}

/// A client that distributed its key shares.
pub struct KeysShared {
    server: PartyId,
    ring: Ring,
    vector_len: usize,
    threshold: usize,
    cipher: KeyPair,
    mask: KeyPair,
    directory: Vec<DirectoryEntry>,
    my_index: usize,
    self_mask: Scalar,
    own_shares: SharePair,
}

impl KeysShared {
    /// The masked vector `y = x + PRG(b_u) + Σ_v ±PRG(s_uv) mod 2^k` for the clients `others`
    /// (directory positions): `+` towards clients later in the directory, `−` towards earlier.
    fn masked(&self, input: &[u64], others: &[usize]) -> Result<Vec<u64>, SecAggError> {
        let ring = &self.ring;
        let mut y = input.to_vec();
        let self_mask = keys::expand_mask(&keys::self_mask_seed(&self.self_mask), ring, y.len());
        ring.accumulate(&mut y, &self_mask, false);
        let me = &self.directory[self.my_index].party;
        for &j in others {
            let peer = &self.directory[j];
            let shared = keys::agree(&self.mask.secret, &peer.mask_public).ok_or_else(|| {
                SecAggError::bad(
                    &self.server,
                    "key-directory",
                    format!("invalid key for '{}'", peer.party),
                )
            })?;
            let pad = keys::expand_mask(
                &keys::pairwise_seed(me, &peer.party, &shared),
                ring,
                y.len(),
            );
            ring.accumulate(&mut y, &pad, j < self.my_index);
        }
        Ok(y)
    }

    /// Stage 2 (MaskedInputCollection): receives the shares addressed to this client (whose
    /// senders form U2) and sends the input masked with its self mask and a pairwise mask for
    /// every other member of U2.
    pub fn send_masked_input(self, ctx: &Context, input: &[u64]) -> Result<InputSent, SecAggError> {
        const STAGE: &str = "forwarded-shares";
        if input.len() != self.vector_len {
            return Err(SecAggError::InputLength {
                expected: self.vector_len,
                got: input.len(),
            });
        }
        self.ring.check(input)?;
        let forwarded: ForwardedShares = ctx.recv(&self.server, TAG_FORWARDED)?;
        let me = ctx.me().clone();
        let mut received: BTreeMap<usize, SharePair> = BTreeMap::new();
        for (sender, ciphertext) in &forwarded.shares {
            let j = self
                .directory
                .iter()
                .position(|e| &e.party == sender)
                .filter(|&j| j != self.my_index)
                .ok_or_else(|| {
                    SecAggError::bad(
                        &self.server,
                        STAGE,
                        format!("shares from unknown party '{sender}'"),
                    )
                })?;
            if received.contains_key(&j) {
                return Err(SecAggError::bad(
                    &self.server,
                    STAGE,
                    format!("two share messages from '{sender}'"),
                ));
            }
            let shared = keys::agree(&self.cipher.secret, &self.directory[j].cipher_public)
                .ok_or_else(|| SecAggError::bad(sender, STAGE, "invalid key"))?;
            let pair = keys::open_shares(sender, &me, &shared, ciphertext).ok_or_else(|| {
                SecAggError::bad(sender, STAGE, "its key shares fail authentication")
            })?;
            received.insert(j, pair);
        }
        if received.len() + 1 < self.threshold {
            return Err(SecAggError::TooFewClients {
                stage: "share-keys",
                threshold: self.threshold,
                got: received.len() + 1,
                dropped: format!(
                    "{} of {}",
                    self.directory.len() - received.len() - 1,
                    self.directory.len()
                ),
            });
        }
        let others: Vec<usize> = received.keys().copied().collect();
        let y = self.masked(input, &others)?;
        ctx.send(
            &self.server,
            TAG_MASKED,
            &MaskedInput {
                data: self.ring.pack(&y).into(),
            },
        )?;
        Ok(InputSent {
            keys: self,
            received,
        })
    }
}

/// A client that sent its masked input.
pub struct InputSent {
    keys: KeysShared,
    /// Decrypted shares from each other member of U2, by directory position.
    received: BTreeMap<usize, SharePair>,
}

impl InputSent {
    /// Stage 3 (Unmasking): receives U3 and reveals, for every member of U2, exactly one
    /// share: of its self-mask seed if it survived, of its mask key if it dropped.
    pub fn unmask(self, ctx: &Context) -> Result<ClientSummary, SecAggError> {
        const STAGE: &str = "survivors";
        let k = &self.keys;
        let survivors: SurvivorList = ctx.recv(&k.server, TAG_SURVIVORS)?;
        let mut u3: BTreeSet<usize> = BTreeSet::new();
        for p in &survivors.parties {
            let j = k
                .directory
                .iter()
                .position(|e| &e.party == p)
                .filter(|j| *j == k.my_index || self.received.contains_key(j))
                .ok_or_else(|| {
                    SecAggError::bad(
                        &k.server,
                        STAGE,
                        format!("'{p}' did not share keys with this client"),
                    )
                })?;
            if !u3.insert(j) {
                return Err(SecAggError::bad(
                    &k.server,
                    STAGE,
                    format!("'{p}' listed twice"),
                ));
            }
        }
        if !u3.contains(&k.my_index) {
            return Err(SecAggError::bad(
                &k.server,
                STAGE,
                "this client's input is missing from the survivors",
            ));
        }
        if u3.len() < k.threshold {
            return Err(SecAggError::TooFewClients {
                stage: "masked-input",
                threshold: k.threshold,
                got: u3.len(),
                dropped: format!(
                    "{} of {}",
                    self.received.len() + 1 - u3.len(),
                    self.received.len() + 1
                ),
            });
        }
        let name = |j: usize| k.directory[j].party.clone();
        let mut self_mask_shares =
            vec![(name(k.my_index), k.own_shares.self_mask_share.to_bytes())];
        let mut mask_key_shares = Vec::new();
        for (&j, pair) in &self.received {
            if u3.contains(&j) {
                self_mask_shares.push((name(j), pair.self_mask_share.to_bytes()));
            } else {
                mask_key_shares.push((name(j), pair.mask_key_share.to_bytes()));
            }
        }
        ctx.send(
            &k.server,
            TAG_UNMASK,
            &UnmaskShares {
                self_mask_shares,
                mask_key_shares,
            },
        )?;
        Ok(ClientSummary {
            included: u3.into_iter().map(name).collect(),
            threshold: k.threshold,
        })
    }
}

/// Runs all client stages: contributes `input` (ring elements) to the server's sum.
pub fn run_client<R: CryptoRng + ?Sized>(
    ctx: &Context,
    server: &PartyId,
    input: &[u64],
    config: &SecAggConfig,
    rng: &mut R,
) -> Result<ClientSummary, SecAggError> {
    // Refuse a bad input before taking part, so the others are not held up by it.
    config.ring()?.check(input)?;
    advertise(ctx, server, input.len(), config, rng)?
        .share_keys(ctx, rng)?
        .send_masked_input(ctx, input)?
        .unmask(ctx)
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// Messages received, by sender, and the peers that dropped instead.
type Collected<T> = (Vec<(PartyId, T)>, Vec<PartyId>);

/// Receives one stage's `tag` message from each of `from` within `stage_timeout` of the call;
/// peers that fail to deliver by then are reported as dropped.
fn collect<T: serde::de::DeserializeOwned>(
    ctx: &Context,
    from: &[PartyId],
    tag: &str,
    stage_timeout: Duration,
) -> Result<Collected<T>, SecAggError> {
    // One deadline for the whole stage, so n late clients cost stage_timeout, not n times it;
    // messages that are already there are still taken after the deadline (zero wait).
    let deadline = Instant::now() + stage_timeout;
    let mut got = Vec::with_capacity(from.len());
    let mut dropped = Vec::new();
    for p in from {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match ctx.recv_timeout::<T>(p, tag, remaining) {
            Ok(v) => got.push((p.clone(), v)),
            Err(FederationError::Timeout { .. }) => {
                ctx.log(&format!(
                    "secure aggregation: client '{p}' dropped out (no '{tag}' within the stage timeout of {stage_timeout:?})"
                ));
                dropped.push(p.clone());
            }
            Err(e) if is_dropout(&e) => {
                ctx.log(&format!(
                    "secure aggregation: client '{p}' dropped out ({e})"
                ));
                dropped.push(p.clone());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((got, dropped))
}

/// Sends to each of `to`; a peer that cannot be reached is dropped.
fn send_each<T: Serialize>(
    ctx: &Context,
    to: &[(PartyId, T)],
    tag: &str,
    dropped: &mut Vec<PartyId>,
) -> Result<(), SecAggError> {
    for (p, value) in to {
        match ctx.send(p, tag, value) {
            Ok(()) => {}
            Err(e) if is_dropout(&e) => dropped.push(p.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn names(parties: &[PartyId]) -> String {
    if parties.is_empty() {
        "none".into()
    } else {
        parties
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn require(
    stage: &'static str,
    threshold: usize,
    got: usize,
    dropped: &[PartyId],
) -> Result<(), SecAggError> {
    if got < threshold {
        return Err(SecAggError::TooFewClients {
            stage,
            threshold,
            got,
            dropped: names(dropped),
        });
    }
    Ok(())
}

/// Runs the server side of one aggregation over `clients` (distinct parties other than the
/// server) summing vectors of `vector_len` ring elements.
///
/// Clients that fail to deliver a stage's message within [`SecAggConfig::stage_timeout`] of
/// the stage's start, or that fail or become unreachable, are treated as dropped; the
/// aggregation succeeds while at least `threshold` clients remain at each stage.
pub fn aggregate(
    ctx: &Context,
    clients: &[PartyId],
    vector_len: usize,
    config: &SecAggConfig,
) -> Result<Aggregate, SecAggError> {
    let ring = config.ring()?;
    let threshold = config.threshold_for(clients.len())?;
    let stage_timeout = config.stage_timeout;
    if stage_timeout.is_zero() {
        return Err(SecAggError::Config(
            "the stage timeout is zero: the server would drop every client whose message is not already there; give the clients time to answer (default 60 s)".into(),
        ));
    }
    let mut distinct = HashSet::new();
    for c in clients {
        if c == ctx.me() || !distinct.insert(c) || ctx.roster().role_of(c).is_none() {
            return Err(SecAggError::Config(format!(
                "client '{c}' is the server, listed twice, or not part of the job"
            )));
        }
    }
    let mut dropped: Vec<PartyId> = Vec::new();

    // Stage 0: public keys.
    let (adverts, d) = collect::<AdvertiseKeys>(ctx, clients, TAG_ADVERTISE, stage_timeout)?;
    dropped.extend(d);
    let mut entries = Vec::with_capacity(adverts.len());
    let mut seen_keys = HashSet::new();
    for (p, a) in adverts {
        let stage = "advertise-keys";
        if a.version != PROTOCOL_VERSION {
            return Err(SecAggError::bad(
                &p,
                stage,
                format!("protocol version {}", a.version),
            ));
        }
        if a.vector_len != vector_len as u64 {
            return Err(SecAggError::bad(
                &p,
                stage,
                format!("input of {} elements, expected {vector_len}", a.vector_len),
            ));
        }
        if !keys::valid_public_key(&a.cipher_public) || !keys::valid_public_key(&a.mask_public) {
            return Err(SecAggError::bad(
                &p,
                stage,
                "public keys are not valid group elements",
            ));
        }
        if !seen_keys.insert(a.cipher_public) || !seen_keys.insert(a.mask_public) {
            return Err(SecAggError::bad(
                &p,
                stage,
                "reuses a public key of another client",
            ));
        }
        entries.push(DirectoryEntry {
            party: p,
            cipher_public: a.cipher_public,
            mask_public: a.mask_public,
        });
    }
    require("advertise-keys", threshold, entries.len(), &dropped)?;
    let u1: Vec<PartyId> = entries.iter().map(|e| e.party.clone()).collect();
    let index: HashMap<PartyId, usize> = u1
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, p)| (p, i))
        .collect();
    let directory = KeyDirectory {
        version: PROTOCOL_VERSION,
        invited: clients.len() as u64,
        threshold: threshold as u64,
        vector_len: vector_len as u64,
        ring_bits: ring.bits(),
        entries: entries.clone(),
    };
    let to: Vec<(PartyId, &KeyDirectory)> = u1.iter().map(|p| (p.clone(), &directory)).collect();
    send_each(ctx, &to, TAG_DIRECTORY, &mut dropped)?;
    // A client the directory could not reach sends no shares: it drops out of U2.
    let u1: Vec<PartyId> = u1.into_iter().filter(|p| !dropped.contains(p)).collect();

    // Stage 1: encrypted shares, checked and routed.
    let (share_msgs, d) = collect::<EncryptedShares>(ctx, &u1, TAG_SHARES, stage_timeout)?;
    dropped.extend(d);
    require("share-keys", threshold, share_msgs.len(), &dropped)?;
    let mut mailbox: BTreeMap<PartyId, Vec<(PartyId, Vec<u8>)>> = BTreeMap::new();
    let u2: Vec<PartyId> = share_msgs.iter().map(|(p, _)| p.clone()).collect();
    for (sender, msg) in share_msgs {
        let stage = "share-keys";
        let mut recipients = HashSet::new();
        for (recipient, ct) in &msg.shares {
            if recipient == &sender
                || !index.contains_key(recipient)
                || !recipients.insert(recipient.clone())
            {
                return Err(SecAggError::bad(
                    &sender,
                    stage,
                    format!("unexpected recipient '{recipient}'"),
                ));
            }
            if ct.len() != SHARE_CIPHERTEXT_BYTES {
                return Err(SecAggError::bad(
                    &sender,
                    stage,
                    format!("a share message of {} bytes", ct.len()),
                ));
            }
        }
        if recipients.len() + 1 != entries.len() {
            return Err(SecAggError::bad(
                &sender,
                stage,
                format!(
                    "shares for {} clients, expected {}",
                    recipients.len(),
                    entries.len() - 1
                ),
            ));
        }
        for (recipient, ct) in msg.shares {
            if u2.contains(&recipient) {
                mailbox
                    .entry(recipient)
                    .or_default()
                    .push((sender.clone(), ct));
            }
        }
    }
    let forwards: Vec<(PartyId, ForwardedShares)> = u2
        .iter()
        .map(|p| {
            let shares = mailbox.remove(p).unwrap_or_default();
            (p.clone(), ForwardedShares { shares })
        })
        .collect();
    // A client the forwarded shares could not reach stays in U2 (the others mask towards it)
    // but sends no masked input, so it ends up among the dropped clients below.
    let mut unreachable = Vec::new();
    send_each(ctx, &forwards, TAG_FORWARDED, &mut unreachable)?;
    let expected: Vec<PartyId> = u2
        .iter()
        .filter(|p| !unreachable.contains(p))
        .cloned()
        .collect();
    dropped.extend(unreachable);

    // Stage 2: masked inputs.
    let (masked, d) = collect::<MaskedInput>(ctx, &expected, TAG_MASKED, stage_timeout)?;
    dropped.extend(d);
    require("masked-input", threshold, masked.len(), &dropped)?;
    let mut sum = vec![0u64; vector_len];
    let mut u3 = Vec::with_capacity(masked.len());
    for (p, m) in masked {
        let y = ring.unpack(&m.data, vector_len).ok_or_else(|| {
            SecAggError::bad(
                &p,
                "masked-input",
                format!("{} bytes is not {vector_len} ring elements", m.data.len()),
            )
        })?;
        ring.accumulate(&mut sum, &y, false);
        u3.push(p);
    }
    // Clients that completed share-keys but whose masked input never came: their pairwise
    // masks are in the survivors' inputs and must be removed with their reconstructed keys.
    let u2_dropped: Vec<PartyId> = u2.iter().filter(|p| !u3.contains(p)).cloned().collect();
    let survivors = SurvivorList {
        parties: u3.clone(),
    };
    let to: Vec<(PartyId, &SurvivorList)> = u3.iter().map(|p| (p.clone(), &survivors)).collect();
    let mut late = Vec::new();
    send_each(ctx, &to, TAG_SURVIVORS, &mut late)?;

    // Stage 3: shares for unmasking.
    let asked: Vec<PartyId> = u3.iter().filter(|p| !late.contains(p)).cloned().collect();
    let (responses, d) = collect::<UnmaskShares>(ctx, &asked, TAG_UNMASK, stage_timeout)?;
    late.extend(d);
    require("unmasking", threshold, responses.len(), &late)?;
    let u3_set: BTreeSet<&PartyId> = u3.iter().collect();
    let dropped_set: BTreeSet<&PartyId> = u2_dropped.iter().collect();
    // Per secret owner: (x, share) points from the responders.
    let mut self_mask_points: HashMap<PartyId, Vec<(u64, Scalar)>> = HashMap::new();
    let mut mask_key_points: HashMap<PartyId, Vec<(u64, Scalar)>> = HashMap::new();
    let mut unmasked_by = Vec::with_capacity(responses.len());
    for (responder, r) in responses {
        let stage = "unmasking";
        let x = index[&responder] as u64 + 1;
        let owners: BTreeSet<&PartyId> = r.self_mask_shares.iter().map(|(p, _)| p).collect();
        if owners != u3_set || owners.len() != r.self_mask_shares.len() {
            return Err(SecAggError::bad(
                &responder,
                stage,
                "self-mask shares do not match the survivors",
            ));
        }
        let owners: BTreeSet<&PartyId> = r.mask_key_shares.iter().map(|(p, _)| p).collect();
        if owners != dropped_set || owners.len() != r.mask_key_shares.len() {
            return Err(SecAggError::bad(
                &responder,
                stage,
                "mask-key shares do not match the dropped clients",
            ));
        }
        for (owner, bytes) in r.self_mask_shares {
            let s = keys::scalar_from_slice(&bytes).ok_or_else(|| {
                SecAggError::bad(&responder, stage, "a share is not a canonical scalar")
            })?;
            self_mask_points.entry(owner).or_default().push((x, s));
        }
        for (owner, bytes) in r.mask_key_shares {
            let s = keys::scalar_from_slice(&bytes).ok_or_else(|| {
                SecAggError::bad(&responder, stage, "a share is not a canonical scalar")
            })?;
            mask_key_points.entry(owner).or_default().push((x, s));
        }
        unmasked_by.push(responder);
    }

    let reconstruct = |points: Option<&Vec<(u64, Scalar)>>, what: &str, owner: &PartyId| {
        points
            .filter(|p| p.len() >= threshold)
            .and_then(|p| shamir::reconstruct(&p[..threshold]))
            .ok_or_else(|| {
                SecAggError::bad(owner, "unmasking", format!("cannot reconstruct its {what}"))
            })
    };
    for u in &u3 {
        let b = reconstruct(self_mask_points.get(u), "self-mask seed", u)?;
        let pad = keys::expand_mask(&keys::self_mask_seed(&b), &ring, vector_len);
        ring.accumulate(&mut sum, &pad, true);
    }
    for v in &u2_dropped {
        let s_v = reconstruct(mask_key_points.get(v), "mask key", v)?;
        let v_entry = &entries[index[v]];
        if keys::public_key(&s_v) != v_entry.mask_public {
            return Err(SecAggError::bad(
                v,
                "unmasking",
                "the reconstructed mask key does not match its public key (inconsistent shares)",
            ));
        }
        for u in &u3 {
            let u_entry = &entries[index[u]];
            let shared = keys::agree(&s_v, &u_entry.mask_public)
                .ok_or_else(|| SecAggError::bad(u, "unmasking", "invalid mask key"))?;
            let pad = keys::expand_mask(&keys::pairwise_seed(u, v, &shared), &ring, vector_len);
            // u added the pad if it precedes v in the directory, subtracted it otherwise.
            ring.accumulate(&mut sum, &pad, index[u] < index[v]);
        }
    }

    let order = |list: &mut Vec<PartyId>| {
        list.sort_by_key(|p| clients.iter().position(|c| c == p));
    };
    let mut included = u3;
    order(&mut included);
    let mut dropped: Vec<PartyId> = clients
        .iter()
        .filter(|c| !included.contains(c))
        .cloned()
        .collect();
    order(&mut dropped);
    Ok(Aggregate {
        sum,
        included,
        dropped,
        unmasked_by,
        threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// A client state of a three-client directory, as after the share-keys stage.
    fn client_state(rng: &mut ChaCha20Rng) -> (KeysShared, Vec<KeyPair>) {
        let ring = Ring::new(64).unwrap();
        let pairs: Vec<(KeyPair, KeyPair)> = (0..3)
            .map(|_| (KeyPair::generate(rng), KeyPair::generate(rng)))
            .collect();
        let directory = pairs
            .iter()
            .enumerate()
            .map(|(i, (c, m))| DirectoryEntry {
                party: PartyId::new(format!("c{i}")).unwrap(),
                cipher_public: c.public,
                mask_public: m.public,
            })
            .collect();
        let mut pairs = pairs.into_iter();
        let (cipher, mask) = pairs.next().unwrap();
        let others: Vec<KeyPair> = pairs.map(|(_, m)| m).collect();
        let state = KeysShared {
            server: PartyId::new("server").unwrap(),
            ring,
            vector_len: 2000,
            threshold: 2,
            cipher,
            mask,
            directory,
            my_index: 0,
            self_mask: keys::random_nonzero_scalar(rng),
            own_shares: SharePair {
                mask_key_share: Scalar::ONE,
                self_mask_share: Scalar::ONE,
            },
        };
        (state, others)
    }

    /// The reason for self masks: when the server has reconstructed a client's mask key (it
    /// looked dropped) and the client's masked input then arrives late, removing every
    /// pairwise pad still leaves `x + PRG(b_u)`, which is uniformly random.
    #[test]
    fn late_masked_input_stays_hidden_after_the_mask_key_is_revealed() {
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        let (state, _) = client_state(&mut rng);
        let x = vec![0u64; 2000];
        let y = state.masked(&x, &[1, 2]).unwrap();
        // The server's view with the client's reconstructed mask key s_u^SK.
        let ring = state.ring;
        let mut without_pairwise = y.clone();
        for j in [1usize, 2] {
            let peer = &state.directory[j];
            let shared = keys::agree(&state.mask.secret, &peer.mask_public).unwrap();
            let pad = keys::expand_mask(
                &keys::pairwise_seed(&state.directory[0].party, &peer.party, &shared),
                &ring,
                2000,
            );
            // Client 0 added the pads towards the later clients 1 and 2.
            ring.accumulate(&mut without_pairwise, &pad, true);
        }
        // Every pairwise pad is gone: what is left is exactly the self mask...
        let self_pad = keys::expand_mask(&keys::self_mask_seed(&state.self_mask), &ring, 2000);
        assert!(without_pairwise == self_pad);
        // ...which hides the all-zero input completely: no element is zero, and half the top
        // bits are set.
        assert!(without_pairwise.iter().all(|v| *v != 0));
        let top = without_pairwise.iter().filter(|v| **v >> 63 == 1).count();
        assert!((900..1100).contains(&top), "{top}");
    }

    /// Pads towards later clients are added and towards earlier ones subtracted, so for two
    /// clients masking towards each other the pads cancel.
    #[test]
    fn pairwise_pads_cancel_between_two_clients() {
        let mut rng = ChaCha20Rng::seed_from_u64(22);
        let (mut first, others) = client_state(&mut rng);
        let x = vec![5u64; 2000];
        let y0 = first.masked(&x, &[1]).unwrap();
        // The same directory seen by client 1 (its mask key is `others[0]`).
        first.my_index = 1;
        first.mask = KeyPair {
            secret: others[0].secret,
            public: others[0].public,
        };
        let b0 = first.self_mask;
        first.self_mask = keys::random_nonzero_scalar(&mut rng);
        let y1 = first.masked(&x, &[0]).unwrap();
        let ring = first.ring;
        let mut sum: Vec<u64> = y0.iter().zip(&y1).map(|(a, b)| ring.add(*a, *b)).collect();
        for b in [b0, first.self_mask] {
            let pad = keys::expand_mask(&keys::self_mask_seed(&b), &ring, 2000);
            ring.accumulate(&mut sum, &pad, true);
        }
        assert!(sum.iter().all(|v| *v == 10));
    }
}
