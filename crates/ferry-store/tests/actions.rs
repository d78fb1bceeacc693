//! The action log against a real SQLite file: the chain survives a restart, and an entry
//! edited, deleted or reordered in the database file (as someone with access to the file
//! would) is found and named; checkpoints, this node's and a partner's.

mod common;

use common::Node;
use ferry_store::actions::sm2_key_binding_statement;
use ferry_store::{
    ActionQuery, Checkpoint, HeldCheckpoint, ModelSigner, NewAction, Outcome, ProblemKind, Receipt,
    SignatureAlgorithm, Store,
};
use sha2::{Digest, Sha256};

fn record(store: &Store, n: usize) {
    for i in 0..n {
        let mut a = NewAction::ok(
            format!("token:user{}", i % 3),
            "POST /api/v1/datasets/{name}/grants",
            format!("name=loans{i}; party=telco"),
            "127.0.0.1:40000",
        );
        a.status = Some(200);
        if i % 4 == 3 {
            a = a.failed(format!("no dataset named 'loans{i}'\nsecond line"));
            a.status = Some(404);
        }
        store.record_action(&a).unwrap();
    }
}

fn first_problem(store: &Store) -> (u64, ProblemKind, String) {
    let report = store.verify_actions(&[]).unwrap();
    assert!(!report.ok, "expected a problem: {report:?}");
    let p = report.first_problem.unwrap();
    (p.seq, p.kind, p.message)
}

#[test]
fn entries_chain_and_a_restart_keeps_the_chain() {
    let node = Node::new();
    {
        let store = node.open();
        assert_eq!(store.action_head().unwrap(), None);
        assert_eq!(
            store.sign_checkpoint("bank").unwrap(),
            None,
            "nothing to sign yet"
        );
        record(&store, 5);
        let cp = store.sign_checkpoint("bank").unwrap().unwrap();
        assert_eq!(cp.seq, 5);
    }
    let store = node.open();
    record(&store, 3);
    let all = store.actions(&ActionQuery::default()).unwrap();
    assert_eq!(all.len(), 8);
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(all[0].prev_hash, "0".repeat(64));
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "entry {}", pair[1].seq);
    }
    // The hash is SHA-256(prev ‖ canonical encoding), as the docs say.
    let e = &all[6];
    let mut h = Sha256::new();
    h.update(hex_decode(&e.prev_hash));
    h.update(e.canonical_bytes());
    assert_eq!(hex_encode(&h.finalize()), e.hash);
    assert_eq!(all[3].outcome, Outcome::Error);
    assert_eq!(all[3].status, Some(404));
    assert!(all[3].detail.as_deref().unwrap().contains("second line"));

    let report = store.verify_actions(&[]).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries, 8);
    assert_eq!(report.checkpoints_checked, 1);
    assert_eq!(report.last_matching_checkpoint, Some(5));
    assert_eq!(store.action_head().unwrap().unwrap().0, 8);
    // Signing again covers the new head; signing twice at one head keeps one checkpoint.
    assert_eq!(store.sign_checkpoint("bank").unwrap().unwrap().seq, 8);
    assert_eq!(store.sign_checkpoint("bank").unwrap().unwrap().seq, 8);
    assert_eq!(store.checkpoints().unwrap().len(), 2);
}

#[test]
fn an_edited_entry_is_named() {
    let node = Node::new();
    let store = node.open();
    record(&store, 6);
    node.raw_db()
        .execute(
            "UPDATE audit_actions SET actor = 'token:nobody' WHERE seq = 3",
            [],
        )
        .unwrap();
    let (seq, kind, msg) = first_problem(&store);
    assert_eq!((seq, kind), (3, ProblemKind::Modified), "{msg}");
    assert!(msg.contains("entry 3"), "{msg}");
    // An outcome turned from error into ok is an edit too.
    let node = Node::new();
    let store = node.open();
    record(&store, 6);
    node.raw_db()
        .execute(
            "UPDATE audit_actions SET outcome = 'ok', detail = NULL WHERE seq = 4",
            [],
        )
        .unwrap();
    assert_eq!(first_problem(&store).0, 4);
}

#[test]
fn a_deleted_entry_is_named() {
    let node = Node::new();
    let store = node.open();
    record(&store, 6);
    node.raw_db()
        .execute("DELETE FROM audit_actions WHERE seq = 3", [])
        .unwrap();
    let (seq, kind, msg) = first_problem(&store);
    assert_eq!((seq, kind), (3, ProblemKind::Missing), "{msg}");
    assert!(msg.contains("entry 3 is missing"), "{msg}");
    // New entries still chain on (the log goes on recording).
    record(&store, 1);
    assert_eq!(store.action_head().unwrap().unwrap().0, 7);
}

#[test]
fn reordered_entries_are_named() {
    let node = Node::new();
    let store = node.open();
    record(&store, 6);
    // Entries 2 and 4 swap places: their numbers are exchanged.
    let db = node.raw_db();
    db.execute("UPDATE audit_actions SET seq = -2 WHERE seq = 2", [])
        .unwrap();
    db.execute("UPDATE audit_actions SET seq = 2 WHERE seq = 4", [])
        .unwrap();
    db.execute("UPDATE audit_actions SET seq = 4 WHERE seq = -2", [])
        .unwrap();
    let (seq, _, msg) = first_problem(&store);
    assert_eq!(seq, 2, "{msg}");

    // Two entries exchange their content, hashes included, but keep their numbers.
    let node = Node::new();
    let store = node.open();
    record(&store, 6);
    let db = node.raw_db();
    let cols =
        "occurred_at, actor, action, object, address, outcome, status, detail, prev_hash, hash";
    db.execute_batch(&format!(
        "CREATE TEMP TABLE t AS SELECT * FROM audit_actions WHERE seq IN (2, 5);
         UPDATE audit_actions SET ({cols}) = (SELECT {cols} FROM t WHERE t.seq = 5) WHERE seq = 2;
         UPDATE audit_actions SET ({cols}) = (SELECT {cols} FROM t WHERE t.seq = 2) WHERE seq = 5;"
    ))
    .unwrap();
    let report = store.verify_actions(&[]).unwrap();
    let seqs: Vec<u64> = report.problems.iter().map(|p| p.seq).collect();
    assert_eq!(
        report.first_problem.unwrap().seq,
        2,
        "{:?}",
        report.problems
    );
    assert!(seqs.contains(&5), "{seqs:?}");
}

/// What an attacker with write access to the database but not the node key does: edits an
/// entry and recomputes every hash after it, so the chain is consistent in itself.
fn rewrite_from(node: &Node, store: &Store, from: u64) {
    let entries = store.actions(&ActionQuery::default()).unwrap();
    let db = node.raw_db();
    let mut prev: [u8; 32] = hex_decode(&entries[from as usize - 1].prev_hash)
        .try_into()
        .unwrap();
    for e in entries.into_iter().filter(|e| e.seq >= from) {
        let mut e = e;
        if e.seq == from {
            e.actor = "token:innocent".into();
        }
        e.prev_hash = hex_encode(&prev);
        prev = e.chained_hash(&prev);
        e.hash = hex_encode(&prev);
        db.execute(
            "UPDATE audit_actions SET actor = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![e.actor, e.prev_hash, e.hash, e.seq as i64],
        )
        .unwrap();
    }
}

#[test]
fn a_rewritten_chain_is_caught_by_checkpoints_even_when_ours_are_deleted() {
    let node = Node::new();
    let store = node.open();
    record(&store, 3);
    let first = store.sign_checkpoint("bank").unwrap().unwrap();
    record(&store, 3);
    let second = store.sign_checkpoint("bank").unwrap().unwrap();
    rewrite_from(&node, &store, 4);
    let (seq, kind, msg) = first_problem(&store);
    assert_eq!((seq, kind), (4, ProblemKind::CheckpointMismatch), "{msg}");
    assert!(msg.contains("from 4 to 6"), "{msg}");

    // The attacker deletes this node's checkpoints as well: the chain alone looks sound …
    node.raw_db()
        .execute("DELETE FROM audit_checkpoints", [])
        .unwrap();
    assert!(store.verify_actions(&[]).unwrap().ok);
    // … but the checkpoints a partner holds still catch it.
    let held: Vec<HeldCheckpoint> = [first, second]
        .into_iter()
        .map(|checkpoint| HeldCheckpoint {
            checkpoint,
            holder: "telco".into(),
        })
        .collect();
    let report = store.verify_actions(&held).unwrap();
    let p = report.first_problem.unwrap();
    assert_eq!((p.seq, p.kind), (4, ProblemKind::CheckpointMismatch));
    assert!(p.message.contains("held by telco"), "{}", p.message);
    assert_eq!(report.last_matching_checkpoint, Some(3));
}

#[test]
fn deleting_the_newest_entries_is_caught_by_a_checkpoint() {
    let node = Node::new();
    let store = node.open();
    record(&store, 6);
    store.sign_checkpoint("bank").unwrap().unwrap();
    node.raw_db()
        .execute("DELETE FROM audit_actions WHERE seq >= 5", [])
        .unwrap();
    let (seq, kind, msg) = first_problem(&store);
    assert_eq!((seq, kind), (5, ProblemKind::Truncated), "{msg}");
    assert!(msg.contains("entries 5 to 6 were deleted"), "{msg}");
}

#[test]
fn a_forged_checkpoint_is_refused() {
    let node = Node::new();
    let store = node.open();
    record(&store, 4);
    store.sign_checkpoint("bank").unwrap().unwrap();
    // Moved back to entry 2 with entry 2's hash, without the key to sign it.
    let hash2: String = node
        .raw_db()
        .query_row("SELECT hash FROM audit_actions WHERE seq = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    node.raw_db()
        .execute("UPDATE audit_checkpoints SET seq = 2, hash = ?1", [hash2])
        .unwrap();
    let (seq, kind, msg) = first_problem(&store);
    assert_eq!((seq, kind), (2, ProblemKind::BadSignature), "{msg}");
}

fn certificate(key_pem: &str, name: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::from_pem(key_pem).unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn partner_checkpoints_are_verified_with_the_pinned_certificate() {
    let bank = Node::new();
    let telco = Node::new();
    let bank_store = bank.open();
    let telco_store = telco.open();
    let bank_cert = certificate(&bank.key_pem, "bank");
    let telco_cert = certificate(&telco.key_pem, "telco");
    record(&bank_store, 3);
    let cp = bank_store.sign_checkpoint("bank").unwrap().unwrap();

    assert_eq!(
        telco_store
            .record_partner_checkpoint(&cp, &bank_cert)
            .unwrap(),
        Receipt::Stored
    );
    assert_eq!(
        telco_store
            .record_partner_checkpoint(&cp, &bank_cert)
            .unwrap(),
        Receipt::Duplicate
    );
    // Signed by the bank, but checked against another party's certificate.
    let err = telco_store
        .record_partner_checkpoint(&cp, &telco_cert)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not verify"), "{err}");
    // Any field changed after signing.
    for edit in [
        |c: &mut Checkpoint| c.seq += 1,
        |c: &mut Checkpoint| c.hash = "ab".repeat(32),
        |c: &mut Checkpoint| c.party = "insurer".into(),
        |c: &mut Checkpoint| c.signed_at = "2000-01-01T00:00:00.000Z".into(),
    ] {
        let mut bad = cp.clone();
        edit(&mut bad);
        let err = telco_store
            .record_partner_checkpoint(&bad, &bank_cert)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not verify"), "{err}");
    }
    // Malformed fields are refused naming the field, before any signature work.
    let mut bad = cp.clone();
    bad.hash = "xyz".into();
    let err = telco_store
        .record_partner_checkpoint(&bad, &bank_cert)
        .unwrap_err()
        .to_string();
    assert!(err.contains("hash must be 64"), "{err}");
    let mut bad = cp.clone();
    bad.signed_at = "yesterday".into();
    let err = telco_store
        .record_partner_checkpoint(&bad, &bank_cert)
        .unwrap_err()
        .to_string();
    assert!(err.contains("signed_at"), "{err}");
    let mut bad = cp.clone();
    bad.signature = "zz".into();
    assert!(
        telco_store
            .record_partner_checkpoint(&bad, &bank_cert)
            .is_err()
    );
    let mut bad = cp.clone();
    bad.party = "bank\nseq=9".into();
    assert!(
        telco_store
            .record_partner_checkpoint(&bad, &bank_cert)
            .is_err()
    );

    // The bank rewrites its chain and signs a different head for the same entry: both are
    // kept, and the receipt says so.
    bank.raw_db()
        .execute("DELETE FROM audit_checkpoints", [])
        .unwrap();
    rewrite_from(&bank, &bank_store, 2);
    let rewritten = bank_store.sign_checkpoint("bank").unwrap().unwrap();
    assert_eq!(rewritten.seq, cp.seq);
    assert_eq!(
        telco_store
            .record_partner_checkpoint(&rewritten, &bank_cert)
            .unwrap(),
        Receipt::Conflict {
            earlier_hash: cp.hash.clone()
        }
    );
    let kept = telco_store.partner_checkpoints(Some("bank")).unwrap();
    assert_eq!(kept.len(), 2);
    assert!(
        telco_store
            .partner_checkpoints(Some("insurer"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(telco_store.partner_checkpoints(None).unwrap().len(), 2);
    assert!(bank_store.partner_checkpoints(None).unwrap().is_empty());
}

// ---------------------------------------------------------------- SM2 checkpoints (gm)

/// The store of a GM-suite node: its identity key, and the SM2 key in its identity directory.
fn open_gm(node: &Node) -> Store {
    let identity = node.dir.path().join("identity");
    std::fs::create_dir_all(&identity).unwrap();
    let sm2 = ModelSigner::load_or_create_sm2_key(&identity).unwrap();
    let signer = ModelSigner::from_pem(&node.key_pem).unwrap().with_sm2(sm2);
    Store::open(&node.state_dir(), &node.data_dir(), signer).unwrap()
}

/// `key_pem`'s ECDSA P-256 signature over `msg`, hex (what only the key's holder can make).
fn sign_with(key_pem: &str, msg: &[u8]) -> String {
    hex_encode(&ModelSigner::from_pem(key_pem).unwrap().sign(msg).unwrap())
}

fn refusal(store: &Store, cp: &Checkpoint, cert: &[u8]) -> String {
    store
        .record_partner_checkpoint(cp, cert)
        .expect_err("the checkpoint should be refused")
        .to_string()
}

#[test]
fn sm2_checkpoints_verify_through_the_key_binding_and_forgeries_are_refused() {
    let bank = Node::new();
    let telco = Node::new();
    let bank_store = open_gm(&bank);
    let telco_store = telco.open();
    let bank_cert = certificate(&bank.key_pem, "bank");
    let telco_cert = certificate(&telco.key_pem, "telco");
    record(&bank_store, 3);
    let cp = bank_store.sign_checkpoint("bank").unwrap().unwrap();

    // Signed with SM2 over statement version 2, carrying the SM2 key and its binding.
    assert_eq!(cp.algorithm, SignatureAlgorithm::Sm2Sm3);
    assert_eq!(cp.signature.len(), 128, "SM2 r ‖ s: {}", cp.signature);
    let key = cp
        .sm2_key
        .clone()
        .expect("an SM2 checkpoint carries its key");
    let gm_key = ModelSigner::load_or_create_sm2_key(&bank.dir.path().join("identity")).unwrap();
    assert_eq!(key.public_key, hex_encode(&gm_key.public_key()));
    let statement = String::from_utf8(cp.statement()).unwrap();
    assert!(
        statement.starts_with("ferry-audit-checkpoint/2\nalgorithm=sm2-sm3\nparty=bank\n")
            && statement.ends_with(&format!("sm2_public_key={}\n", key.public_key)),
        "{statement}"
    );
    assert!(gm_key.verify(&cp.statement(), &hex_decode(&cp.signature)));
    // The binding is the bank identity key's signature over the binding statement.
    let binding = sm2_key_binding_statement("bank", &key.public_key);
    assert!(
        String::from_utf8(binding.clone())
            .unwrap()
            .starts_with("ferry-audit-sm2-key-binding/1\nparty=bank\n")
    );
    assert!(ferry_store::actions::verify_with_certificate(
        &bank_cert,
        &binding,
        &hex_decode(&key.signature)
    ));
    // The JSON names the algorithm; the node's own copy verifies.
    let json = serde_json::to_value(&cp).unwrap();
    assert_eq!(json["algorithm"], "sm2-sm3", "{json}");
    assert_eq!(bank_store.checkpoints().unwrap(), vec![cp.clone()]);
    let report = bank_store.verify_actions(&[]).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.last_matching_checkpoint, Some(3));

    // The partner keeps it after checking the binding with the pinned certificate, and reads
    // it back with its algorithm, key and binding.
    assert_eq!(
        telco_store
            .record_partner_checkpoint(&cp, &bank_cert)
            .unwrap(),
        Receipt::Stored
    );
    let kept = telco_store.partner_checkpoints(Some("bank")).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].checkpoint, cp);

    // A tampered body: the binding holds, the SM2 signature does not.
    for edit in [
        |c: &mut Checkpoint| c.seq += 1,
        |c: &mut Checkpoint| c.hash = "ab".repeat(32),
        |c: &mut Checkpoint| c.signed_at = "2000-01-01T00:00:00.000Z".into(),
    ] {
        let mut bad = cp.clone();
        edit(&mut bad);
        let err = refusal(&telco_store, &bad, &bank_cert);
        assert!(
            err.contains("from 'bank'") && err.contains("the SM2 signature does not verify"),
            "{err}"
        );
    }
    // A binding signed by the wrong key (telco's identity key, not the one pinned for bank).
    let mut bad = cp.clone();
    bad.sm2_key.as_mut().unwrap().signature = sign_with(&telco.key_pem, &binding);
    let err = refusal(&telco_store, &bad, &bank_cert);
    assert!(
        err.contains("from 'bank' (sm2-sm3)")
            && err.contains(
                "the binding of its SM2 key to 'bank' does not verify with the certificate pinned for 'bank'"
            ),
        "{err}"
    );
    // A genuine binding, but for another party: made by bank's key for 'insurer'.
    let mut bad = cp.clone();
    bad.sm2_key.as_mut().unwrap().signature = sign_with(
        &bank.key_pem,
        &sm2_key_binding_statement("insurer", &key.public_key),
    );
    let err = refusal(&telco_store, &bad, &bank_cert);
    assert!(err.contains("binding of its SM2 key"), "{err}");
    // Another party's genuine SM2 checkpoint passed off as bank's: insurer's binding names
    // insurer and is signed by insurer's key.
    let insurer = Node::new();
    let insurer_store = open_gm(&insurer);
    record(&insurer_store, 3);
    let mut theirs = insurer_store.sign_checkpoint("insurer").unwrap().unwrap();
    theirs.party = "bank".into();
    let err = refusal(&telco_store, &theirs, &bank_cert);
    assert!(err.contains("binding of its SM2 key"), "{err}");
    // An attacker's SM2 key, with the body signed by it: the binding no longer covers the key.
    let attacker = ferry_crypto::gm::Sm2Signer::generate(
        &mut <rand_chacha::ChaCha20Rng as rand::SeedableRng>::from_seed([7; 32]),
    );
    let mut bad = cp.clone();
    bad.sm2_key.as_mut().unwrap().public_key = hex_encode(&attacker.public_key());
    bad.signature = hex_encode(&attacker.sign(&bad.statement()));
    let err = refusal(&telco_store, &bad, &bank_cert);
    assert!(err.contains("binding of its SM2 key"), "{err}");
    // … and with a binding signed by the wrong key as well.
    bad.sm2_key.as_mut().unwrap().signature = sign_with(
        &telco.key_pem,
        &sm2_key_binding_statement("bank", &bad.sm2_key.as_ref().unwrap().public_key),
    );
    let err = refusal(&telco_store, &bad, &bank_cert);
    assert!(err.contains("binding of its SM2 key"), "{err}");
    // Checked against another party's pinned certificate.
    let err = refusal(&telco_store, &cp, &telco_cert);
    assert!(err.contains("binding of its SM2 key"), "{err}");
    // Relabelled or stripped of its key: refused by the form check or by the signature.
    let mut bad = cp.clone();
    bad.algorithm = SignatureAlgorithm::EcdsaP256Sha256;
    assert!(refusal(&telco_store, &bad, &bank_cert).contains("carries no sm2_key"));
    // Passed off as a P-256 checkpoint: the SM2 signature is no ECDSA signature of the bank.
    bad.sm2_key = None;
    let err = refusal(&telco_store, &bad, &bank_cert);
    assert!(
        err.contains("(ecdsa-p256-sha256): the signature does not verify with the certificate pinned for 'bank'"),
        "{err}"
    );
    let mut bad = cp.clone();
    bad.sm2_key = None;
    assert!(refusal(&telco_store, &bad, &bank_cert).contains("must carry sm2_key"));
    let mut bad = cp.clone();
    bad.sm2_key.as_mut().unwrap().public_key = "02".repeat(65);
    assert!(refusal(&telco_store, &bad, &bank_cert).contains("uncompressed point"));
    // Nothing of the refused ones was kept.
    assert_eq!(telco_store.partner_checkpoints(None).unwrap().len(), 1);
}

#[test]
fn old_p256_checkpoints_still_verify_next_to_sm2_ones() {
    let bank = Node::new();
    let telco = Node::new();
    let telco_store = telco.open();
    let bank_cert = certificate(&bank.key_pem, "bank");
    // The bank signs a checkpoint on the default suite …
    let old = {
        let store = bank.open();
        record(&store, 3);
        store.sign_checkpoint("bank").unwrap().unwrap()
    };
    assert_eq!(old.algorithm, SignatureAlgorithm::EcdsaP256Sha256);
    assert!(old.sm2_key.is_none());
    // … which a partner from before SM2 checkpoints sent without an `algorithm` field: it
    // reads as ECDSA P-256 and verifies with the pinned certificate.
    let mut json = serde_json::to_value(&old).unwrap();
    assert_eq!(json["algorithm"], "ecdsa-p256-sha256");
    assert!(json.get("sm2_key").is_none(), "{json}");
    json.as_object_mut().unwrap().remove("algorithm");
    let legacy: Checkpoint = serde_json::from_value(json).unwrap();
    assert_eq!(legacy, old);
    assert_eq!(
        String::from_utf8(legacy.statement()).unwrap(),
        format!(
            "ferry-audit-checkpoint/1\nparty=bank\nseq=3\nhash={}\nsigned_at={}\n",
            old.hash, old.signed_at
        )
    );
    assert_eq!(
        telco_store
            .record_partner_checkpoint(&legacy, &bank_cert)
            .unwrap(),
        Receipt::Stored
    );
    // Then it switches to the GM suite: the next checkpoint is SM2, and the chain verifies
    // against both, its own and those the telco kept.
    let store = open_gm(&bank);
    record(&store, 2);
    let new = store.sign_checkpoint("bank").unwrap().unwrap();
    assert_eq!(new.algorithm, SignatureAlgorithm::Sm2Sm3);
    assert_eq!(
        telco_store
            .record_partner_checkpoint(&new, &bank_cert)
            .unwrap(),
        Receipt::Stored
    );
    let own = store.checkpoints().unwrap();
    assert_eq!(own, vec![old.clone(), new.clone()]);
    let held: Vec<HeldCheckpoint> = telco_store
        .partner_checkpoints(Some("bank"))
        .unwrap()
        .into_iter()
        .map(|k| HeldCheckpoint {
            checkpoint: k.checkpoint,
            holder: "telco".into(),
        })
        .collect();
    assert_eq!(
        held[0].checkpoint.algorithm,
        SignatureAlgorithm::EcdsaP256Sha256
    );
    assert_eq!(held[1].checkpoint.algorithm, SignatureAlgorithm::Sm2Sm3);
    let report = store.verify_actions(&held).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checkpoints_checked, 4);
    // An edited SM2 checkpoint of the node's own is named like an edited P-256 one.
    bank.raw_db()
        .execute(
            "UPDATE audit_checkpoints SET signed_at = '2000-01-01T00:00:00.000Z' WHERE seq = 5",
            [],
        )
        .unwrap();
    let (seq, kind, msg) = first_problem(&store);
    assert_eq!((seq, kind), (5, ProblemKind::BadSignature), "{msg}");
    // A head covered by a P-256 checkpoint is signed again with SM2 after the switch.
    let node = Node::new();
    {
        let store = node.open();
        record(&store, 2);
        store.sign_checkpoint("bank").unwrap().unwrap();
    }
    let store = open_gm(&node);
    let again = store.sign_checkpoint("bank").unwrap().unwrap();
    assert_eq!(
        (again.seq, again.algorithm),
        (2, SignatureAlgorithm::Sm2Sm3)
    );
    assert_eq!(store.checkpoints().unwrap(), vec![again.clone()]);
    assert_eq!(store.sign_checkpoint("bank").unwrap().unwrap(), again);
    assert!(store.verify_actions(&[]).unwrap().ok);
}

#[test]
fn entries_by_time_and_long_fields() {
    let node = Node::new();
    let store = node.open();
    record(&store, 4);
    let huge = "x".repeat(100_000);
    let e = store
        .record_action(&NewAction::ok("node", "job.finish", &huge, "local").failed(&huge))
        .unwrap();
    assert!(e.object.len() <= ferry_store::actions::MAX_OBJECT_BYTES);
    assert!(e.detail.unwrap().len() <= ferry_store::actions::MAX_DETAIL_BYTES);
    let today = ferry_store::time::now_utc()[..10].to_string();
    let q = |from: Option<&str>, to: Option<&str>| {
        store
            .actions(&ActionQuery {
                from: from.map(str::to_string),
                to: to.map(str::to_string),
                ..Default::default()
            })
            .map(|v| v.len())
    };
    assert_eq!(q(Some(&today), Some(&today)).unwrap(), 5);
    assert_eq!(q(Some("2999-01-01"), None).unwrap(), 0);
    assert_eq!(q(None, Some("2000-01-01")).unwrap(), 0);
    assert_eq!(q(None, Some("2999")).unwrap(), 5);
    let err = q(Some("last week"), None).unwrap_err().to_string();
    assert!(err.contains("'from'"), "{err}");
    let err = q(None, Some("2024-13-01x")).unwrap_err().to_string();
    assert!(err.contains("'to'"), "{err}");
    let page = store
        .actions(&ActionQuery {
            after_seq: Some(2),
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert!(store.verify_actions(&[]).unwrap().ok);
}

/// Recording speed: each entry is one transaction that reaches the disk (synchronous = FULL),
/// so the figure is about the disk's flush rate.
#[test]
fn recording_speed() {
    let node = Node::new();
    let store = node.open();
    let n = 500;
    let start = std::time::Instant::now();
    record(&store, n);
    let secs = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    let report = store.verify_actions(&[]).unwrap();
    let verify_secs = start.elapsed().as_secs_f64();
    assert!(report.ok);
    eprintln!(
        "recorded {n} entries in {secs:.3} s ({:.0} entries/s); verified in {verify_secs:.3} s",
        n as f64 / secs
    );
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
