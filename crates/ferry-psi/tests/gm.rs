//! ECDH-PSI under the GM (国密) crypto suite: SM2 with SM3 as the group, run in memory over
//! `LocalCluster`, against the default suite (Ristretto255) on the same sets.

use ferry_context::{LocalCluster, Role, Roster};
use ferry_crypto::Suite;
use ferry_psi::{GroupKind, IdIntersection, IdList, PsiConfig, PsiProtocol, intersect_ids};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::BTreeSet;

const NAMES: [&str; 3] = ["bank", "telco", "shop"];

fn roster(n: usize) -> Roster {
    let parties: Vec<(&str, Role)> = (0..n)
        .map(|i| (NAMES[i], if i == 0 { Role::Guest } else { Role::Host }))
        .collect();
    Roster::of(&parties)
}

/// Each party's result as ids, in its result order (`None` for a non-receiver), or its error.
fn run(
    sets: &[IdList],
    config: impl Fn(usize) -> PsiConfig + Sync,
) -> Vec<Result<Option<Vec<Vec<u8>>>, String>> {
    LocalCluster::new(roster(sets.len()))
        .run(|ctx| {
            let i = NAMES.iter().position(|n| *n == ctx.me().as_str()).unwrap();
            intersect_ids(&ctx, &sets[i], &config(i)).map(|r: IdIntersection| {
                assert_eq!(
                    r.stats.group,
                    config(i).group.name(),
                    "the report names the group"
                );
                r.rows
                    .map(|rows| rows.iter().map(|&j| sets[i].get(j).to_vec()).collect())
            })
        })
        .into_iter()
        .map(|o| o.result)
        .collect()
}

fn suite_config(suite: Suite) -> PsiConfig {
    PsiConfig {
        protocol: PsiProtocol::Ecdh,
        group: GroupKind::of_suite(suite),
        chunk_size: 97, // several chunks, the last one short
        ..PsiConfig::default()
    }
}

/// Seeded sets with `common` shared ids and duplicates.
fn random_sets(seed: u64, sizes: &[usize], common: usize) -> Vec<IdList> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let shared: Vec<String> = (0..common).map(|i| format!("shared-{i}")).collect();
    sizes
        .iter()
        .enumerate()
        .map(|(p, &n)| {
            let mut ids: Vec<String> = shared.clone();
            ids.extend((common..n).map(|_| format!("own-{p}-{}", rng.random::<u64>())));
            ids.push(shared.first().cloned().unwrap_or_default()); // a duplicate
            ids.iter().collect()
        })
        .collect()
}

fn as_set(ids: &[Vec<u8>]) -> BTreeSet<Vec<u8>> {
    ids.iter().cloned().collect()
}

#[test]
fn gm_suite_finds_the_same_intersection_as_the_default_suite() {
    let sets = random_sets(19, &[700, 500], 123);
    let gm = run(&sets, |_| suite_config(Suite::Gm));
    let default = run(&sets, |_| suite_config(Suite::Default));
    let want: BTreeSet<Vec<u8>> = (0..123)
        .map(|i| format!("shared-{i}").into_bytes())
        .collect();
    for (g, d) in gm.iter().zip(&default) {
        let g = g.as_ref().unwrap().as_ref().unwrap();
        let d = d.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(as_set(g), want);
        assert_eq!(as_set(d), want);
        assert_eq!(g.len(), want.len(), "each id once");
    }
    // Both parties under gm agree on the order of the rows (the joinable output).
    assert_eq!(
        gm[0].as_ref().unwrap(),
        gm[1].as_ref().unwrap(),
        "same order at both receivers"
    );
}

#[test]
fn gm_suite_with_one_receiver_and_three_parties() {
    let sets = random_sets(20, &[300, 200, 250], 41);
    let one = run(&sets[..2], |_| PsiConfig {
        receivers: ferry_psi::Receivers::Party("telco".parse().unwrap()),
        ..suite_config(Suite::Gm)
    });
    assert_eq!(one[0].as_ref().unwrap(), &None, "bank receives nothing");
    let telco = one[1].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(telco.len(), 41);

    let three = run(&sets, |_| suite_config(Suite::Gm));
    let first = three[0].as_ref().unwrap().as_ref().unwrap().clone();
    assert_eq!(first.len(), 41);
    for r in &three {
        assert_eq!(r.as_ref().unwrap().as_ref().unwrap(), &first);
    }
}

#[test]
fn parties_on_different_suites_are_told_both_suites() {
    let sets = random_sets(21, &[50, 50], 10);
    // ECDH on both sides, different groups.
    let out = run(&sets, |i| {
        suite_config(if i == 0 { Suite::Gm } else { Suite::Default })
    });
    let e = out[0].as_ref().unwrap_err();
    assert!(
        e.contains("party 'telco'")
            && e.contains("crypto suite: this party uses 'gm' (group sm2), 'telco' uses 'default' (group ristretto255)"),
        "{e}"
    );
    let e = out[1].as_ref().unwrap_err();
    assert!(
        e.contains("this party uses 'default' (group ristretto255), 'bank' uses 'gm' (group sm2)"),
        "{e}"
    );
    // The default suite's KKRT against gm's ECDH: the suite is named, not the protocol.
    let out = run(&sets, |i| {
        if i == 0 {
            suite_config(Suite::Gm)
        } else {
            PsiConfig {
                protocol: PsiProtocol::Kkrt,
                ..PsiConfig::default()
            }
        }
    });
    let e = out[0].as_ref().unwrap_err();
    assert!(
        e.contains("crypto suite: this party uses 'gm' (group sm2), 'telco' uses 'default'"),
        "{e}"
    );
}

#[test]
fn kkrt_is_refused_under_the_gm_suite() {
    let sets = random_sets(22, &[20, 20], 5);
    let out = run(&sets, |_| PsiConfig {
        protocol: PsiProtocol::Kkrt,
        ..suite_config(Suite::Gm)
    });
    let e = out[0].as_ref().unwrap_err();
    assert!(
        e.contains("protocol 'kkrt' is not available under crypto suite 'gm'")
            && e.contains("use protocol 'ecdh'"),
        "{e}"
    );
}
