//! Partners changed while the transport runs: one added is reachable at once, one removed is
//! cut off at once (its open connection closed, new handshakes refused, waits for it failing
//! with the reason), and a rotated certificate is accepted next to the old one until the
//! overlap ends, after which connections with the old one are cut.

use ferry_context::{FederationError, PartyId, Transport};
use ferry_transport::{FederationTransport, Identity, TransportConfig};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

fn party(name: &str) -> PartyId {
    PartyId::new(name).unwrap()
}

fn start(party: &PartyId, identity: &Identity) -> Arc<FederationTransport> {
    let mut cfg = TransportConfig::new(party.clone(), "127.0.0.1:0", identity.clone());
    cfg.delivery_timeout = Duration::from_secs(20);
    FederationTransport::start(cfg).unwrap()
}

fn pin(t: &FederationTransport, peer: &PartyId, identity: &Identity, other: &FederationTransport) {
    t.add_peer(
        peer.clone(),
        other.local_addr().to_string(),
        identity.cert_der().unwrap().to_vec(),
    );
}

/// Sends `text` and waits until the receiver has it.
fn round_trip(
    from: &FederationTransport,
    to: &FederationTransport,
    session: &str,
    text: &str,
) -> Result<String, FederationError> {
    from.send(session, to.party(), "m", text.as_bytes().to_vec())?;
    let got = to.recv(session, from.party(), "m", Duration::from_secs(10))?;
    Ok(String::from_utf8(got).unwrap())
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_partner_added_at_run_time_is_reachable_and_a_removed_one_is_cut_off_at_once() {
    let (bank, telco) = (party("bank"), party("telco"));
    let (bank_id, telco_id) = (
        Identity::generate(&bank).unwrap(),
        Identity::generate(&telco).unwrap(),
    );
    let b = start(&bank, &bank_id);
    let t = start(&telco, &telco_id);
    assert!(!b.is_peer(&telco));

    // Added while both run: traffic flows both ways without a restart.
    pin(&b, &telco, &telco_id, &t);
    pin(&t, &bank, &bank_id, &b);
    assert_eq!(b.peers(), vec![telco.clone()]);
    assert_eq!(round_trip(&t, &b, "s1", "hello").unwrap(), "hello");
    assert_eq!(round_trip(&b, &t, "s1", "back").unwrap(), "back");

    // A wait for the telco is under way when the bank removes it: it fails at once with the
    // reason, not after its 60 s timeout.
    let waiter = {
        let b = b.clone();
        let telco = telco.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let r = b.recv("s1", &telco, "never", Duration::from_secs(60));
            (r, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(b.remove_peer(&telco, "removed from this node's partners by admin"));
    let (result, waited) = waiter.join().unwrap();
    let err = result.expect_err("a wait for a removed partner fails");
    assert!(
        err.to_string()
            .contains("removed from this node's partners"),
        "{err}"
    );
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    assert!(!b.is_peer(&telco));
    assert!(b.peers().is_empty());

    // Sending to it fails at once too.
    let err = b
        .send("s1", &telco, "m", b"x".to_vec())
        .expect_err("no link to a removed partner");
    assert!(matches!(err, FederationError::Unreachable { .. }), "{err}");

    // The telco's open connection was cut and a new one is refused: what it sends now never
    // arrives, and the bank's refusal log names it.
    t.send("s2", &bank, "m", b"after removal".to_vec()).unwrap();
    wait_for(
        "the bank to refuse the telco's handshake",
        Duration::from_secs(15),
        || b.refusals().iter().any(|l| l.contains("'telco'")),
    );
    let err = b
        .recv("s2", &telco, "m", Duration::from_millis(500))
        .expect_err("nothing arrives from a removed partner");
    assert!(
        err.to_string()
            .contains("removed from this node's partners"),
        "{err}"
    );

    // Added again, it is a partner like before.
    pin(&b, &telco, &telco_id, &t);
    assert_eq!(
        round_trip(&b, &t, "s3", "welcome back").unwrap(),
        "welcome back"
    );
    assert_eq!(round_trip(&t, &b, "s3", "thanks").unwrap(), "thanks");
}

#[test]
fn a_rotated_certificate_is_accepted_with_the_old_one_until_the_overlap_ends() {
    let (bank, telco) = (party("bank"), party("telco"));
    let bank_id = Identity::generate(&bank).unwrap();
    let old_id = Identity::generate(&telco).unwrap();
    let new_id = Identity::generate(&telco).unwrap();
    assert_ne!(old_id.cert_der().unwrap(), new_id.cert_der().unwrap());

    let b = start(&bank, &bank_id);
    let old = start(&telco, &old_id);
    pin(&b, &telco, &old_id, &old);
    pin(&old, &bank, &bank_id, &b);
    assert_eq!(round_trip(&old, &b, "s1", "old key").unwrap(), "old key");

    // The telco made a new key; the bank pins it with a short overlap.
    let overlap = Duration::from_secs(3);
    let rotated_at = Instant::now();
    assert!(b.rotate_peer(
        &telco,
        new_id.cert_der().unwrap().to_vec(),
        SystemTime::now() + overlap,
        None,
    ));
    assert!(!b.rotate_peer(
        &party("stranger"),
        new_id.cert_der().unwrap().to_vec(),
        SystemTime::now() + overlap,
        None,
    ));

    // Within the overlap the old instance's connection still works...
    assert_eq!(
        round_trip(&old, &b, "s2", "still old").unwrap(),
        "still old"
    );
    // ...and an instance with the new key is accepted too, in both directions (the bank
    // reaches the new instance's address when told it).
    let new = start(&telco, &new_id);
    pin(&new, &bank, &bank_id, &b);
    assert_eq!(round_trip(&new, &b, "s3", "new key").unwrap(), "new key");
    assert!(b.rotate_peer(
        &telco,
        new_id.cert_der().unwrap().to_vec(),
        SystemTime::now() + overlap,
        Some(new.local_addr().to_string()),
    ));
    assert!(rotated_at.elapsed() < overlap, "the test ran too slowly");

    // After the overlap the old certificate is refused and its connection is cut.
    std::thread::sleep(overlap.saturating_sub(rotated_at.elapsed()) + Duration::from_millis(200));
    old.send("s4", &bank, "m", b"too late".to_vec()).unwrap();
    wait_for(
        "the bank to refuse the old certificate",
        Duration::from_secs(15),
        || b.refusals().iter().any(|l| l.contains("'telco'")),
    );
    assert!(
        b.recv("s4", &telco, "m", Duration::from_millis(500))
            .is_err(),
        "a message under the old certificate arrived after the overlap"
    );
    // The new certificate keeps working.
    assert_eq!(round_trip(&new, &b, "s5", "new only").unwrap(), "new only");
    assert_eq!(round_trip(&b, &new, "s5", "ack").unwrap(), "ack");
}
