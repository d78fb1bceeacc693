//! API tests against a real SQLite file in a temporary node directory.

mod common;

use common::{Node, WarnCapture, dataset, tree};
use ferry_store::{
    AuditEntry, ColumnType, DataFormat, Direction, GrantTarget, JobRow, JobStatus, LabelKind,
    Lineage, ModelLineage, RegisterDataset, Store, StoreError, StoreModel, TaskStatus, TokenRole,
};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

const SMALL_CSV: &str = "\
id,age,income,city,flag,y
1,30,1000.5,paris,true,1
2,40,,london,false,0
3,,3000,paris,true,1
4,50,4000.25,,false,0
5,60,5000,berlin,NA,1
";

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------- migrations

#[test]
fn migrations_run_once_and_survive_reopen() {
    let node = Node::new();
    {
        let store = node.open();
        assert_eq!(store.schema_version().unwrap(), 10);
        store.create_token("ops", TokenRole::Admin).unwrap();
    }
    let store = node.open();
    assert_eq!(store.schema_version().unwrap(), 10);
    let applied: i64 = node
        .raw_db()
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(applied, 10, "each migration is recorded exactly once");
    assert_eq!(
        store.list_tokens().unwrap().len(),
        1,
        "data kept across reopen"
    );
    assert!(node.state_dir().join("ferry.db").is_file());
}

#[test]
fn database_from_a_newer_ferry_is_refused() {
    let node = Node::new();
    drop(node.open());
    node.raw_db()
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')",
            [],
        )
        .unwrap();
    let signer = ferry_store::ModelSigner::from_pem(&node.key_pem).unwrap();
    match Store::open(&node.state_dir(), &node.data_dir(), signer) {
        Err(StoreError::SchemaTooNew {
            found, supported, ..
        }) => {
            assert_eq!((found, supported), (99, 10));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

// ---------------------------------------------------------------- tokens

#[test]
fn tokens_verify_only_while_live_and_store_no_secret() {
    let node = Node::new();
    let store = node.open();
    let (info, secret) = store.create_token("ci", TokenRole::User).unwrap();
    assert_eq!(info.role, TokenRole::User);
    assert!(secret.starts_with("fry_"));
    assert_eq!(
        secret.len(),
        4 + 43,
        "32 random bytes in unpadded base64url"
    );

    let verified = store
        .verify_token(&secret)
        .unwrap()
        .expect("live token verifies");
    assert_eq!(verified.name, "ci");
    assert_eq!(verified.role, TokenRole::User);

    // One character off, no prefix, empty: nothing.
    let mut wrong = secret.clone().into_bytes();
    let last = wrong.len() - 1;
    wrong[last] = if wrong[last] == b'A' { b'B' } else { b'A' };
    assert!(
        store
            .verify_token(std::str::from_utf8(&wrong).unwrap())
            .unwrap()
            .is_none()
    );
    assert!(store.verify_token(&secret[4..]).unwrap().is_none());
    assert!(store.verify_token("").unwrap().is_none());

    // A second token with the same name is refused while the first is live.
    assert!(matches!(
        store.create_token("ci", TokenRole::Admin),
        Err(StoreError::AlreadyExists { .. })
    ));
    let (_, other_secret) = store.create_token("viewer", TokenRole::ReadOnly).unwrap();
    assert_ne!(other_secret, secret);
    assert_eq!(
        store.verify_token(&other_secret).unwrap().unwrap().role,
        TokenRole::ReadOnly
    );

    store.revoke_token("ci").unwrap();
    assert!(
        store.verify_token(&secret).unwrap().is_none(),
        "revoked token rejected"
    );
    let listed = store.list_tokens().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .find(|t| t.name == "ci")
            .unwrap()
            .revoked_at
            .is_some()
    );
    match store.revoke_token("ci") {
        Err(StoreError::NotFound { known, .. }) => assert_eq!(known, vec!["viewer".to_string()]),
        other => panic!("expected NotFound, got {other:?}"),
    }

    // The name can be reused after revocation; the old secret stays dead.
    let (_, renewed) = store.create_token("ci", TokenRole::Admin).unwrap();
    assert!(store.verify_token(&secret).unwrap().is_none());
    assert_eq!(
        store.verify_token(&renewed).unwrap().unwrap().role,
        TokenRole::Admin
    );

    // The database holds hashes only: no secret appears in its files.
    drop(store);
    for file in tree(&node.state_dir()) {
        let bytes = std::fs::read(&file).unwrap();
        for s in [&secret, &other_secret, &renewed] {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "secret found in {}",
                file.display()
            );
        }
    }
}

// ---------------------------------------------------------------- datasets

#[test]
fn register_list_describe_delete() {
    let node = Node::new();
    let store = node.open();
    let source = node.write_input("loans.csv", SMALL_CSV);
    let mut req = RegisterDataset::new("loans", &source);
    req.label = Some("y".into());
    req.label_kind = LabelKind::Binary;
    req.description = "five loans".into();
    let rec = store.register_dataset(req).unwrap();

    assert_eq!(rec.name, "loans");
    assert_eq!(rec.format, DataFormat::Csv);
    assert_eq!(rec.rows, 5);
    assert_eq!(rec.id_columns, vec!["id".to_string()]);
    assert_eq!(rec.label.as_deref(), Some("y"));
    assert_eq!(rec.label_kind, Some(LabelKind::Binary));
    assert_eq!(rec.bytes, SMALL_CSV.len() as u64);
    assert_eq!(rec.sha256, sha256_hex(SMALL_CSV.as_bytes()));
    assert_eq!(rec.description, "five loans");
    assert!(rec.path.is_absolute());
    assert!(
        rec.path
            .starts_with(std::fs::canonicalize(node.data_dir()).unwrap())
    );
    assert!(
        rec.path
            .ends_with(Path::new("datasets").join(&rec.id).join("loans.csv"))
    );
    assert_eq!(std::fs::read_to_string(&rec.path).unwrap(), SMALL_CSV);
    assert!(source.exists(), "the source is copied, not moved");
    let types: Vec<(&str, ColumnType, bool)> = rec
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.dtype, c.nullable))
        .collect();
    assert_eq!(
        types,
        vec![
            ("id", ColumnType::Integer, false),
            ("age", ColumnType::Integer, true),
            ("income", ColumnType::Float, true),
            ("city", ColumnType::String, true),
            ("flag", ColumnType::Bool, true),
            ("y", ColumnType::Integer, false),
        ]
    );

    assert_eq!(store.dataset("loans").unwrap(), rec);
    assert_eq!(store.list_datasets().unwrap(), vec![rec.clone()]);

    let stats = store.describe_dataset("loans").unwrap();
    assert_eq!(stats.rows, 5);
    assert_eq!(stats.sha256, rec.sha256);
    let col = |name: &str| stats.columns.iter().find(|c| c.name == name).unwrap();

    // age: 30, 40, 50, 60 and one missing.
    let age = col("age");
    assert_eq!((age.count, age.missing, age.distinct), (4, 1, 4));
    assert!(age.distinct_exact && age.quantiles_exact);
    assert_eq!(age.mean, Some(45.0));
    // Sample std: deviations -15, -5, 5, 15 → sqrt(500 / 3).
    assert!(close(age.std.unwrap(), (500.0f64 / 3.0).sqrt()));
    assert_eq!((age.min, age.max), (Some(30.0), Some(60.0)));
    let q = age.quantiles.unwrap();
    // Position (n-1)p = 3p in [30, 40, 50, 60].
    assert!(close(q.p1, 30.0 + 0.03 * 10.0));
    assert!(close(q.p5, 30.0 + 0.15 * 10.0));
    assert!(close(q.p25, 30.0 + 0.75 * 10.0));
    assert!(close(q.p50, 45.0));
    assert!(close(q.p75, 50.0 + 0.25 * 10.0));
    assert!(close(q.p95, 50.0 + 0.85 * 10.0));
    assert!(close(q.p99, 50.0 + 0.97 * 10.0));

    let income = col("income");
    assert_eq!((income.count, income.missing), (4, 1));
    assert!(close(
        income.mean.unwrap(),
        (1000.5 + 3000.0 + 4000.25 + 5000.0) / 4.0
    ));
    assert_eq!((income.min, income.max), (Some(1000.5), Some(5000.0)));

    let city = col("city");
    assert_eq!(city.dtype, ColumnType::String);
    assert_eq!((city.count, city.missing, city.distinct), (4, 1, 3));
    assert_eq!((city.mean, city.quantiles), (None, None));

    let flag = col("flag");
    assert_eq!((flag.count, flag.missing, flag.distinct), (4, 1, 2));
    assert_eq!(flag.mean, Some(0.5));
    assert!(flag.quantiles.is_none());

    let y = col("y");
    assert_eq!((y.missing, y.distinct), (0, 2));
    assert!(close(y.mean.unwrap(), 0.6));
    // Single-value std is undefined; five values: mean 0.6, squares 3*0.16 + 2*0.36 = 1.2 → sqrt(1.2/4).
    assert!(close(y.std.unwrap(), (1.2f64 / 4.0).sqrt()));

    // Cached: the same statistics (same computation time) come back.
    let again = store.describe_dataset("loans").unwrap();
    assert_eq!(again, stats);

    store.delete_dataset("loans").unwrap();
    assert!(!rec.path.exists());
    assert!(!rec.path.parent().unwrap().exists());
    assert!(store.list_datasets().unwrap().is_empty());
    match store.describe_dataset("loans") {
        Err(StoreError::NotFound { kind, name, .. }) => {
            assert_eq!((kind, name.as_str()), ("dataset", "loans"))
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn not_found_lists_known_names() {
    let node = Node::new();
    let store = node.open();
    let src = node.write_input("a.csv", "id,x\n1,2\n");
    store
        .register_dataset(RegisterDataset::new("alpha", &src))
        .unwrap();
    store
        .register_dataset(RegisterDataset::new("beta", &src))
        .unwrap();
    let err = store.dataset("gamma").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no dataset named 'gamma' (known: alpha, beta)"
    );
    // Two datasets from the same source each get their own copy; deleting one keeps the other.
    let alpha = store.dataset("alpha").unwrap();
    let beta = store.dataset("beta").unwrap();
    assert_ne!(alpha.path, beta.path);
    store.delete_dataset("alpha").unwrap();
    assert!(beta.path.is_file());
    assert_eq!(store.describe_dataset("beta").unwrap().rows, 1);
}

/// Registration must fail with an error naming the file (and row/column where it applies) and
/// leave neither a record nor a file.
fn assert_refused(
    store: &Store,
    node: &Node,
    req: RegisterDataset,
    expect: impl Fn(&StoreError) -> bool,
) -> StoreError {
    let before = store.list_datasets().unwrap();
    let files_before = tree(&node.data_dir().join("datasets"));
    let err = store.register_dataset(req).unwrap_err();
    assert!(expect(&err), "unexpected error: {err:?}");
    assert_eq!(
        store.list_datasets().unwrap(),
        before,
        "no record left behind"
    );
    assert_eq!(
        tree(&node.data_dir().join("datasets")),
        files_before,
        "no file left behind"
    );
    err
}

#[test]
fn bad_registrations_are_precise_and_leave_nothing() {
    let node = Node::new();
    let store = node.open();
    let good = node.write_input("good.csv", SMALL_CSV);
    let kept = store
        .register_dataset(RegisterDataset::new("kept", &good))
        .unwrap();

    // Missing id column.
    let mut req = RegisterDataset::new("d1", &good);
    req.id_columns = vec!["customer".into()];
    let err = assert_refused(&store, &node, req, |e| {
        matches!(e, StoreError::InvalidInput { file: Some(f), column: Some(c), .. }
            if f == &good && c == "customer")
    });
    assert!(err.to_string().contains("good.csv"), "{err}");
    assert!(
        err.to_string().contains("id, age, income"),
        "lists the columns: {err}"
    );

    // Missing label column.
    let mut req = RegisterDataset::new("d2", &good);
    req.label = Some("target".into());
    assert_refused(&store, &node, req, |e| {
        matches!(e, StoreError::InvalidInput { file: Some(f), column: Some(c), .. }
            if f == &good && c == "target")
    });

    // Empty file, header only.
    let empty = node.write_input("empty.csv", "");
    assert_refused(&store, &node, RegisterDataset::new("d3", &empty), |e| {
        matches!(e, StoreError::InvalidInput { file: Some(f), reason, .. }
            if f == &empty && reason.contains("empty"))
    });
    let header_only = node.write_input("header.csv", "id,x\n");
    assert_refused(
        &store,
        &node,
        RegisterDataset::new("d4", &header_only),
        |e| matches!(e, StoreError::InvalidInput { reason, .. } if reason.contains("no data rows")),
    );

    // Non-existent file.
    let missing = node.dir.path().join("inputs/nope.csv");
    assert_refused(&store, &node, RegisterDataset::new("d5", &missing), |e| {
        matches!(e, StoreError::InvalidInput { file: Some(f), reason, .. }
            if f == &missing && reason.contains("does not exist"))
    });

    // A ragged row, a bad binary label, an empty id: the row (header = row 1) and column.
    let ragged = node.write_input("ragged.csv", "id,x\n1,2\n2,3,4\n");
    assert_refused(&store, &node, RegisterDataset::new("d6", &ragged), |e| {
        matches!(e, StoreError::InvalidInput { row: Some(3), .. })
    });
    let bad_label = node.write_input("label.csv", "id,y\n1,0\n2,1\n3,2\n");
    let mut req = RegisterDataset::new("d7", &bad_label);
    req.label = Some("y".into());
    req.label_kind = LabelKind::Binary;
    assert_refused(
        &store,
        &node,
        req,
        |e| matches!(e, StoreError::InvalidInput { row: Some(4), column: Some(c), .. } if c == "y"),
    );
    let empty_id = node.write_input("ids.csv", "id,x\n1,2\n,3\n");
    assert_refused(
        &store,
        &node,
        RegisterDataset::new("d8", &empty_id),
        |e| matches!(e, StoreError::InvalidInput { row: Some(3), column: Some(c), .. } if c == "id"),
    );
    let dup_header = node.write_input("dup.csv", "id,x,x\n1,2,3\n");
    assert_refused(
        &store,
        &node,
        RegisterDataset::new("d9", &dup_header),
        |e| matches!(e, StoreError::InvalidInput { column: Some(c), .. } if c == "x"),
    );

    // Duplicate name: refused, and the existing dataset is untouched.
    let other = node.write_input("other.csv", "id,z\n9,9\n");
    assert_refused(
        &store,
        &node,
        RegisterDataset::new("kept", &other),
        |e| matches!(e, StoreError::AlreadyExists { name, .. } if name == "kept"),
    );
    assert_eq!(store.dataset("kept").unwrap(), kept);
    assert_eq!(std::fs::read_to_string(&kept.path).unwrap(), SMALL_CSV);

    // Names that would be unsafe as directory names.
    for bad in ["../escape", "", ".hidden", "a/b"] {
        assert_refused(&store, &node, RegisterDataset::new(bad, &good), |e| {
            matches!(e, StoreError::InvalidInput { .. })
        });
    }
    assert_eq!(store.list_datasets().unwrap().len(), 1);
}

#[test]
fn replace_swaps_the_file_after_commit_and_keeps_grants() {
    let node = Node::new();
    let store = node.open();
    let v1 = node.write_input("v1.csv", "id,x\n1,10\n2,20\n");
    let old = store
        .register_dataset(RegisterDataset::new("d", &v1))
        .unwrap();
    store
        .grant("d", GrantTarget::Party("telco".into()))
        .unwrap();
    assert_eq!(store.describe_dataset("d").unwrap().rows, 2);

    let v2 = node.write_input("v2.csv", "id,x,w\n1,10,a\n2,20,b\n3,30,c\n");
    let mut req = RegisterDataset::new("d", &v2);
    req.replace = true;
    let new = store.register_dataset(req).unwrap();
    assert_ne!(new.id, old.id);
    assert!(
        !old.path.exists(),
        "old file removed after the new one is in place"
    );
    assert!(new.path.is_file());
    assert_eq!(store.list_datasets().unwrap(), vec![new.clone()]);
    assert_eq!(
        store.grants("d").unwrap(),
        vec![GrantTarget::Party("telco".into())]
    );
    let stats = store.describe_dataset("d").unwrap();
    assert_eq!(
        (stats.rows, stats.columns.len()),
        (3, 3),
        "statistics of the new file"
    );

    // A failed replacement leaves the current dataset as it was.
    let broken = node.write_input("broken.csv", "");
    let mut req = RegisterDataset::new("d", &broken);
    req.replace = true;
    assert!(store.register_dataset(req).is_err());
    assert_eq!(store.dataset("d").unwrap(), new);
    assert!(new.path.is_file());
}

#[test]
fn derived_dataset_keeps_lineage_and_composite_ids() {
    let node = Node::new();
    let store = node.open();
    let src = node.write_input(
        "psi_out.csv",
        "bank,branch,score\nA,1,0.5\nA,2,0.7\nB,1,0.1\n",
    );
    let mut req = RegisterDataset::new("psi-out", &src);
    req.id_columns = vec!["bank".into(), "branch".into()];
    req.lineage = Some(Lineage {
        job_id: "job-7".into(),
        task: "psi".into(),
        inputs: vec!["loans".into()],
        note: Some("intersection".into()),
    });
    let rec = store.register_dataset(req).unwrap();
    let back = store.dataset("psi-out").unwrap();
    assert_eq!(back.lineage, rec.lineage);
    assert_eq!(back.lineage.unwrap().inputs, vec!["loans".to_string()]);
    assert_eq!(
        back.id_columns,
        vec!["bank".to_string(), "branch".to_string()]
    );
}

#[test]
fn parquet_files_register_and_describe() {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let node = Node::new();
    let store = node.open();
    let path = node.dir.path().join("inputs/clients.parquet");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = Arc::new(
        parse_message_type(
            "message t { required int64 id; required double x; required binary name (UTF8); required int64 y; }",
        )
        .unwrap(),
    );
    let file = std::fs::File::create(&path).unwrap();
    let mut w =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<Int64Type>()
        .write_batch(&[1, 2, 3, 4], None, None)
        .unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<DoubleType>()
        .write_batch(&[0.5, 1.5, 2.5, 3.5], None, None)
        .unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    let names: Vec<ByteArray> = ["a", "b", "a", "c"].iter().map(|s| (*s).into()).collect();
    col.typed::<ByteArrayType>()
        .write_batch(&names, None, None)
        .unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<Int64Type>()
        .write_batch(&[0, 1, 1, 0], None, None)
        .unwrap();
    col.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();

    let mut req = RegisterDataset::new("clients", &path);
    req.label = Some("y".into());
    req.label_kind = LabelKind::Binary;
    let rec = store.register_dataset(req).unwrap();
    assert_eq!(rec.format, DataFormat::Parquet);
    assert_eq!(rec.rows, 4);
    assert_eq!(rec.sha256, sha256_hex(&std::fs::read(&path).unwrap()));
    let types: Vec<ColumnType> = rec.columns.iter().map(|c| c.dtype).collect();
    assert_eq!(
        types,
        vec![
            ColumnType::Integer,
            ColumnType::Float,
            ColumnType::String,
            ColumnType::Integer
        ]
    );
    let stats = store.describe_dataset("clients").unwrap();
    let x = &stats.columns[1];
    assert_eq!(x.mean, Some(2.0));
    assert_eq!(x.quantiles.unwrap().p50, 2.0);
    assert_eq!(stats.columns[2].distinct, 3);

    let mut req = RegisterDataset::new("clients2", &path);
    req.label = Some("missing_label".into());
    let err = store.register_dataset(req).unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidInput { file: Some(f), column: Some(c), .. } if f == &path && c == "missing_label"),
        "{err:?}"
    );
}

#[test]
fn many_distinct_values_are_estimated_and_flagged() {
    let node = Node::new();
    let store = node.open();
    let n = 120_000u64;
    let mut csv = String::with_capacity(n as usize * 16);
    csv.push_str("id,k\n");
    for i in 0..n {
        csv.push_str(&format!("{i},{}\n", i % 1000));
    }
    let src = node.write_input("wide.csv", &csv);
    store
        .register_dataset(RegisterDataset::new("wide", &src))
        .unwrap();
    let stats = store.describe_dataset("wide").unwrap();
    let id = &stats.columns[0];
    assert!(
        !id.distinct_exact,
        "past the exact cap the count is an estimate"
    );
    let err = (id.distinct as f64 - n as f64).abs() / n as f64;
    assert!(err < 0.05, "estimate {} for {n}", id.distinct);
    let k = &stats.columns[1];
    assert_eq!((k.distinct, k.distinct_exact), (1000, true));
    assert!(close(k.mean.unwrap(), 499.5));
    assert!(k.quantiles_exact, "120,000 values fit the quantile sample");
}

#[test]
fn changed_file_is_detected_by_describe() {
    let node = Node::new();
    let store = node.open();
    let src = node.write_input("d.csv", "id,x\n1,2\n3,4\n");
    let rec = store
        .register_dataset(RegisterDataset::new("d", &src))
        .unwrap();
    std::fs::write(&rec.path, "id,x\n1,2\n3,5\n").unwrap();
    let err = store.describe_dataset("d").unwrap_err();
    assert!(
        matches!(&err, StoreError::Io { reason, .. } if reason.contains("changed since it was registered")),
        "{err:?}"
    );
}

#[test]
fn public_breast_dataset_registers_with_its_label() {
    let path = dataset("breast_hetero_guest.csv");
    let node = Node::new();
    let store = node.open();
    let mut req = RegisterDataset::new("breast", &path);
    req.label = Some("y".into());
    req.label_kind = LabelKind::Binary;
    let rec = store.register_dataset(req).unwrap();
    assert_eq!(rec.rows, 569);
    assert_eq!(rec.id_columns, vec!["id".to_string()]);
    let stats = store.describe_dataset("breast").unwrap();
    let y = stats.columns.iter().find(|c| c.name == "y").unwrap();
    assert_eq!((y.distinct, y.missing), (2, 0));
    // 357 benign of 569 in the Wisconsin breast cancer data (label 1 = benign here or not,
    // the share of one class is one of these two).
    let mean = y.mean.unwrap();
    assert!(
        close(mean, 357.0 / 569.0) || close(mean, 212.0 / 569.0),
        "{mean}"
    );
}

// ---------------------------------------------------------------- grants

#[test]
fn grants_by_party_and_by_job() {
    let node = Node::new();
    let store = node.open();
    let src = node.write_input("d.csv", "id,x\n1,2\n");
    store
        .register_dataset(RegisterDataset::new("loans", &src))
        .unwrap();

    assert!(
        !store.is_granted("loans", "telco", "job-1").unwrap(),
        "nothing granted by default"
    );
    store
        .grant("loans", GrantTarget::Party("telco".into()))
        .unwrap();
    store
        .grant("loans", GrantTarget::Party("telco".into()))
        .unwrap(); // idempotent
    store
        .grant("loans", GrantTarget::Job("job-9".into()))
        .unwrap();

    assert!(
        store.is_granted("loans", "telco", "job-1").unwrap(),
        "party grant: any job"
    );
    assert!(store.is_granted("loans", "telco", "job-2").unwrap());
    assert!(!store.is_granted("loans", "insurer", "job-1").unwrap());
    assert!(
        store.is_granted("loans", "insurer", "job-9").unwrap(),
        "job grant: that job"
    );
    assert_eq!(
        store.grants("loans").unwrap(),
        vec![
            GrantTarget::Job("job-9".into()),
            GrantTarget::Party("telco".into())
        ]
    );

    let err = store
        .check_granted("loans", "insurer", "job-1")
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("'loans'") && msg.contains("'insurer'") && msg.contains("'job-1'"),
        "{msg}"
    );

    store
        .revoke_grant("loans", &GrantTarget::Party("telco".into()))
        .unwrap();
    assert!(!store.is_granted("loans", "telco", "job-1").unwrap());
    match store.revoke_grant("loans", &GrantTarget::Party("telco".into())) {
        Err(StoreError::NotFound {
            kind: "grant",
            known,
            ..
        }) => {
            assert_eq!(known, vec!["job 'job-9'".to_string()])
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        store.is_granted("nope", "telco", "job-1"),
        Err(StoreError::NotFound {
            kind: "dataset",
            ..
        })
    ));
    assert!(matches!(
        store.grant("nope", GrantTarget::Party("telco".into())),
        Err(StoreError::NotFound { .. })
    ));

    // Grants go with the dataset: re-registering the name starts with none.
    store.delete_dataset("loans").unwrap();
    store
        .register_dataset(RegisterDataset::new("loans", &src))
        .unwrap();
    assert!(store.grants("loans").unwrap().is_empty());
    assert!(!store.is_granted("loans", "insurer", "job-9").unwrap());
}

// ---------------------------------------------------------------- models

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
            params: json!({"trees": 5, "depth": 3}),
        },
        metrics: json!({"auc": 0.91}),
    }
}

#[test]
fn models_round_trip_with_increasing_versions() {
    let node = Node::new();
    let store = node.open();
    let v1 = store
        .store_model(model_req("risk", b"{\"trees\":[1]}"))
        .unwrap();
    let v2 = store
        .store_model(model_req("risk", b"{\"trees\":[2]}"))
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert!(v2.path.ends_with("models/risk/v2.bin"));
    assert_eq!(v1.sha256, sha256_hex(b"{\"trees\":[1]}"));

    let (rec, payload) = store.load_model("risk", None).unwrap();
    assert_eq!(rec, v2);
    assert_eq!(payload, b"{\"trees\":[2]}");
    let (rec, payload) = store.load_model("risk", Some(1)).unwrap();
    assert_eq!(rec.version, 1);
    assert_eq!(payload, b"{\"trees\":[1]}");
    assert_eq!(rec.lineage.params, json!({"trees": 5, "depth": 3}));
    assert_eq!(rec.metrics, json!({"auc": 0.91}));
    assert_eq!(store.model("risk", None).unwrap(), v2);
    assert_eq!(store.list_models().unwrap(), vec![v1.clone(), v2.clone()]);

    // Deleting the newest version does not free its number.
    store.delete_model("risk", Some(2)).unwrap();
    assert!(!v2.path.exists());
    let v3 = store.store_model(model_req("risk", b"three")).unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(store.load_model("risk", None).unwrap().1, b"three");

    match store.load_model("risk", Some(2)) {
        Err(StoreError::NotFound { name, known, .. }) => {
            assert_eq!(name, "risk v2");
            assert_eq!(known, vec!["risk v1".to_string(), "risk v3".to_string()]);
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    store.store_model(model_req("churn", b"x")).unwrap();
    match store.model("fraud", None) {
        Err(StoreError::NotFound { known, .. }) => {
            assert_eq!(known, vec!["churn".to_string(), "risk".to_string()])
        }
        other => panic!("expected NotFound, got {other:?}"),
    }

    store.delete_model("risk", None).unwrap();
    assert!(store.model("risk", None).is_err());
    assert!(!v1.path.exists() && !v3.path.exists());
    assert_eq!(store.list_models().unwrap().len(), 1);
    assert!(matches!(
        store.store_model(model_req("../up", b"x")),
        Err(StoreError::InvalidInput { .. })
    ));
}

fn expect_tampered(store: &Store, name: &str, version: u32, reason_has: &str) {
    let capture = WarnCapture::default();
    let result = tracing::subscriber::with_default(capture.clone(), || {
        store.load_model(name, Some(version))
    });
    match result {
        Err(StoreError::TamperedModel {
            name: n,
            version: v,
            reason,
        }) => {
            assert_eq!((n.as_str(), v), (name, version));
            assert!(reason.contains(reason_has), "reason: {reason}");
            let logged = capture.lines.lock().unwrap().join("\n");
            assert!(
                logged.contains(&reason),
                "reason logged as a warning: {logged}"
            );
        }
        other => panic!("expected TamperedModel, got {other:?}"),
    }
}

#[test]
fn tampered_models_are_refused() {
    let node = Node::new();
    let store = node.open();
    let rec = store
        .store_model(model_req("m", b"{\"w\":[0.25,-1.5]}"))
        .unwrap();
    let other = store.store_model(model_req("m", b"{\"w\":[9.0]}")).unwrap();

    // One flipped byte in the file.
    let mut bytes = std::fs::read(&rec.path).unwrap();
    bytes[3] ^= 0x01;
    std::fs::write(&rec.path, &bytes).unwrap();
    expect_tampered(&store, "m", 1, "SHA-256");
    bytes[3] ^= 0x01;
    std::fs::write(&rec.path, &bytes).unwrap();
    assert!(
        store.load_model("m", Some(1)).is_ok(),
        "restored file loads again"
    );

    let db = node.raw_db();
    // The recorded hash changed to match a forged file: the signature no longer matches.
    std::fs::write(&rec.path, b"forged").unwrap();
    db.execute(
        "UPDATE models SET sha256 = ?1 WHERE name = 'm' AND version = 1",
        [sha256_hex(b"forged")],
    )
    .unwrap();
    expect_tampered(&store, "m", 1, "signature");
    std::fs::write(&rec.path, &bytes).unwrap();
    db.execute(
        "UPDATE models SET sha256 = ?1 WHERE name = 'm' AND version = 1",
        [&rec.sha256],
    )
    .unwrap();
    assert!(store.load_model("m", Some(1)).is_ok());

    // One hex digit of the signature changed.
    let mut sig = rec.signature.clone().into_bytes();
    let i = sig.len() - 1;
    sig[i] = if sig[i] == b'0' { b'1' } else { b'0' };
    db.execute(
        "UPDATE models SET signature = ?1 WHERE name = 'm' AND version = 1",
        [String::from_utf8(sig).unwrap()],
    )
    .unwrap();
    expect_tampered(&store, "m", 1, "signature");
    // Another model's valid signature does not fit this record either.
    db.execute(
        "UPDATE models SET signature = ?1 WHERE name = 'm' AND version = 1",
        [&other.signature],
    )
    .unwrap();
    expect_tampered(&store, "m", 1, "signature");
    db.execute(
        "UPDATE models SET signature = ?1 WHERE name = 'm' AND version = 1",
        [&rec.signature],
    )
    .unwrap();
    assert!(store.load_model("m", Some(1)).is_ok());

    // Lineage and metrics are covered by the signature too.
    db.execute(
        "UPDATE models SET metrics_json = '{\"auc\":0.99}' WHERE name = 'm' AND version = 1",
        [],
    )
    .unwrap();
    expect_tampered(&store, "m", 1, "signature");
    // The file pointer must be the model's own.
    db.execute(
        "UPDATE models SET metrics_json = '{\"auc\":0.91}', file = 'models/m/v2.bin' WHERE name = 'm' AND version = 1",
        [],
    )
    .unwrap();
    expect_tampered(&store, "m", 1, "points at");
    db.execute(
        "UPDATE models SET file = 'models/m/v1.bin' WHERE name = 'm' AND version = 1",
        [],
    )
    .unwrap();
    assert!(store.load_model("m", Some(1)).is_ok());

    // A node with a different key does not accept this node's models.
    drop(store);
    let stranger = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let store = node.open_with_key(&stranger);
    expect_tampered(&store, "m", 1, "signature");
}

// ---------------------------------------------------------------- jobs

#[test]
fn jobs_tasks_logs_metrics_audit() {
    let node = Node::new();
    let store = node.open();
    let job = JobRow::new(
        "job-1",
        "{\"tasks\":[]}",
        "bank",
        "guest",
        JobStatus::Queued,
    );
    store.insert_job(&job).unwrap();
    assert!(matches!(
        store.insert_job(&job),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(store.job("job-1").unwrap(), job);

    store
        .update_job_status("job-1", JobStatus::Running, None)
        .unwrap();
    let running = store.job("job-1").unwrap();
    assert_eq!(running.status, JobStatus::Running);
    assert!(running.updated_at >= job.updated_at);
    assert!(matches!(
        store.update_job_status("job-x", JobStatus::Running, None),
        Err(StoreError::NotFound { kind: "job", .. })
    ));

    store
        .upsert_task("job-1", "psi", TaskStatus::Running, 0.5, None)
        .unwrap();
    store
        .upsert_task("job-1", "train", TaskStatus::Pending, 0.0, None)
        .unwrap();
    store
        .set_task_outputs("job-1", "psi", &json!({"dataset": "psi-out"}))
        .unwrap();
    store
        .upsert_task("job-1", "psi", TaskStatus::Succeeded, 1.0, None)
        .unwrap();
    let tasks = store.tasks("job-1").unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].task, "psi");
    assert_eq!(tasks[0].status, TaskStatus::Succeeded);
    assert_eq!(
        tasks[0].outputs,
        Some(json!({"dataset": "psi-out"})),
        "outputs survive upsert"
    );
    assert!(
        store
            .upsert_task("job-1", "psi", TaskStatus::Running, 1.5, None)
            .is_err()
    );
    assert!(
        store
            .upsert_task("job-x", "psi", TaskStatus::Running, 0.0, None)
            .is_err()
    );
    assert!(matches!(
        store.set_task_outputs("job-1", "predict", &json!({})),
        Err(StoreError::NotFound { kind: "task", .. })
    ));

    store
        .set_party_status("job-1", "telco", JobStatus::Running, None)
        .unwrap();
    store
        .set_party_status("job-1", "telco", JobStatus::Failed, Some("out of memory"))
        .unwrap();
    store
        .set_party_status("job-1", "arb", JobStatus::Succeeded, None)
        .unwrap();
    assert_eq!(
        store.party_statuses("job-1").unwrap(),
        vec![
            ("arb".to_string(), JobStatus::Succeeded, None),
            (
                "telco".to_string(),
                JobStatus::Failed,
                Some("out of memory".to_string())
            ),
        ]
    );

    store.append_log("job-1", "psi", "start").unwrap();
    store
        .append_logs("job-1", "train", &["tree 1", "tree 2"])
        .unwrap();
    store.append_log("job-1", "psi", "done").unwrap();
    let all: Vec<(u64, String)> = store
        .logs("job-1", None)
        .unwrap()
        .into_iter()
        .map(|l| (l.seq, l.line))
        .collect();
    assert_eq!(
        all,
        vec![
            (1, "start".to_string()),
            (2, "tree 1".to_string()),
            (3, "tree 2".to_string()),
            (4, "done".to_string())
        ]
    );
    let psi: Vec<String> = store
        .logs("job-1", Some("psi"))
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(psi, vec!["start", "done"]);

    store
        .record_metric("job-1", "train", "loss", 0, 0.69)
        .unwrap();
    store
        .record_metric("job-1", "train", "loss", 1, 0.5)
        .unwrap();
    store
        .record_metric("job-1", "train", "loss", 1, 0.45)
        .unwrap(); // replaces
    store
        .record_metric("job-1", "train", "auc", 1, f64::NAN)
        .unwrap();
    let m = store.metrics("job-1", Some("train")).unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!((m[0].name.as_str(), m[0].step), ("auc", 1));
    assert!(m[0].value.is_nan());
    assert_eq!((m[2].step, m[2].value), (1, 0.45));
    assert!(store.metrics("job-1", Some("psi")).unwrap().is_empty());

    let entry = |dir, tag: &str, bytes| AuditEntry {
        job_id: "job-1".into(),
        task: "train".into(),
        direction: dir,
        peer: "telco".into(),
        tag: tag.into(),
        bytes,
        payload_type: "CiphertextBatch".into(),
        at: String::new(),
    };
    store
        .record_audit(&entry(Direction::Sent, "grad/0", 4096))
        .unwrap();
    store
        .record_audits(&[
            entry(Direction::Received, "hist/0", 8192),
            entry(Direction::Sent, "grad/1", 4096),
        ])
        .unwrap();
    let audit = store.audit("job-1").unwrap();
    let tags: Vec<(&str, Direction, u64)> = audit
        .iter()
        .map(|a| (a.tag.as_str(), a.direction, a.bytes))
        .collect();
    assert_eq!(
        tags,
        vec![
            ("grad/0", Direction::Sent, 4096),
            ("hist/0", Direction::Received, 8192),
            ("grad/1", Direction::Sent, 4096)
        ]
    );
    assert!(
        audit.iter().all(|a| !a.at.is_empty()),
        "empty times are stamped"
    );
    assert!(store.append_log("job-x", "t", "x").is_err());
    assert!(store.audit("job-x").is_err());

    let ids: Vec<String> = store
        .list_jobs()
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(ids, vec!["job-1"]);
    assert_eq!(
        "pending_approval".parse::<JobStatus>().unwrap(),
        JobStatus::PendingApproval
    );
    assert_eq!(JobStatus::PendingApproval.as_str(), "pending_approval");
    assert_eq!(
        serde_json::to_string(&TaskStatus::Skipped).unwrap(),
        "\"skipped\""
    );
    assert!("paused".parse::<JobStatus>().is_err());
}

#[test]
fn restart_fails_unfinished_jobs() {
    let node = Node::new();
    {
        let store = node.open();
        for (id, status) in [
            ("job-approval", JobStatus::PendingApproval),
            ("job-queued", JobStatus::Queued),
            ("job-running", JobStatus::Running),
            ("job-done", JobStatus::Succeeded),
            ("job-cancelled", JobStatus::Cancelled),
        ] {
            store
                .insert_job(&JobRow::new(id, "{}", "bank", "guest", status))
                .unwrap();
        }
        store
            .upsert_task("job-running", "psi", TaskStatus::Succeeded, 1.0, None)
            .unwrap();
        store
            .upsert_task("job-running", "train", TaskStatus::Running, 0.4, None)
            .unwrap();
        store
            .upsert_task("job-running", "predict", TaskStatus::Pending, 0.0, None)
            .unwrap();
        store
            .upsert_task("job-approval", "psi", TaskStatus::Pending, 0.0, None)
            .unwrap();
        // Killed here: no status update, no clean shutdown.
    }
    let store = node.open();
    let reason = "node restarted while the job was running";
    assert_eq!(store.fail_unfinished_jobs(reason).unwrap(), 2);
    let status = |id: &str| {
        let j = store.job(id).unwrap();
        (j.status, j.reason)
    };
    assert_eq!(
        status("job-queued"),
        (JobStatus::Failed, Some(reason.to_string()))
    );
    assert_eq!(
        status("job-running"),
        (JobStatus::Failed, Some(reason.to_string()))
    );
    assert_eq!(status("job-approval"), (JobStatus::PendingApproval, None));
    assert_eq!(status("job-done"), (JobStatus::Succeeded, None));
    assert_eq!(status("job-cancelled"), (JobStatus::Cancelled, None));
    let tasks = store.tasks("job-running").unwrap();
    let by_name = |n: &str| tasks.iter().find(|t| t.task == n).unwrap();
    assert_eq!(by_name("psi").status, TaskStatus::Succeeded);
    assert_eq!(by_name("train").status, TaskStatus::Failed);
    assert_eq!(by_name("train").error.as_deref(), Some(reason));
    assert_eq!(by_name("predict").status, TaskStatus::Failed);
    assert_eq!(
        store.tasks("job-approval").unwrap()[0].status,
        TaskStatus::Pending
    );
    assert_eq!(
        store.fail_unfinished_jobs(reason).unwrap(),
        0,
        "nothing left to fail"
    );
}

// ---------------------------------------------------------------- files and threads

#[test]
fn sweep_removes_orphans_and_reports_missing_files() {
    let node = Node::new();
    let store = node.open();
    let src = node.write_input("d.csv", "id,x\n1,2\n");
    let kept = store
        .register_dataset(RegisterDataset::new("kept", &src))
        .unwrap();
    let gone = store
        .register_dataset(RegisterDataset::new("gone", &src))
        .unwrap();
    let model = store.store_model(model_req("m", b"payload")).unwrap();

    let data = std::fs::canonicalize(node.data_dir()).unwrap();
    // What a crash can leave: a copied dataset never committed, a partial write, a renamed
    // model never committed.
    let orphan_dir = data.join("datasets/00112233445566778899aabbccddeeff");
    std::fs::create_dir_all(&orphan_dir).unwrap();
    std::fs::write(orphan_dir.join("x.csv"), "id\n1\n").unwrap();
    let partial = kept.path.parent().unwrap().join(".d.csv.abc.partial");
    std::fs::write(&partial, "id,x\n1").unwrap();
    let orphan_model = data.join("models/m/v7.bin");
    std::fs::write(&orphan_model, "never committed").unwrap();
    std::fs::remove_file(&gone.path).unwrap();

    let report = store.sweep_orphan_files().unwrap();
    assert!(!orphan_dir.exists() && !partial.exists() && !orphan_model.exists());
    assert_eq!(report.removed.len(), 3, "{report:?}");
    assert_eq!(report.missing_files.len(), 1);
    assert!(report.missing_files[0].contains("'gone'"));
    assert!(
        kept.path.is_file() && model.path.is_file(),
        "registered files untouched"
    );
    assert!(store.load_model("m", None).is_ok());
    assert_eq!(store.sweep_orphan_files().unwrap().removed.len(), 0);
}

#[test]
fn concurrent_use_from_several_threads() {
    let node = Node::new();
    let store = Arc::new(node.open());
    store
        .insert_job(&JobRow::new(
            "job-c",
            "{}",
            "bank",
            "guest",
            JobStatus::Running,
        ))
        .unwrap();
    let src = node.write_input("d.csv", "id,x\n1,2\n2,3\n");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            let src = src.clone();
            std::thread::spawn(move || {
                for i in 0..5 {
                    store
                        .store_model(model_req("shared", format!("{t}-{i}").as_bytes()))
                        .unwrap();
                    store
                        .append_log("job-c", &format!("t{t}"), &format!("line {i}"))
                        .unwrap();
                    store
                        .record_metric("job-c", &format!("t{t}"), "loss", i, i as f64)
                        .unwrap();
                }
                store
                    .register_dataset(RegisterDataset::new(&format!("d{t}"), &src))
                    .unwrap();
                store.describe_dataset(&format!("d{t}")).unwrap();
                // All threads race to register the same name: exactly one wins.
                store
                    .register_dataset(RegisterDataset::new("contested", &src))
                    .is_ok()
            })
        })
        .collect();
    let winners = threads
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|won| *won)
        .count();
    assert_eq!(winners, 1);

    let versions: Vec<u32> = store
        .list_models()
        .unwrap()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(
        versions,
        (1..=20).collect::<Vec<u32>>(),
        "every version issued once"
    );
    for v in 1..=20 {
        store.load_model("shared", Some(v)).unwrap();
    }
    let seqs: Vec<u64> = store
        .logs("job-c", None)
        .unwrap()
        .iter()
        .map(|l| l.seq)
        .collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
    assert_eq!(store.metrics("job-c", None).unwrap().len(), 20);
    assert_eq!(store.list_datasets().unwrap().len(), 5);
    // Losers of the race left no directory behind.
    let dirs = std::fs::read_dir(node.data_dir().join("datasets"))
        .unwrap()
        .count();
    assert_eq!(dirs, 5);
}
