//! The PSI protocols on identifier lists: two-party and n-party ECDH-PSI.

use crate::config::Resolved;
use crate::engine::{Engine, Inbound, KeysInbound, OwnStream};
use crate::ids::{IdList, first_occurrences};
use crate::keys::{Seed, key_from_seed, party_seed, shuffle_rng};
use crate::wire::{
    Bytes, FromLeader, Hello, Key, MAX_SET_SIZE, PROTOCOL_VERSION, Positions, Start, Stream,
    TAG_HELLO, TAG_HOST_KEY, TAG_MAP_REPLY, TAG_RESULT, TAG_START, TAG_STREAM, chunk_count,
    chunk_range, key_bytes, keys_from_bytes,
};
use crate::{GroupKind, KeyMode, PsiConfig, PsiError, PsiProtocol};
use ferry_context::{Context, PartyId};
use ferry_crypto::ecdh::{EcdhGroup, Ristretto255, Sm2Sm3};
use rand::seq::SliceRandom;
use rayon::slice::ParallelSliceMut;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

pub const PROTOCOL_TWO_PARTY: &str = "ecdh-psi-2p";
pub const PROTOCOL_MULTI_PARTY: &str = "ecdh-psi-np";

/// What [`intersect_ids`] returns to one party.
#[derive(Clone, Debug, PartialEq)]
pub struct IdIntersection {
    /// Indices into the input list of the identifiers in the intersection (the first
    /// occurrence of each), in the order every receiving party agrees on (see the crate docs).
    /// `None` for a party that does not receive the result.
    pub rows: Option<Vec<usize>>,
    pub stats: IdStats,
}

/// Counts of one party's run of the protocol.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IdStats {
    pub protocol: String,
    pub group: String,
    pub input_ids: u64,
    pub unique_ids: u64,
    pub duplicates_dropped: u64,
    /// Set sizes of the parties whose set size this party learned.
    pub peer_set_sizes: BTreeMap<PartyId, u64>,
    /// Size of the intersection, for a party that receives the result.
    pub intersection_size: Option<u64>,
    pub receives_result: bool,
    pub seconds: f64,
}

/// Runs PSI on a list of identifiers in the configured group.
///
/// Duplicates are dropped (keeping the first occurrence) before anything is sent: the same
/// identifier twice would give the same blinded element twice and tell the peer that this
/// party holds a duplicate. Every party of the context's roster must call this (or
/// [`crate::run_psi`]) with a matching configuration.
pub fn intersect_ids(
    ctx: &Context,
    ids: &IdList,
    config: &PsiConfig,
) -> Result<IdIntersection, PsiError> {
    match config.group {
        GroupKind::Ristretto255 => intersect_ids_in::<Ristretto255>(ctx, ids, config),
        GroupKind::Sm2 => intersect_ids_in::<Sm2Sm3>(ctx, ids, config),
    }
}

/// [`intersect_ids`] in a given group.
pub fn intersect_ids_in<G: EcdhGroup>(
    ctx: &Context,
    ids: &IdList,
    config: &PsiConfig,
) -> Result<IdIntersection, PsiError> {
    intersect_with_arity::<G>(ctx, ids, config, 0)
}

pub(crate) fn intersect_with_arity<G: EcdhGroup>(
    ctx: &Context,
    ids: &IdList,
    config: &PsiConfig,
    key_arity: u32,
) -> Result<IdIntersection, PsiError> {
    let started = Instant::now();
    let resolved = config.resolve(ctx)?;
    let ctx = ctx.sub("psi");
    let mut order = first_occurrences(ids);
    if order.len() as u64 > MAX_SET_SIZE {
        return Err(PsiError::Config(format!(
            "{} distinct ids is above the limit of {MAX_SET_SIZE}",
            order.len()
        )));
    }
    // The order elements are sent in must not depend on the input order.
    order.shuffle(&mut shuffle_rng());
    let mut stats = IdStats {
        protocol: String::new(),
        group: G::NAME.to_string(),
        input_ids: ids.len() as u64,
        unique_ids: order.len() as u64,
        duplicates_dropped: (ids.len() - order.len()) as u64,
        receives_result: resolved.receivers.includes(ctx.me()),
        ..IdStats::default()
    };
    let party = Party {
        ctx: &ctx,
        res: &resolved,
        ids,
        order: &order,
        keys: &config.keys,
        key_arity,
    };
    let rows = if config.protocol == PsiProtocol::Kkrt {
        crate::kkrt::check_config(config, &resolved)?;
        stats.protocol = crate::kkrt::PROTOCOL_KKRT.into();
        stats.group = "ristretto255+aes128".into();
        crate::kkrt::two_party(&ctx, &resolved, ids, &order, key_arity, &mut stats)?
    } else if resolved.parties.len() == 2 {
        stats.protocol = PROTOCOL_TWO_PARTY.into();
        party.two_party::<G>(&mut stats)?
    } else {
        stats.protocol = PROTOCOL_MULTI_PARTY.into();
        party.multi_party::<G>(&mut stats)?
    };
    ctx.flush()?;
    stats.intersection_size = rows.as_ref().map(|r| r.len() as u64);
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(IdIntersection {
        rows: rows.map(|r| r.into_iter().map(|i| i as usize).collect()),
        stats,
    })
}

struct Party<'a> {
    ctx: &'a Context,
    res: &'a Resolved,
    ids: &'a IdList,
    /// Sent position → index into `ids` (distinct ids only, freshly shuffled).
    order: &'a [u32],
    keys: &'a KeyMode,
    key_arity: u32,
}

impl Party<'_> {
    fn hello<G: EcdhGroup>(&self, protocol: &str, leader: Option<PartyId>) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            protocol: protocol.to_string(),
            group: G::NAME.to_string(),
            receivers: self.res.receivers.clone(),
            leader,
            key_arity: self.key_arity,
            set_size: self.order.len() as u64,
            chunk_size: self.res.chunk_size as u64,
        }
    }

    fn own_stream(&self, to: &PartyId, returned: bool) -> OwnStream<'_> {
        OwnStream {
            ids: self.ids,
            order: self.order,
            to: to.clone(),
            chunk: self.res.chunk_size as u64,
            returned,
        }
    }

    /// Maps positions in this party's sent order to input indices, checking them.
    fn positions_to_rows(&self, from: &PartyId, positions: &[u32]) -> Result<Vec<u32>, PsiError> {
        let mut seen = vec![false; self.order.len()];
        positions
            .iter()
            .map(|&p| {
                let slot = seen.get_mut(p as usize).ok_or_else(|| {
                    PsiError::protocol(from, format!("result position {p} is out of range"))
                })?;
                if std::mem::replace(slot, true) {
                    return Err(PsiError::protocol(
                        from,
                        format!("result position {p} appears twice"),
                    ));
                }
                Ok(self.order[p as usize])
            })
            .collect()
    }

    /// Two-party ECDH-PSI (see the crate docs for the message flow).
    fn two_party<G: EcdhGroup>(&self, stats: &mut IdStats) -> Result<Option<Vec<u32>>, PsiError> {
        let ctx = self.ctx;
        let me = ctx.me().clone();
        let peer = self
            .res
            .parties
            .iter()
            .find(|p| **p != me)
            .expect("two parties")
            .clone();
        let hello = self.hello::<G>(PROTOCOL_TWO_PARTY, None);
        ctx.send(&peer, TAG_HELLO, &hello)?;
        let theirs: Hello = ctx.recv(&peer, TAG_HELLO)?;
        hello.check_peer(&peer, &theirs)?;
        stats.peer_set_sizes.insert(peer.clone(), theirs.set_size);

        let key = key_from_seed::<G>(&party_seed(self.keys, G::NAME, "2p", &self.res.parties)?);
        let i_receive = self.res.receivers.includes(&me);
        let engine = Engine {
            own: Some(self.own_stream(&peer, i_receive)),
            inbound: vec![Inbound {
                peer: peer.clone(),
                set_size: theirs.set_size,
                chunk: theirs.chunk_size,
                send_back: self.res.receivers.includes(&peer),
                keep_keys: i_receive,
            }],
            keys: None,
            blind_first: false,
            notify_on_result: Vec::new(),
        };
        let mut out = engine.run::<G>(ctx, &key)?;
        if !i_receive {
            return Ok(None);
        }
        let own: Vec<(Key, u32)> = out
            .own_keys
            .iter()
            .zip(self.order)
            .map(|(k, &i)| (*k, i))
            .collect();
        let peer_keys = out.inbound_keys.pop().expect("one inbound stream");
        Ok(Some(match_own_keys(own, peer_keys)))
    }

    /// The leader: first the guest (or the configured leader); the helper: the first other
    /// party in roster order.
    fn roles(&self) -> (PartyId, PartyId) {
        let leader = self.res.leader.clone();
        let helper = self
            .res
            .parties
            .iter()
            .find(|p| **p != leader)
            .expect("at least three parties")
            .clone();
        (leader, helper)
    }

    /// n-party ECDH-PSI with a leader and a helper (see the crate docs).
    fn multi_party<G: EcdhGroup>(&self, stats: &mut IdStats) -> Result<Option<Vec<u32>>, PsiError> {
        let (leader, helper) = self.roles();
        let hello = self.hello::<G>(PROTOCOL_MULTI_PARTY, Some(leader.clone()));
        let me = self.ctx.me().clone();
        if me == leader {
            self.leader::<G>(&hello, &helper, stats)
        } else {
            self.ctx.send(&leader, TAG_HELLO, &hello)?;
            let start: Start = self.ctx.recv(&leader, TAG_START)?;
            let leader_set = match start {
                Start::Refused { reason } => {
                    return Err(PsiError::Mismatch {
                        peer: leader,
                        reason: format!("the leader refused the run: {reason}"),
                    });
                }
                Start::Go { leader_set } => leader_set,
            };
            if me == helper {
                let Some((size, chunk)) = leader_set else {
                    return Err(PsiError::protocol(
                        &leader,
                        "the helper was not told the leader's set size",
                    ));
                };
                let sizes = Hello {
                    set_size: size,
                    chunk_size: chunk,
                    ..hello.clone()
                };
                hello.check_peer(&leader, &sizes)?;
                stats.peer_set_sizes.insert(leader.clone(), size);
                self.helper::<G>(&leader, size, chunk)
            } else {
                self.host::<G>(&leader, &helper)
            }
        }
    }

    fn leader<G: EcdhGroup>(
        &self,
        hello: &Hello,
        helper: &PartyId,
        stats: &mut IdStats,
    ) -> Result<Option<Vec<u32>>, PsiError> {
        let ctx = self.ctx;
        let me = ctx.me().clone();
        let hosts: Vec<PartyId> = self
            .res
            .parties
            .iter()
            .filter(|p| **p != me)
            .cloned()
            .collect();
        let mut hellos = Vec::with_capacity(hosts.len());
        let mut refusal = None;
        for h in &hosts {
            let theirs: Hello = ctx.recv(h, TAG_HELLO)?;
            if refusal.is_none()
                && let Err(e) = hello.check_peer(h, &theirs)
            {
                refusal = Some(e);
            }
            hellos.push(theirs);
        }
        if let Some(e) = refusal {
            for h in &hosts {
                ctx.send(
                    h,
                    TAG_START,
                    &Start::Refused {
                        reason: e.to_string(),
                    },
                )?;
            }
            return Err(e);
        }
        for h in &hosts {
            let leader_set = (h == helper).then_some((hello.set_size, hello.chunk_size));
            ctx.send(h, TAG_START, &Start::Go { leader_set })?;
        }
        for (h, theirs) in hosts.iter().zip(&hellos) {
            stats.peer_set_sizes.insert(h.clone(), theirs.set_size);
        }
        let helper_chunk = hosts
            .iter()
            .zip(&hellos)
            .find(|(h, _)| *h == helper)
            .map(|(_, hl)| hl.chunk_size)
            .expect("the helper is a host");

        let key = key_from_seed::<G>(&party_seed(
            self.keys,
            G::NAME,
            "np-leader",
            &self.res.parties,
        )?);
        let engine = Engine {
            own: Some(self.own_stream(helper, false)),
            inbound: hosts
                .iter()
                .zip(&hellos)
                .map(|(h, hl)| Inbound {
                    peer: h.clone(),
                    set_size: hl.set_size,
                    chunk: hl.chunk_size,
                    send_back: false,
                    keep_keys: true,
                })
                .collect(),
            keys: Some(KeysInbound {
                peer: helper.clone(),
                count: self.order.len() as u64,
                chunk: helper_chunk,
            }),
            blind_first: true,
            notify_on_result: hosts.clone(),
        };
        let out = engine.run::<G>(ctx, &key)?;

        // Keys in every set, sorted: the agreed order.
        let mut common = out.keys;
        common.par_sort_unstable();
        common.dedup();
        let mut host_tables: Vec<Vec<(Key, u32)>> = Vec::with_capacity(hosts.len());
        for keys in out.inbound_keys {
            let table = sorted_with_positions(keys);
            common = retain_present(common, &table);
            host_tables.push(table);
        }
        for (h, table) in hosts.iter().zip(&host_tables) {
            if self.res.receivers.includes(h) {
                let positions = Positions(positions_of(&common, table));
                ctx.send(h, TAG_RESULT, &FromLeader::Result(positions))?;
            }
        }
        drop(host_tables);
        let rows = if self.res.receivers.includes(&me) {
            self.locate_own(helper, &common).map(Some)
        } else {
            Ok(None)
        };
        for h in &hosts {
            ctx.send(h, TAG_RESULT, &FromLeader::Done)?;
        }
        rows
    }

    /// The leader's rows for the intersection's keys, located by the helper.
    fn locate_own(&self, helper: &PartyId, common: &[Key]) -> Result<Vec<u32>, PsiError> {
        let ctx = self.ctx;
        ctx.send(
            helper,
            TAG_RESULT,
            &FromLeader::MapRequest(key_bytes(common)),
        )?;
        let Positions(positions) = ctx.recv(helper, TAG_MAP_REPLY)?;
        if positions.len() != common.len() {
            return Err(PsiError::protocol(
                helper,
                format!(
                    "answered {} positions for {} keys",
                    positions.len(),
                    common.len()
                ),
            ));
        }
        self.positions_to_rows(helper, &positions)
    }

    fn helper<G: EcdhGroup>(
        &self,
        leader: &PartyId,
        leader_size: u64,
        leader_chunk: u64,
    ) -> Result<Option<Vec<u32>>, PsiError> {
        let ctx = self.ctx;
        let me = ctx.me().clone();
        let seed = party_seed(self.keys, G::NAME, "np-hosts", &self.res.parties)?;
        for h in self
            .res
            .parties
            .iter()
            .filter(|p| **p != me && *p != leader)
        {
            ctx.send(h, TAG_HOST_KEY, &Bytes(seed.to_vec()))?;
        }
        let key = key_from_seed::<G>(&seed);
        let engine = Engine {
            own: Some(self.own_stream(leader, false)),
            inbound: vec![Inbound {
                peer: leader.clone(),
                set_size: leader_size,
                chunk: leader_chunk,
                send_back: false,
                keep_keys: true,
            }],
            keys: None,
            blind_first: false,
            notify_on_result: Vec::new(),
        };
        let mut out = engine.run::<G>(ctx, &key)?;
        let mut leader_keys = out.inbound_keys.pop().expect("one inbound stream");
        let table = sorted_with_positions(leader_keys.clone());
        // A fresh order, so the leader cannot tell which of its elements a key belongs to.
        leader_keys.shuffle(&mut shuffle_rng());
        let chunk = self.res.chunk_size as u64;
        for c in 0..chunk_count(leader_size, chunk) {
            let range = chunk_range(c, leader_size, chunk);
            ctx.send(
                leader,
                TAG_STREAM,
                &Stream::Keys {
                    chunk: c as u32,
                    keys: key_bytes(&leader_keys[range]),
                },
            )?;
        }
        drop(leader_keys);
        self.await_leader(leader, Some((&table, leader_size)))
    }

    /// Answers the leader's request for the positions (in the leader's sent order) of the
    /// keys in `request`.
    fn answer_map_request(
        &self,
        leader: &PartyId,
        table: &[(Key, u32)],
        leader_size: u64,
        request: &[u8],
    ) -> Result<(), PsiError> {
        let ctx = self.ctx;
        {
            if !request.len().is_multiple_of(crate::wire::KEY_BYTES)
                || (request.len() / crate::wire::KEY_BYTES) as u64 > leader_size
            {
                return Err(PsiError::protocol(leader, "malformed map request"));
            }
            let wanted = keys_from_bytes(
                leader,
                "map request",
                request,
                request.len() / crate::wire::KEY_BYTES,
            )?;
            let positions = wanted
                .iter()
                .map(|k| {
                    table
                        .binary_search_by(|(t, _)| t.cmp(k))
                        .map(|i| table[i].1)
                        .map_err(|_| {
                            PsiError::protocol(
                                leader,
                                "map request names a key of no element it sent",
                            )
                        })
                })
                .collect::<Result<Vec<u32>, _>>()?;
            ctx.send(leader, TAG_MAP_REPLY, &Positions(positions))?;
        }
        Ok(())
    }

    fn host<G: EcdhGroup>(
        &self,
        leader: &PartyId,
        helper: &PartyId,
    ) -> Result<Option<Vec<u32>>, PsiError> {
        let ctx = self.ctx;
        let Bytes(seed) = ctx.recv(helper, TAG_HOST_KEY)?;
        let seed: Seed = seed
            .try_into()
            .map_err(|_| PsiError::protocol(helper, "the hosts' key seed is not 32 bytes"))?;
        let key = key_from_seed::<G>(&seed);
        let engine = Engine {
            own: Some(self.own_stream(leader, false)),
            inbound: Vec::new(),
            keys: None,
            blind_first: true,
            notify_on_result: Vec::new(),
        };
        engine.run::<G>(ctx, &key)?;
        self.await_leader(leader, None)
    }

    /// A host after sending its set: waits for the leader's news until it is done. The
    /// helper passes its table of the leader's keys to answer a map request with.
    fn await_leader(
        &self,
        leader: &PartyId,
        helper_table: Option<(&[(Key, u32)], u64)>,
    ) -> Result<Option<Vec<u32>>, PsiError> {
        let i_receive = self.res.receivers.includes(self.ctx.me());
        let mut rows = None;
        let mut answered = false;
        loop {
            match self.ctx.recv::<FromLeader>(leader, TAG_RESULT)? {
                FromLeader::Working => {}
                FromLeader::MapRequest(Bytes(request)) => match helper_table {
                    Some((table, size)) if !answered && self.res.receivers.includes(leader) => {
                        self.answer_map_request(leader, table, size, &request)?;
                        answered = true;
                    }
                    _ => return Err(PsiError::protocol(leader, "unexpected map request")),
                },
                FromLeader::Result(Positions(positions)) => {
                    if !i_receive || rows.is_some() {
                        return Err(PsiError::protocol(leader, "unexpected result"));
                    }
                    rows = Some(self.positions_to_rows(leader, &positions)?);
                }
                FromLeader::Done => break,
            }
        }
        if i_receive && rows.is_none() {
            return Err(PsiError::protocol(
                leader,
                "the leader finished without sending this party its result",
            ));
        }
        Ok(rows)
    }
}

/// Own entries `(key, index)` whose key is among `others`, in key order.
fn match_own_keys(mut own: Vec<(Key, u32)>, mut others: Vec<Key>) -> Vec<u32> {
    own.par_sort_unstable();
    others.par_sort_unstable();
    let mut matched = Vec::new();
    let mut j = 0;
    for (key, index) in own {
        while j < others.len() && others[j] < key {
            j += 1;
        }
        if j < others.len() && others[j] == key {
            matched.push(index);
        }
    }
    matched
}

fn sorted_with_positions(keys: Vec<Key>) -> Vec<(Key, u32)> {
    let mut table: Vec<(Key, u32)> = keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, i as u32))
        .collect();
    table.par_sort_unstable();
    table
}

/// The keys of sorted `keys` that appear in sorted `table`.
fn retain_present(keys: Vec<Key>, table: &[(Key, u32)]) -> Vec<Key> {
    let mut j = 0;
    keys.into_iter()
        .filter(|k| {
            while j < table.len() && table[j].0 < *k {
                j += 1;
            }
            j < table.len() && table[j].0 == *k
        })
        .collect()
}

/// For each of sorted `keys` (all present in `table`), its position in the table's sender order.
fn positions_of(keys: &[Key], table: &[(Key, u32)]) -> Vec<u32> {
    let mut j = 0;
    keys.iter()
        .filter_map(|k| {
            while j < table.len() && table[j].0 < *k {
                j += 1;
            }
            (j < table.len() && table[j].0 == *k).then(|| table[j].1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Receivers;
    use ferry_context::{LocalCluster, Role, Roster};

    /// The bank runs the protocol; the telco plays a broken peer that says hello correctly
    /// and then sends `stream`. Returns the bank's error.
    fn bank_error_against(stream: Vec<Stream>) -> String {
        bank_error_against_in(GroupKind::Ristretto255, stream)
    }

    /// [`bank_error_against`] with both parties in `group`.
    fn bank_error_against_in(group: GroupKind, stream: Vec<Stream>) -> String {
        let roster = Roster::of(&[("bank", Role::Guest), ("telco", Role::Host)]);
        let bank_ids: IdList = ["a", "b", "c"].into_iter().collect();
        let config = PsiConfig {
            group,
            ..PsiConfig::default()
        };
        let outcomes = LocalCluster::new(roster).run(|ctx| {
            if ctx.me().as_str() == "bank" {
                return intersect_ids(&ctx, &bank_ids, &config).map(|_| ());
            }
            let ctx = ctx.sub("psi");
            let bank: PartyId = "bank".parse().unwrap();
            let hello = Hello {
                version: PROTOCOL_VERSION,
                protocol: PROTOCOL_TWO_PARTY.into(),
                group: group.name().into(),
                receivers: Receivers::All,
                leader: None,
                key_arity: 0,
                set_size: 2,
                chunk_size: 2,
            };
            ctx.send(&bank, TAG_HELLO, &hello)?;
            let _: Hello = ctx.recv(&bank, TAG_HELLO)?;
            for m in &stream {
                ctx.send(&bank, TAG_STREAM, m)?;
            }
            // Keep the session open until the bank has given up.
            let _ = ctx.recv::<Stream>(&bank, "never");
            Ok(())
        });
        outcomes[0].result.clone().unwrap_err()
    }

    #[test]
    fn a_peer_sending_bad_elements_or_chunks_is_refused_by_name() {
        let valid = Ristretto255::blind(&Ristretto255::random_key(&mut rand::rng()), b"x");
        let two = |a: [u8; 32], b: [u8; 32]| Bytes([a, b].concat());
        let e = bank_error_against(vec![Stream::Blinded {
            chunk: 0,
            elements: two(valid, [0xff; 32]),
        }]);
        assert!(
            e.contains("party 'telco'")
                && e.contains("blinded chunk 0: element 1 is not a valid ristretto255 element"),
            "{e}"
        );
        let e = bank_error_against(vec![Stream::Blinded {
            chunk: 0,
            elements: Bytes(valid.to_vec()),
        }]);
        assert!(
            e.contains("32 bytes, expected 2 ristretto255 elements"),
            "{e}"
        );
        let e = bank_error_against(vec![Stream::Blinded {
            chunk: 3,
            elements: two(valid, valid),
        }]);
        assert!(
            e.contains("blinded chunk 3 arrived where chunk 0 was due"),
            "{e}"
        );
        let e = bank_error_against(vec![Stream::Keys {
            chunk: 0,
            keys: Bytes(vec![0; 32]),
        }]);
        assert!(e.contains("unexpected comparison keys"), "{e}");
    }

    #[test]
    fn a_gm_peer_sending_the_identity_or_an_off_curve_point_is_refused_with_the_reason() {
        let valid = Sm2Sm3::blind(&Sm2Sm3::random_key(&mut rand::rng()), b"x");
        let two = |a: [u8; 33], b: [u8; 33]| Bytes([a, b].concat());
        let e = bank_error_against_in(
            GroupKind::Sm2,
            vec![Stream::Blinded {
                chunk: 0,
                elements: two(valid, [0u8; 33]),
            }],
        );
        assert!(
            e.contains("party 'telco'")
                && e.contains(
                    "blinded chunk 0: element 1 is not a valid sm2 element (the identity point)"
                ),
            "{e}"
        );
        let mut off_curve = valid;
        off_curve[0] = 0x02;
        off_curve[1..].copy_from_slice(&[0xff; 32]); // x ≥ p
        let e = bank_error_against_in(
            GroupKind::Sm2,
            vec![Stream::Blinded {
                chunk: 0,
                elements: two(off_curve, valid),
            }],
        );
        assert!(
            e.contains("element 0 is not a valid sm2 element (not a point on the SM2 curve)"),
            "{e}"
        );
        // A Ristretto255-sized chunk is refused by length before any decoding.
        let e = bank_error_against_in(
            GroupKind::Sm2,
            vec![Stream::Blinded {
                chunk: 0,
                elements: Bytes(vec![7u8; 64]),
            }],
        );
        assert!(
            e.contains("64 bytes, expected 2 sm2 elements of 33 bytes"),
            "{e}"
        );
    }

    #[test]
    fn merge_helpers_agree_with_sets() {
        let own = vec![((5, 0), 50), ((1, 0), 10), ((3, 0), 30), ((9, 9), 99)];
        let others = vec![(3, 0), (9, 9), (4, 0), (3, 0)];
        assert_eq!(match_own_keys(own, others), [30, 99]);

        let table = sorted_with_positions(vec![(7, 0), (2, 0), (5, 0)]);
        assert_eq!(table, [((2, 0), 1), ((5, 0), 2), ((7, 0), 0)]);
        let kept = retain_present(vec![(1, 0), (2, 0), (7, 0), (8, 0)], &table);
        assert_eq!(kept, [(2, 0), (7, 0)]);
        assert_eq!(positions_of(&kept, &table), [1, 0]);
    }
}
