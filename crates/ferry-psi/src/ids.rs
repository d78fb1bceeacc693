//! Compact identifier lists, de-duplication, and the benchmark's synthetic identifiers.

use rayon::prelude::*;
use std::hash::BuildHasher;

/// Identifiers stored back to back in one buffer (no allocation per id): ten million 18-byte
/// ids take about 260 MB instead of about 560 MB as `Vec<Vec<u8>>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdList {
    bytes: Vec<u8>,
    ends: Vec<u64>,
}

impl IdList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `ids` identifiers totalling `bytes` bytes.
    pub fn with_capacity(ids: usize, bytes: usize) -> Self {
        IdList {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(ids),
        }
    }

    pub fn push(&mut self, id: &[u8]) {
        self.bytes.extend_from_slice(id);
        self.ends.push(self.bytes.len() as u64);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`-th identifier.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 8
    }
}

impl<T: AsRef<[u8]>> FromIterator<T> for IdList {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut list = IdList::new();
        for id in iter {
            list.push(id.as_ref());
        }
        list
    }
}

/// Indices of the first occurrence of every distinct identifier, in input order.
///
/// Parallel, without a shared hash set: every id is hashed (SipHash under a fresh random key,
/// so no input file can arrange collisions), the (hash, index) pairs are sorted, and within
/// each run of equal hashes the ids are compared byte for byte against the run's distinct ids
/// so far (one, unless two different ids share a 64-bit hash), keeping each one's smallest
/// index. A million ids take a few tens of milliseconds instead of a single-threaded pass.
pub(crate) fn first_occurrences(ids: &IdList) -> Vec<u32> {
    let state = std::collections::hash_map::RandomState::new();
    let mut keyed: Vec<(u64, u32)> = (0..ids.len())
        .into_par_iter()
        .map(|i| (state.hash_one(ids.get(i)), i as u32))
        .collect();
    keyed.par_sort_unstable();
    let mut keep = Vec::with_capacity(ids.len());
    let mut distinct: Vec<&[u8]> = Vec::new();
    for run in keyed.chunk_by(|a, b| a.0 == b.0) {
        if let [(_, i)] = run {
            keep.push(*i);
            continue;
        }
        // Sorted by index within the run, so the first of each distinct id is its first
        // occurrence.
        distinct.clear();
        for &(_, i) in run {
            let id = ids.get(i as usize);
            if !distinct.contains(&id) {
                distinct.push(id);
                keep.push(i);
            }
        }
    }
    keep.par_sort_unstable();
    keep
}

/// A bijection on u64 (the SplitMix64 finaliser): distinct inputs give distinct outputs, so
/// synthetic ids never collide by accident.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Number of ids every party shares in [`synthetic_ids`].
pub fn synthetic_overlap_count(size: usize, overlap: f64) -> usize {
    ((size as f64) * overlap.clamp(0.0, 1.0)).round() as usize
}

/// `size` distinct 18-byte identifiers for party number `party` (0, 1, 2, ...), of which the
/// first [`synthetic_overlap_count`]`(size, overlap)` are shared by every party generated with
/// the same `seed` and `size`, and the rest belong to this party only. So the intersection of
/// any set of parties is exactly the shared part. Deterministic in `(size, overlap, seed,
/// party)`; ids look like `00` + 16 hex digits (shared) or `NN` + 16 hex digits (party `NN-1`).
pub fn synthetic_ids(size: usize, overlap: f64, seed: u64, party: usize) -> IdList {
    let shared = synthetic_overlap_count(size, overlap);
    let mut list = IdList::with_capacity(size, size * 18);
    let shared_base = mix(seed ^ 0x5eed_0000_0000_0001);
    let own_base = mix(seed ^ 0x5eed_0000_0000_0002 ^ ((party as u64 + 1) << 40));
    let tag = (party % 99) + 1;
    let mut buf = String::with_capacity(18);
    for i in 0..size as u64 {
        buf.clear();
        use std::fmt::Write;
        if (i as usize) < shared {
            let _ = write!(buf, "00{:016x}", mix(shared_base.wrapping_add(i)));
        } else {
            let _ = write!(buf, "{tag:02}{:016x}", mix(own_base.wrapping_add(i)));
        }
        list.push(buf.as_bytes());
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn id_list_round_trips_including_empty_ids() {
        let list: IdList = ["abc", "", "de"].into_iter().collect();
        assert_eq!(list.len(), 3);
        assert_eq!(list.get(0), b"abc");
        assert_eq!(list.get(1), b"");
        assert_eq!(list.get(2), b"de");
        assert_eq!(list.iter().collect::<Vec<_>>(), [&b"abc"[..], b"", b"de"]);
    }

    #[test]
    fn first_occurrences_keep_input_order() {
        let list: IdList = ["b", "a", "b", "c", "a", "b"].into_iter().collect();
        assert_eq!(first_occurrences(&list), [0, 1, 3]);
        assert!(first_occurrences(&IdList::new()).is_empty());
        // Many copies of one id and ids that are prefixes of each other.
        let mut list: IdList = std::iter::repeat_n("x", 10_000).collect();
        for id in ["", "xx", "x", "", "y", "xx"] {
            list.push(id.as_bytes());
        }
        assert_eq!(first_occurrences(&list), [0, 10_000, 10_001, 10_004]);
    }

    #[test]
    fn synthetic_ids_share_exactly_the_overlap() {
        let a = synthetic_ids(1000, 0.3, 7, 0);
        let b = synthetic_ids(1000, 0.3, 7, 1);
        let c = synthetic_ids(1000, 0.3, 7, 2);
        let set = |l: &IdList| l.iter().map(<[u8]>::to_vec).collect::<HashSet<_>>();
        let (sa, sb, sc) = (set(&a), set(&b), set(&c));
        assert_eq!(sa.len(), 1000);
        assert_eq!(sa.intersection(&sb).count(), 300);
        assert_eq!(sb.intersection(&sc).count(), 300);
        assert_eq!(a.get(0).len(), 18);
        assert_eq!(synthetic_ids(1000, 0.3, 7, 0), a);
        assert_ne!(synthetic_ids(1000, 0.3, 8, 0), a);
    }
}
