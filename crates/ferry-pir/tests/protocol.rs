//! Keyword PIR end to end, in-process: results against a plain HashMap lookup, composite
//! keys, every byte value, empty tables, refreshed tables, hint caching, stored tables.

mod common;

use common::*;
use ferry_pir::{PirParams, ProviderTable, TableLayout, key_of};
use rand::{Rng, RngExt};
use std::collections::HashMap;
use std::sync::Mutex;

/// `n` rows with distinct random keys and values of random length up to `value_len`.
fn random_rows(seed: u64, n: usize, value_len: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut r = rng(seed);
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    while rows.len() < n {
        let key = format!("1{:010}", r.random_range(0..10_000_000_000u64)).into_bytes();
        if !seen.insert(key.clone()) {
            continue;
        }
        let len = r.random_range(0..=value_len);
        let mut value = vec![0u8; len];
        r.fill_bytes(&mut value);
        rows.push((key, value));
    }
    rows
}

fn check_against_map(rows: &[(Vec<u8>, Vec<u8>)], ids: &[Vec<u8>], got: &[Option<Vec<u8>>]) {
    let map: HashMap<&[u8], &[u8]> = rows
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    assert_eq!(got.len(), ids.len());
    for (id, value) in ids.iter().zip(got) {
        assert_eq!(
            value.as_deref(),
            map.get(id.as_slice()).copied(),
            "id {}",
            String::from_utf8_lossy(id)
        );
    }
}

#[test]
fn matches_a_hashmap_lookup_for_present_absent_and_duplicate_ids() {
    let rows = random_rows(1, 400, 24);
    let params = PirParams::with_value_len(24);
    let table = build(&rows, &params, 2);
    let mut ids: Vec<Vec<u8>> = rows.iter().step_by(13).map(|(k, _)| k.clone()).collect();
    ids.extend((0..25).map(|i| format!("absent-{i}").into_bytes()));
    ids.push(rows[0].0.clone()); // duplicate of a present id
    ids.push(b"absent-3".to_vec()); // duplicate of an absent id
    ids.push(Vec::new()); // the empty id
    let s = session(&table, &ids, &Mutex::new(None), 3);
    check_against_map(&rows, &ids, &s.queried.values);
    let present = ids
        .iter()
        .filter(|id| rows.iter().any(|(k, _)| k == *id))
        .count() as u64;
    assert_eq!(s.queried.report.found, present);
    assert_eq!(s.queried.report.table_rows, 400);
    assert_eq!(s.served.ids, ids.len() as u64);
    assert!(s.served.hint_sent && s.queried.report.hint_downloaded);
}

#[test]
fn many_buckets_and_several_query_messages() {
    // 3000 rows at 16 per bucket: 188 buckets; 150 ids need 3 query messages of 64.
    let rows = random_rows(4, 3000, 16);
    let params = PirParams {
        value_len: 16,
        bucket_load: 16,
        ..PirParams::default()
    };
    let table = build(&rows, &params, 5);
    assert_eq!(table.layout().buckets, 188);
    let mut r = rng(6);
    let ids: Vec<Vec<u8>> = (0..150)
        .map(|i| {
            if i % 3 == 0 {
                format!("nope-{i}").into_bytes()
            } else {
                rows[r.random_range(0..rows.len())].0.clone()
            }
        })
        .collect();
    let got = lookup(&table, &ids, 7);
    check_against_map(&rows, &ids, &got);
}

#[test]
fn composite_keys_are_unambiguous() {
    let rows = vec![
        (key_of(&["a", "bc"]), b"first".to_vec()),
        (key_of(&["ab", "c"]), b"second".to_vec()),
        (key_of(&["id", "110101199001011234"]), b"third".to_vec()),
    ];
    let table = build(&rows, &PirParams::with_value_len(8), 8);
    let ids = vec![
        key_of(&["ab", "c"]),
        key_of(&["a", "bc"]),
        key_of(&["a", "b", "c"]),
        key_of(&["abc"]),
        key_of(&["id", "110101199001011234"]),
        b"abc".to_vec(),
    ];
    let got = lookup(&table, &ids, 9);
    assert_eq!(
        got,
        vec![
            Some(b"second".to_vec()),
            Some(b"first".to_vec()),
            None,
            None,
            Some(b"third".to_vec()),
            None
        ]
    );
}

#[test]
fn values_with_every_byte_value_and_every_length_round_trip() {
    let all: Vec<u8> = (0..=255u8).collect();
    let mut rows: Vec<(Vec<u8>, Vec<u8>)> = (0..=255u8)
        .map(|i| {
            let mut v = all.clone();
            v.rotate_left(i as usize);
            (vec![i, 0, 255 - i], v)
        })
        .collect();
    rows.push((b"empty".to_vec(), Vec::new()));
    rows.push((b"zeros".to_vec(), vec![0; 256]));
    rows.push((b"short".to_vec(), vec![0, 255, 0]));
    let table = build(&rows, &PirParams::with_value_len(256), 10);
    let ids: Vec<Vec<u8>> = rows.iter().map(|(k, _)| k.clone()).collect();
    let got = lookup(&table, &ids, 11);
    check_against_map(&rows, &ids, &got);
    assert_eq!(
        got[256],
        Some(Vec::new()),
        "an empty value is present, not absent"
    );
}

#[test]
fn membership_only_tables_have_empty_values() {
    let rows: Vec<(Vec<u8>, Vec<u8>)> = (0..50)
        .map(|i| (format!("m{i}").into_bytes(), Vec::new()))
        .collect();
    let table = build(&rows, &PirParams::with_value_len(0), 12);
    let got = lookup(&table, &[b"m7".to_vec(), b"m70".to_vec()], 13);
    assert_eq!(got, vec![Some(Vec::new()), None]);
}

#[test]
fn an_empty_table_answers_none_and_an_empty_batch_nothing() {
    let empty: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let table = build(&empty, &PirParams::default(), 14);
    assert!(table.is_empty());
    assert_eq!(table.layout().buckets, 1);
    let got = lookup(&table, &[b"x".to_vec(), Vec::new()], 15);
    assert_eq!(got, vec![None, None]);

    let full = build(&random_rows(16, 20, 8), &PirParams::with_value_len(8), 17);
    let s = session(&full, &[], &Mutex::new(None), 18);
    assert!(s.queried.values.is_empty());
    assert!(!s.served.hint_sent, "no hint for a session without ids");
    assert_eq!(s.queried.report.table_rows, 20);
}

#[test]
fn the_hint_is_downloaded_once_per_table_version() {
    let rows = random_rows(19, 200, 8);
    let params = PirParams::with_value_len(8);
    let table = build(&rows, &params, 20);
    let cache = Mutex::new(None);
    let ids = vec![rows[5].0.clone(), b"nope".to_vec()];
    let first = session(&table, &ids, &cache, 21);
    let second = session(&table, &ids, &cache, 22);
    check_against_map(&rows, &ids, &first.queried.values);
    check_against_map(&rows, &ids, &second.queried.values);
    assert!(first.queried.report.hint_downloaded);
    assert!(!second.queried.report.hint_downloaded && !second.served.hint_sent);
    let hint = table.layout().hint_bytes();
    assert!(first.queried.report.bytes_received > hint);
    assert!(second.queried.report.bytes_received < hint / 4);
    assert_eq!(
        cache.lock().unwrap().as_ref().map(|c| c.table_id()),
        Some(table.id())
    );
}

#[test]
fn a_refreshed_table_gives_new_values_and_a_new_id() {
    let rows = random_rows(23, 100, 11);
    let params = PirParams::with_value_len(12);
    let old = build(&rows, &params, 24);
    let new_rows: Vec<(Vec<u8>, Vec<u8>)> = rows
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().rev().chain(b"!").copied().collect()))
        .chain([(b"added".to_vec(), b"late".to_vec())])
        .collect();
    let new = build(&new_rows, &params, 25);
    assert_ne!(old.id(), new.id());
    // Same keys, fresh key: every OPRF output and bucket assignment changes.
    assert_ne!(old.locate(&rows[0].0).oprf, new.locate(&rows[0].0).oprf);

    let cache = Mutex::new(None);
    let ids = vec![rows[1].0.clone(), b"added".to_vec()];
    let before = session(&old, &ids, &cache, 26);
    check_against_map(&rows, &ids, &before.queried.values);
    // The querier still holds the old hint: the provider sends the new one.
    let after = session(&new, &ids, &cache, 27);
    assert!(after.served.hint_sent && after.queried.report.hint_downloaded);
    check_against_map(&new_rows, &ids, &after.queried.values);
    assert_eq!(after.queried.values[1], Some(b"late".to_vec()));
    assert_eq!(cache.lock().unwrap().as_ref().unwrap().table_id(), new.id());
}

#[test]
fn a_stored_table_loads_and_answers_the_same() {
    let rows = random_rows(28, 150, 20);
    let params = PirParams::with_value_len(20);
    let table = build(&rows, &params, 29);
    let bytes = table.to_bytes();
    let loaded = ProviderTable::from_bytes(&bytes, &params).unwrap();
    assert_eq!(loaded.id(), table.id());
    assert_eq!(loaded.layout(), table.layout());
    assert!(loaded.build_report().is_none() && table.build_report().is_some());
    assert_eq!(loaded.to_bytes(), bytes);
    // A querier that cached the hint from the original serves on with the loaded table.
    let cache = Mutex::new(None);
    let ids = vec![rows[3].0.clone(), rows[140].0.clone(), b"x".to_vec()];
    session(&table, &ids, &cache, 30);
    let s = session(&loaded, &ids, &cache, 31);
    assert!(!s.served.hint_sent);
    check_against_map(&rows, &ids, &s.queried.values);
}

#[test]
fn the_same_seeds_give_the_same_table_and_transcript_sizes() {
    let rows = random_rows(32, 60, 8);
    let params = PirParams::with_value_len(8);
    let a = build(&rows, &params, 33);
    let b = build(&rows, &params, 33);
    assert_eq!(a.id(), b.id());
    assert_eq!(a.to_bytes(), b.to_bytes());
    assert_ne!(a.id(), build(&rows, &params, 34).id());
    let layout = TableLayout::for_rows(60, &params).unwrap();
    assert_eq!(*a.layout(), layout);
}

#[test]
fn answers_match_a_plain_matrix_product() {
    // `answer` is (D − 128)·q over Z_2^32: check against the decrypted column for q = Δ·u_b
    // (noise-free, s = 0): the top byte of each answer entry is the bucket's byte minus 128.
    let rows = random_rows(35, 300, 10);
    let params = PirParams {
        value_len: 10,
        bucket_load: 8,
        ..PirParams::default()
    };
    let table = build(&rows, &params, 36);
    let m = table.layout().buckets as usize;
    let loc = table.locate(&rows[0].0);
    let mut q = vec![0u32; m];
    q[loc.bucket as usize] = ferry_pir::params::DELTA;
    let answer = table.answer(&q).unwrap();
    let column: Vec<u8> = answer
        .iter()
        .map(|x| ((x >> 24) as u8).wrapping_add(128))
        .collect();
    let entry_len = table.layout().entry_len();
    assert!(
        column.chunks(entry_len).any(|e| e[..8] == loc.tag),
        "the bucket holds the row's tag"
    );
    assert!(table.answer(&q[1..]).is_err());
}
