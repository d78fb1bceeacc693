//! A peer restarts (a new transport with the same identity and port, its memory gone) while
//! this node keeps running: the control session goes on in both directions, sessions of the
//! old instance fail naming the restart, and nothing of the old instance's traffic is taken
//! for the new one's or sent to it again.

use ferry_context::{PartyId, Transport};
use ferry_transport::{
    FederationTransport, Identity, SessionAdmission, TransportConfig, TransportError,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONTROL: &str = "ferry-control";

fn party(name: &str) -> PartyId {
    PartyId::new(name).unwrap()
}

/// A transport that admits only the control session for every peer, as a node's does.
fn start(
    party: &PartyId,
    identity: &Identity,
    listen: &str,
    tweak: impl Fn(&mut TransportConfig),
) -> Arc<FederationTransport> {
    let mut cfg = TransportConfig::new(party.clone(), listen, identity.clone());
    cfg.delivery_timeout = Duration::from_secs(20);
    cfg.session_admission = SessionAdmission::Restricted {
        always: vec![CONTROL.to_string()],
    };
    tweak(&mut cfg);
    // The previous instance's socket may take a moment to be released.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match FederationTransport::start(cfg.clone()) {
            Ok(t) => return t,
            Err(TransportError::Listen { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn pin(t: &FederationTransport, peer: &PartyId, identity: &Identity, other: &FederationTransport) {
    t.add_peer(
        peer.clone(),
        other.local_addr().to_string(),
        identity.cert_der().unwrap().to_vec(),
    );
}

/// The next control message `t` receives: (sender, tag, text).
fn next_control(t: &FederationTransport) -> (String, String, String) {
    let (from, tag, data) = t
        .recv_any(CONTROL, Duration::from_secs(15))
        .expect("a control message");
    (from.to_string(), tag, String::from_utf8(data).unwrap())
}

fn send_text(t: &FederationTransport, session: &str, to: &PartyId, tag: &str, text: &str) {
    t.send(session, to, tag, text.as_bytes().to_vec()).unwrap();
}

#[test]
fn after_a_peer_restarts_the_control_session_flows_again_and_its_other_sessions_fail() {
    let (bank, telco) = (party("bank"), party("telco"));
    let (bank_id, telco_id) = (
        Identity::generate(&bank).unwrap(),
        Identity::generate(&telco).unwrap(),
    );
    let b = start(&bank, &bank_id, "127.0.0.1:0", |_| {});
    let t = start(&telco, &telco_id, "127.0.0.1:0", |_| {});
    pin(&b, &telco, &telco_id, &t);
    pin(&t, &bank, &bank_id, &b);
    b.admit_session(&telco, "job-1");
    t.admit_session(&bank, "job-1");

    // Traffic in both directions, so that every sequence number is well past 0.
    for i in 0..3 {
        send_text(&b, CONTROL, &telco, "control", &format!("bank {i}"));
        send_text(&t, CONTROL, &bank, "control", &format!("telco {i}"));
        send_text(&b, "job-1/t", &telco, "x", &format!("x{i}"));
        send_text(&t, "job-1/t", &bank, "y", &format!("y{i}"));
    }
    for i in 0..3 {
        assert_eq!(next_control(&t).2, format!("bank {i}"));
        assert_eq!(next_control(&b).2, format!("telco {i}"));
        let x = t
            .recv("job-1/t", &bank, "x", Duration::from_secs(15))
            .unwrap();
        assert_eq!(x, format!("x{i}").into_bytes());
        let y = b
            .recv("job-1/t", &telco, "y", Duration::from_secs(15))
            .unwrap();
        assert_eq!(y, format!("y{i}").into_bytes());
    }
    b.flush(CONTROL, Duration::from_secs(15)).unwrap();
    b.flush("job-1/t", Duration::from_secs(15)).unwrap();

    // The telco stops; while it is away the bank queues a message in each session.
    let addr = t.local_addr().to_string();
    let old_incarnation = t.incarnation();
    t.shutdown(Duration::from_secs(5));
    drop(t);
    send_text(&b, "job-1/t", &telco, "x", "x3, for the old instance");
    send_text(
        &b,
        CONTROL,
        &telco,
        "control",
        "queued while telco was away",
    );

    // It comes back on the same port with the same identity, knowing nothing.
    let t = start(&telco, &telco_id, &addr, |_| {});
    assert_ne!(t.incarnation(), old_incarnation);
    pin(&t, &bank, &bank_id, &b);

    // The control message queued meanwhile reaches the new instance, as its first message.
    assert_eq!(
        next_control(&t),
        (
            "bank".to_string(),
            "control".to_string(),
            "queued while telco was away".to_string()
        )
    );
    // The session of the old instance fails naming the peer and its restart: the pending
    // message, a new send and a receive.
    let restarted = |e: ferry_context::FederationError| {
        let msg = e.to_string();
        assert!(
            msg.contains("party 'telco'") && msg.contains("restarted") && msg.contains("job-1/t"),
            "{msg}"
        );
    };
    restarted(b.flush("job-1/t", Duration::from_secs(15)).unwrap_err());
    restarted(b.send("job-1/t", &telco, "x", b"x4".to_vec()).unwrap_err());
    restarted(
        b.recv("job-1/t", &telco, "y", Duration::from_secs(5))
            .unwrap_err(),
    );

    // Both directions of the control session go on, in order, nothing taken for a duplicate.
    for i in 0..3 {
        send_text(&t, CONTROL, &bank, "control", &format!("new telco {i}"));
        send_text(&b, CONTROL, &telco, "control", &format!("bank again {i}"));
    }
    for i in 0..3 {
        assert_eq!(
            next_control(&b),
            (
                "telco".to_string(),
                "control".to_string(),
                format!("new telco {i}")
            )
        );
        assert_eq!(next_control(&t).2, format!("bank again {i}"));
    }
    b.flush(CONTROL, Duration::from_secs(15)).unwrap();
    t.flush(CONTROL, Duration::from_secs(15)).unwrap();
    // The old instance's job message never reached the new one.
    assert!(t.recv_any("job-1/t", Duration::from_millis(300)).is_none());
    assert_eq!(b.stats().peer_restarts, 1, "{:?}", b.stats());
    assert_eq!(t.stats().peer_restarts, 0, "{:?}", t.stats());

    // Closing the failed session ends its failure: the name can be used with the new instance.
    b.close_session("job-1/t");
    t.admit_session(&bank, "job-1");
    send_text(&b, "job-1/t", &telco, "x", "fresh");
    assert_eq!(
        t.recv("job-1/t", &bank, "x", Duration::from_secs(15))
            .unwrap(),
        b"fresh".to_vec()
    );
}

#[test]
fn a_message_that_may_have_reached_the_old_instance_is_not_sent_to_the_new_one() {
    let (bank, telco) = (party("bank"), party("telco"));
    let (bank_id, telco_id) = (
        Identity::generate(&bank).unwrap(),
        Identity::generate(&telco).unwrap(),
    );
    // The telco holds at most 1000 unread bytes per session: a second message waits,
    // written by the bank but not acknowledged.
    let small = |cfg: &mut TransportConfig| cfg.max_buffered_bytes = 1000;
    let b = start(&bank, &bank_id, "127.0.0.1:0", |_| {});
    let old = start(&telco, &telco_id, "127.0.0.1:0", small);
    pin(&b, &telco, &telco_id, &old);
    pin(&old, &bank, &bank_id, &b);
    b.send(CONTROL, &telco, "control", vec![1u8; 800]).unwrap();
    b.send(CONTROL, &telco, "control", vec![2u8; 800]).unwrap();
    let waited = Instant::now();
    while old.buffered_bytes_from(&bank) < 1600 {
        assert!(
            waited.elapsed() < Duration::from_secs(15),
            "the second message never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A new instance of the telco starts while the old one hangs on (on another port here,
    // so that the old one's connection stays open), and writes to the bank first.
    let t = start(&telco, &telco_id, "127.0.0.1:0", small);
    pin(&t, &bank, &bank_id, &b);
    pin(&b, &telco, &telco_id, &t);
    t.send(CONTROL, &bank, "control", b"new telco".to_vec())
        .unwrap();
    assert_eq!(next_control(&b).2, "new telco");

    // The bank's next message goes to the new instance, and only it: not the second message,
    // which the old instance may have stored.
    b.send(CONTROL, &telco, "control", b"after the restart".to_vec())
        .unwrap();
    assert_eq!(next_control(&t).2, "after the restart");
    assert!(t.recv_any(CONTROL, Duration::from_millis(500)).is_none());
    // The lost message is reported once, by the next flush of the session.
    let e = b
        .flush(CONTROL, Duration::from_secs(15))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("party 'telco'") && e.contains("restarted") && e.contains("1 message"),
        "{e}"
    );
    b.flush(CONTROL, Duration::from_secs(15)).unwrap();

    // The replaced instance is refused: nothing it sends reaches the bank any more.
    old.send(CONTROL, &bank, "control", b"from the old instance".to_vec())
        .unwrap();
    assert!(b.recv_any(CONTROL, Duration::from_millis(1000)).is_none());
    assert_eq!(b.stats().peer_restarts, 1, "{:?}", b.stats());
}
