//! Federated WOE/IV: the counts the guest obtains for a host's bins are exactly the centralised
//! ones, with one host, two hosts, both schemes and several label chunks; what crosses the
//! wire; refusals and malformed peers; optimal binning of host features by merge plans.

mod woe_support;

use ferry_context::{Context, LocalCluster, PartyId, Role, TranscriptEntry};
use ferry_crypto::{HePublicKey, HeSettings, SchemeKind};
use ferry_feature::binning::{BinMethod, BinningParams, fit_numeric, merge_to_monotonic};
use ferry_feature::woe::messages::{
    HostFeature, HostHeader, HostSums, LabelChunk, PublicKeyMsg, Reply, Setup,
};
use ferry_feature::woe::{
    BinnedFeature, FeatureWoe, LABEL_CHUNK_ROWS, MergeOutcome, WoeError, WoeOutcome, WoeParams,
    bin_stats, federated_merge, federated_woe, woe_iv,
};
use woe_support::*;

fn guest_of(outcomes: &[ferry_context::PartyOutcome<WoeOutcome>]) -> &ferry_feature::woe::GuestWoe {
    match &outcomes[0].result {
        Ok(WoeOutcome::Guest(g)) => g,
        other => panic!("guest failed: {:?}", other.as_ref().err()),
    }
}

fn host_of(
    outcomes: &[ferry_context::PartyOutcome<WoeOutcome>],
    k: usize,
) -> &ferry_feature::woe::HostWoe {
    match &outcomes[1 + k].result {
        Ok(WoeOutcome::Host(h)) => h,
        other => panic!("host {k} failed: {:?}", other.as_ref().err()),
    }
}

/// Every host feature's counts and WOE at the guest equal the centralised computation on the
/// host's bin indices and the guest's labels.
fn assert_exact(g: &ferry_feature::woe::GuestWoe, b: &Binned, hosts: &[&str], shared: &[bool]) {
    let labels = &b.data.labels;
    let n_guest = b.guest.len();
    for (j, f) in b.guest.iter().enumerate() {
        let stats = bin_stats(&f.bins, labels, f.n_bins).unwrap();
        assert_eq!(g.features[j].bins, stats);
        assert_eq!(g.features[j].party, GUEST);
        assert_eq!(g.features[j].labels, f.bin_labels);
    }
    let mut at = n_guest;
    for (k, host) in hosts.iter().enumerate() {
        for (j, f) in b.hosts[k].iter().enumerate() {
            let got: &FeatureWoe = &g.features[at];
            at += 1;
            let stats = bin_stats(&f.bins, labels, f.n_bins).unwrap();
            assert_eq!(got.bins, stats, "{host} feature {j}");
            let want = woe_iv(&got.feature, host, &stats, &[]).unwrap();
            assert_eq!(got, &want);
            let name = if shared[k] {
                format!("{host}:{}", f.name)
            } else {
                format!("{host}:feature_{j}")
            };
            assert_eq!(got.feature, name);
            assert_eq!(got.party, *host);
        }
    }
    assert_eq!(at, g.features.len());
}

#[test]
fn two_parties_counts_equal_the_centralised_counts() {
    let b = binned(600, 3, &[4], 1, &BinningParams::default());
    let p = params(512);
    let outcomes = run_woe(
        LocalCluster::new(roster(1)),
        &b.data.labels,
        &b.guest,
        &b.hosts,
        &p,
        None,
    );
    let g = guest_of(&outcomes);
    assert_exact(g, &b, &["telco"], &[false]);
    assert_eq!(g.report.host_features, 4);
    assert_eq!(g.report.rows, 600);
    // The host got the WOE of its own bins (send_woe_to_host defaults to true), under the
    // names the guest knows.
    let h = host_of(&outcomes, 0);
    for (j, hf) in h.features.iter().enumerate() {
        let gf = &g.features[3 + j];
        assert_eq!(hf.shared_as, gf.feature);
        assert_eq!(hf.name, b.hosts[0][j].name);
        assert_eq!(hf.woe.as_ref(), Some(&gf.woe));
    }
    // Some host features carry signal, the noise column (every fifth) little.
    assert!(g.features[3..].iter().any(|f| f.iv > 0.1));
}

#[test]
fn three_parties_with_1024_bit_keys() {
    let b = binned(500, 2, &[3, 2], 2, &BinningParams::default());
    let p = params(1024);
    let mut second = p.clone();
    second.share_feature_names = true;
    let outcomes = run_woe(
        LocalCluster::new(roster(2)),
        &b.data.labels,
        &b.guest,
        &b.hosts,
        &p,
        Some(&[p.clone(), second]),
    );
    let g = guest_of(&outcomes);
    assert_exact(g, &b, &["telco", "isp"], &[false, true]);
    assert_eq!(
        host_of(&outcomes, 1).features[0].shared_as,
        "isp:host1_secret_col0"
    );
}

#[test]
fn okamoto_uchiyama_and_several_label_chunks() {
    // More rows than one chunk holds, and a last chunk that is not full.
    let rows = 2 * LABEL_CHUNK_ROWS + 123;
    let b = binned(rows, 0, &[2], 3, &BinningParams::default());
    let p = WoeParams {
        he: HeSettings::insecure_for_tests(SchemeKind::OkamotoUchiyama, 768),
        insecure_test_rng_seed: Some(5),
        ..WoeParams::default()
    };
    let outcomes = run_woe(
        LocalCluster::new(roster(1)),
        &b.data.labels,
        &b.guest,
        &b.hosts,
        &p,
        None,
    );
    assert_exact(guest_of(&outcomes), &b, &["telco"], &[false]);
}

#[test]
fn without_hosts_the_guest_computes_its_own_features_alone() {
    let b = binned(300, 2, &[], 4, &BinningParams::default());
    let outcomes = run_woe(
        LocalCluster::new(roster(0)),
        &b.data.labels,
        &b.guest,
        &b.hosts,
        &params(512),
        None,
    );
    assert_exact(guest_of(&outcomes), &b, &[], &[]);
}

fn le_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn bits(labels: &[f64], msb_first: bool) -> Vec<u8> {
    labels
        .chunks(8)
        .map(|c| {
            c.iter().enumerate().fold(0u8, |acc, (i, y)| {
                let bit = (*y == 1.0) as u8;
                if msb_first {
                    acc | bit << (7 - i)
                } else {
                    acc | bit << i
                }
            })
        })
        .collect()
}

/// Whether a payload holds the labels in a plaintext form: 4 consecutive labels as f64, 24 as
/// bytes (bincode writes small integers and bools as one byte each), or 4 bytes of them packed
/// as bits (either bit order).
fn leaks_labels(e: &TranscriptEntry, labels: &[f64]) -> Option<usize> {
    let as_bytes: Vec<u8> = labels.iter().map(|y| *y as u8).collect();
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for w in labels.windows(4).step_by(3) {
        needles.push(le_bytes(w));
    }
    for w in as_bytes.windows(24).step_by(7) {
        needles.push(w.to_vec());
    }
    for order in [false, true] {
        for w in bits(labels, order).windows(4) {
            needles.push(w.to_vec());
        }
    }
    // Needles made only of zero bytes also occur in padding and in small numbers.
    needles.retain(|n| n.iter().any(|b| *b != 0) && n.iter().any(|b| *b != 1));
    assert!(needles.len() > 100, "the labels have both classes");
    needles.iter().position(|n| e.payload_contains(n))
}

fn assert_no_labels(entries: &[TranscriptEntry], labels: &[f64]) {
    // The check finds labels sent in any of those forms (here as bincode would write them).
    use bincode::Options;
    let codec = bincode::DefaultOptions::new();
    let as_u8: Vec<u8> = labels.iter().map(|y| *y as u8).collect();
    let as_bool: Vec<bool> = labels.iter().map(|y| *y == 1.0).collect();
    let controls = [
        codec.serialize(&labels.to_vec()).unwrap(),
        codec.serialize(&as_u8).unwrap(),
        codec.serialize(&as_bool).unwrap(),
        codec
            .serialize(&labels.iter().map(|y| *y as u64).collect::<Vec<_>>())
            .unwrap(),
        bits(labels, false),
        bits(labels, true),
    ];
    for (i, payload) in controls.into_iter().enumerate() {
        let mut tail = labels.len() / 3; // a part of the labels, offset
        tail = tail.min(payload.len() / 2);
        let control = TranscriptEntry {
            direction: ferry_context::Direction::Sent,
            peer: PartyId::new("control").unwrap(),
            tag: "control".into(),
            payload_type: "control",
            bytes: payload.len() - tail,
            payload: Some(payload[tail..].to_vec()),
        };
        assert!(
            leaks_labels(&control, labels).is_some(),
            "control {i} not caught"
        );
    }
    for e in entries {
        assert_eq!(
            leaks_labels(e, labels),
            None,
            "labels in plaintext in '{}'",
            e.tag
        );
    }
}

fn short_type(e: &TranscriptEntry) -> String {
    // `ferry_feature::woe::messages::Reply<ferry_feature::woe::messages::HostSums>` → `Reply<HostSums>`
    let mut out = String::new();
    for part in e.payload_type.split_inclusive(['<', '>', ',']) {
        out.push_str(part.rsplit("::").next().unwrap_or(part));
    }
    out
}

#[test]
fn labels_never_cross_in_plaintext_and_names_only_when_shared() {
    let b = binned(400, 1, &[3, 2], 6, &BinningParams::default());
    let p = params(512);
    let mut sharing = p.clone();
    sharing.share_feature_names = true;
    let outcomes = run_woe(
        LocalCluster::new(roster(2)).capture_transcripts(),
        &b.data.labels,
        &b.guest,
        &b.hosts,
        &p,
        Some(&[p.clone(), sharing]),
    );
    guest_of(&outcomes);
    let transcript = |k: usize| outcomes[k].transcript.as_ref().expect("captured");
    let guest_sent = transcript(0).sent();
    assert!(!guest_sent.is_empty());
    assert_no_labels(&guest_sent, &b.data.labels);
    for k in 1..=2 {
        let host_in = transcript(k).received();
        assert_no_labels(&host_in, &b.data.labels);
        // A host receives the key, the encrypted labels and the WOE of its own bins, nothing
        // else.
        for e in &host_in {
            assert!(
                ["Setup", "LabelChunk", "WoeValues"].contains(&short_type(e).as_str()),
                "host received a {}",
                e.payload_type
            );
        }
        let chunks = host_in
            .iter()
            .filter(|e| short_type(e) == "LabelChunk")
            .count();
        assert_eq!(chunks, 1);
    }
    // Equal labels encrypt to different ciphertexts.
    let chunk: LabelChunk = transcript(1)
        .received()
        .iter()
        .find(|e| short_type(e) == "LabelChunk")
        .and_then(|e| e.decode())
        .expect("a label chunk");
    let width = chunk.labels.element_bytes as usize;
    let cts: Vec<&[u8]> = chunk.labels.data.chunks(width).collect();
    let distinct: std::collections::HashSet<&[u8]> = cts.iter().copied().collect();
    assert_eq!(distinct.len(), cts.len());

    // telco keeps its names, isp shares them.
    let telco_sent = transcript(1).sent();
    let isp_sent = transcript(2).sent();
    for f in &b.hosts[0] {
        for e in &telco_sent {
            assert!(
                !e.payload_contains(f.name.as_bytes()),
                "telco sent '{}'",
                f.name
            );
        }
    }
    for f in &b.hosts[1] {
        assert!(
            isp_sent
                .iter()
                .any(|e| e.payload_contains(f.name.as_bytes()))
        );
    }
    // A host sends the header and the sums: per-bin totals and ciphertexts, never a row's bin.
    for (k, sent) in [(0, &telco_sent), (1, &isp_sent)] {
        for e in sent.iter() {
            assert!(
                ["Reply<HostHeader>", "Reply<HostSums>"].contains(&short_type(e).as_str()),
                "host sent a {}",
                e.payload_type
            );
            for f in &b.hosts[k] {
                let row_bins: Vec<u8> = f.bins.iter().map(|b| *b as u8).collect();
                for w in row_bins.windows(24).step_by(11) {
                    assert!(!e.payload_contains(w), "bin indices of rows in '{}'", e.tag);
                }
            }
        }
    }
}

#[test]
fn without_send_woe_the_host_gets_no_values() {
    let b = binned(300, 0, &[2], 7, &BinningParams::default());
    let p = WoeParams {
        send_woe_to_host: false,
        ..params(512)
    };
    let outcomes = run_woe(
        LocalCluster::new(roster(1)).capture_transcripts(),
        &b.data.labels,
        &b.guest,
        &b.hosts,
        &p,
        None,
    );
    assert!(
        host_of(&outcomes, 0)
            .features
            .iter()
            .all(|f| f.woe.is_none())
    );
    let host_in = outcomes[1].transcript.as_ref().unwrap().received();
    assert!(host_in.iter().all(|e| !e.tag.ends_with("values")));
}

fn err_of(outcomes: &[ferry_context::PartyOutcome<WoeOutcome>], k: usize) -> String {
    match &outcomes[k].result {
        Err(e) => e.clone(),
        Ok(_) => panic!("party {} succeeded", outcomes[k].party),
    }
}

#[test]
fn a_host_refuses_a_row_count_a_key_or_a_scheme_it_does_not_accept() {
    let b = binned(300, 1, &[1], 8, &BinningParams::default());
    // One row fewer at the host.
    let mut short = b.hosts.clone();
    short[0][0].bins.pop();
    let p = params(512);
    let outcomes = run_woe(
        LocalCluster::new(roster(1)),
        &b.data.labels,
        &b.guest,
        &short,
        &p,
        None,
    );
    assert_eq!(
        err_of(&outcomes, 0),
        "party 'telco' refused: announces 300 aligned rows, but this host has 299"
    );
    assert_eq!(
        err_of(&outcomes, 1),
        "party 'bank' sent an invalid setup: announces 300 aligned rows, but this host has 299"
    );

    // The host requires at least 1024-bit keys; the guest uses 512.
    let strict = params(1024);
    let outcomes = run_woe(
        LocalCluster::new(roster(1)),
        &b.data.labels,
        &b.guest,
        &b.hosts,
        &p,
        Some(&[strict]),
    );
    assert_eq!(
        err_of(&outcomes, 0),
        "party 'telco' refused: sent a paillier-512 key, but this host requires paillier with \
         at least 1024 bits"
    );

    // A host whose own settings are invalid still answers, with the reason.
    let invalid = WoeParams {
        he: HeSettings {
            key_bits: 512,
            ..HeSettings::default()
        },
        ..WoeParams::default()
    };
    let outcomes = run_woe(
        LocalCluster::new(roster(1)),
        &b.data.labels,
        &b.guest,
        &b.hosts,
        &p,
        Some(&[invalid]),
    );
    assert_eq!(
        err_of(&outcomes, 0),
        "party 'telco' refused: WOE parameters: he.key_bits must be between 2048 and 8192, got \
         512 (smaller keys are for tests only and cannot be asked for in parameters)"
    );

    let ou = WoeParams {
        he: HeSettings::insecure_for_tests(SchemeKind::OkamotoUchiyama, 512),
        ..params(512)
    };
    let outcomes = run_woe(
        LocalCluster::new(roster(1)),
        &b.data.labels,
        &b.guest,
        &b.hosts,
        &p,
        Some(&[ou]),
    );
    assert!(
        err_of(&outcomes, 0).contains("this host requires ou with at least 512 bits"),
        "{}",
        err_of(&outcomes, 0)
    );
}

#[test]
fn a_host_with_bad_local_data_tells_the_guest_no_details() {
    let b = binned(200, 1, &[1], 9, &BinningParams::default());
    let mut broken = b.hosts.clone();
    broken[0][0].bins[17] = 99;
    let outcomes = run_woe(
        LocalCluster::new(roster(1)),
        &b.data.labels,
        &b.guest,
        &broken,
        &params(512),
        None,
    );
    assert_eq!(
        err_of(&outcomes, 0),
        "party 'telco' refused: its data failed a local check (the details are in its own log)"
    );
    assert_eq!(
        err_of(&outcomes, 1),
        format!(
            "feature '{}': row 17 is in bin 99, but there are {} bins",
            broken[0][0].name, broken[0][0].n_bins
        )
    );
}

#[test]
fn the_guest_checks_its_own_input() {
    let b = binned(100, 1, &[], 10, &BinningParams::default());
    let mut labels = b.data.labels.clone();
    labels[3] = 2.0;
    let outcomes = run_woe(
        LocalCluster::new(roster(0)),
        &labels,
        &b.guest,
        &b.hosts,
        &params(512),
        None,
    );
    assert_eq!(
        err_of(&outcomes, 0),
        "label of row 3 is 2; WOE needs 0 (good) or 1 (bad)"
    );
    // Parameters from JSON cannot ask for small keys.
    let p: WoeParams = serde_json::from_str(r#"{"he": {"key_bits": 512}}"#).unwrap();
    assert_eq!(
        p.validate().unwrap_err(),
        "he.key_bits must be between 2048 and 8192, got 512 (smaller keys are for tests only \
         and cannot be asked for in parameters)"
    );
    assert!(
        serde_json::from_str::<WoeParams>(r#"{"insecure_test_rng_seed": 1}"#)
            .unwrap_err()
            .to_string()
            .contains("unknown field")
    );
}

/// What a misbehaving host does after receiving the setup.
enum Tamper {
    /// Announces 3 bins but sends 4 totals.
    WrongBinCount,
    /// Totals of one row fewer than the guest has.
    WrongRowCount,
    /// Well-formed counts whose encrypted bad counts are all zero.
    ZeroBadCounts,
    /// One packed ciphertext too many.
    ExtraCiphertext,
}

fn fake_host(ctx: &Context, tamper: &Tamper, rows: usize) -> Result<(), WoeError> {
    let ctx = ctx.sub("woe");
    let guest = PartyId::new(GUEST).unwrap();
    let setup: Setup = ctx.recv(&guest, "setup")?;
    let PublicKeyMsg::Paillier(pk) = setup.key else {
        panic!("tests use Paillier")
    };
    let header = HostHeader {
        features: vec![HostFeature {
            name: "feature_0".into(),
            n_bins: 3,
            ordered: true,
        }],
    };
    ctx.send(&guest, "header", &Reply::Ok(header))?;
    for _ in 0..rows.div_ceil(setup.chunk_rows as usize) {
        let _: LabelChunk = ctx.recv(&guest, "labels")?;
    }
    let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(1);
    let zero = pk.encrypt(&rug::Integer::new(), &mut rng).unwrap();
    let third = rows as u64 / 3;
    let mut totals = vec![third, third, rows as u64 - 2 * third];
    let mut cts = vec![zero.clone()];
    match tamper {
        Tamper::WrongBinCount => totals.push(0),
        Tamper::WrongRowCount => totals[0] -= 1,
        Tamper::ZeroBadCounts => {}
        Tamper::ExtraCiphertext => cts.push(zero),
    }
    let sums = HostSums {
        totals: vec![totals],
        bad_sums: pk.encode_batch(&cts).into(),
    };
    ctx.send(&guest, "sums", &Reply::Ok(sums))?;
    Ok(())
}

#[test]
fn a_host_sending_wrong_bins_rows_or_counts_gets_a_clear_error() {
    let b = binned(120, 0, &[], 11, &BinningParams::default());
    let p = params(512);
    let cases = [
        (
            Tamper::WrongBinCount,
            "party 'telco' sent an invalid bin counts: 4 bin counts for feature 'feature_0', \
             which it announced with 3 bins",
        ),
        (
            Tamper::WrongRowCount,
            "party 'telco' sent an invalid bin counts: the bins of feature 'feature_0' hold 119 \
             rows, but there are 120 aligned rows",
        ),
        (
            Tamper::ZeroBadCounts,
            "party 'telco' sent an invalid bin counts: the bins of feature 'feature_0' hold 0 \
             bad rows, but the labels have",
        ),
        (
            Tamper::ExtraCiphertext,
            "party 'telco' sent an invalid bin counts: 2 packed ciphertexts, expected 1 for 3 \
             bins",
        ),
    ];
    for (tamper, expected) in cases {
        let outcomes = LocalCluster::new(roster(1)).run(|ctx| -> Result<(), WoeError> {
            if ctx.role() == Role::Host {
                fake_host(&ctx, &tamper, 120)
            } else {
                federated_woe(&ctx, &[], Some(&b.data.labels), &p).map(|_| ())
            }
        });
        let err = outcomes[0].result.as_ref().unwrap_err();
        assert!(err.starts_with(expected), "{err}\nexpected: {expected}");
    }
}

#[test]
fn optimal_host_bins_from_merge_plans_equal_centralised_optimal_binning() {
    let rows = 3000;
    let optimal = BinningParams {
        method: BinMethod::Optimal,
        max_bins: 6,
        fine_bins: 40,
        min_bin_share: 0.05,
        ..BinningParams::default()
    };
    // The host fits fine quantile bins without labels.
    let fine = BinningParams {
        method: BinMethod::Quantile,
        max_bins: optimal.fine_bins,
        ..optimal.clone()
    };
    let b = binned(rows, 1, &[3], 12, &fine);
    let p = params(512);
    let outcomes = LocalCluster::new(roster(1)).run(|ctx| -> Result<MergeOutcome, WoeError> {
        if ctx.role() == Role::Host {
            let woe = federated_woe(&ctx, &b.hosts[0], None, &p)?;
            federated_merge(&ctx, &woe, &b.host_binnings[0], &optimal, &p)
        } else {
            let woe = federated_woe(&ctx, &b.guest, Some(&b.data.labels), &p)?;
            federated_merge(&ctx, &woe, &[], &optimal, &p)
        }
    });
    let (MergeOutcome::Guest(guest), MergeOutcome::Host(host)) = (
        outcomes[0].result.as_ref().unwrap(),
        outcomes[1].result.as_ref().unwrap(),
    ) else {
        panic!("roles")
    };
    assert_eq!(guest.len(), 3);
    let mut value_bins = Vec::new();
    for (j, (col_name, values)) in b.data.hosts[0].iter().enumerate() {
        // What the host would get with the labels in hand.
        let central = fit_numeric(col_name, values, Some(&b.data.labels), &optimal).unwrap();
        assert_eq!(host[j].binning, central, "{col_name}");
        let merged = BinnedFeature::numeric(&central, values);
        let stats = bin_stats(&merged.bins, &b.data.labels, merged.n_bins).unwrap();
        assert_eq!(guest[j].bins, stats);
        assert_eq!(host[j].woe.as_ref(), Some(&guest[j].woe));
        // The same through merge_to_monotonic on the fine binning's counts.
        let fine_stats =
            bin_stats(&b.hosts[0][j].bins, &b.data.labels, b.hosts[0][j].n_bins).unwrap();
        assert_eq!(
            merge_to_monotonic(&b.host_binnings[0][j], &fine_stats, &optimal).unwrap(),
            central
        );
        // Monotonic bad rate over the value bins.
        let rates: Vec<f64> = stats[..stats.len() - 1]
            .iter()
            .map(|s| s.bad as f64 / s.total as f64)
            .collect();
        let up = rates.windows(2).all(|w| w[0] < w[1]);
        let down = rates.windows(2).all(|w| w[0] > w[1]);
        assert!(up || down, "{col_name}: {rates:?}");
        assert!(rates.len() <= optimal.max_bins);
        value_bins.push(rates.len());
    }
    // The columns carry signal: merging keeps several bins.
    assert!(value_bins.iter().all(|&k| k >= 2), "{value_bins:?}");
    assert!(value_bins.iter().any(|&k| k >= 3), "{value_bins:?}");
}
