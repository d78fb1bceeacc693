//! Secure aggregation and differential privacy in FedAvg: what the server receives, exactness,
//! the accountant against hand-computed values, and the privacy budget.

mod common;

use common::{load, run_fedavg, server, three_clients};
use ferry_data::{Dataset, LabelKind};
use ferry_horizontal::{
    ClientSelection, DpConfig, FedAvgParams, LocalTraining, ModelSpec, NoisePlacement,
    NoiseSchedule, NoiseStage, PrivacyReport, RdpAccountant, SecureAggregation, SelectionMode,
    Sparsification, StopReason, evaluate,
};

fn breast() -> (Dataset, Dataset, Dataset) {
    (
        load("breast_homo_guest.csv", LabelKind::Binary),
        load("breast_homo_host.csv", LabelKind::Binary),
        load("breast_homo_test.csv", LabelKind::Binary),
    )
}

fn params(rounds: usize) -> FedAvgParams {
    FedAvgParams {
        model: ModelSpec::Logistic,
        rounds,
        local: LocalTraining {
            epochs: 1,
            batch_size: 16,
            learning_rate: 0.05,
            l2: 0.0,
        },
        seed: 11,
        ..FedAvgParams::default()
    }
}

fn dp(sigma: f64, budget: Option<f64>) -> DpConfig {
    DpConfig {
        clip_norm: 1.0,
        noise: NoiseSchedule::constant(sigma),
        delta: 1e-5,
        epsilon_budget: budget,
        noise_seed: Some(5),
    }
}

/// Secure aggregation gives the plain FedAvg model up to fixed-point rounding (2^-33 per value
/// and round), and the server never receives a client's update: not as `f64` bytes, not in the
/// fixed-point encoding that was masked. The same search over the plain run's transcript does
/// find them, so the search is able to fail.
#[test]
fn server_never_receives_a_plaintext_update_under_secure_aggregation() {
    let (a, b, _) = breast();
    let plain = params(3);
    let secure = FedAvgParams {
        secure_aggregation: Some(SecureAggregation::default()),
        ..plain.clone()
    };
    let p_out = run_fedavg(&[a.clone(), b.clone()], None, &plain, true);
    let s_out = run_fedavg(&[a, b], None, &secure, true);
    let (p_model, s_model) = (&server(&p_out).model, &server(&s_out).model);
    for (x, y) in p_model.params.iter().zip(&s_model.params) {
        assert!((x - y).abs() < 1e-8, "{x} vs {y}");
    }

    // Round 1's updates are identical in both runs (same start, same seeded local training,
    // same weights); the plain run's server transcript has them in the clear.
    let p_transcript = p_out[0].transcript.as_ref().unwrap();
    let plain_updates: Vec<Vec<u8>> = p_transcript
        .received()
        .into_iter()
        .filter(|e| e.tag == "round-1/update")
        .map(|e| e.payload.unwrap())
        .collect();
    assert_eq!(plain_updates.len(), 2);
    // Payload: variant tag (1 byte), length (1 byte), then 31 little-endian f64 values.
    let values: Vec<Vec<f64>> = plain_updates
        .iter()
        .map(|p| {
            assert_eq!(p.len(), 2 + 31 * 8);
            p[2..]
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        })
        .collect();
    let needles: Vec<Vec<u8>> = values
        .iter()
        .flat_map(|v| {
            v.iter().filter(|x| **x != 0.0).flat_map(|x| {
                let fixed = (x * 2f64.powi(32)).round() as i64 as u64;
                [x.to_le_bytes().to_vec(), fixed.to_le_bytes().to_vec()]
            })
        })
        .collect();
    assert!(needles.len() > 100);
    let found_in = |t: &ferry_context::Transcript| {
        needles
            .iter()
            .filter(|n| t.received().iter().any(|e| e.payload_contains(n)))
            .count()
    };
    assert!(
        found_in(p_transcript) >= needles.len() / 2,
        "the search finds plain updates"
    );
    let s_transcript = s_out[0].transcript.as_ref().unwrap();
    assert_eq!(
        found_in(s_transcript),
        0,
        "an update value reached the server"
    );
    let received = s_transcript.received();
    assert!(
        received
            .iter()
            .all(|e| !e.payload_type.ends_with("::Update"))
    );
    let masked = received
        .iter()
        .filter(|e| e.tag.ends_with("secagg/masked-input"))
        .count();
    assert_eq!(masked, 2 * 3, "one masked input per client and round");
}

/// Random-k sparsification works under secure aggregation (shared coordinates) and shrinks the
/// masked vectors.
#[test]
fn random_k_sparsification_reduces_secure_aggregation_traffic() {
    let (a, b, test) = breast();
    let secure = FedAvgParams {
        secure_aggregation: Some(SecureAggregation::default()),
        ..params(6)
    };
    let sparse = FedAvgParams {
        sparsification: Sparsification::RandomK { fraction: 0.25 },
        ..secure.clone()
    };
    let full = run_fedavg(&[a.clone(), b.clone()], Some(&test), &secure, false);
    let part = run_fedavg(&[a, b], Some(&test), &sparse, false);
    let update_bytes = |o: &ferry_horizontal::FedAvgOutcome| -> u64 {
        o.rounds.iter().map(|r| r.update_bytes).sum()
    };
    let (full, part) = (server(&full), server(&part));
    assert!(update_bytes(part) < update_bytes(full));
    let acc_full = evaluate(&full.model, &test).unwrap().accuracy.unwrap();
    let acc_part = evaluate(&part.model, &test).unwrap().accuracy.unwrap();
    assert!(acc_part > acc_full - 0.1, "{acc_part} vs {acc_full}");
}

/// DP with zero noise and a clip no update reaches is plain FedAvg bit for bit, with and
/// without secure aggregation.
#[test]
fn dp_with_noise_off_equals_plain_fedavg_exactly() {
    let (a, b, _) = breast();
    for secure in [None, Some(SecureAggregation::default())] {
        let plain = FedAvgParams {
            secure_aggregation: secure,
            ..params(3)
        };
        let off = FedAvgParams {
            dp: Some(DpConfig {
                clip_norm: 1e9,
                ..dp(0.0, None)
            }),
            ..plain.clone()
        };
        let p = run_fedavg(&[a.clone(), b.clone()], None, &plain, false);
        let d = run_fedavg(&[a.clone(), b.clone()], None, &off, false);
        assert_eq!(server(&p).model.params, server(&d).model.params);
        // σ = 0 gives no privacy: ε is infinite, and reported so.
        assert_eq!(server(&d).epsilon, Some(f64::INFINITY));
    }
}

/// ε reported after each round against the hand computation. σ = 2 (below the three clients
/// per round, so the noise does not swamp the updates), every client in every round (q = 1),
/// δ = 1e-5: RDP(α) after T rounds is T·α/(2σ²) = T·α/8 and
/// ε = min_α T·α/8 + ln(1e5)/(α − 1) over the accountant's orders, ln(1e5) = 11.512925465:
///   T = 1: α = 10 → 1.25 + 1.279214 = 2.529214; α = 11 → 1.375 + 1.151293 = 2.526293 (min);
///          α = 12 → 1.5 + 1.046630 = 2.546630
///   T = 3: α = 6 → 4.552585; α = 7 → 2.625 + 1.918821 = 4.543821 (min); α = 8 → 4.644704
/// Noise is really added: the model differs from plain FedAvg.
#[test]
fn reported_epsilon_matches_hand_computation() {
    let data = three_clients();
    let ln_inv_delta = (1e5f64).ln();
    for secure in [None, Some(SecureAggregation::default())] {
        let noisy = FedAvgParams {
            dp: Some(dp(2.0, None)),
            secure_aggregation: secure,
            ..params(3)
        };
        let out = run_fedavg(&data, None, &noisy, false);
        let fed = server(&out);
        let eps: Vec<f64> = fed.rounds.iter().map(|r| r.epsilon.unwrap()).collect();
        let expected_1 = 11.0 / 8.0 + ln_inv_delta / 10.0;
        let expected_3 = 21.0 / 8.0 + ln_inv_delta / 6.0;
        assert!(
            (eps[0] - expected_1).abs() < 1e-12,
            "{} vs {expected_1}",
            eps[0]
        );
        assert!(
            (eps[2] - expected_3).abs() < 1e-12,
            "{} vs {expected_3}",
            eps[2]
        );
        assert!(eps[0] < eps[1] && eps[1] < eps[2]);
        assert_eq!(fed.epsilon, Some(eps[2]));
        // Clients learn the final ε too.
        assert_eq!(out[1].result.as_ref().unwrap().epsilon, Some(eps[2]));
        let plain = run_fedavg(
            &data,
            None,
            &FedAvgParams {
                secure_aggregation: secure,
                ..params(3)
            },
            false,
        );
        assert_ne!(server(&plain).model.params, fed.model.params);
    }
}

/// A staged schedule: σ = 2.5 for rounds 1–2, then σ = 1 (three clients). Accounting composes
/// the stages: RDP(α) = 2·α/(2·2.5²) + α/2 = 0.16α + 0.5α = 0.66α after round 3.
#[test]
fn noise_schedule_by_stage_is_accounted_per_round() {
    let data = three_clients();
    let schedule = NoiseSchedule {
        stages: vec![
            NoiseStage {
                from_round: 1,
                noise_multiplier: 2.5,
            },
            NoiseStage {
                from_round: 3,
                noise_multiplier: 1.0,
            },
        ],
    };
    let staged = FedAvgParams {
        dp: Some(DpConfig {
            noise: schedule,
            ..dp(0.0, None)
        }),
        ..params(3)
    };
    let out = run_fedavg(&data, None, &staged, false);
    let fed = server(&out);
    let sigmas: Vec<f64> = fed
        .rounds
        .iter()
        .map(|r| r.noise_multiplier.unwrap())
        .collect();
    assert_eq!(sigmas, vec![2.5, 2.5, 1.0]);
    let expected = ferry_horizontal::RDP_ORDERS
        .iter()
        .map(|&alpha| 0.66 * alpha + (1e5f64).ln() / (alpha - 1.0))
        .fold(f64::INFINITY, f64::min);
    assert!((fed.epsilon.unwrap() - expected).abs() < 1e-12);
}

/// With a budget of ε = 3 (σ = 2, q = 1, δ = 1e-5, three clients): one round costs 2.526, two
/// rounds would cost 3.645 (α = 8: 2·8/8 + ln(1e5)/7), so training stops after round 1 with a
/// message that gives the numbers. A budget below one round's cost is an error on every party.
#[test]
fn exhausted_budget_stops_training_with_a_clear_message() {
    let data = three_clients();
    let limited = FedAvgParams {
        dp: Some(dp(2.0, Some(3.0))),
        ..params(10)
    };
    let out = run_fedavg(&data, None, &limited, false);
    let fed = server(&out);
    assert_eq!(fed.rounds_completed, 1);
    let StopReason::PrivacyBudget(message) = &fed.stop else {
        panic!("expected a budget stop, got {:?}", fed.stop)
    };
    assert!(
        message.contains("round 2")
            && message.contains("3.6447")
            && message.contains("budget ε = 3"),
        "{message}"
    );
    assert!(fed.epsilon.unwrap() <= 3.0);
    for client in &out[1..] {
        let c = client.result.as_ref().unwrap();
        assert_eq!(c.stop, fed.stop);
        assert_eq!(c.model, fed.model);
    }

    let impossible = FedAvgParams {
        dp: Some(dp(2.0, Some(1.0))),
        ..params(10)
    };
    let out = run_fedavg(&data, None, &impossible, false);
    for o in &out {
        let err = o.result.as_ref().unwrap_err();
        assert!(
            err.contains("privacy budget") && err.contains("Raise the budget"),
            "{err}"
        );
    }
}

#[test]
fn dp_with_fixed_size_subsampling_is_refused() {
    let (a, b, _) = breast();
    let mut p = params(2);
    p.dp = Some(dp(1.0, None));
    p.selection.fraction = 0.5;
    let out = run_fedavg(&[a, b], None, &p, false);
    let err = out[0].result.as_ref().unwrap_err();
    assert!(err.contains("Poisson"), "{err}");
}

/// Poisson selection at rate 0.5 among three clients, σ = 1 (below the 1.5 clients expected
/// per round).
fn poisson_dp(rounds: usize, secure: bool) -> FedAvgParams {
    FedAvgParams {
        selection: ClientSelection {
            fraction: 0.5,
            mode: SelectionMode::Poisson,
        },
        dp: Some(dp(1.0, None)),
        secure_aggregation: secure.then(SecureAggregation::default),
        ..params(rounds)
    }
}

/// Under DP each client learns whether it was selected and nothing about anyone else's
/// selection: no message it receives names another client. It takes part (sends statistics)
/// in exactly the rounds the server selected it for. The same search finds the other clients'
/// names in a secure-aggregation transcript, whose key directory must name the round's
/// participants, so the search is able to fail.
#[test]
fn under_dp_a_client_learns_only_its_own_selection() {
    let data = three_clients();
    let names = ["client-a", "client-b", "client-c"];
    let out = run_fedavg(&data, None, &poisson_dp(8, false), true);
    let fed = server(&out);
    for (i, me) in names.iter().enumerate() {
        let transcript = out[i + 1].transcript.as_ref().unwrap();
        for other in names.iter().filter(|n| *n != me) {
            assert!(
                !transcript
                    .received()
                    .iter()
                    .any(|e| e.payload_contains(other.as_bytes())),
                "{me} received a message naming {other}"
            );
        }
        let took_part: Vec<usize> = transcript
            .sent()
            .iter()
            .filter_map(|e| {
                e.tag
                    .strip_prefix("round-")?
                    .strip_suffix("/stats")?
                    .parse()
                    .ok()
            })
            .collect();
        let selected: Vec<usize> = fed
            .rounds
            .iter()
            .filter(|r| r.selected.iter().any(|p| p.as_str() == *me))
            .map(|r| r.round)
            .collect();
        assert_eq!(took_part, selected, "{me}");
    }

    let secure = run_fedavg(&data, None, &poisson_dp(8, true), true);
    let aggregated = server(&secure).rounds.iter().any(|r| !r.skipped);
    let named = names.iter().enumerate().any(|(i, me)| {
        let t = secure[i + 1].transcript.as_ref().unwrap();
        names.iter().filter(|n| *n != me).any(|other| {
            t.received()
                .iter()
                .any(|e| e.payload_contains(other.as_bytes()))
        })
    });
    // With 8 rounds at rate 0.5, some round selects two or more clients with probability
    // 1 − 0.5^8 (the selection is the operating system's, not the seed's).
    if aggregated {
        assert!(named, "the search finds names in the key directory");
    }
}

/// The Poisson sample under DP comes from operating-system randomness, not from the job seed
/// every party knows: two runs with the same parameters draw different samples. (Twelve rounds
/// of three independent coin flips coincide by chance with probability 2^-36.)
#[test]
fn under_dp_the_sample_is_not_derived_from_the_job_seed() {
    let data = three_clients();
    let p = poisson_dp(12, false);
    let picks = |o: &ferry_horizontal::FedAvgOutcome| -> Vec<Vec<String>> {
        o.rounds
            .iter()
            .map(|r| r.selected.iter().map(|p| p.to_string()).collect())
            .collect()
    };
    let first = picks(server(&run_fedavg(&data, None, &p, false)));
    let second = picks(server(&run_fedavg(&data, None, &p, false)));
    assert_ne!(first, second);
    // Without DP the seeded sample stays reproducible.
    let plain = FedAvgParams { dp: None, ..p };
    assert_eq!(
        picks(server(&run_fedavg(&data, None, &plain, false))),
        picks(server(&run_fedavg(&data, None, &plain, false)))
    );
}

/// The same Poisson selection is charged at q = 0.5 when the sample stays secret (no secure
/// aggregation) and at q = 1 under secure aggregation, where participants learn each other:
/// without amplification the same rounds cost strictly more ε. The privacy report says which.
#[test]
fn accounting_without_amplification_charges_more_epsilon() {
    let data = three_clients();
    let rounds = 4;
    let reference = |q: f64| {
        let mut acc = RdpAccountant::new();
        for _ in 0..rounds {
            acc.step(1.0, q);
        }
        acc.epsilon(1e-5).0
    };
    let secret = run_fedavg(&data, None, &poisson_dp(rounds, false), false);
    let known = run_fedavg(&data, None, &poisson_dp(rounds, true), false);
    let (eps_secret, eps_known) = (
        server(&secret).epsilon.unwrap(),
        server(&known).epsilon.unwrap(),
    );
    assert_eq!(eps_secret, reference(0.5));
    assert_eq!(eps_known, reference(1.0));
    assert!(eps_known > eps_secret, "{eps_known} vs {eps_secret}");

    let report = server(&secret).privacy.clone().unwrap();
    assert!(report.amplification);
    assert_eq!(report.accounted_sampling_rate, 0.5);
    assert_eq!(report.noise, NoisePlacement::Central);
    assert_eq!(report.epsilon, Some(eps_secret));
    let report = server(&known).privacy.clone().unwrap();
    assert!(!report.amplification);
    assert_eq!(report.accounted_sampling_rate, 1.0);
    assert_eq!(report.noise, NoisePlacement::Distributed);
    assert!(
        report.amplification_reason.contains("key directory"),
        "{}",
        report.amplification_reason
    );
    // Every client holds the same report as the server.
    for o in &known[1..] {
        assert_eq!(o.result.as_ref().unwrap().privacy, Some(report.clone()));
    }
}

/// The privacy report lists what each client sends in the clear under DP, and survives JSON
/// for the node's job report: without secure aggregation the (clipped) update itself reaches
/// the server, with it only the client's participation is visible.
#[test]
fn the_privacy_report_lists_the_statistics_sent_in_the_clear() {
    let data = three_clients();
    let central = FedAvgParams {
        validation_fraction: 0.2,
        ..poisson_dp(1, false)
    };
    let out = run_fedavg(&data, None, &central, false);
    let report = server(&out).privacy.clone().unwrap();
    let names: Vec<&str> = report.cleartext.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "sample_count",
        "train_loss",
        "holdout_metrics",
        "test_metrics",
        "update",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(!names.contains(&"validation_quality"));
    let json = serde_json::to_string(&report).unwrap();
    let back: PrivacyReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);

    let secure = poisson_dp(1, true).cleartext_statistics();
    let names: Vec<&str> = secure.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"participation") && !names.contains(&"update"));
    assert!(!names.contains(&"holdout_metrics"));
    assert_eq!(params(1).privacy_report(None), None, "no report without DP");
}

/// Under DP the step is divided by the expected total weight of a round, q · Σ_j n_j / max n,
/// whoever the (secret, random) sample contains; without DP by the realised Σ ω of the round's
/// clients, which changes with them.
#[test]
fn under_dp_the_normaliser_does_not_depend_on_who_took_part() {
    let data = three_clients();
    let n: Vec<f64> = data.iter().map(|d| d.n_rows() as f64).collect();
    let n_max = n.iter().cloned().fold(0.0, f64::max);
    let expected = 0.5 * n.iter().map(|x| x / n_max).sum::<f64>();
    let out = run_fedavg(&data, None, &poisson_dp(10, false), false);
    for r in &server(&out).rounds {
        if r.included.is_empty() {
            assert_eq!(r.normaliser, None);
            continue;
        }
        assert_eq!(r.normaliser, Some(expected), "round {}", r.round);
        for (party, share) in &r.weights {
            let i = ["client-a", "client-b", "client-c"]
                .iter()
                .position(|p| *p == party.as_str())
                .unwrap();
            assert_eq!(*share, n[i] / n_max / expected);
        }
    }

    // Without DP: the realised weights of the round, summing to 1.
    let plain = FedAvgParams {
        dp: None,
        ..poisson_dp(10, false)
    };
    for r in &server(&run_fedavg(&data, None, &plain, false)).rounds {
        if let Some(normaliser) = r.normaliser {
            let max_in_round = r
                .contributions
                .iter()
                .map(|c| c.raw_weight)
                .fold(0.0, f64::max);
            let sum: f64 = r
                .contributions
                .iter()
                .map(|c| c.raw_weight / max_in_round)
                .sum();
            assert!((normaliser - sum).abs() < 1e-12);
            let total: f64 = r.weights.iter().map(|(_, w)| w).sum();
            assert!((total - 1.0).abs() < 1e-12);
        }
    }
}

/// A noise multiplier at or above the number of clients expected per round is refused on every
/// party before anything is sent, with the parameters named.
#[test]
fn noise_that_swamps_the_clipped_updates_is_refused() {
    let data = three_clients();
    let swamped = FedAvgParams {
        dp: Some(dp(1.5, None)),
        ..poisson_dp(2, false)
    };
    for o in run_fedavg(&data, None, &swamped, false) {
        let err = o.result.unwrap_err();
        assert!(
            err.contains("swamp")
                && err.contains("noise multiplier 1.5")
                && err.contains("selection.fraction")
                && err.contains("dp.clip_norm"),
            "{}: {err}",
            o.party
        );
    }
}
