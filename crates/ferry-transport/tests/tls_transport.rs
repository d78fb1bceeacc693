//! The transport between real TLS endpoints on loopback (several nodes in one process).

use ferry_context::probes::{all_gather, ping_pong};
use ferry_context::{Context, FederationError, PartyId, Role, Roster, SessionConfig};
use ferry_transport::wire::PROTOCOL_VERSION;
use ferry_transport::{FederationTransport, Identity, TransportConfig, session_context};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Node {
    party: PartyId,
    identity: Identity,
    transport: Option<Arc<FederationTransport>>,
}

/// Starts `names` endpoints on free loopback ports, each pinning all the others.
fn cluster(
    names: &[&str],
    tweak: impl Fn(&str, &mut TransportConfig),
) -> Vec<Arc<FederationTransport>> {
    let mut nodes: Vec<Node> = names
        .iter()
        .map(|n| {
            let party = PartyId::new(*n).unwrap();
            let identity = Identity::generate(&party).unwrap();
            Node {
                party,
                identity,
                transport: None,
            }
        })
        .collect();
    // First start every listener, then pin addresses (ports are only known after binding).
    for node in nodes.iter_mut() {
        let mut cfg =
            TransportConfig::new(node.party.clone(), "127.0.0.1:0", node.identity.clone());
        cfg.delivery_timeout = Duration::from_secs(20);
        tweak(node.party.as_str(), &mut cfg);
        node.transport = Some(FederationTransport::start(cfg).unwrap());
    }
    let directory: Vec<(PartyId, String, Vec<u8>)> = nodes
        .iter()
        .map(|n| {
            (
                n.party.clone(),
                n.transport.as_ref().unwrap().local_addr().to_string(),
                n.identity.cert_der().unwrap().to_vec(),
            )
        })
        .collect();
    for node in &nodes {
        for (party, addr, der) in &directory {
            if *party != node.party {
                node.transport
                    .as_ref()
                    .unwrap()
                    .add_peer(party.clone(), addr.clone(), der.clone());
            }
        }
    }
    nodes.into_iter().map(|n| n.transport.unwrap()).collect()
}

fn roster(names: &[&str]) -> Roster {
    let parties: Vec<(&str, Role)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, if i == 0 { Role::Guest } else { Role::Host }))
        .collect();
    Roster::of(&parties)
}

fn contexts(
    transports: &[Arc<FederationTransport>],
    names: &[&str],
    session: &str,
    timeout: Duration,
) -> Vec<Context> {
    transports
        .iter()
        .map(|t| {
            session_context(t, roster(names), session)
                .timeout(timeout)
                .build()
                .unwrap()
        })
        .collect()
}

/// Runs `f` on every context in its own thread.
fn run_all<T: Send>(
    ctxs: Vec<Context>,
    f: impl Fn(Context) -> Result<T, FederationError> + Sync,
) -> Vec<Result<T, FederationError>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = ctxs.into_iter().map(|c| s.spawn(|| f(c))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn ping_pong_and_large_messages_over_tls() {
    let names = ["bank", "telco"];
    let t = cluster(&names, |_, _| {});
    let ctxs = contexts(&t, &names, "job-1/ping", Duration::from_secs(20));
    let results = run_all(ctxs, |ctx| ping_pong(&ctx, 50, 1024));
    assert_eq!(results[0].as_ref().unwrap().rounds, 50);
    results[1].as_ref().unwrap();

    // 5 MB crosses as several chunks and arrives intact.
    let ctxs = contexts(&t, &names, "job-1/big", Duration::from_secs(20));
    let results = run_all(ctxs, |ctx| {
        let peer = ctx.others()[0].clone();
        if ctx.role() == Role::Guest {
            let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
            ctx.send(&peer, "big", &data)?;
            ctx.flush()?;
            Ok(0usize)
        } else {
            let data: Vec<u8> = ctx.recv(&peer, "big")?;
            assert!(data.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
            Ok(data.len())
        }
    });
    assert_eq!(*results[1].as_ref().unwrap(), 5_000_000);
}

#[test]
fn all_gather_between_three_nodes() {
    let names = ["bank", "telco", "insurer"];
    let t = cluster(&names, |_, _| {});
    let ctxs = contexts(&t, &names, "job-2/gather", Duration::from_secs(20));
    let results = run_all(ctxs, |ctx| all_gather(&ctx, ctx.me().as_str().len() as u64));
    for r in results {
        let got = r.unwrap();
        assert_eq!(
            got.iter()
                .map(|(p, v)| (p.as_str().to_string(), *v))
                .collect::<Vec<_>>(),
            [
                ("bank".to_string(), 4),
                ("telco".to_string(), 5),
                ("insurer".to_string(), 7)
            ]
        );
    }
}

#[test]
fn a_server_with_an_unpinned_certificate_is_refused_by_the_client() {
    let names = ["bank", "telco"];
    let t = cluster(&names, |_, _| {});
    let mallory_party = PartyId::new("mallory").unwrap();
    let mut cfg = TransportConfig::new(
        mallory_party.clone(),
        "127.0.0.1:0",
        Identity::generate(&mallory_party).unwrap(),
    );
    cfg.delivery_timeout = Duration::from_secs(2);
    let mallory = FederationTransport::start(cfg).unwrap();
    let telco = PartyId::new("telco").unwrap();
    let r = Roster::of(&[("mallory", Role::Guest), ("telco", Role::Host)]);

    // Nothing pinned for telco: the client does not even try.
    let ctx = session_context(&mallory, r.clone(), "evil-1")
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = ctx.send(&telco, "hello", &1u32).unwrap_err();
    assert!(
        err.to_string().contains("cannot reach party 'telco'"),
        "{err}"
    );

    // A wrong certificate pinned for telco's address: the client refuses the real telco.
    mallory.add_peer(
        telco.clone(),
        t[1].local_addr().to_string(),
        Identity::generate(&telco)
            .unwrap()
            .cert_der()
            .unwrap()
            .to_vec(),
    );
    let ctx = session_context(&mallory, r, "evil-2")
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    ctx.send(&telco, "hello", &1u32).unwrap();
    let start = Instant::now();
    let err = ctx.flush().unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(err.to_string().contains("telco"), "{err}");
    let log = mallory.refusals();
    assert!(
        log.iter().any(|l| l.contains("instead of the pinned one")),
        "{log:?}"
    );
}

#[test]
fn a_stranger_with_the_right_server_pin_is_refused_by_the_server() {
    let names = ["bank", "telco"];
    let t = cluster(&names, |_, _| {});
    let telco = PartyId::new("telco").unwrap();
    // A separate telco whose genuine certificate mallory knows (certificates are public).
    let telco_identity = Identity::generate(&telco).unwrap();
    let mut telco_cfg = TransportConfig::new(telco.clone(), "127.0.0.1:0", telco_identity.clone());
    telco_cfg.delivery_timeout = Duration::from_secs(2);
    let telco_node = FederationTransport::start(telco_cfg).unwrap();
    let mallory_party = PartyId::new("mallory").unwrap();
    let mut cfg = TransportConfig::new(
        mallory_party.clone(),
        "127.0.0.1:0",
        Identity::generate(&mallory_party).unwrap(),
    );
    cfg.delivery_timeout = Duration::from_secs(2);
    cfg.peers = vec![(
        telco.clone(),
        telco_node.local_addr().to_string(),
        telco_identity.cert_der().unwrap().to_vec(),
    )];
    let mallory = FederationTransport::start(cfg).unwrap();
    let ctx = session_context(
        &mallory,
        Roster::of(&[("mallory", Role::Guest), ("telco", Role::Host)]),
        "evil",
    )
    .timeout(Duration::from_secs(2))
    .build()
    .unwrap();
    ctx.send(&telco, "hello", &1u32).unwrap();
    assert!(ctx.flush().is_err(), "telco must not accept mallory");
    let log = telco_node.refusals();
    assert!(
        log.iter().any(|l| l.contains("claiming to be 'mallory'")),
        "{log:?}"
    );
    drop(t);
}

#[test]
fn receive_from_a_silent_peer_times_out_naming_peer_and_tag() {
    let names = ["bank", "telco"];
    let t = cluster(&names, |_, _| {});
    let ctxs = contexts(&t, &names, "job-3", Duration::from_millis(500));
    let start = Instant::now();
    let err = ctxs[0]
        .sub("iter-2")
        .recv::<u64>(&PartyId::new("telco").unwrap(), "gradient")
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3));
    let msg = err.to_string();
    assert!(
        msg.contains("'iter-2/gradient'") && msg.contains("'telco'"),
        "{msg}"
    );
}

#[test]
fn a_killed_peer_gives_an_error_within_the_timeout() {
    let names = ["bank", "telco"];
    let mut t = cluster(&names, |_, _| {});
    let ctxs = contexts(&t, &names, "job-4", Duration::from_secs(2));
    let bank = ctxs[0].clone();
    let telco = PartyId::new("telco").unwrap();
    bank.send(&telco, "first", &1u32).unwrap();
    bank.flush().unwrap();
    // telco disappears mid-protocol (its endpoint and all connections go away).
    drop(ctxs);
    let telco_transport = t.pop().unwrap();
    drop(telco_transport);
    let start = Instant::now();
    let err = bank.recv::<u32>(&telco, "reply").unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "error within the timeout, not a hang"
    );
    assert!(matches!(err, FederationError::Timeout { .. }), "{err}");
}

#[test]
fn protocol_survives_a_listener_restart() {
    let names = ["bank", "telco"];
    let t = cluster(&names, |_, _| {});
    let ctxs = contexts(&t, &names, "job-5", Duration::from_secs(20));
    let telco_transport = t[1].clone();
    let bank_transport = t[0].clone();
    let results = run_all(ctxs, move |ctx| {
        let peer = ctx.others()[0].clone();
        let mut sum = 0u64;
        for i in 0..40u64 {
            if ctx.role() == Role::Guest {
                ctx.send(&peer, "n", &i)?;
                sum += ctx.recv::<u64>(&peer, "echo")?;
                if i == 10 {
                    telco_transport.restart_listener().expect("restart");
                }
                if i == 25 {
                    bank_transport.restart_listener().expect("restart");
                }
            } else {
                let v: u64 = ctx.recv(&peer, "n")?;
                ctx.send(&peer, "echo", &(v * 2))?;
            }
        }
        ctx.flush()?;
        Ok(sum)
    });
    assert_eq!(
        *results[0].as_ref().unwrap(),
        (0..40u64).map(|i| 2 * i).sum::<u64>()
    );
    results[1].as_ref().unwrap();
    // Both directions lost their connection once and came back on a new stream.
    assert!(t[0].stats().streams_opened >= 2, "bank: {:?}", t[0].stats());
    assert!(
        t[1].stats().streams_opened >= 2,
        "telco: {:?}",
        t[1].stats()
    );
}

#[test]
fn version_mismatch_is_a_clear_error_on_both_sides() {
    let names = ["bank", "telco"];
    let t = cluster(&names, |name, cfg| {
        if name == "bank" {
            cfg.protocol_version = PROTOCOL_VERSION + 1;
        }
    });
    let ctxs = contexts(&t, &names, "job-6", Duration::from_secs(3));
    let telco = PartyId::new("telco").unwrap();
    let bank = PartyId::new("bank").unwrap();
    let (ours, newer) = (PROTOCOL_VERSION, PROTOCOL_VERSION + 1);
    ctxs[0].send(&telco, "hello", &1u32).unwrap();
    let err = ctxs[0].flush().unwrap_err();
    assert!(
        matches!(
            err,
            FederationError::VersionMismatch { theirs, ours: o, .. } if theirs == ours && o == newer
        ),
        "sender side: {err}"
    );
    let err = ctxs[1].recv::<u32>(&bank, "hello").unwrap_err();
    assert!(
        matches!(
            err,
            FederationError::VersionMismatch { theirs, ours: o, .. } if theirs == newer && o == ours
        ),
        "receiver side: {err}"
    );
    assert!(
        err.to_string().contains(&format!("version {newer}"))
            && err.to_string().contains(&format!("version {ours}"))
    );
}

#[test]
fn oversized_messages_are_refused_by_the_receiver() {
    let names = ["bank", "telco"];
    let t = cluster(&names, |name, cfg| {
        if name == "telco" {
            cfg.max_message_bytes = 100_000;
        }
    });
    let cfg = SessionConfig {
        timeout: Duration::from_secs(5),
        ..SessionConfig::default()
    };
    let ctxs: Vec<Context> = t
        .iter()
        .map(|tr| {
            session_context(tr, roster(&names), "job-7")
                .config(cfg.clone())
                .build()
                .unwrap()
        })
        .collect();
    let telco = PartyId::new("telco").unwrap();
    ctxs[0].send(&telco, "huge", &vec![7u8; 200_000]).unwrap();
    let err = ctxs[0].flush().unwrap_err();
    assert!(
        matches!(err, FederationError::MessageTooLarge { .. }),
        "{err}"
    );
    // The refusal is per session: another session still works.
    let other: Vec<Context> = t
        .iter()
        .map(|tr| {
            session_context(tr, roster(&names), "job-8")
                .build()
                .unwrap()
        })
        .collect();
    other[0].send(&telco, "small", &vec![1u8; 10]).unwrap();
    assert_eq!(
        other[1]
            .recv::<Vec<u8>>(&PartyId::new("bank").unwrap(), "small")
            .unwrap(),
        vec![1u8; 10]
    );
}

#[test]
fn backpressure_bounds_the_senders_queue() {
    let names = ["bank", "telco"];
    let t = cluster(&names, |name, cfg| {
        cfg.max_outbox_bytes = 2 << 20;
        if name == "telco" {
            cfg.max_buffered_bytes = 2 << 20;
        }
    });
    let ctxs = contexts(&t, &names, "job-9", Duration::from_secs(30));
    let results = run_all(ctxs, |ctx| {
        let peer = ctx.others()[0].clone();
        if ctx.role() == Role::Guest {
            // 40 MB in 1 MB messages while the receiver reads slowly at first.
            let start = Instant::now();
            for i in 0..40u32 {
                ctx.send(&peer, "chunk", &vec![(i % 200) as u8; 1 << 20])?;
            }
            ctx.flush()?;
            Ok(start.elapsed().as_millis() as u64)
        } else {
            std::thread::sleep(Duration::from_millis(800));
            for i in 0..40u32 {
                let v: Vec<u8> = ctx.recv(&peer, "chunk")?;
                assert_eq!(v[0], (i % 200) as u8);
            }
            Ok(0)
        }
    });
    // The sender could not run ahead of the slow receiver: it had to wait for the reader.
    assert!(
        *results[0].as_ref().unwrap() >= 700,
        "sender was not held back: {:?}",
        results[0]
    );
    results[1].as_ref().unwrap();
}

#[test]
fn a_party_leaving_right_after_its_last_receive_still_acknowledges_it() {
    for round in 0..3 {
        let names = ["bank", "telco"];
        let t = cluster(&names, |_, _| {});
        let session = format!("job-10-{round}");
        let ctxs = contexts(&t, &names, &session, Duration::from_secs(20));
        let telco = PartyId::new("telco").unwrap();
        let bank = PartyId::new("bank").unwrap();
        ctxs[0].send(&telco, "last", &vec![3u8; 300_000]).unwrap();
        assert_eq!(
            ctxs[1].recv::<Vec<u8>>(&bank, "last").unwrap().len(),
            300_000
        );
        // telco is done: it shuts down at once, as a process about to exit does.
        t[1].shutdown(Duration::from_secs(5));
        let start = Instant::now();
        ctxs[0]
            .flush()
            .expect("the consumed message was acknowledged before telco left");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn recv_any_returns_messages_of_a_session_from_any_peer() {
    use ferry_context::Transport;
    let names = ["bank", "telco", "insurer"];
    let t = cluster(&names, |_, _| {});
    let bank = PartyId::new("bank").unwrap();
    t[1].send("control", &bank, "propose", b"from telco".to_vec())
        .unwrap();
    t[2].send("control", &bank, "status", b"from insurer".to_vec())
        .unwrap();
    t[2].send("other", &bank, "x", b"another session".to_vec())
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let (from, tag, data) = t[0]
            .recv_any("control", Duration::from_secs(10))
            .expect("a message");
        got.push((from.to_string(), tag, String::from_utf8(data).unwrap()));
    }
    got.sort();
    assert_eq!(
        got,
        [
            (
                "insurer".to_string(),
                "status".to_string(),
                "from insurer".to_string()
            ),
            (
                "telco".to_string(),
                "propose".to_string(),
                "from telco".to_string()
            ),
        ]
    );
    assert!(
        t[0].recv_any("control", Duration::from_millis(200))
            .is_none()
    );
}

/// An aborting party's notice reaches a peer blocked on a receive over TLS.
#[test]
fn an_abort_notice_stops_a_waiting_peer() {
    let names = ["bank", "telco"];
    let t = cluster(&names, |_, _| {});
    let ctxs = contexts(&t, &names, "job-abort", Duration::from_secs(60));
    let telco = ctxs[1].clone();
    let start = Instant::now();
    let waiter = std::thread::spawn(move || {
        telco
            .sub("step")
            .recv::<u64>(&PartyId::new("bank").unwrap(), "x")
    });
    std::thread::sleep(Duration::from_millis(200));
    ctxs[0].abort();
    let err = waiter.join().unwrap().unwrap_err();
    assert!(err.to_string().contains("party 'bank'"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}
