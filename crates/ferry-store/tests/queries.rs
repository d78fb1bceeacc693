//! Query services (provider side) and query records (querier side) in a real SQLite file.

mod common;

use common::Node;
use ferry_store::{
    BuiltTable, NewQueryService, QueryFinish, QueryStatus, RegisterDataset, ServedSession,
    ServiceStatus, StoreError,
};

fn service(name: &str) -> NewQueryService {
    NewQueryService {
        name: name.into(),
        dataset: "phones".into(),
        key_columns: vec!["phone".into()],
        value_columns: vec!["tenure".into(), "arpu".into()],
        description: "telco attributes".into(),
    }
}

fn built(version: u64) -> BuiltTable {
    BuiltTable {
        version,
        table_file: format!("query-services/attrs/v{version}.pir"),
        table_id: format!("{version:064x}"),
        dataset_sha256: "ab".repeat(32),
        rows: 3,
        value_len: 12,
    }
}

#[test]
fn a_service_is_created_built_rebuilt_and_deleted_keeping_its_served_sessions() {
    let node = Node::new();
    let store = node.open();
    let source = node.write_input("phones.csv", "phone,tenure,arpu\n1,2,3\n4,5,6\n7,8,9\n");
    store
        .register_dataset(RegisterDataset::new("phones", &source))
        .unwrap();

    // A service needs an existing dataset, a key column and a fresh, safe name.
    let mut missing = service("attrs");
    missing.dataset = "nope".into();
    assert!(matches!(
        store.create_query_service(&missing),
        Err(StoreError::NotFound {
            kind: "dataset",
            ..
        })
    ));
    let mut keyless = service("attrs");
    keyless.key_columns.clear();
    assert!(store.create_query_service(&keyless).is_err());
    assert!(store.create_query_service(&service("../x")).is_err());

    let rec = store.create_query_service(&service("attrs")).unwrap();
    assert_eq!(rec.status, ServiceStatus::Building);
    assert_eq!(rec.version, 0);
    assert!(matches!(
        store.create_query_service(&service("attrs")),
        Err(StoreError::AlreadyExists { .. })
    ));

    assert_eq!(
        store.set_query_service_table("attrs", &built(1)).unwrap(),
        None
    );
    let rec = store.query_service("attrs").unwrap();
    assert_eq!(
        (rec.status, rec.version, rec.rows),
        (ServiceStatus::Ready, 1, 3)
    );
    assert_eq!(rec.key_columns, vec!["phone"]);
    assert_eq!(rec.value_columns, vec!["tenure", "arpu"]);

    // A rebuild hands back the old file; an older or equal version is refused.
    assert_eq!(
        store.set_query_service_table("attrs", &built(2)).unwrap(),
        Some("query-services/attrs/v1.pir".into())
    );
    assert!(store.set_query_service_table("attrs", &built(2)).is_err());
    store
        .set_query_service_status(
            "attrs",
            ServiceStatus::Failed,
            Some("column 'arpu' is gone"),
        )
        .unwrap();
    let rec = store.query_service("attrs").unwrap();
    assert_eq!(rec.version, 2, "a failed rebuild keeps the serving version");
    assert_eq!(rec.error.as_deref(), Some("column 'arpu' is gone"));

    for (partner, ids, outcome) in [
        ("bank", 1, "served"),
        ("bank", 1000, "served"),
        ("ins", 3, "refused: x"),
    ] {
        store
            .record_served_session(&ServedSession {
                service: "attrs".into(),
                partner: partner.into(),
                version: 2,
                ids,
                outcome: outcome.into(),
                seconds: 0.5,
                served_at: ferry_store::time::now_utc(),
            })
            .unwrap();
    }
    let usage = store.service_usage("attrs").unwrap();
    assert_eq!(usage.len(), 1, "refused sessions are not usage: {usage:?}");
    assert_eq!(
        (usage[0].partner.as_str(), usage[0].sessions, usage[0].ids),
        ("bank", 2, 1001)
    );

    assert_eq!(
        store.delete_query_service("attrs").unwrap(),
        Some("query-services/attrs/v2.pir".into())
    );
    assert!(matches!(
        store.query_service("attrs"),
        Err(StoreError::NotFound {
            kind: "query service",
            ..
        })
    ));
    assert_eq!(
        store.served_sessions("attrs").unwrap().len(),
        3,
        "the audit of what was served stays"
    );
}

#[test]
fn a_query_is_recorded_finished_and_failed_after_an_unclean_stop() {
    let node = Node::new();
    let store = node.open();
    store
        .insert_query("q-1", "telco", "attrs", "ops", 2)
        .unwrap();
    store
        .insert_query("q-2", "telco", "attrs", "ops", 5)
        .unwrap();
    assert!(
        store
            .insert_query("../q", "telco", "attrs", "ops", 1)
            .is_err()
    );
    store
        .finish_query(
            "q-1",
            &QueryFinish {
                found: 1,
                table_rows: Some(3),
                hint_downloaded: true,
                bytes_sent: 10,
                bytes_received: 20,
                seconds: 0.1,
                result_file: Some("queries/q-1.csv".into()),
                ..QueryFinish::default()
            },
        )
        .unwrap();
    let q = store.query("q-1").unwrap();
    assert_eq!((q.status, q.found, q.ids), (QueryStatus::Succeeded, 1, 2));
    assert_eq!(q.result_file.as_deref(), Some("queries/q-1.csv"));
    assert!(q.finished_at.is_some());

    assert_eq!(store.fail_unfinished_queries("node restarted").unwrap(), 1);
    let q = store.query("q-2").unwrap();
    assert_eq!(q.status, QueryStatus::Failed);
    assert_eq!(q.error.as_deref(), Some("node restarted"));
    assert_eq!(store.list_queries().unwrap().len(), 2);
    assert!(store.finish_query("nope", &QueryFinish::default()).is_err());

    let path = store
        .write_private_data_file("queries/q-1.csv", b"id,found\n")
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"id,found\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert_eq!(store.data_path("queries/q-1.csv"), path);
}
