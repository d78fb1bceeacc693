//! Model records under the GM suite: signed with the node's SM2 key (SM3), the algorithm
//! recorded with the signature, and records from before a switch of suites still verified.

mod common;

use common::Node;
use ferry_store::{
    ModelLineage, ModelSigner, SM2_KEY_FILE, SignatureAlgorithm, Store, StoreError, StoreModel,
};
use serde_json::json;

fn model_req(name: &str, payload: &[u8]) -> StoreModel {
    StoreModel {
        name: name.into(),
        kind: "hetero_secureboost".into(),
        role: "guest".into(),
        payload: payload.to_vec(),
        lineage: ModelLineage {
            job_id: "job-1".into(),
            task: "train".into(),
            datasets: vec!["loans".into()],
            params: json!({"trees": 5}),
        },
        metrics: json!({"auc": 0.9}),
    }
}

/// The node's store with its SM2 key from `identity` (created there if absent).
fn open_gm(node: &Node, identity: &std::path::Path) -> Store {
    let sm2 = ModelSigner::load_or_create_sm2_key(identity).unwrap();
    let signer = ModelSigner::from_pem(&node.key_pem).unwrap().with_sm2(sm2);
    Store::open(&node.state_dir(), &node.data_dir(), signer).unwrap()
}

#[test]
fn a_gm_node_signs_models_with_sm2_and_still_verifies_its_older_ecdsa_records() {
    let node = Node::new();
    let identity = node.dir.path().join("identity");
    std::fs::create_dir_all(&identity).unwrap();

    // Before the switch: ECDSA P-256.
    let old = node.open().store_model(model_req("m", b"v1")).unwrap();
    assert_eq!(
        SignatureAlgorithm::parse(&old.signature).unwrap().0,
        SignatureAlgorithm::EcdsaP256Sha256
    );

    let store = open_gm(&node, &identity);
    assert!(identity.join(SM2_KEY_FILE).is_file());
    let new = store.store_model(model_req("m", b"v2")).unwrap();
    assert!(new.signature.starts_with("sm2:"), "{}", new.signature);
    assert_eq!(
        SignatureAlgorithm::parse(&new.signature).unwrap().0,
        SignatureAlgorithm::Sm2Sm3
    );
    assert!(store.load_model("m", Some(1)).is_ok(), "older ECDSA record");
    assert!(store.load_model("m", Some(2)).is_ok(), "SM2 record");
    drop(store);

    // Reopened with the same key file: the same key verifies.
    let store = open_gm(&node, &identity);
    assert!(store.load_model("m", Some(2)).is_ok());

    // An altered SM2 record is refused, naming the algorithm.
    node.raw_db()
        .execute(
            "UPDATE models SET metrics_json = '{\"auc\":0.99}' WHERE name = 'm' AND version = 2",
            [],
        )
        .unwrap();
    match store.load_model("m", Some(2)) {
        Err(StoreError::TamperedModel { reason, .. }) => {
            assert!(
                reason.contains("sm2-sm3 signature does not match"),
                "{reason}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(store);

    // A node without the SM2 key cannot vouch for the SM2 record and says why.
    match node.open().load_model("m", Some(2)) {
        Err(StoreError::TamperedModel { reason, .. }) => {
            assert!(reason.contains("no SM2 key"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
