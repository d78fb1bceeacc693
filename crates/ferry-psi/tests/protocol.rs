//! PSI on identifier lists, in memory: results against a plain set intersection, receiver
//! modes, n parties, the agreed order, and what crosses the wire.

use ferry_context::{LocalCluster, PartyId, Role, Roster, TranscriptEntry};
use ferry_crypto::ecdh::Ristretto255;
use ferry_psi::{IdIntersection, IdList, KeyMode, PsiConfig, Receivers, intersect_ids};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256, Sha512};
use std::collections::{BTreeSet, HashSet};

const NAMES: [&str; 4] = ["bank", "telco", "shop", "insurer"];

fn roster(n: usize) -> Roster {
    let parties: Vec<(&str, Role)> = (0..n)
        .map(|i| (NAMES[i], if i == 0 { Role::Guest } else { Role::Host }))
        .collect();
    Roster::of(&parties)
}

fn party(i: usize) -> PartyId {
    NAMES[i].parse().unwrap()
}

/// Runs `intersect_ids` for every party with its own list and config.
fn run(sets: &[IdList], config: impl Fn(usize) -> PsiConfig + Sync) -> Vec<IdIntersection> {
    LocalCluster::new(roster(sets.len()))
        .run_ok(|ctx| {
            let i = NAMES.iter().position(|n| *n == ctx.me().as_str()).unwrap();
            intersect_ids(&ctx, &sets[i], &config(i))
        })
        .into_iter()
        .map(|o| o.unwrap())
        .collect()
}

fn ids(items: &[&str]) -> IdList {
    items.iter().collect()
}

fn distinct(list: &IdList) -> HashSet<Vec<u8>> {
    list.iter().map(<[u8]>::to_vec).collect()
}

fn expected(sets: &[IdList]) -> BTreeSet<Vec<u8>> {
    let mut common = distinct(&sets[0]);
    for s in &sets[1..] {
        let other = distinct(s);
        common.retain(|x| other.contains(x));
    }
    common.into_iter().collect()
}

/// The ids a party's result names, in result order; checks each is a first occurrence.
fn result_ids(list: &IdList, result: &IdIntersection) -> Vec<Vec<u8>> {
    let rows = result
        .rows
        .as_ref()
        .expect("this party receives the result");
    rows.iter()
        .map(|&r| {
            let id = list.get(r);
            assert!(
                (0..r).all(|j| list.get(j) != id),
                "row {r} is not the first occurrence of its id"
            );
            id.to_vec()
        })
        .collect()
}

/// Every party gets exactly the intersection, and all in the same order.
fn check_all_receive(sets: &[IdList], results: &[IdIntersection]) {
    let want = expected(sets);
    let first = result_ids(&sets[0], &results[0]);
    for (set, result) in sets.iter().zip(results) {
        let got = result_ids(set, result);
        assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
        assert_eq!(got.len(), want.len(), "no id twice");
        assert_eq!(got, first, "receivers agree on the order");
        assert_eq!(result.stats.intersection_size, Some(want.len() as u64));
    }
}

fn random_sets(seed: u64, sizes: &[usize], common: usize, universe: u64) -> Vec<IdList> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let shared: Vec<String> = (0..common).map(|i| format!("shared-{seed}-{i}")).collect();
    sizes
        .iter()
        .map(|&n| {
            let mut v: Vec<String> = shared.iter().take(n).cloned().collect();
            while v.len() < n {
                v.push(format!("id-{}", rng.random_range(0..universe)));
            }
            // shuffle so shared ids are not all at the front
            for i in (1..v.len()).rev() {
                v.swap(i, rng.random_range(0..=i));
            }
            v.iter().collect()
        })
        .collect()
}

#[test]
fn two_parties_match_a_plain_intersection_on_random_sets() {
    for (seed, sizes, common, universe) in [
        (1u64, [120usize, 90], 30usize, 1_000u64),
        (2, [200, 200], 0, 1_000_000_000),
        (3, [57, 300], 57, 400),
        (4, [1, 1], 1, 10),
    ] {
        let sets = random_sets(seed, &sizes, common, universe);
        let results = run(&sets, |_| PsiConfig {
            chunk_size: 17,
            ..PsiConfig::default()
        });
        check_all_receive(&sets, &results);
    }
}

#[test]
fn edge_cases_empty_identical_one_empty_and_duplicates() {
    let cases: Vec<[IdList; 2]> = vec![
        [ids(&["a", "b", "c"]), ids(&["x", "y"])], // empty intersection
        [ids(&["a", "b", "c"]), ids(&["c", "b", "a"])], // identical sets
        [ids(&[]), ids(&["x", "y"])],              // one empty set
        [ids(&[]), ids(&[])],                      // both empty
        [
            ids(&["a", "a", "b", "b", "b", "c"]),
            ids(&["b", "b", "c", "d", "c"]),
        ], // duplicates
        [ids(&["", "a"]), ids(&["", "b"])],        // the empty id is an id here
    ];
    for sets in cases {
        let results = run(&sets, |_| PsiConfig {
            chunk_size: 2,
            ..PsiConfig::default()
        });
        check_all_receive(&sets, &results);
    }
    let sets = [
        ids(&["a", "a", "b", "b", "b", "c"]),
        ids(&["b", "b", "c", "d", "c"]),
    ];
    let results = run(&sets, |_| PsiConfig::default());
    assert_eq!(results[0].stats.duplicates_dropped, 3);
    assert_eq!(results[0].stats.unique_ids, 3);
    assert_eq!(results[1].stats.duplicates_dropped, 2);
    assert_eq!(
        results[0].stats.peer_set_sizes[&party(1)],
        3,
        "the peer's distinct count"
    );
}

#[test]
fn different_chunk_sizes_per_party_work() {
    let sets = random_sets(9, &[150, 110], 40, 300);
    let results = run(&sets, |i| PsiConfig {
        chunk_size: if i == 0 { 7 } else { 64 },
        ..PsiConfig::default()
    });
    check_all_receive(&sets, &results);
}

#[test]
fn a_single_receiver_gets_the_result_and_the_other_nothing() {
    let sets = random_sets(5, &[80, 60], 25, 500);
    for receiver in 0..2 {
        let config = PsiConfig {
            chunk_size: 16,
            ..PsiConfig::receiver(party(receiver))
        };
        let results = run(&sets, |_| config.clone());
        let other = 1 - receiver;
        let got: BTreeSet<_> = result_ids(&sets[receiver], &results[receiver])
            .into_iter()
            .collect();
        assert_eq!(got, expected(&sets));
        assert!(results[other].rows.is_none());
        assert_eq!(results[other].stats.intersection_size, None);
        assert!(!results[other].stats.receives_result);
    }
}

#[test]
fn three_and_four_parties_intersect_all_sets() {
    let sets = random_sets(11, &[90, 120, 70], 30, 200);
    let results = run(&sets, |_| PsiConfig {
        chunk_size: 13,
        ..PsiConfig::default()
    });
    check_all_receive(&sets, &results);
    // The leader (guest) learned every set size; the helper the leader's; the last nothing.
    assert_eq!(results[0].stats.peer_set_sizes.len(), 2);
    assert_eq!(
        results[1].stats.peer_set_sizes.keys().collect::<Vec<_>>(),
        [&party(0)]
    );
    assert!(results[2].stats.peer_set_sizes.is_empty());

    let sets = random_sets(12, &[60, 60, 60, 60], 20, 150);
    let results = run(&sets, |_| PsiConfig {
        chunk_size: 8,
        ..PsiConfig::default()
    });
    check_all_receive(&sets, &results);

    // Pairwise overlaps that are not in the final intersection stay out of it.
    let sets = vec![
        ids(&["common", "ab", "ac", "a"]),
        ids(&["common", "ab", "bc", "b"]),
        ids(&["bc", "ac", "common", "c", "c"]),
    ];
    let results = run(&sets, |_| PsiConfig::default());
    check_all_receive(&sets, &results);
    assert_eq!(results[0].rows.as_ref().unwrap().len(), 1);
}

#[test]
fn three_parties_with_one_receiver_and_edge_cases() {
    let sets = random_sets(13, &[50, 40, 45], 15, 100);
    for receiver in 0..3 {
        let config = PsiConfig {
            chunk_size: 9,
            ..PsiConfig::receiver(party(receiver))
        };
        let results = run(&sets, |_| config.clone());
        for (i, r) in results.iter().enumerate() {
            if i == receiver {
                let got: BTreeSet<_> = result_ids(&sets[i], r).into_iter().collect();
                assert_eq!(got, expected(&sets));
            } else {
                assert!(r.rows.is_none(), "party {i} must not get the result");
            }
        }
    }
    for sets in [
        vec![ids(&[]), ids(&["a"]), ids(&["a"])],
        vec![ids(&["a"]), ids(&[]), ids(&["a"])],
        vec![ids(&["a", "b"]), ids(&["b", "a"]), ids(&["a", "b", "a"])],
        vec![ids(&["a"]), ids(&["b"]), ids(&["c"])],
    ] {
        let results = run(&sets, |_| PsiConfig {
            chunk_size: 1,
            ..PsiConfig::default()
        });
        check_all_receive(&sets, &results);
    }
}

#[test]
fn a_configured_leader_is_used_by_everyone() {
    let sets = random_sets(14, &[30, 30, 30], 10, 60);
    let config = PsiConfig {
        leader: Some(party(2)),
        ..PsiConfig::default()
    };
    let results = run(&sets, |_| config.clone());
    check_all_receive(&sets, &results);
    assert_eq!(
        results[2].stats.peer_set_sizes.len(),
        2,
        "the leader saw both sizes"
    );
}

#[test]
fn mismatched_configurations_fail_with_a_clear_error() {
    let sets = [ids(&["a"]), ids(&["a"])];
    let outcomes = LocalCluster::new(roster(2)).run(|ctx| {
        let config = if ctx.me().as_str() == "bank" {
            PsiConfig::default()
        } else {
            PsiConfig::receiver(party(1))
        };
        let i = usize::from(ctx.me().as_str() != "bank");
        intersect_ids(&ctx, &sets[i], &config)
    });
    for o in &outcomes {
        let e = o.result.as_ref().unwrap_err();
        assert!(
            e.contains("configuration mismatch") && e.contains("result receivers"),
            "{e}"
        );
    }
    let outcomes = LocalCluster::new(roster(2)).run(|ctx| {
        intersect_ids(
            &ctx,
            &sets[0],
            &PsiConfig::receiver("nobody".parse().unwrap()),
        )
    });
    let e = outcomes[0].result.as_ref().unwrap_err();
    assert!(
        e.contains("'nobody' is not a data party of this job"),
        "{e}"
    );
}

#[test]
fn an_arbiter_in_the_job_takes_no_part() {
    let sets = [ids(&["a", "b", "c"]), ids(&["b", "c", "d"])];
    let roster = Roster::of(&[
        ("bank", Role::Guest),
        ("telco", Role::Host),
        ("coordinator", Role::Arbiter),
    ]);
    let outcomes = LocalCluster::new(roster).run(|ctx| match ctx.me().as_str() {
        "bank" => intersect_ids(&ctx, &sets[0], &PsiConfig::default()),
        "telco" => intersect_ids(&ctx, &sets[1], &PsiConfig::default()),
        _ => intersect_ids(&ctx, &ids(&["a"]), &PsiConfig::default()),
    });
    for o in &outcomes[..2] {
        let r = o.result.as_ref().unwrap();
        assert_eq!(r.stats.protocol, "ecdh-psi-2p");
        assert_eq!(r.rows.as_ref().unwrap().len(), 2);
    }
    let e = outcomes[2].result.as_ref().unwrap_err();
    assert!(e.contains("the arbiter holds no data"), "{e}");
}

/// Byte strings that must never appear in a message: the id itself, H(id) as a group element
/// (and its 16-byte folds), and plain hashes of the id.
fn forbidden(id: &[u8]) -> Vec<Vec<u8>> {
    let h = Ristretto255::hash_to_group(id).compress().to_bytes();
    let mut folded = [0u8; 16];
    for (i, b) in h.iter().enumerate() {
        folded[i % 16] ^= b;
    }
    let mut dst_hash = Sha512::new();
    dst_hash.update(Ristretto255::HASH_DST);
    dst_hash.update(id);
    let dst_hash = dst_hash.finalize().to_vec();
    vec![
        id.to_vec(),
        h.to_vec(),
        h[..16].to_vec(),
        folded.to_vec(),
        dst_hash[..32].to_vec(),
        dst_hash[32..].to_vec(),
        Sha256::digest(id).to_vec(),
        Sha512::digest(id)[..32].to_vec(),
    ]
}

fn assert_clean(entries: &[TranscriptEntry], sets: &[IdList]) {
    for set in sets {
        for id in set.iter() {
            for needle in forbidden(id) {
                for e in entries {
                    assert!(
                        !e.payload_contains(&needle),
                        "message '{}' to/from {} carries {:?} or a plain hash of it",
                        e.tag,
                        e.peer,
                        String::from_utf8_lossy(id)
                    );
                }
            }
        }
    }
}

#[test]
fn no_raw_or_merely_hashed_id_crosses_the_wire() {
    // Long ids: a chance 12-byte match inside random elements is impossible in practice.
    let make = |tag: &str, n: usize| -> IdList {
        (0..n).map(|i| format!("customer-{tag}-{i:06}")).collect()
    };
    let mut a = make("shared", 40);
    let mut b = make("shared", 40);
    for id in make("bank-only", 30).iter() {
        a.push(id);
    }
    for id in make("telco-only", 50).iter() {
        b.push(id);
    }
    for receivers in [Receivers::All, Receivers::Party(party(0))] {
        let sets = [a.clone(), b.clone()];
        let outcomes = LocalCluster::new(roster(2))
            .capture_transcripts()
            .run_ok(|ctx| {
                let i = usize::from(ctx.me().as_str() != "bank");
                intersect_ids(
                    &ctx,
                    &sets[i],
                    &PsiConfig {
                        receivers: receivers.clone(),
                        chunk_size: 32,
                        ..PsiConfig::default()
                    },
                )
            });
        let mut total_stream_bytes = 0;
        for o in &outcomes {
            let entries = o.transcript.as_ref().unwrap().entries();
            total_stream_bytes += entries
                .iter()
                .filter(|e| e.tag.ends_with("stream"))
                .map(|e| e.bytes)
                .sum::<usize>();
            assert_clean(&entries, &sets);
        }
        // The check is not vacuous: every element did cross (70 + 90 sent, then re-blinded).
        assert!(
            total_stream_bytes >= (70 + 90) * 32 * 2,
            "{total_stream_bytes}"
        );
    }

    let sets = vec![make("x", 30), make("x", 25), make("x", 35)];
    let outcomes = LocalCluster::new(roster(3))
        .capture_transcripts()
        .run_ok(|ctx| {
            let i = NAMES.iter().position(|n| *n == ctx.me().as_str()).unwrap();
            intersect_ids(&ctx, &sets[i], &PsiConfig::default())
        });
    let host_key: Vec<u8> = outcomes[1]
        .transcript
        .as_ref()
        .unwrap()
        .sent()
        .iter()
        .find(|e| e.tag.ends_with("host-key"))
        .and_then(|e| e.decode::<Vec<u8>>())
        .expect("the helper sent the hosts' key seed");
    assert_eq!(host_key.len(), 32);
    for o in &outcomes {
        let entries = o.transcript.as_ref().unwrap().entries();
        assert_clean(&entries, &sets);
    }
    // The leader never sees the hosts' common key.
    let leader = outcomes[0].transcript.as_ref().unwrap().received();
    assert!(leader.iter().all(|e| !e.payload_contains(&host_key)));
    assert!(leader.iter().all(|e| !e.tag.ends_with("host-key")));
}

/// Elements the bank sent in one run (blinded chunks). `keys` maps a party's name to its
/// key mode: every party has its own cache file, as two nodes would.
fn sent_elements(keys: impl Fn(&str) -> KeyMode + Sync) -> Vec<Vec<u8>> {
    let sets = [ids(&["p", "q", "r"]), ids(&["q"])];
    let outcomes = LocalCluster::new(roster(2))
        .capture_transcripts()
        .run_ok(|ctx| {
            let i = usize::from(ctx.me().as_str() != "bank");
            intersect_ids(
                &ctx,
                &sets[i],
                &PsiConfig {
                    keys: keys(ctx.me().as_str()),
                    ..PsiConfig::default()
                },
            )
        });
    let sent = outcomes[0].transcript.as_ref().unwrap().sent();
    // The bank sends its own 3 blinded ids in one chunk and, in whichever order the
    // threads run, telco's single id re-blinded: the longest stream message is its own.
    let payload = sent
        .iter()
        .filter(|e| e.tag.ends_with("stream"))
        .filter_map(|e| e.payload.as_ref())
        .max_by_key(|p| p.len())
        .expect("the bank sent its set");
    assert!(payload.len() >= 3 * 32, "a chunk of three elements");
    let body = &payload[payload.len() - 3 * 32..];
    let mut elements: Vec<Vec<u8>> = body.chunks(32).map(<[u8]>::to_vec).collect();
    elements.sort();
    elements
}

#[test]
fn cached_keys_make_runs_linkable_and_fresh_keys_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let cached = |party: &str| KeyMode::Cached {
        file: dir.path().join(format!("{party}.key")),
    };
    let first = sent_elements(cached);
    let second = sent_elements(cached);
    assert_eq!(
        first, second,
        "cached key: the same ids give the same elements"
    );
    let fresh1 = sent_elements(|_| KeyMode::Fresh);
    let fresh2 = sent_elements(|_| KeyMode::Fresh);
    assert!(
        fresh1.iter().all(|e| !fresh2.contains(e)),
        "fresh keys: nothing repeats"
    );
    assert!(fresh1.iter().all(|e| !first.contains(e)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Small random multisets over a small universe: many duplicates and overlaps.
    #[test]
    fn two_parties_agree_with_set_intersection(
        a in prop::collection::vec(0u8..40, 0..40),
        b in prop::collection::vec(0u8..40, 0..40),
        chunk in 1usize..20,
        to_bank in any::<bool>(),
    ) {
        let sets = [
            a.iter().map(|x| format!("u{x}")).collect::<IdList>(),
            b.iter().map(|x| format!("u{x}")).collect::<IdList>(),
        ];
        let receivers = if to_bank { Receivers::Party(party(0)) } else { Receivers::All };
        let results = run(&sets, |_| PsiConfig { chunk_size: chunk, receivers: receivers.clone(), ..PsiConfig::default() });
        let got: BTreeSet<_> = result_ids(&sets[0], &results[0]).into_iter().collect();
        prop_assert_eq!(got, expected(&sets));
        prop_assert_eq!(results[1].rows.is_some(), !to_bank);
    }
}

/// A host that has sent its set waits for its result while the leader still works on the
/// other sets, far longer than one receive may wait; the leader's heartbeats keep it alive.
#[test]
fn a_waiting_host_outlives_the_receive_timeout_thanks_to_heartbeats() {
    let sets = [
        synthetic(50_000, 0),
        synthetic(50_000, 1),
        synthetic(100, 2),
    ];
    let started = std::time::Instant::now();
    let results: Vec<IdIntersection> = LocalCluster::new(roster(3))
        .timeout(std::time::Duration::from_secs(1))
        .run_ok(|ctx| {
            let i = NAMES.iter().position(|n| *n == ctx.me().as_str()).unwrap();
            intersect_ids(
                &ctx,
                &sets[i],
                &PsiConfig {
                    chunk_size: 256,
                    ..PsiConfig::default()
                },
            )
        })
        .into_iter()
        .map(|o| o.unwrap())
        .collect();
    check_all_receive(&sets, &results);
    // Only meaningful if the run lasted longer than one receive timeout.
    eprintln!("three-party run took {:?}", started.elapsed());
}

fn synthetic(n: usize, party: usize) -> IdList {
    ferry_psi::synthetic_ids(n, 0.5, 3, party)
}
