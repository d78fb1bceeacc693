//! What crosses the wire: hosts never receive labels or plaintext gradients, the guest never
//! receives a host's features, weights or gradient, and the arbiter never receives features or
//! unmasked gradients. Every payload each party received is inspected.

mod common;

use common::*;
use ferry_context::{LocalCluster, PartyOutcome, Role, TranscriptEntry};
use ferry_crypto::wire::CiphertextBatch;
use ferry_crypto::{HePublicKey, PaillierPublicKey};
use ferry_data::Dataset;
use ferry_linear::{MASK_STATISTICAL_BITS, Mode, Task, Trained};
use rug::Integer;
use rug::integer::Order;
use serde::Deserialize;

fn short_type(e: &TranscriptEntry) -> &str {
    e.payload_type.rsplit("::").next().unwrap_or(e.payload_type)
}

fn received(o: &PartyOutcome<Trained>) -> Vec<TranscriptEntry> {
    o.transcript
        .as_ref()
        .expect("transcripts captured")
        .received()
}

fn sent(o: &PartyOutcome<Trained>) -> Vec<TranscriptEntry> {
    o.transcript.as_ref().expect("transcripts captured").sent()
}

fn le_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Fails if any payload holds 4 consecutive labels, or 4 consecutive `b(y) = 1/2 − y` values,
/// as the f64 bytes a plaintext message would carry (both classes occur, so a leaked label
/// vector always has windows that are not all zero bytes).
fn assert_no_labels(entries: &[TranscriptEntry], labels: &[f64], who: &str) {
    let b: Vec<f64> = labels.iter().map(|y| 0.5 - y).collect();
    for e in entries {
        for series in [labels, &b[..]] {
            for w in series.windows(4) {
                let needle = le_bytes(w);
                // Runs of zero bytes (four 0 labels) also occur in ordinary padding.
                if needle.iter().all(|b| *b == 0) {
                    continue;
                }
                assert!(
                    !e.payload_contains(&needle),
                    "{who} received labels in '{}'",
                    e.tag
                );
            }
        }
    }
}

/// Fails if any payload holds any single feature value of `data` as f64 bytes.
fn assert_no_features(entries: &[TranscriptEntry], data: &Dataset, who: &str) {
    for e in entries {
        for v in &data.features {
            assert!(
                !e.payload_contains(&v.to_le_bytes()),
                "{who} received a raw feature value in '{}'",
                e.tag
            );
        }
    }
}

fn assert_types(entries: &[TranscriptEntry], allowed: &[&str], who: &str) {
    for e in entries {
        assert!(
            allowed.contains(&short_type(e)),
            "{who} received a {} ('{}'), allowed: {allowed:?}",
            e.payload_type,
            e.tag
        );
    }
}

/// The public key `from` sent to the owner of `entries`.
fn key_from(entries: &[TranscriptEntry], from: &str) -> PaillierPublicKey {
    entries
        .iter()
        .find(|e| e.peer.as_str() == from && e.tag.ends_with("public-key"))
        .and_then(|e| e.decode::<PaillierPublicKey>())
        .expect("public key in transcript")
}

/// Key fingerprints of every encrypted gradient (part) in `entries`.
fn gradient_key_fingerprints(entries: &[TranscriptEntry]) -> Vec<[u8; 8]> {
    entries
        .iter()
        .filter(|e| short_type(e) == "EncryptedGradient")
        .map(|e| {
            e.decode::<CiphertextBatch>()
                .expect("a ciphertext batch")
                .key_fingerprint
        })
        .collect()
}

#[test]
fn without_a_third_party_nobody_receives_labels_features_or_another_gradient() {
    let (guest, hosts, _) = synthetic(150, 3, &[4], Task::Logistic, 21);
    let params = test_params(Mode::WithoutThirdParty);
    let outcomes = run_fit(
        LocalCluster::new(roster(1, false)).capture_transcripts(),
        &guest,
        &hosts,
        &params,
        None,
    );
    let (g, h) = (&outcomes[0], &outcomes[1]);
    let (guest_in, host_in) = (received(g), received(h));
    assert!(!host_in.is_empty() && !guest_in.is_empty());

    assert_types(
        &host_in,
        &[
            "Setup",
            "Go",
            "PaillierPublicKey",
            "FeatureHeader",
            "FeatureChunk",
            "EncryptedGradient",
            "EpochControl",
        ],
        "host",
    );
    assert_no_labels(&host_in, guest.labels().unwrap(), "host");
    assert_no_features(&host_in, &guest, "host");
    // The only encrypted gradients the host gets are its own, under its own key: the guest's
    // gradient never travels to the host, not even encrypted.
    let host_key = key_from(&guest_in, "telco");
    let guest_key = key_from(&host_in, "bank");
    let fps = gradient_key_fingerprints(&host_in);
    assert_eq!(fps.len(), 4 * 3, "one per batch");
    assert!(fps.iter().all(|f| *f == host_key.fingerprint()));
    // The guest's rows arrive encrypted under the guest's key, which the host does not hold.
    for e in host_in.iter().filter(|e| short_type(e) == "FeatureChunk") {
        assert!(!e.payload_contains(&host_key.fingerprint()));
        assert!(e.payload_contains(&guest_key.fingerprint()));
    }

    assert_types(
        &guest_in,
        &[
            "SetupReply",
            "PaillierPublicKey",
            "FeatureHeader",
            "FeatureChunk",
            "EncryptedGradient",
            "HostLossTerm",
        ],
        "guest",
    );
    assert_no_features(&guest_in, &hosts[0], "guest");
    let host_weights = &h.result.as_ref().unwrap().model.weights;
    for e in &guest_in {
        for w in host_weights {
            assert!(
                !e.payload_contains(&w.to_le_bytes()),
                "guest received a host weight"
            );
        }
    }
    let fps = gradient_key_fingerprints(&guest_in);
    assert!(!fps.is_empty() && fps.iter().all(|f| *f == guest_key.fingerprint()));
}

#[derive(Deserialize)]
struct WireInteger {
    negative: bool,
    magnitude: Vec<u8>,
}

#[derive(Deserialize)]
struct MaskedPlaintexts {
    values: Vec<WireInteger>,
}

#[test]
fn the_arbiter_sees_only_masked_values_and_hosts_nothing_in_plaintext() {
    let (guest, hosts, _) = synthetic(128, 2, &[3, 2], Task::Logistic, 22);
    let params = test_params(Mode::WithArbiter);
    let outcomes = run_fit(
        LocalCluster::new(roster(2, true)).capture_transcripts(),
        &guest,
        &hosts,
        &params,
        None,
    );
    for o in &outcomes {
        assert!(
            o.result.is_ok(),
            "{}: {:?}",
            o.party,
            o.result.as_ref().err()
        );
    }
    let arbiter = &outcomes[3];
    let arbiter_in = received(arbiter);
    assert_types(
        &arbiter_in,
        &[
            "Setup",
            "Go",
            "DecryptionPlan",
            "EncryptedGradient",
            "EpochControl",
        ],
        "arbiter",
    );
    assert_no_labels(&arbiter_in, guest.labels().unwrap(), "arbiter");
    assert_no_features(&arbiter_in, &guest, "arbiter");
    for h in &hosts {
        assert_no_features(&arbiter_in, h, "arbiter");
    }
    let masked_in = arbiter_in
        .iter()
        .filter(|e| e.tag.ends_with("masked"))
        .count();
    assert_eq!(
        masked_in,
        3 * 2 * 4,
        "3 data parties × 2 batches × 4 epochs"
    );

    // What the arbiter decrypts is the packed gradient plus a mask MASK_STATISTICAL_BITS (80)
    // longer: every value it returns is within a few bits of that width, far longer than any
    // unmasked packed gradient could be. (A uniform mask loses its top 16 bits with
    // probability 2^-16; the run is seeded. With 40-bit masks no value would reach even
    // packed_bits + 42 bits.)
    // feature bits, residual bits, ⌈log2(64 rows × 3 contributing parties)⌉, sign
    let slot_bits = 24 + 20 + 16 + 8 + 1;
    let columns = |party: &str| match party {
        "bank" => 2 + 2, // features, intercept, b(y)
        "telco" => 3,
        "insurer" => 2,
        other => panic!("unexpected party {other}"),
    };
    let replies: Vec<_> = sent(arbiter)
        .into_iter()
        .filter(|e| e.tag.ends_with("unmasked"))
        .collect();
    assert_eq!(replies.len(), masked_in);
    for e in &replies {
        let m: MaskedPlaintexts = e.decode().expect("masked plaintexts");
        assert_eq!(m.values.len(), 1);
        for v in &m.values {
            let value = Integer::from_digits(&v.magnitude, Order::Msf);
            let packed_bits = columns(e.peer.as_str()) * slot_bits;
            assert!(!v.negative);
            let bits = value.significant_bits();
            assert!(
                bits > packed_bits + MASK_STATISTICAL_BITS - 16
                    && bits <= packed_bits + MASK_STATISTICAL_BITS + 1,
                "value for {} has {bits} bits; unmasked it would have at most {packed_bits}",
                e.peer,
            );
        }
    }

    // Data parties: hosts never get labels, features of others, or plaintext gradients; all
    // the encrypted material they hold is under the arbiter's key.
    let arbiter_key = key_from(&received(&outcomes[0]), "coordinator");
    for (k, host) in outcomes[1..3].iter().enumerate() {
        let host_in = received(host);
        assert_types(
            &host_in,
            &[
                "Setup",
                "Go",
                "PaillierPublicKey",
                "FeatureHeader",
                "FeatureChunk",
                "EncryptedGradient",
                "MaskedPlaintexts",
                "EpochControl",
            ],
            "host",
        );
        assert_no_labels(&host_in, guest.labels().unwrap(), "host");
        assert_no_features(&host_in, &guest, "host");
        assert_no_features(&host_in, &hosts[1 - k], "host");
        let fps = gradient_key_fingerprints(&host_in);
        assert!(!fps.is_empty() && fps.iter().all(|f| *f == arbiter_key.fingerprint()));
        // Nothing a host sends to the arbiter is its features: only the sizes of the
        // gradients (once) and masked gradients.
        for e in sent(host)
            .iter()
            .filter(|e| e.peer.as_str() == "coordinator")
        {
            assert!(
                ["DecryptionPlan", "EncryptedGradient"].contains(&short_type(e)),
                "{}",
                e.payload_type
            );
        }
    }
    let guest_in = received(&outcomes[0]);
    for h in &hosts {
        assert_no_features(&guest_in, h, "guest");
    }
}

#[test]
fn prediction_reveals_only_partial_scores_to_the_guest() {
    let (guest, hosts, _) = synthetic(100, 2, &[2], Task::Logistic, 23);
    let params = test_params(Mode::WithoutThirdParty);
    let trained: Vec<Trained> = run_fit(
        LocalCluster::new(roster(1, false)),
        &guest,
        &hosts,
        &params,
        None,
    )
    .into_iter()
    .map(|o| o.unwrap())
    .collect();
    let outcomes = LocalCluster::new(roster(1, false))
        .capture_transcripts()
        .run(|ctx| {
            if ctx.role() == Role::Guest {
                ferry_linear::predict(&ctx, &trained[0].model, &guest)
            } else {
                ferry_linear::predict(&ctx, &trained[1].model, &hosts[0])
            }
        });
    let host_in = outcomes[1].transcript.as_ref().unwrap().received();
    assert_eq!(host_in.len(), 1);
    assert_eq!(short_type(&host_in[0]), "PredictRequest");
    assert_no_labels(&host_in, guest.labels().unwrap(), "host");
    assert_no_features(&host_in, &guest, "host");
    let guest_in = outcomes[0].transcript.as_ref().unwrap().received();
    assert_eq!(guest_in.len(), 1);
    assert_no_features(&guest_in, &hosts[0], "guest");
    // The reply holds exactly the host's partial scores w_h·x.
    let expected = trained[1].model.partial_scores(&hosts[0]).unwrap();
    assert!(guest_in[0].payload_contains(&le_bytes(&expected)));
}

#[test]
fn the_checks_catch_plaintext_leaks() {
    // The detectors above must fire on a payload that carries labels or features in the clear
    // (as a bincode Vec<f64> would), or the tests above prove nothing.
    let (guest, _, _) = synthetic(40, 2, &[2], Task::Logistic, 24);
    let labels = guest.labels().unwrap().to_vec();
    let entry = |payload: Vec<u8>| TranscriptEntry {
        direction: ferry_context::Direction::Received,
        peer: ferry_context::PartyId::new("bank").unwrap(),
        tag: "leak".into(),
        payload_type: "alloc::vec::Vec<f64>",
        bytes: payload.len(),
        payload: Some(payload),
    };
    let mut with_labels = vec![7u8; 5];
    with_labels.extend(le_bytes(&labels));
    let leaked = [entry(with_labels)];
    assert!(std::panic::catch_unwind(|| assert_no_labels(&leaked, &labels, "t")).is_err());
    let b: Vec<f64> = labels.iter().map(|y| 0.5 - y).collect();
    let leaked_b = [entry(le_bytes(&b[10..20]))];
    assert!(std::panic::catch_unwind(|| assert_no_labels(&leaked_b, &labels, "t")).is_err());
    let leaked_x = [entry(le_bytes(&guest.features[3..4]))];
    assert!(std::panic::catch_unwind(|| assert_no_features(&leaked_x, &guest, "t")).is_err());
    let clean = [entry(vec![1, 2, 3])];
    assert_no_labels(&clean, &labels, "t");
    assert_no_features(&clean, &guest, "t");
    assert!(std::panic::catch_unwind(|| assert_types(&leaked, &["Setup"], "t")).is_err());
}
