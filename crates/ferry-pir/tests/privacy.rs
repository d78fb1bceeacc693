//! What crosses the wire: the provider never receives an id, a hash of one, an OPRF value,
//! a tag or a bucket index; message sizes do not depend on which ids are asked or whether
//! they are present; the same id asked twice looks unrelated.

mod common;

use common::*;
use ferry_context::TranscriptEntry;
use ferry_pir::params::DELTA;
use ferry_pir::wire::{OprfRequest, Queries};
use ferry_pir::{PirParams, ProviderTable};
use sha2::{Digest, Sha256, Sha512};
use std::sync::Mutex;

const ROWS: usize = 2000;

fn rows() -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..ROWS)
        .map(|i| {
            (
                format!("+86-138{i:08}-customer").into_bytes(),
                format!("score={:04}|segment=A{}", i * 7 % 1000, i % 9).into_bytes(),
            )
        })
        .collect()
}

/// 250 buckets: a bucket index guessed at random is right with probability 1/250.
fn table() -> ProviderTable {
    let params = PirParams {
        value_len: 24,
        bucket_load: 8,
        ..PirParams::default()
    };
    build(&rows(), &params, 100)
}

fn present(i: usize) -> Vec<u8> {
    format!("+86-138{i:08}-customer").into_bytes()
}

fn absent(i: usize) -> Vec<u8> {
    format!("+86-139{i:08}-not-a-customer").into_bytes()
}

fn sizes(entries: &[TranscriptEntry]) -> Vec<(String, usize)> {
    entries.iter().map(|e| (e.tag.clone(), e.bytes)).collect()
}

/// Needles that must never appear in what the provider receives, for one id.
fn needles(table: &ProviderTable, id: &[u8]) -> Vec<(String, Vec<u8>)> {
    let loc = table.locate(id);
    vec![
        ("the id".into(), id.to_vec()),
        ("SHA-256(id)".into(), Sha256::digest(id).to_vec()),
        ("SHA-512(id)".into(), Sha512::digest(id)[..32].to_vec()),
        ("H(id)".into(), loc.hashed.to_vec()),
        ("k·H(id)".into(), loc.evaluated.to_vec()),
        ("F_k(id)".into(), loc.oprf.to_vec()),
        ("the tag".into(), loc.tag.to_vec()),
    ]
}

#[test]
fn the_provider_receives_no_id_hash_oprf_value_or_tag() {
    let table = table();
    let ids: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                present(i * 37)
            } else {
                absent(i)
            }
        })
        .collect();
    let s = session(&table, &ids, &Mutex::new(None), 101);
    assert_eq!(s.queried.report.found, 10);
    let received = s.provider_received();
    assert!(!received.is_empty());
    for id in &ids {
        for (what, needle) in needles(&table, id) {
            for e in &received {
                assert!(
                    !e.payload_contains(&needle),
                    "{what} of {} found in '{}'",
                    String::from_utf8_lossy(id),
                    e.tag
                );
            }
        }
    }
    // Positive control: the search does find what is there.
    let oprf = received
        .iter()
        .find(|e| e.tag == "pir/oprf")
        .expect("an OPRF request");
    let request: OprfRequest = oprf.decode().expect("decodes");
    assert!(oprf.payload_contains(&request.elements[32..64]));
}

/// Index of the entry closest to Δ: what a query vector without its LWE mask would give away.
fn naive_guess(v: &[u32]) -> usize {
    (0..v.len())
        .min_by_key(|&j| v[j].wrapping_sub(DELTA).min(DELTA.wrapping_sub(v[j])))
        .unwrap()
}

#[test]
fn query_vectors_do_not_point_at_the_bucket() {
    let table = table();
    let m = table.layout().buckets as usize;
    assert_eq!(m, 250);
    let ids: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            if i % 2 == 0 {
                present(i * 11)
            } else {
                absent(i)
            }
        })
        .collect();
    let s = session(&table, &ids, &Mutex::new(None), 102);
    let mut vectors: Vec<Vec<u32>> = Vec::new();
    for e in s
        .provider_received()
        .iter()
        .filter(|e| e.tag == "pir/query")
    {
        let q: Queries = e.decode().expect("decodes");
        for v in q.vectors.chunks(m * 4) {
            vectors.push(
                v.chunks(4)
                    .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            );
        }
    }
    assert_eq!(vectors.len(), ids.len());

    // The detector works on an unmasked query (positive control)...
    let mut leaky = vec![3u32; m];
    leaky[17] = DELTA.wrapping_add(5);
    assert_eq!(naive_guess(&leaky), 17);
    // ...and on the real ones it hits the bucket no more often than chance (40/250 expected
    // 0.16 hits).
    let hits = vectors
        .iter()
        .zip(&ids)
        .filter(|(v, id)| naive_guess(v) == table.locate(id).bucket as usize)
        .count();
    assert!(
        hits <= 2,
        "{hits} of {} queries point at their bucket",
        ids.len()
    );
    // The bucket's entry looks like any other: the top bytes of all entries are uniform
    // (chi-square over 256 bins, 10 000 samples: mean 255, sd 23).
    let mut bins = [0u32; 256];
    for v in &vectors {
        for x in v {
            bins[(x >> 24) as usize] += 1;
        }
    }
    let n = (vectors.len() * m) as f64;
    let chi2: f64 = bins
        .iter()
        .map(|&c| (c as f64 - n / 256.0).powi(2) / (n / 256.0))
        .sum();
    assert!(chi2 < 370.0, "chi-square {chi2}");
}

#[test]
fn message_sizes_do_not_depend_on_the_ids_or_on_presence() {
    let table = table();
    let cache = Mutex::new(None);
    // Warm the cache so that no session below downloads the hint.
    session(&table, &[absent(0)], &cache, 103);
    let batches: Vec<Vec<Vec<u8>>> = vec![
        vec![present(5)],
        vec![absent(5)],
        vec![present(1999)],
        vec![Vec::new()],
        vec![vec![0xab; 300]],
    ];
    let sessions: Vec<_> = batches
        .iter()
        .enumerate()
        .map(|(i, ids)| session(&table, ids, &cache, 104 + i as u64))
        .collect();
    let first = &sessions[0];
    for s in &sessions[1..] {
        assert_eq!(
            sizes(&s.provider_received()),
            sizes(&first.provider_received())
        );
        assert_eq!(
            sizes(&s.querier_received()),
            sizes(&first.querier_received())
        );
    }
    assert!(sessions[0].queried.values[0].is_some() && sessions[1].queried.values[0].is_none());

    // Batches of three: all present, mixed, all absent, with a duplicate.
    let triples = [
        vec![present(1), present(2), present(3)],
        vec![present(1), absent(2), present(1)],
        vec![absent(1), absent(2), absent(3)],
    ];
    let sessions: Vec<_> = triples
        .iter()
        .enumerate()
        .map(|(i, ids)| session(&table, ids, &cache, 110 + i as u64))
        .collect();
    for s in &sessions[1..] {
        assert_eq!(
            sizes(&s.provider_received()),
            sizes(&sessions[0].provider_received())
        );
        assert_eq!(
            sizes(&s.querier_received()),
            sizes(&sessions[0].querier_received())
        );
    }
}

#[test]
fn the_same_id_asked_twice_looks_unrelated() {
    let table = table();
    let cache = Mutex::new(None);
    let id = vec![present(42)];
    let a = session(&table, &id, &cache, 120);
    let b = session(&table, &id, &cache, 121);
    let get = |s: &Session, tag: &str| -> Vec<u8> {
        s.provider_received()
            .into_iter()
            .find(|e| e.tag == tag)
            .and_then(|e| e.payload)
            .unwrap()
    };
    let (oa, ob) = (get(&a, "pir/oprf"), get(&b, "pir/oprf"));
    let (ra, rb): (OprfRequest, OprfRequest) = (bincode_decode(&oa), bincode_decode(&ob));
    assert_ne!(ra.elements, rb.elements, "fresh blinding per session");
    let (qa, qb): (Queries, Queries) = (
        bincode_decode(&get(&a, "pir/query")),
        bincode_decode(&get(&b, "pir/query")),
    );
    let same = qa
        .vectors
        .chunks(4)
        .zip(qb.vectors.chunks(4))
        .filter(|(x, y)| x == y)
        .count();
    assert!(same <= 1, "{same} equal query entries");
    // Within one batch, duplicates are blinded independently too.
    let s = session(&table, &[present(42), present(42)], &cache, 122);
    let r: OprfRequest = bincode_decode(&get(&s, "pir/oprf"));
    assert_ne!(r.elements[..32], r.elements[32..]);
    assert_eq!(s.queried.values[0], s.queried.values[1]);
}

#[test]
fn the_querier_receives_no_other_row_in_the_clear() {
    let table = table();
    let rows = rows();
    let s = session(&table, &[present(7)], &Mutex::new(None), 130);
    let payloads: Vec<Vec<u8>> = s
        .querier_received()
        .into_iter()
        .filter_map(|e| e.payload)
        .collect();
    let others: Vec<&Vec<u8>> = rows
        .iter()
        .filter(|(k, _)| *k != present(7))
        .flat_map(|(k, v)| [k, v])
        .collect();
    // Every window of every needle length, once (the hint is megabytes).
    let mut lengths: Vec<usize> = others.iter().map(|n| n.len()).collect();
    lengths.sort_unstable();
    lengths.dedup();
    for len in lengths {
        let windows: std::collections::HashSet<&[u8]> =
            payloads.iter().flat_map(|p| p.windows(len)).collect();
        for needle in others.iter().filter(|n| n.len() == len) {
            assert!(
                !windows.contains(needle.as_slice()),
                "another row crossed in the clear"
            );
        }
    }
    // The asked row's value came back (decrypted by the querier; it is not in the clear).
    assert_eq!(s.queried.values[0].as_deref(), Some(rows[7].1.as_slice()));
}

fn bincode_decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    let entry = TranscriptEntry {
        direction: ferry_context::Direction::Received,
        peer: PROVIDER.parse().unwrap(),
        tag: String::new(),
        payload_type: "",
        bytes: bytes.len(),
        payload: Some(bytes.to_vec()),
    };
    entry.decode().expect("decodes")
}
