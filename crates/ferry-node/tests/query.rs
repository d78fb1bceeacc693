//! Anonymous query between two nodes over mutual TLS: a telco publishes a query service over
//! its subscribers, a bank looks ids up in it.

mod common;

use ferry_node::Node;
use ferry_store::{GrantTarget, QueryStatus, RegisterDataset, ServiceStatus};
use ferry_transport::NodeDir;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Subscribers with values that exercise the encoding: commas, quotes, Chinese text, an
/// empty cell.
const SUBSCRIBERS: &str = "\
phone,tenure_months,arpu,city
13800000001,24,88.5,北京
13800000002,3,12,\"Shang, \"\"hai\"\"\"
13800000003,120,,Shenzhen
13800000004,7,45.25,广州
";

struct Pair {
    _tmp: tempfile::TempDir,
    dirs: Vec<PathBuf>,
    bank: Arc<Node>,
    telco: Arc<Node>,
}

/// A bank and a telco node, pinned to each other; the telco's `[query]` has `query_toml`.
fn pair(query_toml: &str) -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = common::pinned_node_dirs(tmp.path(), &["bank", "telco"], true, None);
    let mut telco_dir = NodeDir::open(&dirs[1]).unwrap();
    let query: toml::Table = toml::from_str(query_toml).unwrap();
    telco_dir.config.other.insert("query".into(), query.into());
    telco_dir.save().unwrap();
    let bank = Node::start(NodeDir::open(&dirs[0]).unwrap()).unwrap();
    let telco = Node::start(NodeDir::open(&dirs[1]).unwrap()).unwrap();
    Pair {
        _tmp: tmp,
        dirs,
        bank,
        telco,
    }
}

fn register(node: &Node, dir: &Path, name: &str, csv: &str, replace: bool) {
    let file = dir.join(format!("{name}-input.csv"));
    std::fs::write(&file, csv).unwrap();
    let mut req = RegisterDataset::new(name, &file);
    req.id_columns = vec!["phone".into()];
    req.replace = replace;
    node.store().register_dataset(req).unwrap();
}

fn publish(
    node: &Node,
    name: &str,
    dataset: &str,
    keys: &[&str],
    values: &[&str],
) -> ferry_store::QueryServiceRecord {
    node.queries()
        .publish(
            ferry_store::NewQueryService {
                name: name.into(),
                dataset: dataset.into(),
                key_columns: keys.iter().map(|s| s.to_string()).collect(),
                value_columns: values.iter().map(|s| s.to_string()).collect(),
                description: String::new(),
            },
            true,
        )
        .unwrap()
}

fn ids(list: &[&str]) -> Vec<Vec<String>> {
    list.iter().map(|s| vec![s.to_string()]).collect()
}

fn wait_version(node: &Node, service: &str, version: u64) -> ferry_store::QueryServiceRecord {
    let start = Instant::now();
    loop {
        let rec = node.store().query_service(service).unwrap();
        if rec.version >= version && rec.status == ServiceStatus::Ready {
            return rec;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "service {service} never reached version {version}: {rec:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                hits.push(path);
            }
        }
    }
    hits
}

#[test]
fn a_bank_queries_a_telco_service_and_only_the_bank_knows_which_ids() {
    let p = pair("");
    register(&p.telco, &p.dirs[1], "subscribers", SUBSCRIBERS, false);
    p.telco
        .store()
        .grant("subscribers", GrantTarget::Party("bank".into()))
        .unwrap();
    let rec = publish(
        &p.telco,
        "attrs",
        "subscribers",
        &["phone"],
        &["tenure_months", "arpu", "city"],
    );
    assert_eq!(
        (rec.status, rec.version, rec.rows),
        (ServiceStatus::Ready, 1, 4),
        "{rec:?}"
    );
    let table = p
        .telco
        .store()
        .data_path(rec.table_file.as_deref().unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&table).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the table holds the OPRF key");
    }

    let absent = "19900000000";
    let asked = ["13800000002", absent, "13800000003", "13800000002"];
    let result = p
        .bank
        .run_query("telco", "attrs", ids(&asked), "token:ops")
        .unwrap();
    assert_eq!(result.key_columns, vec!["phone"]);
    assert_eq!(result.value_columns, vec!["tenure_months", "arpu", "city"]);
    let got: Vec<(bool, Vec<String>)> = result
        .answers
        .iter()
        .map(|a| (a.found, a.values.clone()))
        .collect();
    let row = |cells: &[&str]| {
        (
            true,
            cells.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        got,
        vec![
            row(&["3", "12", "Shang, \"hai\""]),
            (false, vec![]),
            row(&["120", "", "Shenzhen"]),
            row(&["3", "12", "Shang, \"hai\""]),
        ]
    );
    let q = &result.query;
    assert_eq!((q.status, q.ids, q.found), (QueryStatus::Succeeded, 4, 3));
    assert_eq!(
        (
            q.provider.as_str(),
            q.service.as_str(),
            q.requested_by.as_str()
        ),
        ("telco", "attrs", "token:ops")
    );
    assert!(q.hint_downloaded && q.bytes_sent > 0 && q.bytes_received > 0);
    assert_eq!(q.table_rows, Some(4));
    let csv = std::fs::read_to_string(p.bank.store().data_path(q.result_file.as_deref().unwrap()))
        .unwrap();
    assert_eq!(
        csv,
        "phone,found,tenure_months,arpu,city\n13800000002,true,3,12,\"Shang, \"\"hai\"\"\"\n\
         19900000000,false,,,\n13800000003,true,120,,Shenzhen\n13800000002,true,3,12,\"Shang, \"\"hai\"\"\"\n"
    );

    // A second query reuses the hint; a Chinese value comes back intact.
    let again = p
        .bank
        .run_query("telco", "attrs", ids(&["13800000001"]), "token:ops")
        .unwrap();
    assert!(
        !again.query.hint_downloaded,
        "the hint of the same version is cached"
    );
    assert_eq!(again.answers[0].values, vec!["24", "88.5", "北京"]);

    // The provider recorded counts and times only.
    let usage = p.telco.queries().show("attrs").unwrap().usage;
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (usage[0].partner.as_str(), usage[0].sessions, usage[0].ids),
        ("bank", 2, 5)
    );
    // Nothing of the telco's node directory holds the absent id, and its database and
    // tables hold none of the ids asked (its own dataset copy holds its subscribers).
    assert_eq!(files_containing(&p.dirs[1], absent), Vec::<PathBuf>::new());
    let telco_state = p.dirs[1].join("state");
    let services_dir = p.telco.store().data_path("query-services");
    for id in asked {
        for dir in [&telco_state, &services_dir] {
            assert_eq!(
                files_containing(dir, id),
                Vec::<PathBuf>::new(),
                "{id} in {}",
                dir.display()
            );
        }
    }
    // The bank keeps its record, with the ids, in its own store.
    assert!(!files_containing(&p.dirs[0], absent).is_empty());
    assert_eq!(p.bank.store().list_queries().unwrap().len(), 2);
}

#[test]
fn a_refreshed_dataset_serves_its_new_version_and_the_old_table_goes() {
    let p = pair("");
    register(&p.telco, &p.dirs[1], "subscribers", SUBSCRIBERS, false);
    p.telco
        .store()
        .grant("subscribers", GrantTarget::Party("bank".into()))
        .unwrap();
    let v1 = publish(&p.telco, "attrs", "subscribers", &["phone"], &["arpu"]);
    let first = p
        .bank
        .run_query("telco", "attrs", ids(&["13800000004", "13800000005"]), "t")
        .unwrap();
    assert_eq!(first.answers[0].values, vec!["45.25"]);
    assert!(!first.answers[1].found);

    // Re-registering the dataset through the API path builds version 2 in the background.
    let updated = format!("{SUBSCRIBERS}13800000005,1,99,Chengdu\n").replace("45.25", "50");
    register(&p.telco, &p.dirs[1], "subscribers", &updated, true);
    p.telco.queries().dataset_changed("subscribers");
    let v2 = wait_version(&p.telco, "attrs", 2);
    assert_ne!(v1.table_id, v2.table_id);
    assert!(
        !p.telco
            .store()
            .data_path(v1.table_file.as_deref().unwrap())
            .exists(),
        "the old table is removed"
    );
    let second = p
        .bank
        .run_query("telco", "attrs", ids(&["13800000004", "13800000005"]), "t")
        .unwrap();
    assert!(
        second.query.hint_downloaded,
        "a new version means a new hint"
    );
    assert_eq!(second.answers[0].values, vec!["50"]);
    assert_eq!(second.answers[1].values, vec!["99"]);

    // After a restart the service serves the same version from its file. (Both nodes
    // restart: a partner restarting alone is issue 18's, the transport's sequence numbers.)
    p.telco.shutdown();
    p.bank.shutdown();
    drop((p.telco, p.bank));
    let telco = Node::start(NodeDir::open(&p.dirs[1]).unwrap()).unwrap();
    let bank = Node::start(NodeDir::open(&p.dirs[0]).unwrap()).unwrap();
    let rec = telco.store().query_service("attrs").unwrap();
    assert_eq!(
        (rec.version, rec.table_id.clone()),
        (2, v2.table_id.clone())
    );
    let third = bank
        .run_query("telco", "attrs", ids(&["13800000005"]), "t")
        .unwrap();
    assert_eq!(third.query.table_id, v2.table_id);
    assert_eq!(third.answers[0].values, vec!["99"]);
    assert_eq!(
        bank.store().list_queries().unwrap().len(),
        3,
        "records survive the restart"
    );
}

#[test]
fn composite_keys_and_membership_only_services() {
    let p = pair("");
    let people = "id_type,id_no,score\npassport,E123,700\nid_card,E123,650\nid_card,1101,580\n";
    let file = p.dirs[1].join("people.csv");
    std::fs::write(&file, people).unwrap();
    let mut req = RegisterDataset::new("people", &file);
    req.id_columns = vec!["id_type".into(), "id_no".into()];
    p.telco.store().register_dataset(req).unwrap();
    p.telco
        .store()
        .grant("people", GrantTarget::Party("bank".into()))
        .unwrap();
    publish(
        &p.telco,
        "scores",
        "people",
        &["id_type", "id_no"],
        &["score"],
    );
    publish(&p.telco, "known", "people", &["id_type", "id_no"], &[]);
    let asked = vec![
        vec!["id_card".to_string(), "E123".to_string()],
        vec!["passport".to_string(), "1101".to_string()],
    ];
    let r = p
        .bank
        .run_query("telco", "scores", asked.clone(), "t")
        .unwrap();
    assert_eq!(
        r.answers.iter().map(|a| a.found).collect::<Vec<_>>(),
        vec![true, false]
    );
    assert_eq!(r.answers[0].values, vec!["650"]);
    let m = p
        .bank
        .run_query("telco", "known", asked.clone(), "t")
        .unwrap();
    assert_eq!(
        m.answers.iter().map(|a| a.found).collect::<Vec<_>>(),
        vec![true, false]
    );
    assert!(m.value_columns.is_empty() && m.answers[0].values.is_empty());
    // One cell where the service has two key columns: a clear error, recorded as failed.
    let e = p
        .bank
        .run_query("telco", "scores", ids(&["E123"]), "t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("keyed by 2 column(s) (id_type, id_no)"), "{e}");
    let failed = p
        .bank
        .store()
        .list_queries()
        .unwrap()
        .into_iter()
        .find(|q| q.status == QueryStatus::Failed)
        .unwrap();
    assert!(failed.result_file.is_none());
}

#[test]
fn ungranted_partners_unknown_services_and_bad_tables_are_refused_and_nothing_is_half_written() {
    let p = pair("max_rows = 5\nmax_value_bytes = 16\n");
    register(&p.telco, &p.dirs[1], "subscribers", SUBSCRIBERS, false);
    publish(&p.telco, "attrs", "subscribers", &["phone"], &["arpu"]);

    // Not granted: the same answer as an unknown service (a partner learns no service names).
    for service in ["attrs", "nope"] {
        let e = p
            .bank
            .run_query("telco", service, ids(&["13800000001"]), "t")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("telco' refused the query: this node offers no query service '{service}' to party 'bank'")),
            "{e}"
        );
    }
    let refused = p.telco.store().served_sessions("attrs").unwrap();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].outcome.starts_with("refused"));
    assert!(p.telco.queries().show("attrs").unwrap().usage.is_empty());

    // Granted, then revoked: refused again at once.
    p.telco
        .store()
        .grant("subscribers", GrantTarget::Party("bank".into()))
        .unwrap();
    assert!(
        p.bank
            .run_query("telco", "attrs", ids(&["13800000001"]), "t")
            .unwrap()
            .answers[0]
            .found
    );
    p.telco
        .store()
        .revoke_grant("subscribers", &GrantTarget::Party("bank".into()))
        .unwrap();
    assert!(
        p.bank
            .run_query("telco", "attrs", ids(&["13800000001"]), "t")
            .is_err()
    );

    // Not a partner, no ids, the node itself.
    let e = p
        .bank
        .run_query("insurer", "attrs", ids(&["1"]), "t")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'insurer' is not a partner of this node (partners: telco)"),
        "{e}"
    );
    assert!(
        p.bank
            .run_query("telco", "attrs", vec![], "t")
            .unwrap_err()
            .to_string()
            .contains("no ids")
    );
    assert!(p.bank.run_query("bank", "attrs", ids(&["1"]), "t").is_err());

    // Publishing: unknown columns are named; over max_rows, an oversized value or duplicate
    // keys fail the build naming the limit or the rows, and no table file is left.
    let e = p
        .telco
        .queries()
        .publish(
            ferry_store::NewQueryService {
                name: "bad".into(),
                dataset: "subscribers".into(),
                key_columns: vec!["phone".into()],
                value_columns: vec!["income".into()],
                description: String::new(),
            },
            true,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no column 'income'") && e.contains("tenure_months"),
        "{e}"
    );
    let many: String = std::iter::once("phone,arpu\n".to_string())
        .chain((0..6).map(|i| format!("{i},1\n")))
        .collect();
    register(&p.telco, &p.dirs[1], "many", &many, false);
    let long = "phone,arpu\n1,12345678901234567890\n";
    register(&p.telco, &p.dirs[1], "long", long, false);
    let dup = "phone,arpu\n1,2\n2,3\n1,4\n";
    register(&p.telco, &p.dirs[1], "dup", dup, false);
    for (dataset, expected) in [
        ("many", "more than 5 rows ([query] max_rows)"),
        (
            "long",
            "row 2: the value columns take 22 bytes encoded, above [query] max_value_bytes = 16",
        ),
        ("dup", "rows 2 and 4 have the same key (phone)"),
    ] {
        let rec = publish(&p.telco, dataset, dataset, &["phone"], &["arpu"]);
        assert_eq!(rec.status, ServiceStatus::Failed, "{dataset}");
        assert!(
            rec.error.as_deref().unwrap_or("").contains(expected),
            "{dataset}: {:?}",
            rec.error
        );
        assert_eq!((rec.version, rec.table_file), (0, None));
        assert!(
            !p.telco
                .store()
                .data_path(&format!("query-services/{dataset}"))
                .exists()
        );
    }
    // A failed rebuild keeps the serving version.
    register(&p.telco, &p.dirs[1], "subscribers", dup, true);
    let rec = p.telco.queries().refresh("attrs", true).unwrap();
    assert_eq!((rec.status, rec.version), (ServiceStatus::Failed, 1));
    p.telco
        .store()
        .grant("subscribers", GrantTarget::Party("bank".into()))
        .unwrap();
    let still = p
        .bank
        .run_query("telco", "attrs", ids(&["13800000004"]), "t")
        .unwrap();
    assert_eq!(still.answers[0].values, vec!["45.25"]);
}

#[test]
fn under_encryption_at_rest_tables_datasets_and_results_are_sealed_and_still_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = common::pinned_node_dirs(tmp.path(), &["bank", "telco"], true, None);
    for d in &dirs {
        let mut dir = NodeDir::open(d).unwrap();
        let crypto: toml::Table = toml::from_str("encrypt_at_rest = true").unwrap();
        dir.config.other.insert("crypto".into(), crypto.into());
        dir.save().unwrap();
    }
    let start = |i: usize| Node::start(NodeDir::open(&dirs[i]).unwrap()).unwrap();
    let (bank, telco) = (start(0), start(1));
    register(&telco, &dirs[1], "subscribers", SUBSCRIBERS, false);
    std::fs::remove_file(dirs[1].join("subscribers-input.csv")).unwrap();
    telco
        .store()
        .grant("subscribers", GrantTarget::Party("bank".into()))
        .unwrap();
    let rec = publish(&telco, "attrs", "subscribers", &["phone"], &["city"]);
    assert_eq!(rec.status, ServiceStatus::Ready, "{rec:?}");
    let table = telco.store().data_path(rec.table_file.as_deref().unwrap());
    assert!(std::fs::read(&table).unwrap().starts_with(b"FRYSM4G1"));
    let asked = ids(&["13800000002"]);
    let result = bank.run_query("telco", "attrs", asked, "t").unwrap();
    assert_eq!(result.answers[0].values, vec!["Shang, \"hai\""]);
    let result_file = bank
        .store()
        .data_path(result.query.result_file.as_deref().unwrap());
    assert!(
        std::fs::read(&result_file)
            .unwrap()
            .starts_with(b"FRYSM4G1")
    );
    // No file on either node holds a subscriber's number or city in the clear: the dataset,
    // the table (served values) and the result (the ids asked) are all sealed.
    for (i, needle) in [(1, "13800000001"), (1, "Shenzhen"), (0, "13800000002")] {
        let hits = files_containing(&dirs[i], needle);
        assert!(hits.is_empty(), "'{needle}' in the clear in {hits:?}");
    }
    // After a restart the sealed table is loaded again and serves.
    telco.shutdown();
    bank.shutdown();
    drop((telco, bank));
    let (bank, telco) = (start(0), start(1));
    assert_eq!(telco.store().query_service("attrs").unwrap().version, 1);
    let again = bank
        .run_query("telco", "attrs", ids(&["13800000003"]), "t")
        .unwrap();
    assert_eq!(again.answers[0].values, vec!["Shenzhen"]);
}
