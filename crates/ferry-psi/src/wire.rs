//! Messages the PSI protocols exchange, and the compact forms of group elements.

use crate::{PsiError, Receivers};
use ferry_context::PartyId;
use ferry_crypto::ecdh::EcdhGroup;
use serde::{Deserialize, Serialize};

/// Version of the PSI messages; parties must agree.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest set a party may bring (indices are `u32`).
pub const MAX_SET_SIZE: u64 = u32::MAX as u64;

/// Tags (under the `psi` namespace of the context).
pub(crate) const TAG_HELLO: &str = "hello";
pub(crate) const TAG_START: &str = "start";
pub(crate) const TAG_STREAM: &str = "stream";
pub(crate) const TAG_HOST_KEY: &str = "host-key";
pub(crate) const TAG_RESULT: &str = "result";
pub(crate) const TAG_MAP_REPLY: &str = "map-reply";

/// Opening message: everything the parties must agree on, plus the sender's set size (which
/// the protocol reveals anyway) and chunk size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub version: u32,
    pub protocol: String,
    pub group: String,
    pub receivers: Receivers,
    pub leader: Option<PartyId>,
    /// Number of key columns (0 when the caller passes raw identifiers).
    pub key_arity: u32,
    pub set_size: u64,
    pub chunk_size: u64,
}

impl Hello {
    /// Checks a peer's hello against ours and its announced sizes against the limits.
    pub fn check_peer(&self, peer: &PartyId, theirs: &Hello) -> Result<(), PsiError> {
        let mismatch = |what: &str, ours: String, them: String| {
            Err(PsiError::Mismatch {
                peer: peer.clone(),
                reason: format!("{what}: this party uses {ours}, '{peer}' uses {them}"),
            })
        };
        if theirs.version != self.version {
            return mismatch(
                "PSI message version",
                self.version.to_string(),
                theirs.version.to_string(),
            );
        }
        // The suite first: under different suites the parties may also run different
        // protocols (KKRT exists only under the default suite), and the suite is the cause.
        let suite_of = |group: &str| {
            // KKRT names its base-OT group with the cipher ("ristretto255+aes128").
            let base = group.split('+').next().unwrap_or(group);
            ferry_crypto::Suite::of_psi_group(base)
        };
        if let (Some(ours), Some(them)) = (suite_of(&self.group), suite_of(&theirs.group))
            && ours != them
        {
            return mismatch(
                "crypto suite",
                format!("'{ours}' (group {})", self.group),
                format!(
                    "'{them}' (group {}); set the same suite on both sides",
                    theirs.group
                ),
            );
        }
        if theirs.protocol != self.protocol {
            return mismatch("protocol", self.protocol.clone(), theirs.protocol.clone());
        }
        if theirs.group != self.group {
            return mismatch("group", self.group.clone(), theirs.group.clone());
        }
        if theirs.receivers != self.receivers {
            return mismatch(
                "result receivers",
                self.receivers.to_string(),
                theirs.receivers.to_string(),
            );
        }
        if theirs.leader != self.leader {
            let show = |l: &Option<PartyId>| l.as_ref().map_or("none".into(), |p| p.to_string());
            return mismatch("leader", show(&self.leader), show(&theirs.leader));
        }
        if theirs.key_arity != self.key_arity {
            return mismatch(
                "number of key columns",
                self.key_arity.to_string(),
                theirs.key_arity.to_string(),
            );
        }
        if theirs.set_size > MAX_SET_SIZE {
            return Err(PsiError::protocol(
                peer,
                format!(
                    "announced {} ids, above the limit of {MAX_SET_SIZE}",
                    theirs.set_size
                ),
            ));
        }
        if theirs.chunk_size == 0 || theirs.chunk_size > crate::MAX_CHUNK_SIZE as u64 {
            return Err(PsiError::protocol(
                peer,
                format!(
                    "announced chunk size {} is outside 1..={}",
                    theirs.chunk_size,
                    crate::MAX_CHUNK_SIZE
                ),
            ));
        }
        Ok(())
    }
}

/// The leader's answer to the hosts' hellos (n-party protocol).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Start {
    /// Go ahead. To the helper only: the leader's set and chunk sizes.
    Go { leader_set: Option<(u64, u64)> },
    /// The leader refused the run (a configuration mismatch it names).
    Refused { reason: String },
}

/// Element streams. Every stream from one sender to one receiver goes under one tag, so it
/// arrives in order; chunk numbers are checked anyway.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Stream {
    /// Chunk of the sender's own set, blinded with its key, in its shuffled order.
    Blinded { chunk: u32, elements: Bytes },
    /// The receiver's chunk `chunk` blinded once more with the sender's key, same order.
    Reblinded { chunk: u32, elements: Bytes },
    /// Comparison keys ([`fold`]) of the leader's set blinded by all keys, in the helper's
    /// fresh shuffled order (n-party).
    Keys { chunk: u32, keys: Bytes },
    /// The sender is still computing: sent every few seconds, so a receiver waiting for the
    /// next chunk through a long pause (the helper's keys come only after it has re-blinded
    /// all of the leader's set) does not time out. Not counted as a chunk.
    Working,
}

/// Intersection delivered by the leader to a host: positions in the host's sent order,
/// listed in the agreed output order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Positions(pub Vec<u32>);

/// What the leader sends a host after the host has sent its set, on one tag so a host
/// waiting for its result keeps hearing from the leader while the leader still works.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum FromLeader {
    /// Still computing (sent every few seconds so the host's receive does not time out).
    Working,
    /// To the helper, when the leader receives the result: the intersection's keys, whose
    /// positions in the leader's sent order only the helper can tell.
    MapRequest(Bytes),
    /// To a receiving host: its positions in the intersection.
    Result(Positions),
    /// The run is over.
    Done,
}

/// Byte strings travel as one blob (see [`ferry_context::Blob`]).
pub(crate) use ferry_context::Blob as Bytes;

/// A 128-bit comparison key of an element blinded by every party's key.
///
/// Comparing 16 bytes instead of whole elements halves the memory of the matching step. The
/// key XOR-folds the canonical encoding into 16 bytes; for pseudo-random elements two distinct
/// ones share a key with probability about 2^-126, so among `n_a · n_b` pairs a false match has
/// probability below `n_a · n_b · 2^-126` (below 2^-79 at 10^7 × 10^7).
pub(crate) type Key = (u64, u64);

pub(crate) const KEY_BYTES: usize = 16;

pub(crate) fn fold(element: &[u8]) -> Key {
    let mut acc = [0u8; KEY_BYTES];
    for block in element.chunks(KEY_BYTES) {
        for (a, b) in acc.iter_mut().zip(block) {
            *a ^= b;
        }
    }
    let (lo, hi) = acc.split_at(8);
    (
        u64::from_le_bytes(lo.try_into().expect("8 bytes")),
        u64::from_le_bytes(hi.try_into().expect("8 bytes")),
    )
}

pub(crate) fn key_bytes(keys: &[Key]) -> Bytes {
    let mut out = Vec::with_capacity(keys.len() * KEY_BYTES);
    for (lo, hi) in keys {
        out.extend_from_slice(&lo.to_le_bytes());
        out.extend_from_slice(&hi.to_le_bytes());
    }
    Bytes(out)
}

/// Keys from a peer's message, which must hold exactly `expected` keys.
pub(crate) fn keys_from_bytes(
    peer: &PartyId,
    what: &str,
    bytes: &[u8],
    expected: usize,
) -> Result<Vec<Key>, PsiError> {
    if bytes.len() != expected * KEY_BYTES {
        return Err(PsiError::protocol(
            peer,
            format!(
                "{what}: {} bytes, expected {expected} keys of {KEY_BYTES} bytes",
                bytes.len()
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(KEY_BYTES)
        .map(|c| {
            let (lo, hi) = c.split_at(8);
            (
                u64::from_le_bytes(lo.try_into().expect("8 bytes")),
                u64::from_le_bytes(hi.try_into().expect("8 bytes")),
            )
        })
        .collect())
}

pub(crate) fn element_bytes<G: EcdhGroup>(elements: &[G::Element]) -> Bytes {
    let mut out = Vec::with_capacity(elements.len() * G::ELEMENT_BYTES);
    for e in elements {
        out.extend_from_slice(e.as_ref());
    }
    Bytes(out)
}

/// Elements from a peer's message, which must hold exactly `expected` of them (whether they
/// are group elements is checked when they are multiplied).
pub(crate) fn elements_from_bytes<G: EcdhGroup>(
    peer: &PartyId,
    what: &str,
    bytes: &[u8],
    expected: usize,
) -> Result<Vec<G::Element>, PsiError> {
    if bytes.len() != expected * G::ELEMENT_BYTES {
        return Err(PsiError::protocol(
            peer,
            format!(
                "{what}: {} bytes, expected {expected} {} elements of {} bytes",
                bytes.len(),
                G::NAME,
                G::ELEMENT_BYTES
            ),
        ));
    }
    bytes
        .chunks_exact(G::ELEMENT_BYTES)
        .enumerate()
        .map(|(i, c)| {
            G::element_from_bytes(c).ok_or_else(|| {
                PsiError::protocol(peer, format!("{what}: element {i} has a bad length"))
            })
        })
        .collect()
}

/// Number of chunks of `chunk` elements that `n` elements make.
pub(crate) fn chunk_count(n: u64, chunk: u64) -> u64 {
    n.div_ceil(chunk)
}

/// Element positions of chunk `c`.
pub(crate) fn chunk_range(c: u64, n: u64, chunk: u64) -> std::ops::Range<usize> {
    let start = c * chunk;
    start as usize..(start + chunk).min(n) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use bincode_like::*;

    /// The context's codec, to check the wire form of `Bytes`.
    mod bincode_like {
        pub fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned + Sync>(
            v: &T,
        ) -> (usize, T) {
            use ferry_context::{LocalCluster, Role, Roster};
            let outcomes = LocalCluster::new(Roster::of(&[("a", Role::Guest), ("b", Role::Host)]))
                .capture_transcripts()
                .run(|ctx| -> Result<(), ferry_context::FederationError> {
                    if ctx.me().as_str() == "a" {
                        ctx.send(&"b".parse().unwrap(), "t", v)
                    } else {
                        Ok(())
                    }
                });
            let sent = outcomes[0].transcript.as_ref().unwrap().sent();
            (sent[0].bytes, sent[0].decode::<T>().unwrap())
        }
    }

    #[test]
    fn bytes_go_as_one_blob() {
        let (size, back) = roundtrip(&Bytes(vec![7u8; 1000]));
        assert_eq!(back, Bytes(vec![7u8; 1000]));
        assert!(size <= 1003, "{size}");
    }

    #[test]
    fn fold_and_keys_round_trip() {
        let mut e = [0u8; 32];
        e[0] = 1;
        e[16] = 3;
        e[31] = 0x80;
        assert_eq!(fold(&e), (2, 0x80 << 56));
        let keys = vec![(1, 2), (u64::MAX, 0)];
        let peer: PartyId = "p".parse().unwrap();
        assert_eq!(
            keys_from_bytes(&peer, "t", &key_bytes(&keys).0, 2).unwrap(),
            keys
        );
        assert!(keys_from_bytes(&peer, "t", &key_bytes(&keys).0, 3).is_err());
    }

    #[test]
    fn chunks_cover_the_set() {
        assert_eq!(chunk_count(0, 4), 0);
        assert_eq!(chunk_count(9, 4), 3);
        assert_eq!(chunk_range(2, 9, 4), 8..9);
    }
}
