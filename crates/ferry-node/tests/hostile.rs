//! A partner is authenticated, not trusted. Each test plays a pinned but hostile partner: a
//! bare federation endpoint with the partner's real identity that sends crafted control
//! messages to a real node, and asserts the refusal, its reason, and that nothing the node
//! owns (files, datasets, grants, models, jobs) changed.

mod common;

use common::free_port;

use ferry_context::{PartyId, Transport};
use ferry_node::node::CONTROL_SESSION;
use ferry_node::{Control, Node, Reuse};
use ferry_store::{
    DatasetRecord, GrantTarget, JobRow, JobStatus, ModelLineage, ModelRecord, RegisterDataset,
    StoreModel, TaskRow, TaskStatus,
};
use ferry_transport::{FederationTransport, NodeDir, TransportConfig};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `victim` (telco, a real node with the default policy and automatic approval), `hostile`
/// (bank, a bare endpoint with bank's pinned identity) and the directory of a third party
/// (insurer) that the victim also pins but which is not running.
struct Setup {
    _tmp: tempfile::TempDir,
    victim: Arc<Node>,
    victim_dir: PathBuf,
    hostile: Arc<FederationTransport>,
}

fn setup() -> Setup {
    setup_with(true, None)
}

/// [`setup`] with the victim approving proposals itself (`auto_approve`) or leaving them to a
/// person, and `policy` (TOML) as its `[policy]` table.
fn setup_with(auto_approve: bool, policy: Option<&str>) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let policy: Option<toml::Table> = policy.map(|p| toml::from_str(p).unwrap());
    let dirs = common::pinned_node_dirs(
        tmp.path(),
        &["bank", "telco", "insurer"],
        auto_approve,
        policy.as_ref(),
    );
    let hostile = FederationTransport::start(
        TransportConfig::from_node_dir(&NodeDir::open(&dirs[0]).unwrap()).unwrap(),
    )
    .unwrap();
    let victim_dir = dirs[1].clone();
    let victim = Node::start(NodeDir::open(&victim_dir).unwrap()).unwrap();
    // The victim's own data: one dataset granted to bank, one granted to nobody.
    let file = victim_dir.join("rows.csv");
    std::fs::write(&file, "id,x1,x2\na,1,2\nb,3,4\nc,5,6\n").unwrap();
    for name in ["for_bank", "secret_customers"] {
        victim
            .store()
            .register_dataset(RegisterDataset::new(name, &file))
            .unwrap();
    }
    victim
        .store()
        .grant("for_bank", GrantTarget::Party("bank".into()))
        .unwrap();
    Setup {
        _tmp: tmp,
        victim,
        victim_dir,
        hostile,
    }
}

fn telco() -> PartyId {
    PartyId::new("telco").unwrap()
}

impl Setup {
    fn send(&self, msg: &Control) {
        self.hostile
            .send(
                CONTROL_SESSION,
                &telco(),
                "control",
                serde_json::to_vec(msg).unwrap(),
            )
            .unwrap();
    }

    /// The next control message the victim sends the hostile partner about `job_id`.
    fn answer(&self, job_id: &str) -> Control {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some((_, _, bytes)) = self
                .hostile
                .recv_any(CONTROL_SESSION, Duration::from_millis(200))
            {
                let msg: Control = serde_json::from_slice(&bytes).unwrap();
                if job_of(&msg) == Some(job_id) {
                    return msg;
                }
            }
        }
        panic!("no answer about {job_id} within 20 s");
    }

    fn refusal(&self, job_id: &str) -> String {
        match self.answer(job_id) {
            Control::Reject { reason, .. } => reason,
            other => panic!("expected a refusal of {job_id}, got {other:?}"),
        }
    }

    /// Returns once the victim has handled every message sent before: it handles one partner's
    /// control messages in order, and answers a proposal with a malformed id at once.
    fn barrier(&self) {
        self.propose("job-../barrier", &spec_reading("for_bank", ""), None);
        assert!(self.refusal("job-../barrier").contains("invalid job id"));
    }

    fn propose(&self, job_id: &str, spec: &str, reuse: Option<Reuse>) {
        let spec: serde_json::Value = serde_yaml::from_str(spec).unwrap();
        self.send(&Control::Propose {
            job_id: job_id.into(),
            spec_json: spec.to_string(),
            reuse,
            schedule: None,
        });
    }
}

/// The job a control message is about (`None`: it is about no job).
fn job_of(msg: &Control) -> Option<&str> {
    match msg {
        Control::Propose { job_id, .. }
        | Control::Accept { job_id }
        | Control::Reject { job_id, .. }
        | Control::Start { job_id }
        | Control::Status { job_id, .. }
        | Control::Cancel { job_id, .. } => Some(job_id),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// What a hostile partner must not change on the node: every file (except the database), every
/// dataset with its grants, every model version, and every job with its tasks and the status of
/// each party.
#[derive(Debug, PartialEq)]
struct NodeState {
    files: BTreeMap<PathBuf, Vec<u8>>,
    datasets: Vec<(DatasetRecord, Vec<GrantTarget>)>,
    models: Vec<ModelRecord>,
    jobs: Vec<(JobRow, Vec<TaskRow>, Vec<PartyStatus>)>,
}

/// A party of a job, its status and why.
type PartyStatus = (String, JobStatus, Option<String>);

impl Setup {
    /// The node's state, leaving out the jobs named in `except` (a refused proposal is
    /// recorded as a failed job: the tests check those rows themselves).
    fn state(&self, except: &[&str]) -> NodeState {
        let store = self.victim.store();
        NodeState {
            files: snapshot(&self.victim_dir),
            datasets: store
                .list_datasets()
                .unwrap()
                .into_iter()
                .map(|d| {
                    let grants = store.grants(&d.name).unwrap();
                    (d, grants)
                })
                .collect(),
            models: store.list_models().unwrap(),
            jobs: store
                .list_jobs()
                .unwrap()
                .into_iter()
                .filter(|j| !except.contains(&j.id.as_str()))
                .map(|j| {
                    let tasks = store.tasks(&j.id).unwrap();
                    let parties = store.party_statuses(&j.id).unwrap();
                    (j, tasks, parties)
                })
                .collect(),
        }
    }

    /// Asserts that the node is as in `before` but for the jobs in `refused`, each recorded as
    /// failed with no task.
    fn assert_unchanged(&self, before: &NodeState, refused: &[&str]) {
        let after = self.state(refused);
        assert!(
            after == *before,
            "the node changed:\nbefore {before:#?}\nafter {after:#?}"
        );
        for id in refused {
            let row = self.victim.store().job(id).unwrap();
            assert_eq!(row.status, JobStatus::Failed, "{id}: {:?}", row.reason);
            assert!(self.victim.store().tasks(id).unwrap().is_empty(), "{id}");
        }
    }
}

/// Every file under `root` with its contents, except the database (which records refusals).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.starts_with(root.join("state")) {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn spec_reading(dataset: &str, extra_task: &str) -> String {
    format!(
        r#"
parties: {{guest: bank, hosts: [telco]}}
tasks:
  - {{name: read, component: reader, party_params: {{bank: {{dataset: mine}}, telco: {{dataset: {dataset}}}}}}}
{extra_task}"#
    )
}

#[test]
fn a_job_id_that_names_another_directory_is_refused_and_nothing_is_written() {
    let s = setup();
    let before = s.state(&[]);
    for bad in ["../../identity", "job-../../identity", "job-a/b", "/tmp/x"] {
        s.propose(bad, &spec_reading("for_bank", ""), None);
        let reason = s.refusal(bad);
        assert!(reason.contains("invalid job id"), "{bad}: {reason}");
        s.send(&Control::Start { job_id: bad.into() });
    }
    s.barrier();
    assert!(s.victim.store().list_jobs().unwrap().is_empty());
    s.assert_unchanged(&before, &[]);
    assert!(!s.victim_dir.join("data/jobs").exists());
}

#[test]
fn test_only_knobs_and_weak_keys_are_refused_naming_the_field_or_the_policy_line() {
    let s = setup();
    let before = s.state(&[]);
    let train = |params: &str| {
        format!(
            "  - {{name: train, component: hetero_secureboost, inputs: {{train: read}}, params: {params}}}"
        )
    };
    s.propose(
        "job-knob",
        &spec_reading(
            "for_bank",
            &train("{he: {key_bits: 1024}, allow_insecure_key_size: true}"),
        ),
        None,
    );
    let reason = s.refusal("job-knob");
    assert!(
        reason.contains("'allow_insecure_key_size' is a test-only setting"),
        "{reason}"
    );
    s.propose(
        "job-weak",
        &spec_reading("for_bank", &train("{he: {key_bits: 1024}}")),
        None,
    );
    let reason = s.refusal("job-weak");
    assert!(reason.contains("policy.min_paillier_bits"), "{reason}");
    // Nested knobs are found too.
    s.propose(
        "job-lr",
        &spec_reading(
            "for_bank",
            "  - {name: train, component: hetero_lr, inputs: {train: read}, params: {he: {allow_insecure_key_bits: true}}}",
        ),
        None,
    );
    let reason = s.refusal("job-lr");
    assert!(reason.contains("'he.allow_insecure_key_bits'"), "{reason}");
    s.propose(
        "job-psi",
        &spec_reading(
            "for_bank",
            "  - {name: psi, component: psi, inputs: {data: read}, params: {cached_key: true}}",
        ),
        None,
    );
    let reason = s.refusal("job-psi");
    assert!(reason.contains("policy.allow_cached_psi_keys"), "{reason}");
    s.assert_unchanged(&before, &["job-knob", "job-weak", "job-lr", "job-psi"]);
}

#[test]
fn a_refusal_names_only_what_the_proposal_named() {
    let s = setup();
    let before = s.state(&[]);
    s.propose("job-probe", &spec_reading("no_such_data", ""), None);
    let reason = s.refusal("job-probe");
    assert!(reason.contains("no_such_data"), "{reason}");
    // The node's other datasets stay unnamed, and a missing dataset looks like an ungranted one.
    for local in ["secret_customers", "for_bank"] {
        assert!(!reason.contains(local), "{reason}");
    }
    s.propose("job-probe2", &spec_reading("secret_customers", ""), None);
    let reason2 = s.refusal("job-probe2");
    assert_eq!(
        reason.replace("no_such_data", "X"),
        reason2.replace("secret_customers", "X")
    );
    // The full reason stays on the node.
    let local = s.victim.store().job("job-probe").unwrap().reason.unwrap();
    assert!(local.contains("no dataset named 'no_such_data'"), "{local}");
    s.assert_unchanged(&before, &["job-probe", "job-probe2"]);
}

/// A job on the victim that another party (insurer) started, and whose tasks succeeded.
fn insurers_job(s: &Setup, id: &str) {
    let spec = json!({
        "parties": {"guest": "insurer", "hosts": ["telco"]},
        "tasks": [{"name": "read", "component": "reader",
                   "party_params": {"insurer": {"dataset": "x"}, "telco": {"dataset": "secret_customers"}}}]
    });
    let row = JobRow::new(
        id,
        &spec.to_string(),
        "insurer",
        "host",
        JobStatus::Succeeded,
    );
    s.victim.store().insert_job(&row).unwrap();
    s.victim
        .store()
        .upsert_task(id, "read", TaskStatus::Succeeded, 1.0, None)
        .unwrap();
    s.victim
        .store()
        .set_task_outputs(id, "read", &json!({"dataset": "secret_customers"}))
        .unwrap();
}

#[test]
fn reuse_of_a_job_another_party_started_is_refused() {
    let s = setup();
    insurers_job(&s, "job-insurer-1");
    let before = s.state(&[]);
    let spec = r#"
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: x}, telco: {dataset: secret_customers}}}
"#;
    // Even naming the ungranted dataset exactly as the earlier job did does not help.
    s.propose(
        "job-reuse",
        spec,
        Some(Reuse {
            from_job: "job-insurer-1".into(),
            tasks: vec!["read".into()],
        }),
    );
    let reason = s.refusal("job-reuse");
    assert!(
        reason.contains("cannot reuse outputs of job job-insurer-1"),
        "{reason}"
    );
    // It names what the proposal named, and nothing else of this node's.
    assert!(!reason.contains("for_bank"), "{reason}");
    let local = s.victim.store().job("job-reuse").unwrap().reason.unwrap();
    assert!(
        local.contains("started by 'insurer', not by 'bank'"),
        "{local}"
    );
    s.assert_unchanged(&before, &["job-reuse"]);
}

#[test]
fn a_chosen_job_id_cannot_replace_a_dataset_or_its_grants() {
    let s = setup();
    // A dataset whose name is what job 'job-evil' task 'read' would derive.
    let file = s.victim_dir.join("rows.csv");
    let existing = s
        .victim
        .store()
        .register_dataset(RegisterDataset::new("job-evil-read", &file))
        .unwrap();
    s.victim
        .store()
        .grant("job-evil-read", GrantTarget::Party("insurer".into()))
        .unwrap();
    let before = s.state(&[]);
    let spec = r#"
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mine}, telco: {dataset: for_bank, columns: [x1]}}}
"#;
    s.propose("job-evil", spec, None);
    assert!(matches!(s.answer("job-evil"), Control::Accept { .. }));
    // What an approver sees of it.
    let view = s.victim.security_view("job-evil").unwrap();
    assert!(
        view.iter()
            .any(|l| l.contains("telco: reads dataset 'for_bank'")),
        "{view:?}"
    );
    s.send(&Control::Start {
        job_id: "job-evil".into(),
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s
        .victim
        .store()
        .job("job-evil")
        .unwrap()
        .status
        .is_terminal()
    {
        assert!(Instant::now() < deadline, "the job did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        s.victim.store().job("job-evil").unwrap().status,
        JobStatus::Failed
    );
    let after = s.victim.store().dataset("job-evil-read").unwrap();
    assert_eq!(after.id, existing.id);
    assert_eq!(after.sha256, existing.sha256);
    assert_eq!(
        s.victim.store().grants("job-evil-read").unwrap(),
        vec![GrantTarget::Party("insurer".into())]
    );
    // It failed for that reason, not another.
    let reason = s.victim.store().job("job-evil").unwrap().reason.unwrap();
    assert!(
        reason.contains("a dataset named 'job-evil-read' already exists"),
        "{reason}"
    );
    // Nor did anything else change: the job's own directory is all it left.
    let job_files = s.victim.job_dir("job-evil").unwrap();
    let mut after = s.state(&["job-evil"]);
    after.files.retain(|path, _| !path.starts_with(&job_files));
    assert!(after == before, "before {before:#?}\nafter {after:#?}");
}

#[test]
fn a_partner_cannot_add_versions_to_a_model_it_did_not_create() {
    let s = setup();
    // 'risk' was trained in a job this node (telco) started.
    let own = json!({"parties": {"guest": "telco", "hosts": ["insurer"]}, "tasks": []});
    s.victim
        .store()
        .insert_job(&JobRow::new(
            "job-own",
            &own.to_string(),
            "telco",
            "guest",
            JobStatus::Succeeded,
        ))
        .unwrap();
    s.victim
        .store()
        .store_model(StoreModel {
            name: "risk".into(),
            kind: "hetero_secureboost".into(),
            role: "guest".into(),
            payload: b"{}".to_vec(),
            lineage: ModelLineage {
                job_id: "job-own".into(),
                task: "train".into(),
                datasets: vec![],
                params: json!({}),
            },
            metrics: json!({}),
        })
        .unwrap();
    let before = s.state(&[]);
    s.propose(
        "job-model",
        &spec_reading(
            "for_bank",
            "  - {name: train, component: hetero_secureboost, inputs: {train: read}, params: {model_name: risk}}",
        ),
        None,
    );
    let reason = s.refusal("job-model");
    assert!(reason.contains("model_name 'risk' is taken"), "{reason}");
    // Nor may it score with the model, which it took no part in training.
    s.propose(
        "job-score",
        &spec_reading(
            "for_bank",
            "  - {name: score, component: predict, inputs: {data: read}, params: {model: risk}}",
        ),
        None,
    );
    let reason = s.refusal("job-score");
    assert!(reason.contains("model 'risk'"), "{reason}");
    let versions: Vec<u32> = s
        .victim
        .store()
        .list_models()
        .unwrap()
        .into_iter()
        .filter(|m| m.name == "risk")
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, vec![1]);
    s.assert_unchanged(&before, &["job-model", "job-score"]);
}

#[test]
fn an_outsider_cannot_fail_or_cancel_a_job_it_is_not_part_of() {
    let s = setup();
    // A job between telco and insurer, waiting on this node.
    let spec = json!({
        "parties": {"guest": "insurer", "hosts": ["telco"]},
        "tasks": [{"name": "read", "component": "reader",
                   "party_params": {"insurer": {"dataset": "x"}, "telco": {"dataset": "for_bank"}}}]
    });
    s.victim
        .store()
        .insert_job(&JobRow::new(
            "job-theirs",
            &spec.to_string(),
            "insurer",
            "host",
            JobStatus::PendingApproval,
        ))
        .unwrap();
    let before = s.state(&[]);
    for msg in [
        Control::Status {
            job_id: "job-theirs".into(),
            status: JobStatus::Failed,
            reason: Some("forged".into()),
        },
        Control::Reject {
            job_id: "job-theirs".into(),
            reason: "forged".into(),
        },
        Control::Cancel {
            job_id: "job-theirs".into(),
            reason: "forged".into(),
        },
    ] {
        s.send(&msg);
    }
    s.barrier();
    let row = s.victim.store().job("job-theirs").unwrap();
    assert_eq!(row.status, JobStatus::PendingApproval);
    let parties = s.victim.store().party_statuses("job-theirs").unwrap();
    assert!(parties.iter().all(|(p, _, _)| p != "bank"), "{parties:?}");
    s.assert_unchanged(&before, &[]);
}

#[test]
fn messages_for_sessions_of_jobs_the_partner_is_not_in_are_not_buffered() {
    let s = setup();
    let before = s.state(&[]);
    let bank = PartyId::new("bank").unwrap();
    // A session of no job, and one of a job between other parties.
    for session in ["job-nothing/read", "job-theirs/train"] {
        let sent = s
            .hostile
            .send(session, &telco(), "data", vec![7u8; 64 * 1024]);
        // Refused at once, or accepted by the local outbox and refused by the node.
        let _ = sent;
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.victim.transport().buffered_bytes_from(&bank), 0);
    assert!(
        !s.victim
            .transport()
            .is_session_admitted(&bank, "job-nothing/read")
    );
    // The control session still works.
    s.propose("job-../x", &spec_reading("for_bank", ""), None);
    assert!(s.refusal("job-../x").contains("invalid job id"));
    s.assert_unchanged(&before, &[]);
}

#[test]
fn a_guest_cannot_submit_a_test_only_knob_either() {
    let s = setup();
    let spec = r#"
parties: {guest: telco, hosts: [bank]}
tasks:
  - {name: read, component: reader, party_params: {telco: {dataset: for_bank}, bank: {dataset: x}}}
  - {name: fl, component: fedavg, inputs: {train: read}, params: {dp: {clip_norm: 1.0, noise: {stages: [{from_round: 1, noise_multiplier: 0.5}]}, delta: 0.00001, noise_seed: 7}}}
"#;
    let before = s.state(&[]);
    let e = s.victim.submit(spec).unwrap_err().to_string();
    assert!(e.contains("'dp.noise_seed' is a test-only setting"), "{e}");
    assert!(s.victim.store().list_jobs().unwrap().is_empty());
    s.assert_unchanged(&before, &[]);
}

#[test]
fn vetting_arbitrary_bytes_ends_in_an_error_never_a_panic() {
    use ferry_node::node::{decode_control, vet_proposal};
    let policy = ferry_node::policy::SecurityPolicy::default();
    let valid = spec_reading("for_bank", "");
    let valid_json =
        serde_json::to_string(&serde_yaml::from_str::<serde_json::Value>(&valid).unwrap()).unwrap();
    assert!(vet_proposal("job-ok", &valid_json, &policy).is_ok());
    // Seeded mutations of a valid proposal: flipped, dropped and duplicated bytes.
    let base = serde_json::to_vec(&Control::Propose {
        job_id: "job-ok".into(),
        spec_json: valid_json,
        reuse: None,
        schedule: None,
    })
    .unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut refused = 0;
    for _ in 0..3000 {
        let mut bytes = base.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[i] = next() as u8,
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, bytes[i]),
            }
        }
        match decode_control(&bytes) {
            Ok(Control::Propose {
                job_id, spec_json, ..
            }) => {
                if vet_proposal(&job_id, &spec_json, &policy).is_err() {
                    refused += 1;
                }
            }
            _ => refused += 1,
        }
    }
    assert!(
        refused > 2000,
        "only {refused} of 3000 mutations were refused"
    );
}

#[test]
fn an_upload_cut_off_by_a_crash_is_removed_when_the_node_starts() {
    let s = setup();
    let left = s.victim.store().data_dir().join("uploads/.upload-deadbeef");
    std::fs::create_dir_all(&left).unwrap();
    std::fs::write(left.join("half.csv"), "id,x\na,1\n").unwrap();
    s.victim.shutdown();
    let Setup {
        _tmp: tmp,
        victim,
        victim_dir,
        hostile,
    } = s;
    drop((victim, hostile));
    let restarted = Node::start(NodeDir::open(&victim_dir).unwrap()).unwrap();
    assert!(!left.exists());
    // The node's datasets are still there.
    assert!(restarted.store().dataset("for_bank").is_ok());
    restarted.shutdown();
    drop(tmp);
}

#[test]
fn a_node_refuses_to_start_with_a_policy_below_the_floor_or_a_bad_datasets_table() {
    let tmp = tempfile::tempdir().unwrap();
    for (table, expected) in [
        (
            "[policy]\nmin_paillier_bits = 512\n",
            "min_paillier_bits = 512",
        ),
        ("[datasets]\nimport_dirs = 3\n", "[datasets]"),
    ] {
        let root = tmp.path().join(format!("n{}", expected.len()));
        let fed = format!("127.0.0.1:{}", free_port());
        let api = format!("127.0.0.1:{}", free_port());
        NodeDir::init(&root, &PartyId::new("bank").unwrap(), &fed, &api).unwrap();
        let file = root.join("ferry.toml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push('\n');
        text.push_str(table);
        std::fs::write(&file, text).unwrap();
        let e = match Node::start(NodeDir::open(&root).unwrap()) {
            Ok(_) => panic!("started with {table}"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(expected), "{e}");
    }
}

#[test]
fn out_of_range_parameters_are_refused_at_submission_not_when_the_task_starts() {
    let s = setup();
    let before = s.state(&[]);
    for (params, field) in [
        (
            "{component: hetero_secureboost, params: {max_depth: 99}}",
            "max_depth",
        ),
        (
            "{component: hetero_secureboost, params: {learning_rate: -1}}",
            "learning_rate",
        ),
        (
            "{component: hetero_lr, params: {he: {key_bits: 100}}}",
            "key_bits",
        ),
    ] {
        let spec = format!(
            "parties: {{guest: telco, hosts: [bank]}}\ntasks:\n  - {{name: read, component: reader, party_params: {{telco: {{dataset: for_bank}}, bank: {{dataset: x}}}}}}\n  - {{name: train, inputs: {{train: read}}, {}",
            &params[1..]
        );
        let e = s.victim.submit(&spec).unwrap_err().to_string();
        assert!(e.contains(field), "{params}: {e}");
    }
    assert!(s.victim.store().list_jobs().unwrap().is_empty());
    s.assert_unchanged(&before, &[]);
}

/// DP settings for fedavg with budget `epsilon` (a noise multiplier that three clients'
/// updates are not swamped by).
fn dp(epsilon: f64) -> String {
    format!(
        "{{clip_norm: 1.0, noise: {{stages: [{{from_round: 1, noise_multiplier: 0.5}}]}}, delta: 0.00001, epsilon_budget: {epsilon}}}"
    )
}

/// A FedAvg job of `guest` with `hosts` as the other clients and insurer as the aggregation
/// server; telco brings `for_bank`. `fl` is the rest of the fedavg task (`params`,
/// `party_params`).
fn fedavg_job(guest: &str, hosts: &[&str], fl: &str) -> String {
    let datasets: Vec<String> = std::iter::once(guest)
        .chain(hosts.iter().copied())
        .map(|p| {
            let d = if p == "telco" { "for_bank" } else { "x" };
            format!("{p}: {{dataset: {d}}}")
        })
        .collect();
    format!(
        r#"
parties: {{guest: {guest}, hosts: [{}], arbiter: insurer}}
tasks:
  - {{name: read, component: reader, party_params: {{{}}}}}
  - {{name: fl, component: fedavg, inputs: {{train: read}}, {fl}}}
"#,
        hosts.join(", "),
        datasets.join(", ")
    )
}

/// The policy of the victim in the secure-aggregation and DP tests.
const STRICT_FEDAVG: &str = "min_secagg_threshold = 3\nmax_dp_epsilon = 4.0\n";

#[test]
fn a_partner_s_fedavg_below_the_secagg_threshold_or_above_the_dp_budget_is_refused() {
    let s = setup_with(true, Some(STRICT_FEDAVG));
    let before = s.state(&[]);
    let clients = ["telco", "shop"];
    let cases = [
        // An explicit threshold below the minimum.
        (
            "job-sa-two",
            format!(
                "params: {{secure_aggregation: {{threshold: 2}}, dp: {}}}",
                dp(2.0)
            ),
            "secure aggregation threshold 2 is below this node's minimum of 3 (policy.min_secagg_threshold in ferry.toml)",
        ),
        // No threshold: a majority of three clients is 2.
        (
            "job-sa-majority",
            format!("params: {{secure_aggregation: {{}}, dp: {}}}", dp(2.0)),
            "policy.min_secagg_threshold in ferry.toml",
        ),
        // A budget above the maximum.
        (
            "job-dp-ten",
            format!(
                "params: {{secure_aggregation: {{threshold: 3}}, dp: {}}}",
                dp(10.0)
            ),
            "DP budget ε = 10 is above this node's maximum of 4 (policy.max_dp_epsilon in ferry.toml)",
        ),
        // ... for one party only: the server, which decides when the budget is spent.
        (
            "job-dp-server",
            format!(
                "params: {{secure_aggregation: {{threshold: 3}}, dp: {}}}, party_params: {{insurer: {{dp: {}}}}}",
                dp(2.0),
                dp(10.0)
            ),
            "parameters for 'insurer': DP budget ε = 10 is above this node's maximum of 4 (policy.max_dp_epsilon in ferry.toml)",
        ),
        // No DP at all.
        (
            "job-dp-none",
            "params: {secure_aggregation: {threshold: 3}}".to_string(),
            "this node requires differential privacy with a budget of at most ε = 4",
        ),
    ];
    let mut refused = Vec::new();
    for (id, fl, expected) in &cases {
        s.propose(id, &fedavg_job("bank", &clients, fl), None);
        let reason = s.refusal(id);
        assert!(
            reason.contains("refused by this node's security policy") && reason.contains(expected),
            "{id}: {reason}"
        );
        let local = s.victim.store().job(id).unwrap().reason.unwrap();
        assert!(local.contains(expected), "{id}: {local}");
        refused.push(*id);
    }
    s.assert_unchanged(&before, &refused);
    // At the minimum threshold and the maximum budget the same job is accepted.
    s.propose(
        "job-fl-ok",
        &fedavg_job(
            "bank",
            &clients,
            &format!(
                "params: {{secure_aggregation: {{threshold: 3}}, dp: {}}}",
                dp(4.0)
            ),
        ),
        None,
    );
    assert!(matches!(s.answer("job-fl-ok"), Control::Accept { .. }));
}

#[test]
fn without_a_threshold_a_partner_cannot_count_on_every_client_taking_part() {
    let s = setup_with(true, Some(STRICT_FEDAVG));
    let before = s.state(&[]);
    // A majority of five clients is 3, the policy's minimum; but with a client fraction of
    // 0.6 a round has about 3 clients, and secure aggregation then uses a majority of those:
    // 2. The same happens with every client selected once two of them have dropped out.
    let five = ["telco", "shop", "agency", "broker"];
    for (id, selection) in [
        ("job-sampled", "selection: {fraction: 0.6, mode: poisson}, "),
        ("job-everyone", ""),
    ] {
        s.propose(
            id,
            &fedavg_job(
                "bank",
                &five,
                &format!(
                    "params: {{{selection}secure_aggregation: {{}}, dp: {}}}",
                    dp(2.0)
                ),
            ),
            None,
        );
        let reason = s.refusal(id);
        assert!(
            reason.contains("policy.min_secagg_threshold")
                && reason.contains("set secure_aggregation.threshold"),
            "{id}: {reason}"
        );
    }
    s.assert_unchanged(&before, &["job-sampled", "job-everyone"]);
    // With the threshold set, rounds with fewer clients fail instead of weakening it.
    s.propose(
        "job-explicit",
        &fedavg_job(
            "bank",
            &five,
            &format!(
                "params: {{selection: {{fraction: 0.6, mode: poisson}}, secure_aggregation: {{threshold: 3}}, dp: {}}}",
                dp(2.0)
            ),
        ),
        None,
    );
    assert!(matches!(s.answer("job-explicit"), Control::Accept { .. }));
}

#[test]
fn this_node_s_own_fedavg_submission_follows_its_secagg_and_dp_policy() {
    let s = setup_with(true, Some(STRICT_FEDAVG));
    let before = s.state(&[]);
    let clients = ["bank", "shop"];
    for (fl, expected) in [
        (
            format!(
                "params: {{secure_aggregation: {{threshold: 2}}, dp: {}}}",
                dp(2.0)
            ),
            "secure aggregation threshold 2 is below this node's minimum of 3 (policy.min_secagg_threshold in ferry.toml)",
        ),
        (
            format!(
                "params: {{secure_aggregation: {{threshold: 3}}, dp: {}}}",
                dp(4.5)
            ),
            "DP budget ε = 4.5 is above this node's maximum of 4 (policy.max_dp_epsilon in ferry.toml)",
        ),
    ] {
        let e = s
            .victim
            .submit(&fedavg_job("telco", &clients, &fl))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("refused by this node's security policy") && e.contains(expected),
            "{e}"
        );
    }
    // Nothing recorded, and nothing proposed to the partners.
    assert!(s.victim.store().list_jobs().unwrap().is_empty());
    s.assert_unchanged(&before, &[]);
    assert!(
        s.hostile
            .recv_any(CONTROL_SESSION, Duration::from_millis(300))
            .is_none()
    );
    // Within the policy the job is proposed to bank.
    let id = s
        .victim
        .submit(&fedavg_job(
            "telco",
            &clients,
            &format!(
                "params: {{secure_aggregation: {{threshold: 3}}, dp: {}}}",
                dp(4.0)
            ),
        ))
        .unwrap();
    assert!(matches!(s.answer(&id), Control::Propose { .. }));
}

const READ_PSI: &str = r#"
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mine}, telco: {dataset: for_bank}}}
  - {name: psi, component: psi, inputs: {data: read}}
"#;

/// A job bank started on the victim earlier with `spec`, every task of which succeeded.
fn banks_job(s: &Setup, id: &str, spec: &str) {
    let spec: serde_json::Value = serde_yaml::from_str(spec).unwrap();
    s.victim
        .store()
        .insert_job(&JobRow::new(
            id,
            &spec.to_string(),
            "bank",
            "host",
            JobStatus::Succeeded,
        ))
        .unwrap();
    for task in spec["tasks"].as_array().unwrap() {
        s.victim
            .store()
            .upsert_task(
                id,
                task["name"].as_str().unwrap(),
                TaskStatus::Succeeded,
                1.0,
                None,
            )
            .unwrap();
    }
}

fn reuse(from_job: &str, tasks: &[&str]) -> Option<Reuse> {
    Some(Reuse {
        from_job: from_job.into(),
        tasks: tasks.iter().map(|t| t.to_string()).collect(),
    })
}

#[test]
fn reuse_needs_the_same_parties_roles_task_specs_and_upstream_tasks() {
    let s = setup();
    // Earlier jobs of bank: the same tasks with another party, with insurer in another role,
    // with telco's reader specified differently, and exactly as the new job.
    banks_job(
        &s,
        "job-old-parties",
        &READ_PSI
            .replace("hosts: [telco]", "hosts: [telco, insurer]")
            .replace(
                "telco: {dataset: for_bank}",
                "telco: {dataset: for_bank}, insurer: {dataset: x}",
            ),
    );
    let with_arbiter = READ_PSI.replace("hosts: [telco]", "hosts: [telco], arbiter: insurer");
    banks_job(
        &s,
        "job-old-roles",
        &READ_PSI
            .replace("hosts: [telco]", "hosts: [telco, insurer]")
            .replace(
                "telco: {dataset: for_bank}",
                "telco: {dataset: for_bank}, insurer: {dataset: x}",
            ),
    );
    banks_job(
        &s,
        "job-old-columns",
        &READ_PSI.replace("{dataset: for_bank}", "{dataset: for_bank, columns: [x1]}"),
    );
    banks_job(&s, "job-old-same", READ_PSI);
    let before = s.state(&[]);
    let cases = [
        (
            "job-r-parties",
            READ_PSI.to_string(),
            reuse("job-old-parties", &["read", "psi"]),
            "job job-old-parties had other parties or roles",
        ),
        (
            "job-r-roles",
            with_arbiter,
            reuse("job-old-roles", &["read"]),
            "job job-old-roles had other parties or roles",
        ),
        (
            "job-r-spec",
            READ_PSI.to_string(),
            reuse("job-old-columns", &["read", "psi"]),
            "task 'read' is specified differently from job job-old-columns",
        ),
        (
            "job-r-upstream",
            READ_PSI.to_string(),
            reuse("job-old-same", &["psi"]),
            "task 'psi' is reused but its input task 'read' is not",
        ),
    ];
    for (id, spec, reuse, expected) in &cases {
        let from = reuse.as_ref().unwrap().from_job.clone();
        s.propose(id, spec, reuse.clone());
        let reason = s.refusal(id);
        // The proposer learns only that the reuse was refused, and the rule.
        assert_eq!(
            reason,
            format!(
                "'telco' cannot reuse outputs of job {from} for this job: it must be a job the same initiator ran on this node with the same parties and the same reused tasks, all succeeded"
            ),
            "{id}"
        );
        let local = s.victim.store().job(id).unwrap().reason.unwrap();
        assert!(
            local.contains(&format!("reuse of job {from}: {expected}")),
            "{id}: {local}"
        );
    }
    s.assert_unchanged(
        &before,
        &[
            "job-r-parties",
            "job-r-roles",
            "job-r-spec",
            "job-r-upstream",
        ],
    );
    // The same initiator, parties, roles and task specs, with every upstream task reused.
    s.propose(
        "job-r-ok",
        READ_PSI,
        reuse("job-old-same", &["read", "psi"]),
    );
    assert!(matches!(s.answer("job-r-ok"), Control::Accept { .. }));
    let view = s.victim.security_view("job-r-ok").unwrap();
    assert!(
        view.contains(&"REUSES outputs of job job-old-same for tasks: read, psi".to_string()),
        "{view:?}"
    );
}

#[test]
fn an_outsider_cannot_fail_or_cancel_a_job_this_node_started() {
    let s = setup();
    // A job this node (telco) started with insurer, waiting for insurer's approval; bank has
    // no part in it.
    let theirs = s
        .victim
        .submit(
            r#"
parties: {guest: telco, hosts: [insurer]}
tasks:
  - {name: read, component: reader, party_params: {telco: {dataset: secret_customers}, insurer: {dataset: x}}}
"#,
        )
        .unwrap();
    // And one with bank, which bank may refuse.
    let with_bank = s
        .victim
        .submit(
            r#"
parties: {guest: telco, hosts: [bank]}
tasks:
  - {name: read, component: reader, party_params: {telco: {dataset: for_bank}, bank: {dataset: x}}}
"#,
        )
        .unwrap();
    let before = s.state(&[&with_bank]);
    for msg in [
        Control::Status {
            job_id: theirs.clone(),
            status: JobStatus::Failed,
            reason: Some("forged".into()),
        },
        Control::Status {
            job_id: theirs.clone(),
            status: JobStatus::Cancelled,
            reason: Some("forged".into()),
        },
        Control::Reject {
            job_id: theirs.clone(),
            reason: "forged".into(),
        },
        Control::Cancel {
            job_id: theirs.clone(),
            reason: "forged".into(),
        },
        // Accepting or starting it for insurer does nothing either.
        Control::Accept {
            job_id: theirs.clone(),
        },
        Control::Start {
            job_id: theirs.clone(),
        },
    ] {
        s.send(&msg);
    }
    // bank's refusal of the job it is a party of is handled after the forged messages, and
    // takes effect: the messages arrived and were read.
    s.send(&Control::Reject {
        job_id: with_bank.clone(),
        reason: "not today".into(),
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.victim.store().job(&with_bank).unwrap().status != JobStatus::Failed {
        assert!(Instant::now() < deadline, "bank's refusal was not handled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let reason = s.victim.store().job(&with_bank).unwrap().reason.unwrap();
    assert!(
        reason.contains("party 'bank' refused the job: not today"),
        "{reason}"
    );
    let row = s.victim.store().job(&theirs).unwrap();
    assert_eq!(row.status, JobStatus::PendingApproval, "{:?}", row.reason);
    let parties = s.victim.store().party_statuses(&theirs).unwrap();
    assert_eq!(
        parties
            .iter()
            .map(|(p, s, _)| (p.as_str(), *s))
            .collect::<Vec<_>>(),
        vec![
            ("insurer", JobStatus::PendingApproval),
            ("telco", JobStatus::Queued)
        ]
    );
    s.assert_unchanged(&before, &[&with_bank]);
}

/// `GET uri` on the victim's API with a read-only token.
fn api_get(s: &Setup, uri: &str) -> (axum::http::StatusCode, serde_json::Value) {
    let (_, token) = s
        .victim
        .store()
        .create_token("approver", ferry_store::TokenRole::ReadOnly)
        .unwrap();
    let router = ferry_node::api::router(s.victim.clone());
    let a = common::send(&router, "GET", uri, &common::bearer(&token), None);
    (a.status, serde_json::from_slice(&a.bytes).unwrap())
}

#[test]
fn the_approval_view_of_a_partner_s_proposal_lists_keys_dp_secure_aggregation_and_reuse() {
    let s = setup_with(false, None);
    let spec = format!(
        r#"
parties: {{guest: bank, hosts: [telco], arbiter: insurer}}
tasks:
  - {{name: read, component: reader, party_params: {{bank: {{dataset: mine}}, telco: {{dataset: for_bank}}}}}}
  - {{name: psi, component: psi, inputs: {{data: read}}}}
  - {{name: lr, component: hetero_lr, inputs: {{train: psi}}, params: {{he: {{key_bits: 3072}}}}}}
  - {{name: fl, component: fedavg, inputs: {{train: psi}}, params: {{secure_aggregation: {{threshold: 2}}, dp: {}}}}}
"#,
        dp(3.0)
    );
    banks_job(&s, "job-earlier", &spec);
    s.propose("job-view", &spec, reuse("job-earlier", &["read"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.victim.store().job("job-view").is_err() {
        assert!(Instant::now() < deadline, "the proposal was not recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = api_get(&s, "/api/v1/jobs/job-view");
    assert!(status.is_success(), "{status}: {body}");
    assert_eq!(body["job"]["status"], "pending_approval", "{body}");
    assert_eq!(body["job"]["initiator"], "bank", "{body}");
    let lines: Vec<&str> = body["security"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let has = |what: &str| {
        assert!(
            lines.iter().any(|l| l.contains(what)),
            "no '{what}' in {lines:#?}"
        );
    };
    has("read (reader): bank: reads dataset 'mine'; telco: reads dataset 'for_bank'");
    has(
        "psi (psi): bank: KKRT16 PSI for two parties (ECDH-PSI for more), result to all, fresh keys",
    );
    has("lr (hetero_lr): bank: paillier-3072 keys");
    has("telco: paillier-3072 keys");
    has("fl (fedavg): bank: secure aggregation (threshold 2), DP clip 1 δ 0.00001 budget ε ≤ 3");
    has("insurer: secure aggregation (threshold 2), DP clip 1 δ 0.00001 budget ε ≤ 3");
    has("REUSES outputs of job job-earlier for tasks: read");
    // The API shows what the node's own view shows, nothing less.
    assert_eq!(lines, s.victim.security_view("job-view").unwrap());
    // The view is what a person approves: the job has not been accepted. (Other control
    // messages, such as the victim's audit checkpoints, may arrive meanwhile.)
    let until = Instant::now() + Duration::from_millis(300);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Some((_, _, bytes)) = s.hostile.recv_any(CONTROL_SESSION, left) {
            let msg = ferry_node::node::decode_control(&bytes).unwrap();
            assert!(
                !matches!(&msg, ferry_node::Control::Accept { job_id } if job_id == "job-view"),
                "the proposal was accepted without a person: {msg:?}"
            );
        }
    }
}
