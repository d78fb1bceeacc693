//! Secure aggregation and differential privacy in FedAvg: what the server receives, exactness,
//! the accountant against hand-computed values, and the privacy budget.

mod common;

use common::{load, run_fedavg, server};
use ferry_data::{Dataset, LabelKind};
use ferry_horizontal::{
    DpConfig, FedAvgParams, LocalTraining, ModelSpec, NoiseSchedule, NoiseStage, SecureAggregation,
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

/// ε reported after each round against the hand computation. σ = 2, every client in every
/// round (q = 1), δ = 1e-5: RDP(α) after T rounds is T·α/(2σ²) = T·α/8 and
/// ε = min_α T·α/8 + ln(1e5)/(α − 1) over the accountant's orders, ln(1e5) = 11.512925465:
///   T = 1: α = 10 → 1.25 + 1.279214 = 2.529214; α = 11 → 1.375 + 1.151293 = 2.526293 (min);
///          α = 12 → 1.5 + 1.046630 = 2.546630
///   T = 3: α = 6 → 4.552585; α = 7 → 2.625 + 1.918821 = 4.543821 (min); α = 8 → 4.644704
/// Noise is really added: the model differs from plain FedAvg.
#[test]
fn reported_epsilon_matches_hand_computation() {
    let (a, b, _) = breast();
    let ln_inv_delta = (1e5f64).ln();
    for secure in [None, Some(SecureAggregation::default())] {
        let noisy = FedAvgParams {
            dp: Some(dp(2.0, None)),
            secure_aggregation: secure,
            ..params(3)
        };
        let out = run_fedavg(&[a.clone(), b.clone()], None, &noisy, false);
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
            &[a.clone(), b.clone()],
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

/// A staged schedule: σ = 4 for rounds 1–2, then σ = 1. Accounting composes the stages:
/// RDP(α) = 2·α/32 + α/2 = 9α/16 after round 3.
#[test]
fn noise_schedule_by_stage_is_accounted_per_round() {
    let (a, b, _) = breast();
    let schedule = NoiseSchedule {
        stages: vec![
            NoiseStage {
                from_round: 1,
                noise_multiplier: 4.0,
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
    let out = run_fedavg(&[a, b], None, &staged, false);
    let fed = server(&out);
    let sigmas: Vec<f64> = fed
        .rounds
        .iter()
        .map(|r| r.noise_multiplier.unwrap())
        .collect();
    assert_eq!(sigmas, vec![4.0, 4.0, 1.0]);
    let expected = ferry_horizontal::RDP_ORDERS
        .iter()
        .map(|&alpha| 9.0 * alpha / 16.0 + (1e5f64).ln() / (alpha - 1.0))
        .fold(f64::INFINITY, f64::min);
    assert!((fed.epsilon.unwrap() - expected).abs() < 1e-12);
}

/// With a budget of ε = 3 (σ = 2, q = 1, δ = 1e-5): one round costs 2.526, two rounds would
/// cost 3.645 (α = 8: 2·8/8 + ln(1e5)/7), so training stops after round 1 with a message that
/// gives the numbers. A budget below one round's cost is an error on every party.
#[test]
fn exhausted_budget_stops_training_with_a_clear_message() {
    let (a, b, _) = breast();
    let limited = FedAvgParams {
        dp: Some(dp(2.0, Some(3.0))),
        ..params(10)
    };
    let out = run_fedavg(&[a.clone(), b.clone()], None, &limited, false);
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
    let out = run_fedavg(&[a, b], None, &impossible, false);
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
