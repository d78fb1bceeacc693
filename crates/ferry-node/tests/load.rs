//! Load: fifty small jobs submitted at once across three nodes all complete, on every node,
//! with every party's final status recorded (issue 18's "50 concurrent small jobs"). Sizes
//! are small; the throughput and memory figures belong to `ferry bench load`.

mod common;

use common::Cluster;
use ferry_store::{GrantTarget, JobStatus};
use std::time::Duration;

const TWO: &str = r#"
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}
  - {name: intersect, component: psi, inputs: {data: read}}
"#;

const THREE: &str = r#"
parties: {guest: bank, hosts: [telco, insurer]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}, insurer: {dataset: mydata}}}
  - {name: intersect, component: psi, inputs: {data: read}}
"#;

#[test]
fn fifty_small_jobs_at_once_across_three_nodes_all_complete_everywhere() {
    let c = Cluster::pinned(
        &["bank", "telco", "insurer"],
        true,
        Some(&common::test_policy()),
    );
    c.register_parts(
        "mydata",
        &common::vertical_parts(120, &[2, 2, 2], 0.9, 5),
        ferry_store::LabelKind::Binary,
    );
    for host in &c.nodes[1..] {
        host.store()
            .grant("mydata", GrantTarget::Party("bank".into()))
            .unwrap();
    }
    let bank = &c.nodes[0];
    let jobs: Vec<(String, usize)> = (0..50)
        .map(|i| {
            let (spec, parties) = if i % 2 == 0 { (TWO, 2) } else { (THREE, 3) };
            (bank.submit(spec).unwrap(), parties)
        })
        .collect();
    for (job, parties) in &jobs {
        let row = common::wait_done(bank, job, Duration::from_secs(300));
        assert_eq!(row.status, JobStatus::Succeeded, "{job}: {:?}", row.reason);
        for node in &c.nodes[..*parties] {
            let row = common::wait_done(node, job, Duration::from_secs(60));
            assert_eq!(
                row.status,
                JobStatus::Succeeded,
                "{job} on {}: {:?}",
                node.party(),
                row.reason
            );
        }
        common::wait_for(
            "every party's final status",
            Duration::from_secs(30),
            || {
                let statuses = bank.store().party_statuses(job).ok()?;
                (statuses.len() == *parties
                    && statuses.iter().all(|(_, s, _)| *s == JobStatus::Succeeded))
                .then_some(())
            },
        );
    }
}
