//! A partner is authenticated, not trusted: what one peer can make a node hold is bounded, and
//! one peer's flood does not stop other peers' jobs (real TLS endpoints on loopback).

use ferry_context::probes::ping_pong;
use ferry_context::{FederationError, PartyId, Role, Roster, Transport};
use ferry_transport::{
    FederationTransport, Identity, SessionAdmission, TransportConfig, session_context,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CONTROL: &str = "ferry-control";

fn party(name: &str) -> PartyId {
    PartyId::new(name).unwrap()
}

/// Starts `names` endpoints on free loopback ports, each pinning all the others.
fn cluster(
    names: &[&str],
    tweak: impl Fn(&str, &mut TransportConfig),
) -> Vec<Arc<FederationTransport>> {
    let started: Vec<(PartyId, Identity, Arc<FederationTransport>)> = names
        .iter()
        .map(|n| {
            let p = party(n);
            let identity = Identity::generate(&p).unwrap();
            let mut cfg = TransportConfig::new(p.clone(), "127.0.0.1:0", identity.clone());
            cfg.delivery_timeout = Duration::from_secs(20);
            tweak(n, &mut cfg);
            let t = FederationTransport::start(cfg).unwrap();
            (p, identity, t)
        })
        .collect();
    for (me, _, t) in &started {
        for (other, identity, ot) in &started {
            if other != me {
                t.add_peer(
                    other.clone(),
                    ot.local_addr().to_string(),
                    identity.cert_der().unwrap().to_vec(),
                );
            }
        }
    }
    started.into_iter().map(|(_, _, t)| t).collect()
}

/// The node's configuration under test: admission restricted to jobs, small caps.
fn restricted(cfg: &mut TransportConfig) {
    cfg.session_admission = SessionAdmission::Restricted {
        always: vec![CONTROL.to_string()],
    };
}

/// One peer floods a node with sessions and with more bytes than the node may hold for it;
/// the node holds at most its caps for that peer, a job with another peer runs to the end
/// meanwhile, and once the node reads, every flooded message arrives intact and in order
/// (held back, not lost).
#[test]
fn a_flooding_peer_stays_under_its_caps_while_another_job_goes_on() {
    const PEER_CAP: usize = 4 << 20;
    const SESSION_CAP: usize = 8;
    const BULK: usize = 48;
    const BULK_BYTES: usize = 512 << 10;
    let names = ["bank", "telco", "insurer"];
    let t = cluster(&names, |name, cfg| {
        cfg.max_outbox_bytes = 2 << 20;
        if name == "telco" {
            restricted(cfg);
            cfg.max_message_bytes = 1 << 20;
            cfg.max_peer_buffered_bytes = PEER_CAP;
            cfg.max_sessions_per_peer = SESSION_CAP;
        }
    });
    let (bank_t, telco_t, insurer_t) = (t[0].clone(), t[1].clone(), t[2].clone());
    let (bank, telco, insurer) = (party("bank"), party("telco"), party("insurer"));
    // telco takes part in a job with each partner.
    telco_t.admit_session(&bank, "flood-job");
    telco_t.admit_session(&insurer, "good-job");

    // Many sessions: the first SESSION_CAP open, the rest are refused naming bank and the
    // limit, and bank's transport reports it for each.
    for i in 0..40 {
        let session = format!("flood-job/s{i}");
        bank_t
            .send(&session, &telco, "x", vec![i as u8; 64 << 10])
            .unwrap();
        let flushed = bank_t.flush(&session, Duration::from_secs(10));
        if i < SESSION_CAP {
            flushed.unwrap();
        } else {
            let err = flushed.unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, FederationError::PeerFailed { .. })
                    && text.contains("'bank'")
                    && text.contains("max_sessions_per_peer"),
                "{text}"
            );
        }
    }
    assert_eq!(telco_t.open_sessions_from(&bank), SESSION_CAP);
    assert_eq!(
        telco_t.stats().refused_session_limit,
        40 - SESSION_CAP as u64
    );

    // Many large messages into an open session that telco does not read (yet).
    let sent = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (bank_t, telco, sent) = (bank_t.clone(), telco.clone(), sent.clone());
        std::thread::spawn(move || {
            for i in 0..BULK {
                bank_t
                    .send("flood-job/s0", &telco, "bulk", vec![i as u8; BULK_BYTES])
                    .unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
            bank_t
                .flush("flood-job/s0", Duration::from_secs(30))
                .unwrap();
        })
    };
    // Watch what telco holds for bank throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (telco_t, bank, stop) = (telco_t.clone(), bank.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut max_bytes, mut max_sessions) = (0, 0);
            while !stop.load(Ordering::SeqCst) {
                max_bytes = max_bytes.max(telco_t.buffered_bytes_from(&bank));
                max_sessions = max_sessions.max(telco_t.open_sessions_from(&bank));
                std::thread::sleep(Duration::from_micros(200));
            }
            (max_bytes, max_sessions)
        })
    };
    // The flood reaches the cap and stalls there.
    let start = Instant::now();
    while telco_t.buffered_bytes_from(&bank) + BULK_BYTES <= PEER_CAP {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the flood never reached the cap"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sent.load(Ordering::SeqCst) < BULK,
        "bank's sends were not held back"
    );

    // Meanwhile insurer and telco run a job of their own to the end.
    let roster = Roster::of(&[("insurer", Role::Guest), ("telco", Role::Host)]);
    let job_start = Instant::now();
    let results: Vec<Result<usize, FederationError>> = std::thread::scope(|s| {
        let handles: Vec<_> = [&insurer_t, &telco_t]
            .into_iter()
            .map(|tr| {
                let ctx = session_context(tr, roster.clone(), "good-job/train")
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                s.spawn(move || {
                    ping_pong(&ctx, 20, 1024)?;
                    let peer = ctx.others()[0].clone();
                    let big = vec![9u8; 768 << 10];
                    ctx.send(&peer, "big", &big)?;
                    let got: Vec<u8> = ctx.recv(&peer, "big")?;
                    ctx.flush()?;
                    Ok(got.len())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in results {
        assert_eq!(r.unwrap(), 768 << 10);
    }
    assert!(job_start.elapsed() < Duration::from_secs(5));
    // The other job's traffic is not bank's: bank is still stalled at its cap.
    assert!(sent.load(Ordering::SeqCst) < BULK);

    // telco reads: everything bank sent arrives, in order.
    for i in 0..SESSION_CAP {
        let session = format!("flood-job/s{i}");
        let v = telco_t
            .recv(&session, &bank, "x", Duration::from_secs(10))
            .unwrap();
        assert_eq!(v, vec![i as u8; 64 << 10]);
    }
    for i in 0..BULK {
        let v = telco_t
            .recv("flood-job/s0", &bank, "bulk", Duration::from_secs(10))
            .unwrap();
        assert_eq!((v.len(), v[0]), (BULK_BYTES, i as u8));
    }
    flood.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    let (max_bytes, max_sessions) = sampler.join().unwrap();
    assert!(
        max_bytes <= PEER_CAP && max_bytes + BULK_BYTES > PEER_CAP,
        "telco held up to {max_bytes} bytes for bank (cap {PEER_CAP})"
    );
    assert!(max_sessions <= SESSION_CAP);
    assert_eq!(telco_t.buffered_bytes_from(&bank), 0);

    // Closing frees bank's session slots: a new session of the job is accepted again.
    for i in 0..SESSION_CAP {
        telco_t.close_session(&format!("flood-job/s{i}"));
    }
    assert_eq!(telco_t.open_sessions_from(&bank), 0);
    bank_t
        .send("flood-job/later", &telco, "x", vec![1])
        .unwrap();
    bank_t
        .flush("flood-job/later", Duration::from_secs(10))
        .unwrap();
}

/// Under restricted admission, messages of a session not admitted for their sender are
/// refused before they are buffered, the sender learns it at once, and the peer's other
/// sessions (the control session, admitted jobs) go on on the same stream.
#[test]
fn messages_of_a_session_not_admitted_are_refused_and_not_buffered() {
    let names = ["bank", "telco"];
    let t = cluster(&names, |name, cfg| {
        if name == "telco" {
            restricted(cfg);
        }
    });
    let (bank_t, telco_t) = (t[0].clone(), t[1].clone());
    let (bank, telco) = (party("bank"), party("telco"));

    // Not admitted: 3 MB in three chunks, refused at the first one.
    bank_t
        .send("job-x/train", &telco, "rows", vec![1u8; 3 << 20])
        .unwrap();
    let start = Instant::now();
    let err = bank_t
        .flush("job-x/train", Duration::from_secs(10))
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    let text = err.to_string();
    assert!(
        text.contains("'telco'") && text.contains("job-x/train") && text.contains("not open"),
        "{text}"
    );
    assert_eq!(telco_t.buffered_bytes_from(&bank), 0);
    assert_eq!(telco_t.open_sessions_from(&bank), 0);
    assert!(telco_t.stats().refused_not_admitted >= 1);
    assert!(!telco_t.is_session_admitted(&bank, "job-x/train"));
    // A later send in the refused session fails at once on the sender's side.
    assert!(bank_t.send("job-x/train", &telco, "rows", vec![1]).is_err());

    // The control session is always admitted.
    bank_t
        .send(CONTROL, &telco, "control", b"propose".to_vec())
        .unwrap();
    let (from, _, data) = telco_t
        .recv_any(CONTROL, Duration::from_secs(10))
        .expect("a control message");
    assert_eq!((from, data), (bank.clone(), b"propose".to_vec()));

    // Once the job is admitted for bank, its sessions work.
    telco_t.admit_session(&bank, "job-y/");
    assert!(telco_t.is_session_admitted(&bank, "job-y/train"));
    bank_t
        .send("job-y/train", &telco, "rows", vec![2u8; 1000])
        .unwrap();
    bank_t
        .send("job-y/train", &telco, "rows", vec![3u8; 1000])
        .unwrap();
    bank_t
        .flush("job-y/train", Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        telco_t
            .recv("job-y/train", &bank, "rows", Duration::from_secs(10))
            .unwrap(),
        vec![2u8; 1000]
    );
    // The refusal did not cost bank a reconnect.
    assert_eq!(bank_t.stats().streams_opened, 1);

    // Revoking the job frees what bank left unread in it and refuses what follows.
    assert_eq!(telco_t.buffered_bytes_from(&bank), 1000);
    telco_t.revoke_session(&bank, "job-y");
    assert_eq!(telco_t.buffered_bytes_from(&bank), 0);
    // What stays open is the control session.
    assert_eq!(telco_t.open_sessions_from(&bank), 1);
    bank_t
        .send("job-y/predict", &telco, "rows", vec![4u8; 10])
        .unwrap();
    assert!(
        bank_t
            .flush("job-y/predict", Duration::from_secs(10))
            .is_err()
    );
}

/// Protocol tests and benchmarks that never declare admission keep working as before.
#[test]
fn without_admission_rules_every_session_is_admitted() {
    let names = ["bank", "telco"];
    let t = cluster(&names, |_, _| {});
    let (bank, telco) = (party("bank"), party("telco"));
    assert!(t[1].is_session_admitted(&bank, "anything"));
    t[0].send("anything", &telco, "x", vec![5]).unwrap();
    assert_eq!(
        t[1].recv("anything", &bank, "x", Duration::from_secs(10))
            .unwrap(),
        vec![5]
    );
}

/// A node that runs many sessions remembers only a bounded number of closed ones, and a
/// closed session holds nothing.
#[test]
fn closed_sessions_are_remembered_up_to_the_limit() {
    let names = ["bank", "telco"];
    let t = cluster(&names, |name, cfg| {
        if name == "telco" {
            cfg.max_closed_sessions = 16;
        }
    });
    let (bank, telco) = (party("bank"), party("telco"));
    for i in 0..40 {
        let session = format!("job-{i}/t");
        t[0].send(&session, &telco, "x", vec![i as u8; 100])
            .unwrap();
        t[0].flush(&session, Duration::from_secs(10)).unwrap();
        t[0].close_session(&session);
        // Closed before reading: the unread message goes with it.
        if i % 2 == 0 {
            t[1].recv(&session, &bank, "x", Duration::from_secs(10))
                .unwrap();
        }
        t[1].close_session(&session);
        assert!(t[1].closed_sessions_remembered() <= 16);
    }
    assert_eq!(t[1].closed_sessions_remembered(), 16);
    assert_eq!(t[1].open_sessions_from(&bank), 0);
    assert_eq!(t[1].buffered_bytes_from(&bank), 0);
}

/// A per-peer buffer smaller than the largest message could never receive that message: the
/// transport says so instead of starting.
#[test]
fn a_peer_buffer_below_the_message_limit_is_refused_at_start() {
    let p = party("bank");
    let mut cfg = TransportConfig::new(p.clone(), "127.0.0.1:0", Identity::generate(&p).unwrap());
    cfg.max_message_bytes = 2 << 20;
    cfg.max_peer_buffered_bytes = 1 << 20;
    let err = FederationTransport::start(cfg).err().expect("refused");
    assert!(err.to_string().contains("max_peer_buffered_mb"), "{err}");
}
