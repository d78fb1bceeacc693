//! Projects, their members, and grants scoped to a project; migration 5 keeps grants.

mod common;

use common::Node;
use ferry_store::{
    GrantTarget, JobRow, JobStatus, MemberStatus, NewProject, RegisterDataset, StoreError,
};

fn project(name: &str, creator: &str, members: &[(&str, MemberStatus)]) -> NewProject {
    let mut p = NewProject::new(name, creator);
    p.description = "joint risk model".into();
    p.members = members
        .iter()
        .map(|(party, status)| (party.to_string(), *status))
        .collect();
    p
}

fn job_of(id: &str, project: Option<&str>) -> JobRow {
    let spec = match project {
        Some(p) => format!(r#"{{"project":"{p}","parties":{{}},"tasks":[]}}"#),
        None => r#"{"parties":{},"tasks":[]}"#.to_string(),
    };
    JobRow::new(id, &spec, "bank", "host", JobStatus::PendingApproval)
}

#[test]
fn projects_and_members_are_recorded() {
    let node = Node::new();
    let store = node.open();
    let rec = store
        .insert_project(&project(
            "risk",
            "bank",
            &[
                ("bank", MemberStatus::Joined),
                ("telco", MemberStatus::Invited),
            ],
        ))
        .unwrap();
    assert_eq!(rec.created_by, "bank");
    assert_eq!(rec.status_of("bank"), Some(MemberStatus::Joined));
    assert_eq!(rec.status_of("telco"), Some(MemberStatus::Invited));
    assert!(
        rec.members
            .iter()
            .find(|m| m.party == "telco")
            .unwrap()
            .decided_at
            .is_none()
    );

    match store.insert_project(&project("risk", "bank", &[])) {
        Err(StoreError::AlreadyExists {
            kind: "project", ..
        }) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(matches!(
        store.insert_project(&project("../x", "bank", &[])),
        Err(StoreError::InvalidInput { .. })
    ));

    store
        .set_member_status("risk", "telco", MemberStatus::Joined)
        .unwrap();
    let rec = store.project("risk").unwrap();
    assert_eq!(rec.status_of("telco"), Some(MemberStatus::Joined));
    assert!(
        rec.members
            .iter()
            .find(|m| m.party == "telco")
            .unwrap()
            .decided_at
            .is_some()
    );
    assert_eq!(store.list_projects().unwrap().len(), 1);

    let err = store.project("nope").unwrap_err().to_string();
    assert!(err.contains("'nope'") && err.contains("risk"), "{err}");
    assert!(matches!(
        store.set_member_status("nope", "telco", MemberStatus::Joined),
        Err(StoreError::NotFound {
            kind: "project",
            ..
        })
    ));
}

#[test]
fn project_grants_are_honoured_only_for_joined_members_and_jobs_of_the_project() {
    let node = Node::new();
    let store = node.open();
    let src = node.write_input("d.csv", "id,x\n1,2\n");
    store
        .register_dataset(RegisterDataset::new("loans", &src))
        .unwrap();
    store
        .insert_project(&project(
            "risk",
            "telco",
            &[
                ("telco", MemberStatus::Joined),
                ("bank", MemberStatus::Joined),
                ("insurer", MemberStatus::Invited),
                ("shop", MemberStatus::Declined),
            ],
        ))
        .unwrap();
    store
        .insert_project(&project(
            "other",
            "telco",
            &[("bank", MemberStatus::Joined)],
        ))
        .unwrap();
    store
        .grant("loans", GrantTarget::Project("risk".into()))
        .unwrap();
    assert_eq!(
        store.grants("loans").unwrap(),
        vec![GrantTarget::Project("risk".into())]
    );
    assert_eq!(
        store.datasets_granted_to_project("risk").unwrap(),
        vec!["loans".to_string()]
    );

    // Explicit project (a proposal being vetted).
    assert!(
        store
            .is_granted_in("loans", "bank", "job-1", Some("risk"))
            .unwrap()
    );
    assert!(
        !store.is_granted_in("loans", "bank", "job-1", None).unwrap(),
        "a job of no project"
    );
    assert!(
        !store
            .is_granted_in("loans", "bank", "job-1", Some("other"))
            .unwrap(),
        "a job of another project"
    );
    assert!(
        !store
            .is_granted_in("loans", "insurer", "job-1", Some("risk"))
            .unwrap(),
        "invited only"
    );
    assert!(
        !store
            .is_granted_in("loans", "shop", "job-1", Some("risk"))
            .unwrap(),
        "declined"
    );
    assert!(
        !store
            .is_granted_in("loans", "nobody", "job-1", Some("risk"))
            .unwrap(),
        "no member"
    );

    // A stored job: its project comes from its spec.
    store
        .insert_job(&job_of("job-in-risk", Some("risk")))
        .unwrap();
    store.insert_job(&job_of("job-plain", None)).unwrap();
    assert_eq!(
        store.project_of_job("job-in-risk").unwrap().as_deref(),
        Some("risk")
    );
    assert_eq!(store.project_of_job("job-plain").unwrap(), None);
    assert_eq!(store.project_of_job("job-unknown").unwrap(), None);
    assert!(store.is_granted("loans", "bank", "job-in-risk").unwrap());
    assert!(!store.is_granted("loans", "bank", "job-plain").unwrap());
    store.check_granted("loans", "bank", "job-in-risk").unwrap();

    let msg = store
        .check_granted("loans", "bank", "job-plain")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("granted to project 'risk'") && msg.contains("project:"),
        "{msg}"
    );
    let msg = store
        .check_granted_in("loans", "insurer", "job-1", Some("risk"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("'insurer' is not a joined member"), "{msg}");

    // Leaving the project (declined after all) withdraws the use at once.
    store
        .set_member_status("risk", "bank", MemberStatus::Declined)
        .unwrap();
    assert!(!store.is_granted("loans", "bank", "job-in-risk").unwrap());

    store
        .revoke_grant("loans", &GrantTarget::Project("risk".into()))
        .unwrap();
    assert!(store.grants("loans").unwrap().is_empty());
}

#[test]
fn migration_5_keeps_existing_grants() {
    let node = Node::new();
    {
        let store = node.open();
        let src = node.write_input("d.csv", "id,x\n1,2\n");
        store
            .register_dataset(RegisterDataset::new("loans", &src))
            .unwrap();
        store
            .grant("loans", GrantTarget::Party("telco".into()))
            .unwrap();
        store
            .grant("loans", GrantTarget::Job("job-9".into()))
            .unwrap();
    }
    // Turn the database back into what migration 4 left: the old CHECK, no project tables.
    node.raw_db()
        .execute_batch(
            "BEGIN;
             DROP TABLE project_members;
             DROP TABLE projects;
             CREATE TABLE dataset_grants_v4 (
                 dataset_id  TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
                 target_kind TEXT NOT NULL CHECK (target_kind IN ('party', 'job')),
                 target      TEXT NOT NULL,
                 created_at  TEXT NOT NULL,
                 PRIMARY KEY (dataset_id, target_kind, target)
             );
             INSERT INTO dataset_grants_v4 SELECT * FROM dataset_grants;
             DROP TABLE dataset_grants;
             ALTER TABLE dataset_grants_v4 RENAME TO dataset_grants;
             DELETE FROM schema_migrations WHERE version = 5;
             COMMIT;",
        )
        .unwrap();
    let refused = node.raw_db().execute(
        "INSERT INTO dataset_grants SELECT dataset_id, 'project', 'x', created_at FROM dataset_grants LIMIT 1",
        [],
    );
    assert!(
        refused.is_err(),
        "the version 4 table refuses project grants"
    );

    let store = node.open();
    assert_eq!(store.schema_version().unwrap(), 10);
    assert_eq!(
        store.grants("loans").unwrap(),
        vec![
            GrantTarget::Job("job-9".into()),
            GrantTarget::Party("telco".into())
        ]
    );
    assert!(store.is_granted("loans", "telco", "job-1").unwrap());
    store
        .grant("loans", GrantTarget::Project("risk".into()))
        .unwrap();
    assert_eq!(store.grants("loans").unwrap().len(), 3);
    // Deleting the dataset still removes its grants (the rebuilt table keeps the foreign key).
    store.delete_dataset("loans").unwrap();
    let left: i64 = node
        .raw_db()
        .query_row("SELECT COUNT(*) FROM dataset_grants", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}
