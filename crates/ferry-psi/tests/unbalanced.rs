//! Unbalanced PSI in memory: results against a plain intersection, the filter cache, key
//! rotation and stale filters, the per-run cap, the filter file, and what crosses the wire.

use ferry_context::{LocalCluster, PartyOutcome, Role, Roster, TranscriptEntry};
use ferry_psi::unbalanced::{self, tag_bits};
use ferry_psi::{Filter, IdList, OprfKey, Provider, PsiError, Querier, QueryOutcome};
use proptest::prelude::*;
use sha2::{Digest, Sha256, Sha512};
use std::collections::{BTreeSet, HashSet};
use std::path::Path;

/// The bank asks (guest, small set); the telco provides (host, large set).
fn roster() -> Roster {
    Roster::of(&[("bank", Role::Guest), ("telco", Role::Host)])
}

fn ids<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> IdList {
    items.into_iter().map(|s| s.as_ref().to_string()).collect()
}

enum Side {
    Querier(Result<QueryOutcome, PsiError>),
    Provider(Result<unbalanced::ProviderStats, PsiError>),
}

/// One online run; returns (querier result, provider result, transcripts if captured).
fn run_once(
    key: &OprfKey,
    filter: &Filter,
    querier_ids: &IdList,
    querier: &Querier,
    max_query: u64,
    capture: bool,
) -> Vec<PartyOutcome<Side>> {
    let mut cluster = LocalCluster::new(roster());
    if capture {
        cluster = cluster.capture_transcripts();
    }
    cluster.run(|ctx| -> Result<Side, ferry_context::FederationError> {
        Ok(if ctx.me().as_str() == "bank" {
            Side::Querier(unbalanced::query(&ctx, querier_ids, querier))
        } else {
            Side::Provider(unbalanced::serve(
                &ctx,
                &Provider {
                    key,
                    filter,
                    max_query,
                },
            ))
        })
    })
}

fn split(
    outcomes: Vec<PartyOutcome<Side>>,
) -> (
    Result<QueryOutcome, PsiError>,
    Result<unbalanced::ProviderStats, PsiError>,
) {
    let mut q = None;
    let mut p = None;
    for o in outcomes {
        match o.result.expect("the run itself does not fail") {
            Side::Querier(r) => q = Some(r),
            Side::Provider(r) => p = Some(r),
        }
    }
    (q.unwrap(), p.unwrap())
}

fn key_in(dir: &Path) -> OprfKey {
    OprfKey::load_or_create(&dir.join("oprf.key")).unwrap()
}

/// The querier's ids a result names, checked to be first occurrences in ascending order.
fn found(list: &IdList, outcome: &QueryOutcome) -> BTreeSet<Vec<u8>> {
    let rows = outcome.result.rows.as_ref().expect("the querier receives");
    assert!(
        rows.windows(2).all(|w| w[0] < w[1]),
        "rows ascend: {rows:?}"
    );
    let mut seen = HashSet::new();
    for &r in rows {
        let id = list.get(r);
        assert!(
            (0..r).all(|j| list.get(j) != id),
            "row {r} is not the first occurrence"
        );
        assert!(seen.insert(id.to_vec()));
    }
    seen.into_iter().collect()
}

fn plain(a: &IdList, b: &IdList) -> BTreeSet<Vec<u8>> {
    let b: HashSet<&[u8]> = b.iter().collect();
    a.iter()
        .filter(|x| b.contains(x))
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn the_querier_learns_the_intersection_and_reuses_its_cached_filter() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path());
    let provider_ids = ids((0..3000).map(|i| format!("cust-{i:05}")));
    let (filter, report) = Filter::build(&key, &provider_ids, "2026-12-01").unwrap();
    assert_eq!(report.unique_tags, 3000);
    assert_eq!(report.tag_bits, tag_bits(3000));
    assert_eq!(tag_bits(3000), 56, "40 + 12 bits, rounded up to bytes");
    // Half inside, half outside, with duplicates; small chunks so several go each way.
    let mut q = ids((2900..3100).map(|i| format!("cust-{i:05}")));
    q.push(b"cust-02950");
    q.push(b"");
    let querier = Querier {
        chunk_size: 64,
        ..Querier::new(dir.path().join("cache"))
    };
    let (first, served) = split(run_once(&key, &filter, &q, &querier, 1000, false));
    let first = first.unwrap();
    let served = served.unwrap();
    assert_eq!(found(&q, &first), plain(&q, &provider_ids));
    assert_eq!(first.result.stats.intersection_size, Some(100));
    assert_eq!(first.filter_downloaded_bytes, filter.encoded_len() as u64);
    assert_eq!(
        first
            .result
            .stats
            .peer_set_sizes
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [3000],
        "the querier learns the provider's set size"
    );
    assert!(served.filter_sent);
    assert_eq!(
        served.query_size, 201,
        "the provider counts distinct queried ids"
    );

    let (second, served) = split(run_once(&key, &filter, &q, &querier, 1000, false));
    let second = second.unwrap();
    assert_eq!(second.filter_downloaded_bytes, 0, "cached copy reused");
    assert!(!served.unwrap().filter_sent);
    assert_eq!(second.result.rows, first.result.rows);
}

#[test]
fn a_rotated_key_makes_old_filters_stale_and_they_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("oprf.key");
    let old_key = OprfKey::load_or_create(&key_file).unwrap();
    let provider_ids = ids(["a", "b", "c", "d"]);
    let (old_filter, _) = Filter::build(&old_key, &provider_ids, "v1").unwrap();
    let q = ids(["b", "d", "x"]);
    let querier = Querier::new(dir.path().join("cache"));
    let (r, _) = split(run_once(&old_key, &old_filter, &q, &querier, 100, false));
    assert_eq!(r.unwrap().result.stats.intersection_size, Some(2));

    let new_key = OprfKey::rotate(&key_file).unwrap();
    assert_ne!(new_key.id_hex(), old_key.id_hex());
    assert_eq!(
        OprfKey::load_or_create(&key_file).unwrap().id_hex(),
        new_key.id_hex(),
        "the rotated key is the one on disk"
    );
    // The provider refuses to serve a filter of the old key.
    let (q_err, p) = split(run_once(&new_key, &old_filter, &q, &querier, 100, false));
    let e = p.unwrap_err().to_string();
    assert!(
        e.contains("rotated") && e.contains("rebuild the filter"),
        "{e}"
    );
    let q_err = q_err.unwrap_err().to_string();
    assert!(
        q_err.contains("out of date"),
        "the querier is told why: {q_err}"
    );

    // A querier whose cached filter is of the old key, told not to download: refused by id.
    let (new_filter, _) = Filter::build(&new_key, &provider_ids, "v1").unwrap();
    let no_download = Querier {
        may_download: false,
        ..querier.clone()
    };
    let (q_err, p_err) = split(run_once(
        &new_key,
        &new_filter,
        &q,
        &no_download,
        100,
        false,
    ));
    let q_err = q_err.unwrap_err().to_string();
    assert!(
        q_err.contains("stale filter")
            && q_err.contains(&old_key.id_hex())
            && q_err.contains(&new_key.id_hex()),
        "{q_err}"
    );
    assert!(p_err.unwrap_err().to_string().contains("stale filter"));

    // Allowed to download, it fetches the new filter and finds the same intersection.
    let (r, _) = split(run_once(&new_key, &new_filter, &q, &querier, 100, false));
    let r = r.unwrap();
    assert!(r.filter_downloaded_bytes > 0);
    assert_eq!(r.filter.key_id, new_key.id_hex());
    assert_eq!(found(&q, &r), plain(&q, &provider_ids));
}

#[test]
fn the_provider_caps_the_ids_asked_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path());
    let (filter, _) = Filter::build(&key, &ids(["a"]), "v").unwrap();
    let q = ids((0..11).map(|i| i.to_string()));
    let (qr, pr) = split(run_once(
        &key,
        &filter,
        &q,
        &Querier::new(dir.path()),
        10,
        false,
    ));
    for e in [qr.unwrap_err().to_string(), pr.unwrap_err().to_string()] {
        assert!(
            e.contains("asks about 11 ids, above the provider's cap of 10"),
            "{e}"
        );
    }
}

#[test]
fn filter_files_round_trip_and_damaged_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path());
    let (filter, _) = Filter::build(&key, &ids((0..500).map(|i| i.to_string())), "v7").unwrap();
    let path = dir.path().join("f.filter");
    filter.write(&path).unwrap();
    assert_eq!(Filter::read(&path).unwrap(), filter);
    let bytes = filter.to_bytes();
    let header = bytes.len() - 500 * 7; // 40 + 9 bits: 7-byte tags
    let err = |b: &[u8]| Filter::from_bytes(b, "test").unwrap_err().to_string();

    let e = err(&bytes[..bytes.len() - 1]);
    assert!(e.contains("truncated or corrupt"), "{e}");
    let e = err(&bytes[..10]);
    assert!(e.contains("shorter than a filter header"), "{e}");
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert!(err(&bad).contains("wrong magic"));
    // A count no smaller than the body would be refused by the length check; one above the
    // limit is refused before any length arithmetic.
    let mut huge = bytes.clone();
    huge[36..44].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(err(&huge).contains("above the limit"), "{}", err(&huge));
    // Too few tag bits for the count: the false-match rate would exceed 2^-40.
    let mut narrow = bytes.clone();
    narrow[44..48].copy_from_slice(&32u32.to_le_bytes());
    assert!(err(&narrow).contains("need 56 bits"), "{}", err(&narrow));
    // Unsorted tags.
    let mut unsorted = bytes.clone();
    unsorted[header..header + 7].copy_from_slice(&[0xff; 7]);
    assert!(
        err(&unsorted).contains("tag 1 is out of order"),
        "{}",
        err(&unsorted)
    );
}

#[test]
fn the_key_file_is_private_persistent_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k");
    let a = OprfKey::load_or_create(&file).unwrap();
    let b = OprfKey::load_or_create(&file).unwrap();
    assert_eq!(a.id_hex(), b.id_hex());
    assert_eq!(a.created_unix(), b.created_unix());
    assert!(
        !format!("{a:?}").contains("scalar"),
        "Debug never shows the key"
    );
    let (fa, _) = Filter::build(&a, &ids(["x", "y"]), "v").unwrap();
    let (fb, _) = Filter::build(&b, &ids(["x", "y"]), "v").unwrap();
    assert_eq!(
        fa.to_bytes()[50..],
        fb.to_bytes()[50..],
        "same key, same tags"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the key file is readable by its owner only"
        );
    }
    std::fs::write(&file, "ferry-psi unbalanced OPRF key v1\nid zz\n").unwrap();
    let e = OprfKey::load(&file).unwrap_err().to_string();
    assert!(e.contains("/k") && e.contains("rotate the key"), "{e}");
}

/// Byte strings that must never appear in a message: the id, plain hashes of it, and its
/// unblinded hash to the group.
fn forbidden(id: &[u8]) -> Vec<Vec<u8>> {
    let h = ferry_crypto::ecdh::Ristretto255::hash_to_group(id);
    vec![
        id.to_vec(),
        Sha256::digest(id).to_vec(),
        Sha256::digest(id)[..16].to_vec(),
        Sha256::digest(id)[..8].to_vec(),
        Sha512::digest(id)[..32].to_vec(),
        h.compress().as_bytes().to_vec(),
    ]
}

fn assert_clean(entries: &[TranscriptEntry], sets: &[&IdList]) {
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
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path());
    let provider_ids = ids((0..200).map(|i| format!("customer-{i:06}")));
    let q = ids((150..260).map(|i| format!("customer-{i:06}")));
    let (filter, _) = Filter::build(&key, &provider_ids, "v").unwrap();
    let outcomes = run_once(&key, &filter, &q, &Querier::new(dir.path()), 1000, true);
    let mut query_bytes = 0;
    for o in &outcomes {
        let entries = o.transcript.as_ref().unwrap().entries();
        query_bytes += entries
            .iter()
            .filter(|e| e.tag.ends_with("upsi-query") || e.tag.ends_with("upsi-answer"))
            .map(|e| e.bytes)
            .sum::<usize>();
        assert_clean(&entries, &[&provider_ids, &q]);
    }
    // Not vacuous: 110 points crossed each way, recorded by both parties.
    assert!(query_bytes >= 4 * 110 * 32, "{query_bytes}");
    let (r, _) = split(outcomes);
    assert_eq!(r.unwrap().result.stats.intersection_size, Some(50));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Small random multisets over a small universe: duplicates, overlaps, empty sets.
    #[test]
    fn unbalanced_agrees_with_set_intersection(
        provider in prop::collection::vec(0u8..50, 0..60),
        querier in prop::collection::vec(0u8..50, 0..25),
        chunk in 1usize..8,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let key = key_in(dir.path());
        let p = ids(provider.iter().map(|v| format!("id{v}")));
        let q = ids(querier.iter().map(|v| format!("id{v}")));
        let (filter, _) = Filter::build(&key, &p, "v").unwrap();
        let distinct: HashSet<u8> = provider.iter().copied().collect();
        prop_assert_eq!(filter.len(), distinct.len() as u64);
        let querier_cfg = Querier { chunk_size: chunk, ..Querier::new(dir.path()) };
        let (r, s) = split(run_once(&key, &filter, &q, &querier_cfg, 100, false));
        let r = r.unwrap();
        prop_assert_eq!(found(&q, &r), plain(&q, &p));
        let distinct_q: HashSet<u8> = querier.iter().copied().collect();
        prop_assert_eq!(s.unwrap().query_size, distinct_q.len() as u64);
    }
}

#[test]
fn a_provider_keeps_one_filter_per_dataset_version_and_a_querier_reads_files() {
    use ferry_psi::PsiInput;
    use ferry_psi::unbalanced::{ProviderState, query_file};
    let dir = tempfile::tempdir().unwrap();
    let provider_csv = dir.path().join("subscribers.csv");
    let mut text = String::from("phone,plan\n");
    for i in 0..300 {
        text.push_str(&format!("p{i:04},basic\n"));
    }
    std::fs::write(&provider_csv, &text).unwrap();
    let querier_csv = dir.path().join("customers.csv");
    std::fs::write(
        &querier_csv,
        "id,score\np0005,1\nzz,2\n,3\np0299,4\np0005,5\np0300,6\n",
    )
    .unwrap();
    let state = ProviderState {
        dir: dir.path().join("state"),
    };
    let input = PsiInput::new(&provider_csv, &["phone"]);
    let (key, filter, built) = state.prepare(&input, None).unwrap();
    assert!(built.is_some(), "first use builds the filter");
    assert_eq!(filter.len(), 300);
    assert!(filter.id().dataset_version.starts_with("sha256:"));
    let (_, again, built) = state.prepare(&input, None).unwrap();
    assert!(
        built.is_none(),
        "same key and data: the stored filter is reused"
    );
    assert_eq!(again, filter);
    // New data: a new version, a new filter under the same key.
    text.push_str("p0300,gold\n");
    std::fs::write(&provider_csv, &text).unwrap();
    let (_, newer, built) = state.prepare(&input, None).unwrap();
    assert!(built.is_some());
    assert_ne!(newer.id().dataset_version, filter.id().dataset_version);
    assert_eq!(newer.len(), 301);

    let out = dir.path().join("found.csv");
    let q_input = PsiInput::new(&querier_csv, &["id"]).with_output(&out);
    let outcomes = LocalCluster::new(roster()).run(|ctx| {
        if ctx.me().as_str() == "bank" {
            query_file(&ctx, &q_input, &Querier::new(dir.path().join("cache")))
                .map(|(_, rows)| rows)
        } else {
            unbalanced::serve(
                &ctx,
                &Provider {
                    key: &key,
                    filter: &newer,
                    max_query: 10,
                },
            )
            .map(|_| Vec::new())
        }
    });
    let rows = outcomes[0].result.clone().unwrap();
    assert_eq!(
        rows,
        [0, 3, 5],
        "first occurrences of p0005, p0299, p0300 in file order"
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "id,score\np0005,1\np0299,4\np0300,6\n"
    );
}
