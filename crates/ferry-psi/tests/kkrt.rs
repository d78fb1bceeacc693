//! KKRT16 PSI on identifier lists, in memory: results against a plain set intersection in
//! both receiver modes, the agreed order, configuration errors, and what crosses the wire.

use ferry_context::{LocalCluster, PartyId, Role, Roster, TranscriptEntry};
use ferry_psi::{
    IdIntersection, IdList, KeyMode, PsiConfig, PsiProtocol, Receivers, intersect_ids,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256, Sha512};
use std::collections::{BTreeSet, HashSet};

const NAMES: [&str; 3] = ["bank", "telco", "shop"];

fn roster(n: usize) -> Roster {
    let parties: Vec<(&str, Role)> = (0..n)
        .map(|i| (NAMES[i], if i == 0 { Role::Guest } else { Role::Host }))
        .collect();
    Roster::of(&parties)
}

fn party(i: usize) -> PartyId {
    NAMES[i].parse().unwrap()
}

fn kkrt(receivers: Receivers) -> PsiConfig {
    PsiConfig {
        protocol: PsiProtocol::Kkrt,
        receivers,
        ..PsiConfig::default()
    }
}

fn run(sets: &[IdList], config: &PsiConfig) -> Vec<IdIntersection> {
    LocalCluster::new(roster(sets.len()))
        .run_ok(|ctx| {
            let i = NAMES.iter().position(|n| *n == ctx.me().as_str()).unwrap();
            intersect_ids(&ctx, &sets[i], config)
        })
        .into_iter()
        .map(|o| o.unwrap())
        .collect()
}

fn expected(sets: &[IdList]) -> BTreeSet<Vec<u8>> {
    let distinct = |l: &IdList| l.iter().map(<[u8]>::to_vec).collect::<HashSet<_>>();
    let mut common = distinct(&sets[0]);
    let other = distinct(&sets[1]);
    common.retain(|x| other.contains(x));
    common.into_iter().collect()
}

/// The ids a party's result names, in result order; each must be a first occurrence.
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

/// Checks one run: receivers get exactly the intersection, in the same order; the others
/// nothing.
fn check(sets: &[IdList], results: &[IdIntersection], receivers: &Receivers) {
    let want = expected(sets);
    let mut orders = Vec::new();
    for (i, (set, result)) in sets.iter().zip(results).enumerate() {
        assert_eq!(result.stats.protocol, "kkrt-psi-2p");
        if receivers.includes(&party(i)) {
            let got = result_ids(set, result);
            assert_eq!(got.len(), want.len(), "no id twice");
            assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
            assert_eq!(result.stats.intersection_size, Some(want.len() as u64));
            orders.push(got);
        } else {
            assert!(result.rows.is_none(), "party {i} must not get the result");
            assert_eq!(result.stats.intersection_size, None);
        }
    }
    if orders.len() == 2 {
        assert_eq!(orders[0], orders[1], "receivers agree on the order");
    }
}

fn ids(items: &[&str]) -> IdList {
    items.iter().collect()
}

#[test]
fn edge_cases_in_every_receiver_mode() {
    let cases: Vec<[IdList; 2]> = vec![
        [ids(&["a", "b", "c"]), ids(&["x", "y"])],
        [ids(&["a", "b", "c"]), ids(&["c", "b", "a"])],
        [ids(&[]), ids(&["x", "y"])],
        [ids(&["x"]), ids(&[])],
        [ids(&[]), ids(&[])],
        [ids(&["a"]), ids(&["a"])],
        [
            ids(&["a", "a", "b", "b", "b", "c"]),
            ids(&["b", "b", "c", "d", "c"]),
        ],
        [ids(&["", "a"]), ids(&["", "b"])],
    ];
    for receivers in [
        Receivers::All,
        Receivers::Party(party(0)),
        Receivers::Party(party(1)),
    ] {
        for sets in &cases {
            let results = run(sets, &kkrt(receivers.clone()));
            check(sets, &results, &receivers);
        }
    }
    let sets = &cases[6];
    let results = run(sets, &kkrt(Receivers::All));
    assert_eq!(results[0].stats.duplicates_dropped, 3);
    assert_eq!(results[0].stats.unique_ids, 3);
    assert_eq!(results[1].stats.duplicates_dropped, 2);
    assert_eq!(results[0].stats.peer_set_sizes[&party(1)], 3);
    assert_eq!(results[1].stats.peer_set_sizes[&party(0)], 3);
}

/// Sets large enough for several chunks of OT rows (16384 per message) and of sender values
/// (65536 per message), with either party the OPRF receiver.
#[test]
fn several_chunks_match_a_plain_intersection() {
    let a = ferry_psi::synthetic_ids(70_000, 0.3, 4, 0);
    let b = ferry_psi::synthetic_ids(20_000, 0.3, 4, 1);
    for (sets, leader) in [([a.clone(), b.clone()], 0), ([b, a], 1)] {
        let config = PsiConfig {
            leader: Some(party(leader)),
            ..kkrt(Receivers::All)
        };
        let results = run(&sets, &config);
        check(&sets, &results, &Receivers::All);
        assert_eq!(results[0].rows.as_ref().unwrap().len(), 6000);
    }
}

#[test]
fn kkrt_and_ecdh_find_the_same_rows() {
    let sets = [
        ferry_psi::synthetic_ids(500, 0.4, 8, 0),
        ferry_psi::synthetic_ids(300, 0.4, 8, 1),
    ];
    let by_kkrt = run(&sets, &kkrt(Receivers::All));
    let by_ecdh = run(&sets, &PsiConfig::default());
    for (k, e) in by_kkrt.iter().zip(&by_ecdh) {
        let sorted = |r: &IdIntersection| {
            let mut v = r.rows.clone().unwrap();
            v.sort_unstable();
            v
        };
        assert_eq!(sorted(k), sorted(e));
        assert_eq!(k.stats.peer_set_sizes, e.stats.peer_set_sizes);
        assert_eq!(k.stats.unique_ids, e.stats.unique_ids);
    }
}

#[test]
fn configuration_errors_are_clear() {
    let sets = [ids(&["a"]), ids(&["a"]), ids(&["a"])];
    let outcomes = LocalCluster::new(roster(3)).run(|ctx| {
        let i = NAMES.iter().position(|n| *n == ctx.me().as_str()).unwrap();
        intersect_ids(&ctx, &sets[i], &kkrt(Receivers::All))
    });
    for o in &outcomes {
        let e = o.result.as_ref().unwrap_err();
        assert!(
            e.contains("'kkrt' runs between two parties") && e.contains("use protocol 'ecdh'"),
            "{e}"
        );
    }
    // One party on ECDH, the other on KKRT: both name the mismatch.
    let outcomes = LocalCluster::new(roster(2)).run(|ctx| {
        let config = if ctx.me().as_str() == "bank" {
            kkrt(Receivers::All)
        } else {
            PsiConfig::default()
        };
        intersect_ids(&ctx, &sets[0], &config)
    });
    for o in &outcomes {
        let e = o.result.as_ref().unwrap_err();
        assert!(
            e.contains("configuration mismatch")
                && e.contains("kkrt-psi-2p")
                && e.contains("ecdh-psi-2p"),
            "{e}"
        );
    }
    let outcomes = LocalCluster::new(roster(2)).run(|ctx| {
        let config = PsiConfig {
            keys: KeyMode::Cached {
                file: "/nonexistent/key".into(),
            },
            ..kkrt(Receivers::All)
        };
        intersect_ids(&ctx, &sets[0], &config)
    });
    let e = outcomes[0].result.as_ref().unwrap_err();
    assert!(e.contains("no long-term key to cache"), "{e}");
}

/// Byte strings that must never appear in a message: the id, plain hashes of it, and the
/// item hash KKRT computes from it (cuckoo hashing and the OPRF take it; it is never sent).
fn forbidden(id: &[u8]) -> Vec<Vec<u8>> {
    let mut item = Sha256::new();
    item.update(b"ferry-psi/kkrt/item/v1");
    item.update(id);
    let item = item.finalize();
    vec![
        id.to_vec(),
        Sha256::digest(id).to_vec(),
        Sha256::digest(id)[..16].to_vec(),
        Sha256::digest(id)[..10].to_vec(),
        Sha512::digest(id)[..32].to_vec(),
        item[..15].to_vec(),
        item[..10].to_vec(),
    ]
}

fn assert_clean(entries: &[TranscriptEntry], sets: &[IdList]) {
    for set in sets {
        for id in set.iter() {
            for needle in forbidden(id) {
                for e in entries {
                    assert!(
                        !e.payload_contains(&needle),
                        "message '{}' to/from {} carries {:?} or a hash of it",
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
    let sets = [a, b];
    for receivers in [
        Receivers::All,
        Receivers::Party(party(0)),
        Receivers::Party(party(1)),
    ] {
        let outcomes = LocalCluster::new(roster(2))
            .capture_transcripts()
            .run_ok(|ctx| {
                let i = usize::from(ctx.me().as_str() != "bank");
                intersect_ids(&ctx, &sets[i], &kkrt(receivers.clone()))
            });
        let mut value_bytes = 0;
        for o in &outcomes {
            let entries = o.transcript.as_ref().unwrap().entries();
            value_bytes += entries
                .iter()
                .filter(|e| e.tag.ends_with("kkrt-values"))
                .map(|e| e.bytes)
                .sum::<usize>();
            assert_clean(&entries, &sets);
            assert_eq!(
                o.result.as_ref().unwrap().rows.is_some(),
                receivers.includes(&o.party)
            );
        }
        // Not vacuous: the sender's outputs did cross (3 per id, 6+ bytes each, both ways
        // recorded).
        assert!(value_bytes >= 2 * 3 * 70 * 6, "{value_bytes}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Small random multisets over a small universe: duplicates, overlaps, empty sets.
    #[test]
    fn kkrt_agrees_with_set_intersection(
        a in prop::collection::vec(0u8..40, 0..40),
        b in prop::collection::vec(0u8..40, 0..40),
        mode in 0usize..3,
    ) {
        let sets = [
            a.iter().map(|x| format!("u{x}")).collect::<IdList>(),
            b.iter().map(|x| format!("u{x}")).collect::<IdList>(),
        ];
        let receivers = match mode {
            0 => Receivers::All,
            m => Receivers::Party(party(m - 1)),
        };
        let results = run(&sets, &kkrt(receivers.clone()));
        check(&sets, &results, &receivers);
    }
}
