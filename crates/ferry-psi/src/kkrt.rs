//! Two-party PSI from the KKRT16 batched OPRF (`kkrt-psi-2p`): cuckoo hashing, one OPRF per
//! bin, and a comparison of OPRF outputs. See the crate docs for the message flow, the
//! parameters and what is revealed.

use crate::config::Resolved;
use crate::ids::IdList;
use crate::keys::shuffle_rng;
use crate::ot::base::{self, OtSender, POINT_BYTES};
use crate::ot::kkrt::{CODE_BITS, Code, OprfReceiver, OprfSender, Row, columns_bytes};
use crate::ot::prg::Aes;
use crate::protocol::IdStats;
use crate::wire::{Bytes, Hello, PROTOCOL_VERSION, TAG_HELLO};
use crate::{PsiConfig, PsiError};
use ferry_context::{Context, PartyId};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

pub const PROTOCOL_KKRT: &str = "kkrt-psi-2p";

/// The group of the base OTs, named in the hello.
const BASE_OT_GROUP: &str = "ristretto255";

/// Largest set either party may bring to KKRT: bin numbers and (item, hash function) pairs
/// fit in `u32`, and a peer's announced size is checked against it before anything is
/// allocated for it.
pub const MAX_KKRT_SET_SIZE: u64 = 1 << 28;

/// Statistical security parameter σ (bits): the probability of a false match in the whole
/// run, and of a cuckoo-hashing failure, stays below 2^-σ.
pub const STATISTICAL_BITS: u32 = 40;

/// Number of cuckoo hash functions.
pub const CUCKOO_HASHES: usize = 3;

/// Bins per receiver item for large sets (see [`bin_count`]).
pub const CUCKOO_EXPANSION: f64 = 1.27;

/// Below this many receiver items the table is made much sparser (see [`bin_count`]).
const SMALL_SET: u64 = 4096;

/// Evictions tried for one insertion before the table is declared failed.
const MAX_EVICTIONS: usize = 2000;

/// Fresh hash keys tried before giving up (each attempt fails with probability < 2^-40).
const CUCKOO_ATTEMPTS: usize = 3;

/// Rows of the OT matrix per message (a multiple of 128): 1 MiB of `U` per message.
const ROWS_PER_CHUNK: usize = 1 << 14;

/// OPRF outputs per message from the sender.
const VALUES_PER_CHUNK: usize = 1 << 16;

/// Hash-function index in the top two bits of an OPRF input, so the same item under two
/// hash functions gives two unrelated outputs.
const ITEM_BITS: u32 = 126;

const ITEM_DST: &[u8] = b"ferry-psi/kkrt/item/v1";

const TAG_SETUP: &str = "kkrt-setup";
const TAG_CHOICES: &str = "kkrt-choices";
const TAG_COLUMNS: &str = "kkrt-columns";
const TAG_VALUES: &str = "kkrt-values";
const TAG_MATCHES: &str = "kkrt-matches";

/// Receiver → sender: the base-OT sender's point and the cuckoo hash key.
#[derive(Serialize, Deserialize)]
struct Setup {
    ot_point: Bytes,
    hash_key: Bytes,
}

/// Sender → receiver: the base-OT receiver's points and the code's seed.
#[derive(Serialize, Deserialize)]
struct Choices {
    ot_points: Bytes,
    code_seed: Bytes,
}

/// Receiver → sender: a chunk of the matrix `U`, column-major.
#[derive(Serialize, Deserialize)]
struct Columns {
    chunk: u32,
    bytes: Bytes,
}

/// Sender → receiver: OPRF outputs of its items under one hash function, shuffled, truncated.
#[derive(Serialize, Deserialize)]
struct Values {
    function: u8,
    chunk: u32,
    bytes: Bytes,
}

/// Receiver → sender (if it receives the result): positions `function · n + p` of the
/// matched values, 8 bytes each, in the agreed order.
#[derive(Serialize, Deserialize)]
struct Matches(Bytes);

/// Bins of the receiver's cuckoo table for `n` items.
///
/// With three hash functions and no stash, 1.27·n bins make insertion fail with probability
/// below 2^-40 (Pinkas, Schneider, Zohner, "Scalable private set intersection based on OT
/// extension", ACM TOPS 2018, §5.3/Table 4 — estimated from experiments and extrapolated for
/// large n; the same choice as Chen–Laine–Rindal 2017). Their estimate is for large tables;
/// below [`SMALL_SET`] items, where the extra bins cost nothing measurable, the table gets
/// 2·n + 256 bins instead. Never fewer than 128 (one block of OT rows).
pub fn bin_count(n: u64) -> u64 {
    let bins = if n < SMALL_SET {
        2 * n + 256
    } else {
        (n as f64 * CUCKOO_EXPANSION).ceil() as u64
    };
    bins.max(128)
}

/// Bytes of a compared OPRF output: σ + log2(n_R) + log2(n_S) bits, so that among the
/// n_R · n_S comparisons a false match has probability below 2^-σ.
pub fn value_bytes(receiver_size: u64, sender_size: u64) -> usize {
    let log2 = |n: u64| 64 - n.max(1).saturating_sub(1).leading_zeros();
    let bits = STATISTICAL_BITS + log2(receiver_size) + log2(sender_size);
    bits.div_ceil(8) as usize
}

fn truncate(value: u128, bytes: usize) -> u128 {
    if bytes >= 16 {
        value
    } else {
        value & ((1u128 << (8 * bytes)) - 1)
    }
}

/// A public 126-bit hash of every listed id: what the cuckoo hashes and the OPRF take.
/// Never sent.
fn item_hashes(ids: &IdList, order: &[u32]) -> Vec<u128> {
    order
        .par_iter()
        .map(|&i| {
            crate::ot::sha::sha256_prefix128(&[ITEM_DST, ids.get(i as usize)])
                & ((1u128 << ITEM_BITS) - 1)
        })
        .collect()
}

fn oprf_input(item: u128, function: usize) -> u128 {
    item | ((function as u128) << ITEM_BITS)
}

/// The three bins of an item: AES under the run's hash key, split into three 42-bit parts,
/// each mapped to `0..bins` by multiply-and-shift (bias below bins / 2^42).
struct BinHasher {
    aes: Aes,
    bins: u64,
}

impl BinHasher {
    fn new(key: [u8; 16], bins: u64) -> Self {
        BinHasher {
            aes: Aes::new(key),
            bins,
        }
    }

    fn bins(&self, items: &[u128]) -> Vec<[u32; CUCKOO_HASHES]> {
        let mut out = vec![[0u32; CUCKOO_HASHES]; items.len()];
        out.par_chunks_mut(4096)
            .zip(items.par_chunks(4096))
            .for_each(|(out, items)| {
                let mut e = vec![0u128; items.len()];
                self.aes.encrypt_u128(items, &mut e);
                for (o, e) in out.iter_mut().zip(e) {
                    for (f, slot) in o.iter_mut().enumerate() {
                        let part = (e >> (42 * f)) as u64 & ((1 << 42) - 1);
                        *slot = ((part as u128 * self.bins as u128) >> 42) as u32;
                    }
                }
            });
        out
    }
}

const EMPTY: u32 = u32::MAX;

/// Cuckoo hashing: bin → `item << 2 | function`, or [`EMPTY`]. `None` if an insertion needed
/// more than [`MAX_EVICTIONS`] evictions.
fn cuckoo(bins_of: &[[u32; CUCKOO_HASHES]], bins: u64, seed: u64) -> Option<Vec<u32>> {
    let mut table = vec![EMPTY; bins as usize];
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    'items: for item in 0..bins_of.len() as u32 {
        let mut current = item << 2;
        let mut last_function = usize::MAX;
        for _ in 0..MAX_EVICTIONS {
            let candidates = &bins_of[(current >> 2) as usize];
            if let Some(f) = (0..CUCKOO_HASHES).find(|&f| table[candidates[f] as usize] == EMPTY) {
                table[candidates[f] as usize] = (current & !3) | f as u32;
                continue 'items;
            }
            // Evict from a bin other than the one the item just left.
            let mut f = rng.random_range(0..CUCKOO_HASHES);
            if f == last_function {
                f = (f + 1 + rng.random_range(0..CUCKOO_HASHES - 1)) % CUCKOO_HASHES;
            }
            let bin = candidates[f] as usize;
            let evicted = std::mem::replace(&mut table[bin], (current & !3) | f as u32);
            current = evicted & !3;
            last_function = (evicted & 3) as usize;
        }
        return None;
    }
    Some(table)
}

fn random16(rng: &mut impl Rng) -> [u8; 16] {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b
}

fn bytes16(peer: &PartyId, what: &str, bytes: &[u8]) -> Result<[u8; 16], PsiError> {
    bytes.try_into().map_err(|_| {
        PsiError::protocol(
            peer,
            format!("{what} has {} bytes, expected 16", bytes.len()),
        )
    })
}

/// Checks a KKRT option set against the roster and the key mode.
pub(crate) fn check_config(config: &PsiConfig, res: &Resolved) -> Result<(), PsiError> {
    if res.parties.len() != 2 {
        return Err(PsiError::Config(format!(
            "protocol 'kkrt' runs between two parties; this job has {} data parties: use protocol 'ecdh' for three or more",
            res.parties.len()
        )));
    }
    if !matches!(config.keys, crate::KeyMode::Fresh) {
        return Err(PsiError::Config(
            "protocol 'kkrt' has no long-term key to cache: use keys 'fresh', or protocol 'ecdh' for cached keys".into(),
        ));
    }
    Ok(())
}

/// Runs KKRT PSI between the two data parties. `order` lists the distinct ids (sent position
/// → index into `ids`). Returns indices into `ids` for a receiving party, in the agreed order.
pub(crate) fn two_party(
    ctx: &Context,
    res: &Resolved,
    ids: &IdList,
    order: &[u32],
    key_arity: u32,
    stats: &mut IdStats,
) -> Result<Option<Vec<u32>>, PsiError> {
    let me = ctx.me().clone();
    let peer = res
        .parties
        .iter()
        .find(|p| **p != me)
        .expect("two parties")
        .clone();
    let n = order.len() as u64;
    if n > MAX_KKRT_SET_SIZE {
        return Err(PsiError::Config(format!(
            "{n} distinct ids is above protocol 'kkrt''s limit of {MAX_KKRT_SET_SIZE}; use protocol 'ecdh'"
        )));
    }
    let hello = Hello {
        version: PROTOCOL_VERSION,
        protocol: PROTOCOL_KKRT.to_string(),
        group: BASE_OT_GROUP.to_string(),
        receivers: res.receivers.clone(),
        leader: None,
        key_arity,
        set_size: n,
        chunk_size: ROWS_PER_CHUNK as u64,
    };
    ctx.send(&peer, TAG_HELLO, &hello)?;
    let theirs: Hello = ctx.recv(&peer, TAG_HELLO)?;
    hello.check_peer(&peer, &theirs)?;
    if theirs.set_size > MAX_KKRT_SET_SIZE {
        return Err(PsiError::protocol(
            &peer,
            format!(
                "announced {} ids, above protocol 'kkrt''s limit of {MAX_KKRT_SET_SIZE}",
                theirs.set_size
            ),
        ));
    }
    stats.peer_set_sizes.insert(peer.clone(), theirs.set_size);
    // The OPRF receiver learns the result: the one receiver, or with `all` the leader (the
    // guest), which then tells the other party its rows.
    let oprf_receiver = match &res.receivers {
        crate::Receivers::Party(p) => p.clone(),
        crate::Receivers::All => res.leader.clone(),
    };
    let items = item_hashes(ids, order);
    if me == oprf_receiver {
        let peer_receives = res.receivers.includes(&peer);
        let rows = receiver(ctx, &peer, &items, theirs.set_size, peer_receives)?;
        Ok(Some(rows.into_iter().map(|i| order[i as usize]).collect()))
    } else {
        let i_receive = res.receivers.includes(&me);
        let rows = sender(ctx, &peer, &items, theirs.set_size, i_receive)?;
        Ok(rows.map(|r| r.into_iter().map(|i| order[i as usize]).collect()))
    }
}

/// The OPRF receiver: cuckoo table, base OTs as sender, `U`, then the comparison. Returns
/// item numbers (into `items`) in the agreed order.
fn receiver(
    ctx: &Context,
    peer: &PartyId,
    items: &[u128],
    sender_size: u64,
    sender_receives: bool,
) -> Result<Vec<u32>, PsiError> {
    let n = items.len() as u64;
    let bins = bin_count(n);
    let mut rng = ChaCha20Rng::from_seed(crate::keys::fresh_seed());
    let mut placed = None;
    for _ in 0..CUCKOO_ATTEMPTS {
        let hash_key = random16(&mut rng);
        let bins_of = BinHasher::new(hash_key, bins).bins(items);
        if let Some(table) = cuckoo(&bins_of, bins, rng.next_u64()) {
            placed = Some((hash_key, table));
            break;
        }
    }
    let Some((hash_key, table)) = placed else {
        return Err(PsiError::Config(format!(
            "cuckoo hashing of {n} ids into {bins} bins failed {CUCKOO_ATTEMPTS} times (each \
             attempt fails with probability below 2^-{STATISTICAL_BITS}); run the job again"
        )));
    };
    let (ot, ot_point) = OtSender::start(&mut rng);
    ctx.send(
        peer,
        TAG_SETUP,
        &Setup {
            ot_point: Bytes(ot_point.to_vec()),
            hash_key: Bytes(hash_key.to_vec()),
        },
    )?;
    let choices: Choices = ctx.recv(peer, TAG_CHOICES)?;
    let code_seed = bytes16(peer, "the code seed", &choices.code_seed.0)?;
    let pairs = ot
        .finish(&choices.ot_points.0, CODE_BITS)
        .map_err(|e| PsiError::protocol(peer, e))?;
    let oprf = OprfReceiver::new(&pairs, Code::new(code_seed));
    let vbytes = value_bytes(n, sender_size);

    let mut own = OwnOutputs::with_capacity(items.len());
    let padded = bins.div_ceil(128) * 128;
    let chunks = padded.div_ceil(ROWS_PER_CHUNK as u64);
    for c in 0..chunks {
        ctx.check_cancelled()?;
        let start = c * ROWS_PER_CHUNK as u64;
        let end = (start + ROWS_PER_CHUNK as u64).min(padded);
        let mut inputs = vec![0u128; (end - start) as usize];
        let mut occupied = Vec::new();
        for (i, slot) in inputs.iter_mut().enumerate() {
            let bin = start as usize + i;
            if let Some(&entry) = table.get(bin).filter(|e| **e != EMPTY) {
                *slot = oprf_input(items[(entry >> 2) as usize], (entry & 3) as usize);
                occupied.push(i);
            }
        }
        let (u, t0) = oprf.chunk(start / 128, &inputs);
        ctx.send(
            peer,
            TAG_COLUMNS,
            &Columns {
                chunk: c as u32,
                bytes: Bytes(u),
            },
        )?;
        let outputs = crate::ot::kkrt::receiver_outputs(start, &t0, &occupied);
        for (i, v) in occupied.iter().zip(outputs) {
            own.insert(truncate(v, vbytes), table[start as usize + i]);
        }
        ctx.progress(
            (c + 1) as f64 / (chunks + 1) as f64,
            "PSI (KKRT): oblivious transfer",
        );
    }
    drop(table);

    // The sender's outputs, per hash function.
    let mut matches: Vec<(u128, u32, u64)> = Vec::new();
    let mut matched = vec![false; items.len()];
    let per_function = sender_size.div_ceil(VALUES_PER_CHUNK as u64);
    for function in 0..CUCKOO_HASHES {
        for c in 0..per_function {
            let v: Values = ctx.recv(peer, TAG_VALUES)?;
            if v.function as usize != function || v.chunk as u64 != c {
                return Err(PsiError::protocol(
                    peer,
                    format!(
                        "OPRF values of function {} chunk {} arrived where function {function} chunk {c} was due",
                        v.function, v.chunk
                    ),
                ));
            }
            let first = c * VALUES_PER_CHUNK as u64;
            let count = (sender_size - first).min(VALUES_PER_CHUNK as u64) as usize;
            if v.bytes.0.len() != count * vbytes {
                return Err(PsiError::protocol(
                    peer,
                    format!(
                        "OPRF values of function {function} chunk {c}: {} bytes, expected {count} values of {vbytes} bytes",
                        v.bytes.0.len()
                    ),
                ));
            }
            // Look the chunk up in parallel; the few hits are then claimed in order.
            let hits: Vec<(usize, u128)> = v
                .bytes
                .0
                .par_chunks_exact(vbytes)
                .enumerate()
                .filter_map(|(k, value)| {
                    let mut b = [0u8; 16];
                    b[..vbytes].copy_from_slice(value);
                    let value = u128::from_le_bytes(b);
                    own.contains(value).then_some((k, value))
                })
                .collect();
            for (k, value) in hits {
                if let Some(item) = own.find(value, function, &mut matched) {
                    let position = function as u64 * sender_size + first + k as u64;
                    matches.push((value, item, position));
                }
            }
        }
    }
    // The agreed order: by OPRF output, a fresh pseudo-random order of the intersection.
    matches.par_sort_unstable();
    if sender_receives {
        let mut bytes = Vec::with_capacity(matches.len() * 8);
        for (_, _, position) in &matches {
            bytes.extend_from_slice(&position.to_le_bytes());
        }
        ctx.send(peer, TAG_MATCHES, &Matches(Bytes(bytes)))?;
    }
    Ok(matches.into_iter().map(|(_, item, _)| item).collect())
}

/// The receiver's own OPRF outputs, keyed by their truncated value, each with
/// `item << 2 | function`. Two own outputs may share a truncated value (the truncation bounds
/// false matches against the sender's values, not collisions among the receiver's own, which
/// are likely when its set is far larger than the sender's), so every entry is kept.
struct OwnOutputs {
    first: HashMap<u128, u32, BuildHasherDefault<MixHasher>>,
    more: HashMap<u128, Vec<u32>, BuildHasherDefault<MixHasher>>,
}

/// A hasher for keys that are already pseudo-random (OPRF outputs): one multiplication
/// spreads the (possibly only 40) random low bits over the whole word, which is all the
/// table needs, at a fraction of SipHash's cost. Only the receiver's own outputs are
/// inserted, and those the sender cannot steer; the sender's values are only looked up.
#[derive(Default)]
struct MixHasher(u64);

impl std::hash::Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 =
            ((v as u64) ^ ((v >> 64) as u64).rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl OwnOutputs {
    fn with_capacity(n: usize) -> Self {
        OwnOutputs {
            first: HashMap::with_capacity_and_hasher(n, BuildHasherDefault::default()),
            more: HashMap::default(),
        }
    }

    fn insert(&mut self, value: u128, entry: u32) {
        if let Some(&existing) = self.first.get(&value) {
            debug_assert_ne!(existing, entry);
            self.more.entry(value).or_default().push(entry);
        } else {
            self.first.insert(value, entry);
        }
    }

    /// Whether any own output has this truncated value.
    fn contains(&self, value: u128) -> bool {
        self.first.contains_key(&value)
    }

    /// The own item placed by `function` whose output is `value` and that has not matched
    /// yet; marks it matched.
    fn find(&self, value: u128, function: usize, matched: &mut [bool]) -> Option<u32> {
        let first = self.first.get(&value)?;
        std::iter::once(first)
            .chain(self.more.get(&value).into_iter().flatten())
            .filter(|e| (**e & 3) as usize == function)
            .map(|e| e >> 2)
            .find(|&item| !std::mem::replace(&mut matched[item as usize], true))
    }
}

/// The OPRF sender: base OTs as receiver, `Q`, its items' outputs under every hash function.
/// Returns item numbers in the agreed order if it receives the result.
fn sender(
    ctx: &Context,
    peer: &PartyId,
    items: &[u128],
    receiver_size: u64,
    i_receive: bool,
) -> Result<Option<Vec<u32>>, PsiError> {
    let n = items.len();
    let bins = bin_count(receiver_size);
    let mut rng = ChaCha20Rng::from_seed(crate::keys::fresh_seed());
    let setup: Setup = ctx.recv(peer, TAG_SETUP)?;
    let hash_key = bytes16(peer, "the cuckoo hash key", &setup.hash_key.0)?;
    if setup.ot_point.0.len() != POINT_BYTES {
        return Err(PsiError::protocol(
            peer,
            format!(
                "the base OT point has {} bytes, expected {POINT_BYTES}",
                setup.ot_point.0.len()
            ),
        ));
    }
    let choice_bits: Vec<bool> = (0..CODE_BITS).map(|_| rng.random::<bool>()).collect();
    let (points, keys) = base::receive(&setup.ot_point.0, &choice_bits, &mut rng)
        .map_err(|e| PsiError::protocol(peer, e))?;
    let code_seed = random16(&mut rng);
    ctx.send(
        peer,
        TAG_CHOICES,
        &Choices {
            ot_points: Bytes(points),
            code_seed: Bytes(code_seed.to_vec()),
        },
    )?;
    let oprf = OprfSender::new(&choice_bits, &keys, Code::new(code_seed));
    let vbytes = value_bytes(receiver_size, n as u64);

    // Every (bin, item, function), by bin, to be evaluated when its chunk of rows arrives.
    let bins_of = BinHasher::new(hash_key, bins).bins(items);
    let mut points: Vec<(u32, u32, u8)> = Vec::with_capacity(n * CUCKOO_HASHES);
    for (item, b) in bins_of.iter().enumerate() {
        for (f, &bin) in b.iter().enumerate() {
            points.push((bin, item as u32, f as u8));
        }
    }
    drop(bins_of);
    points.par_sort_unstable();
    let mut values = vec![0u128; n * CUCKOO_HASHES];
    let padded = bins.div_ceil(128) * 128;
    let chunks = padded.div_ceil(ROWS_PER_CHUNK as u64);
    let mut next = 0;
    for c in 0..chunks {
        let start = c * ROWS_PER_CHUNK as u64;
        let rows = ((start + ROWS_PER_CHUNK as u64).min(padded) - start) as usize;
        let msg: Columns = ctx.recv(peer, TAG_COLUMNS)?;
        if msg.chunk as u64 != c {
            return Err(PsiError::protocol(
                peer,
                format!(
                    "OT extension chunk {} arrived where chunk {c} was due",
                    msg.chunk
                ),
            ));
        }
        if msg.bytes.0.len() != columns_bytes(rows) {
            return Err(PsiError::protocol(
                peer,
                format!(
                    "OT extension chunk {c}: {} bytes, expected {} ({rows} rows of {CODE_BITS} bits)",
                    msg.bytes.0.len(),
                    columns_bytes(rows)
                ),
            ));
        }
        let q = oprf.chunk(start / 128, rows, &msg.bytes.0);
        drop(msg);
        let end = start + rows as u64;
        let from = next;
        while next < points.len() && (points[next].0 as u64) < end {
            next += 1;
        }
        let here = &points[from..next];
        let evaluate: Vec<(u64, &Row, u128)> = here
            .iter()
            .map(|&(bin, item, f)| {
                (
                    bin as u64,
                    &q[(bin as u64 - start) as usize],
                    oprf_input(items[item as usize], f as usize),
                )
            })
            .collect();
        let outputs = oprf.evaluate(&evaluate);
        for (&(_, item, f), v) in here.iter().zip(outputs) {
            values[f as usize * n + item as usize] = truncate(v, vbytes);
        }
        ctx.progress(
            (c + 1) as f64 / (chunks + 1) as f64,
            "PSI (KKRT): oblivious transfer",
        );
    }
    drop(points);

    // Each function's outputs in its own fresh order.
    let mut orders: Vec<Vec<u32>> = Vec::with_capacity(CUCKOO_HASHES);
    let mut shuffle = shuffle_rng();
    for function in 0..CUCKOO_HASHES {
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut shuffle);
        for (c, positions) in order.chunks(VALUES_PER_CHUNK).enumerate() {
            let mut bytes = Vec::with_capacity(positions.len() * vbytes);
            for &item in positions {
                let v = values[function * n + item as usize];
                bytes.extend_from_slice(&v.to_le_bytes()[..vbytes]);
            }
            ctx.send(
                peer,
                TAG_VALUES,
                &Values {
                    function: function as u8,
                    chunk: c as u32,
                    bytes: Bytes(bytes),
                },
            )?;
        }
        if i_receive {
            orders.push(order);
        }
    }
    drop(values);
    if !i_receive {
        return Ok(None);
    }
    let Matches(Bytes(bytes)) = ctx.recv(peer, TAG_MATCHES)?;
    let most = (n as u64).min(receiver_size) as usize;
    if !bytes.len().is_multiple_of(8) || bytes.len() / 8 > most {
        return Err(PsiError::protocol(
            peer,
            format!(
                "the intersection positions take {} bytes, not a multiple of 8 up to {most} positions",
                bytes.len()
            ),
        ));
    }
    let mut seen = vec![false; n];
    bytes
        .chunks_exact(8)
        .map(|b| {
            let position = u64::from_le_bytes(b.try_into().expect("8 bytes"));
            let (function, p) = (position / n.max(1) as u64, position % n.max(1) as u64);
            if function >= CUCKOO_HASHES as u64 || n == 0 {
                return Err(PsiError::protocol(
                    peer,
                    format!("intersection position {position} is out of range"),
                ));
            }
            let item = orders[function as usize][p as usize];
            if std::mem::replace(&mut seen[item as usize], true) {
                return Err(PsiError::protocol(
                    peer,
                    format!("intersection position {position} names an id already named"),
                ));
            }
            Ok(item)
        })
        .collect::<Result<Vec<u32>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_follow_the_documented_formulas() {
        assert_eq!(bin_count(0), 256);
        assert_eq!(bin_count(1), 258);
        assert_eq!(bin_count(1_000_000), 1_270_000);
        // 40 + 20 + 20 bits at a million each; 40 bits minimum.
        assert_eq!(value_bytes(1_000_000, 1_000_000), 10);
        assert_eq!(value_bytes(0, 1), 5);
        assert_eq!(value_bytes(1 << 28, 1 << 28), 12);
    }

    #[test]
    fn own_outputs_that_share_a_truncated_value_all_stay_findable() {
        let mut own = OwnOutputs::with_capacity(4);
        own.insert(7, 5 << 2); // item 5 by function 0
        own.insert(7, (6 << 2) | 1); // item 6 by function 1, same value
        own.insert(7, 8 << 2); // item 8 by function 0, same value
        own.insert(9, (1 << 2) | 2);
        let mut matched = vec![false; 10];
        assert_eq!(own.find(7, 1, &mut matched), Some(6));
        assert_eq!(own.find(7, 1, &mut matched), None, "item 6 matched already");
        assert_eq!(own.find(7, 0, &mut matched), Some(5));
        assert_eq!(own.find(7, 0, &mut matched), Some(8));
        assert_eq!(own.find(7, 2, &mut matched), None);
        assert_eq!(own.find(9, 2, &mut matched), Some(1));
        assert_eq!(own.find(3, 0, &mut matched), None);
    }

    #[test]
    fn cuckoo_places_every_item_once_in_one_of_its_bins() {
        let items: Vec<u128> = (0..20_000u128)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let bins = bin_count(items.len() as u64);
        let bins_of = BinHasher::new([9; 16], bins).bins(&items);
        let table = cuckoo(&bins_of, bins, 1).expect("placed");
        let mut seen = vec![false; items.len()];
        for (bin, &e) in table.iter().enumerate() {
            if e != EMPTY {
                let (item, f) = ((e >> 2) as usize, (e & 3) as usize);
                assert_eq!(bins_of[item][f] as usize, bin);
                assert!(!std::mem::replace(&mut seen[item], true));
            }
        }
        assert!(seen.iter().all(|s| *s));
        // Overfull: more items than bins cannot be placed.
        let crowded = BinHasher::new([9; 16], 256).bins(&items[..300]);
        assert!(cuckoo(&crowded, 256, 1).is_none());
    }
}

#[cfg(test)]
mod peer_tests {
    //! A real party against a scripted peer that sends malformed KKRT messages: every case
    //! is an error naming the peer and the message, never a panic or a hang.
    use super::*;
    use crate::{Receivers, intersect_ids};
    use ferry_context::{FederationError, LocalCluster, Role, Roster};
    use std::time::Duration;

    fn hello(receivers: Receivers, set_size: u64) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            protocol: PROTOCOL_KKRT.into(),
            group: BASE_OT_GROUP.into(),
            receivers,
            leader: None,
            key_arity: 0,
            set_size,
            chunk_size: ROWS_PER_CHUNK as u64,
        }
    }

    /// The bank runs KKRT with `config`; the telco says hello with `set_size` ids and then
    /// runs `script`. Returns the bank's error.
    fn bank_error_against(
        config: PsiConfig,
        set_size: u64,
        script: impl Fn(&Context, &PartyId) -> Result<(), FederationError> + Sync,
    ) -> String {
        let roster = Roster::of(&[("bank", Role::Guest), ("telco", Role::Host)]);
        let bank_ids: IdList = ["a", "b", "c"].into_iter().collect();
        let outcomes = LocalCluster::new(roster)
            .timeout(Duration::from_secs(20))
            .run(|ctx| {
                if ctx.me().as_str() == "bank" {
                    return intersect_ids(&ctx, &bank_ids, &config).map(|_| ());
                }
                let ctx = ctx.sub("psi");
                let bank: PartyId = "bank".parse().unwrap();
                ctx.send(&bank, TAG_HELLO, &hello(config.receivers.clone(), set_size))?;
                let _: Hello = ctx.recv(&bank, TAG_HELLO)?;
                script(&ctx, &bank)?;
                // Keep the session open until the bank has given up.
                let _ = ctx.recv::<Hello>(&bank, "never");
                Ok(())
            });
        match &outcomes[0].result {
            Err(e) => e.clone(),
            Ok(()) => panic!(
                "the bank accepted a malformed peer (the peer: {:?})",
                outcomes[1].result
            ),
        }
    }

    fn kkrt(receivers: Receivers) -> PsiConfig {
        PsiConfig {
            protocol: crate::PsiProtocol::Kkrt,
            receivers,
            ..PsiConfig::default()
        }
    }

    /// The telco as OPRF sender: honest base OTs, then `after` (the bank is the receiver).
    fn as_sender(
        code_seed: Vec<u8>,
        points: Option<Vec<u8>>,
        after: impl Fn(&Context, &PartyId) -> Result<(), FederationError> + Sync,
    ) -> impl Fn(&Context, &PartyId) -> Result<(), FederationError> + Sync {
        move |ctx, bank| {
            let setup: Setup = ctx.recv(bank, TAG_SETUP)?;
            let choices = vec![true; CODE_BITS];
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let (honest, _) = base::receive(&setup.ot_point.0, &choices, &mut rng).unwrap();
            ctx.send(
                bank,
                TAG_CHOICES,
                &Choices {
                    ot_points: Bytes(points.clone().unwrap_or(honest)),
                    code_seed: Bytes(code_seed.clone()),
                },
            )?;
            after(ctx, bank)
        }
    }

    #[test]
    fn a_malformed_oprf_sender_is_refused_by_name() {
        let none = |_: &Context, _: &PartyId| Ok(());
        let e = bank_error_against(kkrt(Receivers::All), 2, as_sender(vec![1; 15], None, none));
        assert!(
            e.contains("party 'telco'") && e.contains("the code seed has 15 bytes, expected 16"),
            "{e}"
        );
        let e = bank_error_against(
            kkrt(Receivers::All),
            2,
            as_sender(vec![1; 16], Some(vec![0xff; 32 * CODE_BITS]), none),
        );
        assert!(e.contains("base OT point 0 is not a valid"), "{e}");
        let e = bank_error_against(
            kkrt(Receivers::All),
            2,
            as_sender(vec![1; 16], Some(vec![0; 100]), none),
        );
        assert!(e.contains("base OT answer has 100 bytes"), "{e}");
        // Truncated values: 40 + log2(3) + log2(2) bits make 6 bytes a value; 2 values are 12.
        let truncated = |ctx: &Context, bank: &PartyId| {
            ctx.send(
                bank,
                TAG_VALUES,
                &Values {
                    function: 0,
                    chunk: 0,
                    bytes: Bytes(vec![0; 7]),
                },
            )
        };
        let e = bank_error_against(
            kkrt(Receivers::All),
            2,
            as_sender(vec![1; 16], None, truncated),
        );
        assert!(
            e.contains("function 0 chunk 0: 7 bytes, expected 2 values of 6 bytes"),
            "{e}"
        );
        let reordered = |ctx: &Context, bank: &PartyId| {
            ctx.send(
                bank,
                TAG_VALUES,
                &Values {
                    function: 2,
                    chunk: 0,
                    bytes: Bytes(vec![0; 12]),
                },
            )
        };
        let e = bank_error_against(
            kkrt(Receivers::All),
            2,
            as_sender(vec![1; 16], None, reordered),
        );
        assert!(
            e.contains("function 2 chunk 0 arrived where function 0"),
            "{e}"
        );
        // A claimed set size beyond the limit is refused before anything is allocated.
        let e = bank_error_against(kkrt(Receivers::All), MAX_KKRT_SET_SIZE + 1, none);
        assert!(e.contains("above protocol 'kkrt''s limit"), "{e}");
    }

    /// The telco as OPRF receiver (the bank sends): `script` after the hello.
    #[test]
    fn a_malformed_oprf_receiver_is_refused_by_name() {
        let to_telco = || kkrt(Receivers::Party("telco".parse().unwrap()));
        let short_point = |ctx: &Context, bank: &PartyId| {
            ctx.send(
                bank,
                TAG_SETUP,
                &Setup {
                    ot_point: Bytes(vec![1; 31]),
                    hash_key: Bytes(vec![0; 16]),
                },
            )
        };
        let e = bank_error_against(to_telco(), 2, short_point);
        assert!(
            e.contains("the base OT point has 31 bytes, expected 32"),
            "{e}"
        );
        let setup = |columns: Option<Columns>| {
            move |ctx: &Context, bank: &PartyId| {
                let mut rng = ChaCha20Rng::seed_from_u64(2);
                let (_ot, point) = OtSender::start(&mut rng);
                ctx.send(
                    bank,
                    TAG_SETUP,
                    &Setup {
                        ot_point: Bytes(point.to_vec()),
                        hash_key: Bytes(vec![0; 16]),
                    },
                )?;
                if let Some(c) = &columns {
                    ctx.send(
                        bank,
                        TAG_COLUMNS,
                        &Columns {
                            chunk: c.chunk,
                            bytes: Bytes(c.bytes.0.clone()),
                        },
                    )?;
                }
                Ok(())
            }
        };
        // Two ids: 260 bins, 384 padded rows, 24 KiB of columns.
        let e = bank_error_against(
            to_telco(),
            2,
            setup(Some(Columns {
                chunk: 0,
                bytes: Bytes(vec![0; 1000]),
            })),
        );
        assert!(
            e.contains("OT extension chunk 0: 1000 bytes, expected 24576 (384 rows"),
            "{e}"
        );
        let e = bank_error_against(
            to_telco(),
            2,
            setup(Some(Columns {
                chunk: 1,
                bytes: Bytes(vec![0; 24576]),
            })),
        );
        assert!(e.contains("chunk 1 arrived where chunk 0 was due"), "{e}");
    }

    /// With `all`, the OPRF receiver (here the telco, as leader) tells the bank its rows.
    #[test]
    fn bad_intersection_positions_are_refused() {
        let config = PsiConfig {
            leader: Some("telco".parse().unwrap()),
            ..kkrt(Receivers::All)
        };
        let positions = |list: Vec<u64>| {
            move |ctx: &Context, bank: &PartyId| {
                // Run the receiver's side honestly up to the result, then lie about it.
                let mut rng = ChaCha20Rng::seed_from_u64(3);
                let (ot, point) = OtSender::start(&mut rng);
                ctx.send(
                    bank,
                    TAG_SETUP,
                    &Setup {
                        ot_point: Bytes(point.to_vec()),
                        hash_key: Bytes(vec![0; 16]),
                    },
                )?;
                let choices: Choices = ctx.recv(bank, TAG_CHOICES)?;
                let pairs = ot.finish(&choices.ot_points.0, CODE_BITS).unwrap();
                let oprf = OprfReceiver::new(&pairs, Code::new([0; 16]));
                let (u, _) = oprf.chunk(0, &vec![0u128; 384]);
                ctx.send(
                    bank,
                    TAG_COLUMNS,
                    &Columns {
                        chunk: 0,
                        bytes: Bytes(u),
                    },
                )?;
                for _ in 0..CUCKOO_HASHES {
                    let _: Values = ctx.recv(bank, TAG_VALUES)?;
                }
                let bytes: Vec<u8> = list.iter().flat_map(|p| p.to_le_bytes()).collect();
                ctx.send(bank, TAG_MATCHES, &Matches(Bytes(bytes)))
            }
        };
        let e = bank_error_against(config.clone(), 2, positions(vec![9]));
        assert!(e.contains("intersection position 9 is out of range"), "{e}");
        let e = bank_error_against(config.clone(), 2, positions(vec![4, 4]));
        assert!(e.contains("position 4 names an id already named"), "{e}");
        let e = bank_error_against(config, 2, positions(vec![0, 1, 2]));
        assert!(e.contains("up to 2 positions"), "{e}");
    }
}
