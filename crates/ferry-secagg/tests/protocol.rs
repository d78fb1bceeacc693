//! Secure aggregation end to end over the in-memory backend: exact sums, dropouts at every
//! stage, and what the server's received messages reveal.

use ferry_context::{Context, LocalCluster, PartyId, Role, Roster};
use ferry_secagg::{
    Aggregate, FixedPointRing, MaskedInput, SecAggConfig, SecAggError, advertise, aggregate,
    run_client,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::time::Duration;

fn roster(clients: usize) -> Roster {
    let mut parties = vec![("server", Role::Arbiter), ("c0", Role::Guest)];
    let names = ["c1", "c2", "c3", "c4", "c5"];
    for name in names.iter().take(clients - 1) {
        parties.push((name, Role::Host));
    }
    Roster::of(&parties)
}

fn clients_of(ctx: &Context) -> Vec<PartyId> {
    let mut c = vec![ctx.guest().unwrap()];
    c.extend(ctx.hosts());
    c
}

fn client_index(ctx: &Context) -> usize {
    clients_of(ctx).iter().position(|p| p == ctx.me()).unwrap()
}

/// A deterministic input per client: small structured values (what a real update looks like
/// after fixed-point encoding), so randomness in the masked message can only come from masks.
fn input_of(client: usize, len: usize, ring_bits: u32) -> Vec<u64> {
    let mask = if ring_bits == 64 {
        u64::MAX
    } else {
        (1 << ring_bits) - 1
    };
    (0..len as u64)
        .map(|i| (i * 3 + client as u64 * 1000) & mask)
        .collect()
}

fn expected_sum(clients: &[usize], len: usize, ring_bits: u32) -> Vec<u64> {
    let mask = if ring_bits == 64 {
        u64::MAX
    } else {
        (1 << ring_bits) - 1
    };
    let mut sum = vec![0u64; len];
    for &c in clients {
        for (s, x) in sum.iter_mut().zip(input_of(c, len, ring_bits)) {
            *s = s.wrapping_add(x) & mask;
        }
    }
    sum
}

/// What a client does in a test run.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Honest,
    DropBeforeAdvertise,
    DropAfterShareKeys,
    DropAfterMaskedInput,
    /// Alive but slow: sends its masked input after this pause, then goes on normally.
    LateMaskedInput(Duration),
}

#[derive(Debug)]
enum Outcome {
    Server(Aggregate),
    Client(Vec<PartyId>),
}

fn run(
    n_clients: usize,
    len: usize,
    config: SecAggConfig,
    behaviour: impl Fn(usize) -> Behaviour + Sync,
) -> Vec<ferry_context::PartyOutcome<Outcome>> {
    run_with_session_timeout(n_clients, len, config, behaviour, Duration::from_secs(120))
}

fn run_with_session_timeout(
    n_clients: usize,
    len: usize,
    config: SecAggConfig,
    behaviour: impl Fn(usize) -> Behaviour + Sync,
    session_timeout: Duration,
) -> Vec<ferry_context::PartyOutcome<Outcome>> {
    LocalCluster::new(roster(n_clients))
        .timeout(session_timeout)
        .capture_transcripts()
        .run(|ctx| -> Result<Outcome, SecAggError> {
            if ctx.role() == Role::Arbiter {
                return aggregate(&ctx, &clients_of(&ctx), len, &config).map(Outcome::Server);
            }
            let i = client_index(&ctx);
            let mut rng = ChaCha20Rng::seed_from_u64(100 + i as u64);
            let input = input_of(i, len, config.ring_bits);
            let server = ctx.arbiter()?;
            let dropped = || {
                Err(SecAggError::Config(
                    "simulated dropout (the client goes offline)".into(),
                ))
            };
            match behaviour(i) {
                Behaviour::Honest => run_client(&ctx, &server, &input, &config, &mut rng)
                    .map(|s| Outcome::Client(s.included)),
                Behaviour::DropBeforeAdvertise => dropped(),
                Behaviour::DropAfterShareKeys => {
                    advertise(&ctx, &server, len, &config, &mut rng)?.share_keys(&ctx, &mut rng)?;
                    dropped()
                }
                Behaviour::DropAfterMaskedInput => {
                    advertise(&ctx, &server, len, &config, &mut rng)?
                        .share_keys(&ctx, &mut rng)?
                        .send_masked_input(&ctx, &input)?;
                    dropped()
                }
                Behaviour::LateMaskedInput(pause) => {
                    let keys = advertise(&ctx, &server, len, &config, &mut rng)?
                        .share_keys(&ctx, &mut rng)?;
                    std::thread::sleep(pause);
                    keys.send_masked_input(&ctx, &input)?
                        .unmask(&ctx)
                        .map(|s| Outcome::Client(s.included))
                }
            }
        })
}

fn server_result(outcomes: &[ferry_context::PartyOutcome<Outcome>]) -> &Aggregate {
    match outcomes[0].result.as_ref().expect("server succeeds") {
        Outcome::Server(a) => a,
        Outcome::Client(_) => unreachable!(),
    }
}

fn names(list: &[&str]) -> Vec<PartyId> {
    list.iter().map(|n| PartyId::new(*n).unwrap()).collect()
}

#[test]
fn sum_is_exact_for_every_ring_size() {
    for ring_bits in [16, 40, 64] {
        let config = SecAggConfig {
            ring_bits,
            ..SecAggConfig::default()
        };
        let outcomes = run(4, 300, config, |_| Behaviour::Honest);
        let agg = server_result(&outcomes);
        assert_eq!(agg.sum, expected_sum(&[0, 1, 2, 3], 300, ring_bits));
        assert_eq!(agg.included, names(&["c0", "c1", "c2", "c3"]));
        assert!(agg.dropped.is_empty());
        assert_eq!(agg.threshold, 3);
        for o in &outcomes[1..] {
            match o.result.as_ref().unwrap() {
                Outcome::Client(included) => assert_eq!(included.len(), 4),
                Outcome::Server(_) => unreachable!(),
            }
        }
    }
}

#[test]
fn client_dropping_after_its_masked_input_is_still_in_the_exact_sum() {
    let outcomes = run(4, 200, SecAggConfig::default(), |i| {
        if i == 2 {
            Behaviour::DropAfterMaskedInput
        } else {
            Behaviour::Honest
        }
    });
    let agg = server_result(&outcomes);
    // c2's masked input arrived, so its input is in the sum; its self mask is removed with the
    // shares the three others hold, although c2 never answered the unmasking round.
    assert_eq!(agg.sum, expected_sum(&[0, 1, 2, 3], 200, 64));
    assert_eq!(agg.included, names(&["c0", "c1", "c2", "c3"]));
    assert_eq!(agg.unmasked_by, names(&["c0", "c1", "c3"]));
    assert!(outcomes[3].result.is_err());
}

#[test]
fn client_dropping_before_its_masked_input_leaves_the_exact_sum_of_the_others() {
    let outcomes = run(4, 200, SecAggConfig::default(), |i| {
        if i == 1 {
            Behaviour::DropAfterShareKeys
        } else {
            Behaviour::Honest
        }
    });
    let agg = server_result(&outcomes);
    // The survivors masked towards c1; the server removes those pads with c1's mask key,
    // reconstructed from the survivors' shares.
    assert_eq!(agg.sum, expected_sum(&[0, 2, 3], 200, 64));
    assert_eq!(agg.included, names(&["c0", "c2", "c3"]));
    assert_eq!(agg.dropped, names(&["c1"]));
}

#[test]
fn client_dropping_before_advertising_is_left_out() {
    let outcomes = run(3, 50, SecAggConfig::default(), |i| {
        if i == 0 {
            Behaviour::DropBeforeAdvertise
        } else {
            Behaviour::Honest
        }
    });
    let agg = server_result(&outcomes);
    assert_eq!(agg.sum, expected_sum(&[1, 2], 50, 64));
    assert_eq!(agg.dropped, names(&["c0"]));
}

/// The server gives each stage its own deadline (`stage_timeout`), independent of the session
/// timeout: a client that is alive but sends its masked input 1 s late is dropped with a
/// 250 ms stage timeout — the sum is exactly the others' and the straggler, told nothing more,
/// fails on its own session timeout — and included with the default stage timeout.
#[test]
fn a_client_late_for_a_stage_is_dropped_after_the_stage_timeout() {
    let straggler = |i| {
        if i == 2 {
            Behaviour::LateMaskedInput(Duration::from_secs(1))
        } else {
            Behaviour::Honest
        }
    };
    let strict = SecAggConfig {
        stage_timeout: Duration::from_millis(250),
        ..SecAggConfig::default()
    };
    let outcomes = run_with_session_timeout(4, 100, strict, straggler, Duration::from_secs(3));
    let agg = server_result(&outcomes);
    assert_eq!(agg.sum, expected_sum(&[0, 1, 3], 100, 64));
    assert_eq!(agg.included, names(&["c0", "c1", "c3"]));
    assert_eq!(agg.dropped, names(&["c2"]));
    for honest in [1, 2, 4] {
        assert!(outcomes[honest].result.is_ok(), "client {honest}");
    }
    let err = outcomes[3].result.as_ref().unwrap_err();
    assert!(
        err.contains("timed out") && err.contains("secagg/survivors"),
        "{err}"
    );

    // The same straggler with the default stage timeout (60 s) is waited for and included.
    assert_eq!(
        SecAggConfig::default().stage_timeout,
        Duration::from_secs(60)
    );
    let outcomes = run_with_session_timeout(
        4,
        100,
        SecAggConfig::default(),
        straggler,
        Duration::from_secs(3),
    );
    let agg = server_result(&outcomes);
    assert_eq!(agg.sum, expected_sum(&[0, 1, 2, 3], 100, 64));
    assert!(agg.dropped.is_empty());
    assert!(outcomes.iter().all(|o| o.result.is_ok()));

    // A zero stage timeout would drop every client that is not instantaneous: refused.
    let zero = SecAggConfig {
        stage_timeout: Duration::ZERO,
        ..SecAggConfig::default()
    };
    let outcomes = run(2, 10, zero, |_| Behaviour::DropBeforeAdvertise);
    let err = outcomes[0].result.as_ref().unwrap_err();
    assert!(err.contains("stage timeout is zero"), "{err}");
}

#[test]
fn too_many_dropouts_stop_with_the_stage_named() {
    let outcomes = run(3, 10, SecAggConfig::default(), |i| {
        if i == 0 {
            Behaviour::Honest
        } else {
            Behaviour::DropAfterShareKeys
        }
    });
    let err = outcomes[0].result.as_ref().unwrap_err();
    assert!(
        err.contains("masked-input") && err.contains("threshold is 2") && err.contains("c1"),
        "{err}"
    );
}

#[test]
fn threshold_is_validated_and_must_match_on_both_sides() {
    let config = SecAggConfig::default();
    assert_eq!(config.threshold_for(2).unwrap(), 2);
    assert_eq!(config.threshold_for(3).unwrap(), 2);
    assert_eq!(config.threshold_for(10).unwrap(), 6);
    assert!(config.threshold_for(1).is_err());
    let one = SecAggConfig {
        threshold: Some(1),
        ..config
    };
    assert!(one.threshold_for(5).is_err());

    // A client configured with another threshold refuses the server's directory.
    let outcomes = LocalCluster::new(roster(3)).run(|ctx| -> Result<(), SecAggError> {
        let server_cfg = SecAggConfig {
            ring_bits: 64,
            threshold: Some(3),
            ..SecAggConfig::default()
        };
        if ctx.role() == Role::Arbiter {
            aggregate(&ctx, &clients_of(&ctx), 4, &server_cfg).map(|_| ())
        } else {
            let mut rng = ChaCha20Rng::seed_from_u64(1 + client_index(&ctx) as u64);
            let cfg = if client_index(&ctx) == 0 {
                SecAggConfig::default()
            } else {
                server_cfg
            };
            run_client(&ctx, &ctx.arbiter()?, &[1, 2, 3, 4], &cfg, &mut rng).map(|_| ())
        }
    });
    let err = outcomes[1].result.as_ref().unwrap_err();
    assert!(err.contains("threshold 3"), "{err}");
}

#[test]
fn inputs_outside_the_ring_are_refused() {
    let outcomes = LocalCluster::new(roster(2)).run(|ctx| -> Result<(), SecAggError> {
        let cfg = SecAggConfig {
            ring_bits: 16,
            ..SecAggConfig::default()
        };
        if ctx.role() == Role::Arbiter {
            aggregate(&ctx, &clients_of(&ctx), 2, &cfg).map(|_| ())
        } else {
            let mut rng = ChaCha20Rng::seed_from_u64(2 + client_index(&ctx) as u64);
            run_client(&ctx, &ctx.arbiter()?, &[5, 70_000], &cfg, &mut rng).map(|_| ())
        }
    });
    // Refused before anything is sent, so the server sees a dropout, not a corrupt sum.
    let err = outcomes[1].result.as_ref().unwrap_err();
    assert!(err.contains("element 1") && err.contains("16-bit"), "{err}");
    let server_err = outcomes[0].result.as_ref().unwrap_err();
    assert!(server_err.contains("advertise-keys"), "{server_err}");
}

/// Chi-square statistic of byte frequencies against the uniform distribution (255 degrees of
/// freedom: mean 255, standard deviation ≈ 22.6).
fn byte_chi_square(bytes: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for b in bytes {
        counts[*b as usize] += 1;
    }
    let expected = bytes.len() as f64 / 256.0;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn every_message_the_server_receives_looks_random_and_hides_the_input() {
    let len = 4000;
    // Real-valued updates, fixed-point encoded as the learning layer does.
    let fp = FixedPointRing::new(64, 24, 1000.0).unwrap();
    let updates: Vec<Vec<f64>> = (0..3)
        .map(|c| {
            (0..len)
                .map(|i| ((i as f64) * 0.01 + c as f64).sin() * 0.5)
                .collect()
        })
        .collect();
    let outcomes = LocalCluster::new(roster(3)).capture_transcripts().run(
        |ctx| -> Result<Option<Vec<u64>>, SecAggError> {
            let cfg = SecAggConfig::default();
            if ctx.role() == Role::Arbiter {
                return aggregate(&ctx, &clients_of(&ctx), len, &cfg).map(|a| Some(a.sum));
            }
            let i = client_index(&ctx);
            let (encoded, _) = fp.encode(&updates[i])?;
            let mut rng = ChaCha20Rng::seed_from_u64(7 + i as u64);
            run_client(&ctx, &ctx.arbiter()?, &encoded, &cfg, &mut rng)?;
            Ok(None)
        },
    );
    let sum = outcomes[0].result.as_ref().unwrap().clone().unwrap();
    let decoded = fp.decode_sum(&sum, 3).unwrap();
    for (j, d) in decoded.iter().enumerate() {
        let truth: f64 = updates.iter().map(|u| u[j]).sum();
        assert!((d - truth).abs() < 3.0 * (-24f64).exp2(), "{d} vs {truth}");
    }

    let transcript = outcomes[0].transcript.as_ref().unwrap();
    let received = transcript.received();
    let masked: Vec<(PartyId, Vec<u64>)> = received
        .iter()
        .filter(|e| e.tag.ends_with("masked-input"))
        .map(|e| {
            let m: MaskedInput = e.decode().unwrap();
            let words = m
                .data
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (e.peer.clone(), words)
        })
        .collect();
    assert_eq!(masked.len(), 3);
    for (peer, y) in &masked {
        let c = ["c0", "c1", "c2"]
            .iter()
            .position(|n| *n == peer.as_str())
            .unwrap();
        let (x, _) = fp.encode(&updates[c]).unwrap();
        // Uniform bytes: the plaintext encoding has mostly 0x00/0xff high bytes (chi-square in
        // the hundreds of thousands); a uniform vector stays near 255.
        let bytes: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
        let plain_bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let chi = byte_chi_square(&bytes);
        assert!(chi < 360.0, "masked bytes of {peer} are not uniform: {chi}");
        assert!(byte_chi_square(&plain_bytes) > 10_000.0);
        // Top bit balanced, no correlation with the input's values.
        let ones = y.iter().filter(|v| **v >> 63 == 1).count() as f64 / len as f64;
        assert!((ones - 0.5).abs() < 0.04, "top-bit frequency {ones}");
        let yf: Vec<f64> = y.iter().map(|v| *v as f64).collect();
        let xf: Vec<f64> = updates[c].clone();
        assert!(correlation(&yf, &xf).abs() < 0.07);
        // The input is nowhere in any received message, as words or as a run of bytes.
        for entry in &received {
            assert!(!entry.payload_contains(&plain_bytes[800..832]));
            assert!(!entry.payload_contains(&updates[c][100].to_le_bytes()));
        }
        assert!(x.iter().zip(y).all(|(a, b)| a != b));
    }
    // Masked vectors of different clients are unrelated too.
    let ya: Vec<f64> = masked[0].1.iter().map(|v| *v as f64).collect();
    let yb: Vec<f64> = masked[1].1.iter().map(|v| *v as f64).collect();
    assert!(correlation(&ya, &yb).abs() < 0.07);
}
