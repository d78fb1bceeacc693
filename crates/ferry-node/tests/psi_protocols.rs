//! The `psi` component with each protocol, between two nodes over TLS: KKRT16 (the default
//! for two parties) and ECDH-PSI find the same rows, and the receivers of one run write them
//! in the same order.

mod common;

use common::{Cluster, register_data, test_policy, wait_done};
use ferry_node::Node;
use ferry_store::GrantTarget;
use std::path::Path;
use std::time::Duration;

fn job(psi_params: &str) -> String {
    format!(
        r#"
parties: {{guest: bank, hosts: [telco]}}
timeout_secs: 60
tasks:
  - {{name: read, component: reader, party_params: {{bank: {{dataset: mydata}}, telco: {{dataset: mydata}}}}}}
  - {{name: intersect, component: psi, inputs: {{data: read}}, params: {psi_params}}}
"#
    )
}

/// The first column (the id) of every data row of a party's PSI output, in file order.
fn output_ids(node: &Node, job: &str) -> Vec<String> {
    let rec = node.store().dataset(&format!("{job}-intersect")).unwrap();
    csv_ids(&rec.path)
}

fn csv_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect()
}

fn run(c: &Cluster, psi_params: &str) -> String {
    let id = c.nodes[0].submit(&job(psi_params)).unwrap();
    for node in &c.nodes {
        let row = wait_done(node, &id, Duration::from_secs(120));
        assert_eq!(
            row.status.as_str(),
            "succeeded",
            "{psi_params} at {}: {:?}",
            node.party(),
            row.reason
        );
    }
    id
}

/// The protocol named in a node's PSI report (logged by the component).
fn protocol_in_report(node: &Node, job: &str) -> String {
    let logs = node.store().logs(job, Some("intersect")).unwrap();
    let report = logs
        .iter()
        .find(|l| l.line.contains("PSI report"))
        .expect("the component logs its report");
    for p in ["kkrt-psi-2p", "ecdh-psi-2p"] {
        if report.line.contains(p) {
            return p.to_string();
        }
    }
    panic!("no protocol in {}", report.line);
}

#[test]
fn kkrt_and_ecdh_jobs_align_the_same_rows_and_kkrt_is_the_two_party_default() {
    let c = Cluster::pinned(&["bank", "telco"], true, Some(&test_policy()));
    register_data(&c, 500);
    c.nodes[1]
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();

    let kkrt = run(&c, "{protocol: kkrt}");
    let ecdh = run(&c, "{protocol: ecdh}");
    let default = run(&c, "{}");
    assert_eq!(protocol_in_report(&c.nodes[0], &kkrt), "kkrt-psi-2p");
    assert_eq!(protocol_in_report(&c.nodes[1], &ecdh), "ecdh-psi-2p");
    assert_eq!(protocol_in_report(&c.nodes[0], &default), "kkrt-psi-2p");
    assert_eq!(protocol_in_report(&c.nodes[1], &default), "kkrt-psi-2p");

    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    for j in [&kkrt, &default] {
        let bank = output_ids(&c.nodes[0], j);
        let telco = output_ids(&c.nodes[1], j);
        assert!(bank.len() > 300, "most of the 500 ids are common");
        assert_eq!(bank, telco, "row i is the same id at both parties");
        assert_eq!(sorted(bank), sorted(output_ids(&c.nodes[0], &ecdh)));
    }

    // Result to one party: the other writes nothing.
    let one = run(&c, "{protocol: kkrt, receivers: bank}");
    assert_eq!(
        sorted(output_ids(&c.nodes[0], &one)),
        sorted(output_ids(&c.nodes[0], &ecdh))
    );
    assert!(
        c.nodes[1]
            .store()
            .dataset(&format!("{one}-intersect"))
            .is_err(),
        "the telco does not receive the result"
    );

    // A cached key needs ECDH; naming KKRT with it is refused at submission.
    let e = c.nodes[0]
        .submit(&job("{protocol: kkrt, cached_key: true}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("'cached_key' needs protocol 'ecdh'"), "{e}");
    let e = c.nodes[0]
        .submit(&job("{protocol: rr22}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown PSI protocol 'rr22'"), "{e}");
}
