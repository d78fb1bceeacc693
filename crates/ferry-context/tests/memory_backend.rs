use ferry_context::probes::{all_gather, ping_pong};
use ferry_context::{
    Direction, FederationError, LocalCluster, PartyId, Role, Roster, SessionConfig,
};
use std::time::{Duration, Instant};

fn two() -> Roster {
    Roster::of(&[("bank", Role::Guest), ("telco", Role::Host)])
}

fn three() -> Roster {
    Roster::of(&[
        ("bank", Role::Guest),
        ("telco", Role::Host),
        ("insurer", Role::Host),
    ])
}

#[test]
fn ping_pong_echoes_every_payload() {
    let outcomes = LocalCluster::new(two()).run_ok(|ctx| ping_pong(&ctx, 20, 1000));
    let initiator = &outcomes[0];
    assert_eq!(initiator.result.as_ref().unwrap().rounds, 20);
    let c = &initiator.counters.peers[&PartyId::new("telco").unwrap()];
    assert_eq!(c.messages_sent, 20);
    assert_eq!(c.messages_received, 20);
    // A Vec<u8> of 1000 bytes costs 1000 bytes plus a short length prefix.
    assert!(
        c.bytes_sent >= 20 * 1000 && c.bytes_sent < 20 * 1010,
        "{}",
        c.bytes_sent
    );
    assert_eq!(initiator.counters.rounds, 20);
}

#[test]
fn all_gather_returns_everyone_in_roster_order() {
    let outcomes = LocalCluster::new(three()).run_ok(|ctx| {
        let v = ctx.me().as_str().len() as u64;
        all_gather(&ctx, v)
    });
    for o in outcomes {
        let got = o.result.unwrap();
        let names: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["bank", "telco", "insurer"]);
        assert_eq!(got.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [4, 5, 7]);
    }
}

#[test]
fn receive_times_out_with_peer_and_tag_named() {
    let start = Instant::now();
    let outcomes = LocalCluster::new(two())
        .timeout(Duration::from_millis(200))
        .run(|ctx| {
            if ctx.role() == Role::Guest {
                let telco = ctx.hosts()[0].clone();
                ctx.sub("round-1")
                    .recv::<u32>(&telco, "never-sent")
                    .map(|_| ())
            } else {
                std::thread::sleep(Duration::from_millis(400));
                Ok(())
            }
        });
    let err = outcomes[0].result.as_ref().unwrap_err();
    assert!(
        err.contains("'round-1/never-sent'") && err.contains("'telco'"),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_failing_party_fails_its_peers_fast() {
    let start = Instant::now();
    let outcomes = LocalCluster::new(two())
        .timeout(Duration::from_secs(60))
        .run(|ctx| {
            if ctx.role() == Role::Host {
                return Err(FederationError::protocol(ctx.me(), "bad input file"));
            }
            let telco = ctx.hosts()[0].clone();
            ctx.recv::<u32>(&telco, "answer")
        });
    assert!(
        outcomes[0]
            .result
            .as_ref()
            .unwrap_err()
            .contains("party 'telco' failed")
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "fail-fast, not the 60 s timeout"
    );
}

#[test]
fn oversized_messages_are_refused_on_send() {
    let config = SessionConfig {
        max_message_bytes: 1024,
        ..SessionConfig::default()
    };
    let outcomes = LocalCluster::new(two())
        .config(config)
        .timeout(Duration::from_millis(300))
        .run(|ctx| {
            if ctx.role() == Role::Guest {
                ctx.send(&ctx.hosts()[0], "big", &vec![0u8; 4096])
            } else {
                Ok(())
            }
        });
    let err = outcomes[0].result.as_ref().unwrap_err();
    assert!(err.contains("above the limit of 1024 bytes"), "{err}");
}

#[test]
fn wrong_payload_type_is_a_decode_error_naming_the_type() {
    let outcomes = LocalCluster::new(two()).run(|ctx| {
        if ctx.role() == Role::Guest {
            ctx.send(&ctx.hosts()[0], "x", &"not a number".to_string())?;
            Ok(0.0)
        } else {
            ctx.recv::<(f64, f64, f64, f64)>(&ctx.guest()?, "x")
                .map(|v| v.0)
        }
    });
    let err = outcomes[1].result.as_ref().unwrap_err();
    assert!(
        err.contains("could not decode message 'x' from party 'bank'") && err.contains("f64"),
        "{err}"
    );
}

#[test]
fn sub_contexts_keep_same_named_tags_apart() {
    let outcomes = LocalCluster::new(two()).run_ok(|ctx| {
        let peer = ctx.others()[0].clone();
        for i in 0..3u32 {
            ctx.sub(format!("iter-{i}")).send(&peer, "v", &i)?;
        }
        // Receive in reverse order: only the namespace decides which message matches.
        let mut got = Vec::new();
        for i in (0..3u32).rev() {
            got.push(ctx.sub(format!("iter-{i}")).recv::<u32>(&peer, "v")?);
        }
        Ok::<_, FederationError>(got)
    });
    assert_eq!(outcomes[0].result.as_ref().unwrap(), &vec![2, 1, 0]);
}

#[test]
fn unknown_parties_and_wrong_roles_are_errors() {
    let outcomes = LocalCluster::new(two()).run(|ctx| {
        let stranger = PartyId::new("stranger").unwrap();
        let e1 = ctx.send(&stranger, "x", &1u8).unwrap_err();
        let e2 = ctx.require_role(Role::Arbiter).unwrap_err();
        let e3 = ctx.arbiter().unwrap_err();
        Ok::<_, FederationError>(format!("{e1} | {e2} | {e3}"))
    });
    let msg = outcomes[0].result.as_ref().unwrap();
    assert!(msg.contains("'stranger' is not part of this job"), "{msg}");
    assert!(
        msg.contains("needs the arbiter role, but party 'bank' is guest"),
        "{msg}"
    );
    assert!(msg.contains("the job has no arbiter"), "{msg}");
}

#[test]
fn transcripts_record_both_directions_with_payloads() {
    let outcomes = LocalCluster::new(two())
        .capture_transcripts()
        .run_ok(|ctx| {
            let peer = ctx.others()[0].clone();
            if ctx.role() == Role::Guest {
                ctx.send(&peer, "secret", &"label=1".to_string())?;
            } else {
                let _: String = ctx.recv(&peer, "secret")?;
            }
            Ok::<_, FederationError>(())
        });
    let host_t = outcomes[1].transcript.as_ref().unwrap();
    let received = host_t.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].tag, "secret");
    assert_eq!(received[0].direction, Direction::Received);
    assert!(received[0].payload_contains(b"label=1"));
    assert_eq!(received[0].decode::<String>().unwrap(), "label=1");
    assert_eq!(outcomes[0].transcript.as_ref().unwrap().sent().len(), 1);
}

/// What the guest saw in `receive_with_its_own_timeout_keeps_every_check_of_recv`.
struct OwnTimeoutView {
    early: FederationError,
    waited: Duration,
    late_value: u32,
    already_there: u32,
    wrong_type: FederationError,
    stranger: FederationError,
    myself: FederationError,
}

/// `recv_timeout` gives up after its own timeout although the session allows 60 s, names the
/// peer, tag and timeout; the late message stays queued for the next receive; a message that
/// is already there comes even with a zero timeout; and it keeps `recv`'s checks (peers,
/// decoding with the type named) and bookkeeping (counters, transcript).
#[test]
fn receive_with_its_own_timeout_keeps_every_check_of_recv() {
    let outcomes = LocalCluster::new(two())
        .timeout(Duration::from_secs(60))
        .capture_transcripts()
        .run_ok(|ctx| {
            let step = ctx.sub("step");
            if ctx.role() == Role::Host {
                let bank = ctx.guest()?;
                // Only after the guest gave up on "late".
                step.recv::<()>(&bank, "go")?;
                step.send(&bank, "late", &7u32)?;
                step.send(&bank, "now", &8u32)?;
                step.send(&bank, "typed", &9u32)?;
                step.send(&bank, "ready", &())?;
                return Ok(None);
            }
            let telco = ctx.hosts()[0].clone();
            let started = Instant::now();
            let early = step
                .recv_timeout::<u32>(&telco, "late", Duration::from_millis(150))
                .unwrap_err();
            let waited = started.elapsed();
            step.send(&telco, "go", &())?;
            let late_value = step.recv_timeout::<u32>(&telco, "late", Duration::from_secs(30))?;
            step.recv::<()>(&telco, "ready")?;
            let already_there = step.recv_timeout::<u32>(&telco, "now", Duration::ZERO)?;
            let wrong_type = step
                .recv_timeout::<String>(&telco, "typed", Duration::from_secs(1))
                .unwrap_err();
            let stranger = step
                .recv_timeout::<u32>(&PartyId::new("stranger").unwrap(), "x", Duration::ZERO)
                .unwrap_err();
            let myself = step
                .recv_timeout::<u32>(ctx.me(), "x", Duration::ZERO)
                .unwrap_err();
            Ok::<_, FederationError>(Some(OwnTimeoutView {
                early,
                waited,
                late_value,
                already_there,
                wrong_type,
                stranger,
                myself,
            }))
        });
    let view = outcomes[0].result.as_ref().unwrap().as_ref().unwrap();
    match &view.early {
        FederationError::Timeout {
            peer, tag, timeout, ..
        } => {
            assert_eq!(peer.as_str(), "telco");
            assert_eq!(tag, "step/late");
            assert_eq!(*timeout, Duration::from_millis(150));
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert!(
        view.waited >= Duration::from_millis(150),
        "{:?}",
        view.waited
    );
    assert!(
        view.waited < Duration::from_secs(30),
        "not the session timeout"
    );
    assert_eq!(view.late_value, 7);
    assert_eq!(view.already_there, 8);
    assert!(
        matches!(&view.wrong_type, FederationError::Decode { tag, expected, .. }
            if tag == "step/typed" && expected.contains("String")),
        "{}",
        view.wrong_type
    );
    assert!(matches!(&view.stranger, FederationError::UnknownParty(p) if p.as_str() == "stranger"));
    assert!(matches!(&view.myself, FederationError::UnknownParty(p) if p.as_str() == "bank"));
    // late, now, typed and ready were received and counted (a decoding failure still counts the
    // bytes that arrived); the timed-out attempt was not.
    let telco = PartyId::new("telco").unwrap();
    assert_eq!(outcomes[0].counters.peers[&telco].messages_received, 4);
    let tags: Vec<String> = outcomes[0]
        .transcript
        .as_ref()
        .unwrap()
        .received()
        .into_iter()
        .map(|e| e.tag)
        .collect();
    assert_eq!(tags, ["step/late", "step/ready", "step/now", "step/typed"]);
}

/// A party waiting on a long receive stops soon after its session is cancelled (a partner
/// failed, a user cancelled the job), instead of after the whole timeout.
#[test]
fn a_waiting_receive_stops_when_the_session_is_cancelled() {
    use ferry_context::{Context, MemoryNetwork};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let net = MemoryNetwork::new();
    let bank = PartyId::new("bank").unwrap();
    let telco = PartyId::new("telco").unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let ctx = Context::builder(bank.clone(), two(), "s", net.endpoint(bank))
        .timeout(Duration::from_secs(60))
        .cancel_flag(cancel.clone())
        .build()
        .unwrap();
    let start = Instant::now();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        cancel.store(true, Ordering::SeqCst);
    });
    let err = ctx.recv::<u32>(&telco, "never-sent").unwrap_err();
    canceller.join().unwrap();
    assert!(matches!(err, FederationError::Cancelled(_)), "{err}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}

/// Waiting in slices still reports the whole timeout the caller asked for.
#[test]
fn a_timeout_reports_the_full_duration_not_a_slice() {
    let outcomes = LocalCluster::new(two())
        .timeout(Duration::from_millis(450))
        .run(|ctx| {
            if ctx.role() == Role::Guest {
                let telco = ctx.hosts()[0].clone();
                match ctx.recv::<u32>(&telco, "never-sent") {
                    Err(FederationError::Timeout { timeout, .. }) => Ok(timeout),
                    other => Err(FederationError::protocol(
                        ctx.me(),
                        format!("expected a timeout, got {other:?}"),
                    )),
                }
            } else {
                std::thread::sleep(Duration::from_millis(700));
                Ok(Duration::ZERO)
            }
        });
    let waited = outcomes[0].result.as_ref().unwrap();
    assert_eq!(*waited, Duration::from_millis(450));
}

/// A party that stops with an error tells its peers: one waiting on a long receive fails at
/// once naming it, without learning why.
#[test]
fn an_aborting_party_stops_a_waiting_peer_at_once() {
    use ferry_context::{Context, MemoryNetwork};

    let net = MemoryNetwork::new();
    let bank = PartyId::new("bank").unwrap();
    let telco = PartyId::new("telco").unwrap();
    let context = |me: &PartyId| {
        Context::builder(me.clone(), two(), "s", net.endpoint(me.clone()))
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    };
    let (bank_ctx, telco_ctx) = (context(&bank), context(&telco));
    let start = Instant::now();
    let waiter = std::thread::spawn(move || telco_ctx.sub("round-3").recv::<u64>(&bank, "x"));
    std::thread::sleep(Duration::from_millis(200));
    bank_ctx.abort();
    let err = waiter.join().unwrap().unwrap_err();
    assert!(
        matches!(&err, FederationError::PeerFailed { peer, .. } if peer.as_str() == "bank"),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}
