//! `ferry job watch ID` follows a job through the node's event stream until it succeeds.

mod common;

use common::*;

#[test]
fn job_watch_follows_a_psi_job_to_succeeded() {
    let tmp = tempfile::tempdir().unwrap();
    let (bank, telco) = two_nodes(tmp.path());
    let _b = serve(&bank);
    let _t = serve(&telco);
    wait_api(&bank);
    wait_api(&telco);
    for (dir, name) in [(&bank, "g.csv"), (&telco, "h.csv")] {
        let file = tmp.path().join(name);
        write_ids(&file, 0..30);
        ok(ferry()
            .args(["dataset", "add", "d", "--file"])
            .arg(&file)
            .arg("--dir")
            .arg(dir));
    }
    ok(ferry()
        .args(["dataset", "grant", "d", "--party", "bank", "--dir"])
        .arg(&telco));
    let spec = tmp.path().join("job.yaml");
    std::fs::write(
        &spec,
        "parties: {guest: bank, hosts: [telco]}\ntasks:\n  \
         - {name: read, component: reader, party_params: {bank: {dataset: d}, telco: {dataset: d}}}\n  \
         - {name: intersect, component: psi, inputs: {data: read}}\n",
    )
    .unwrap();
    let submitted = json_of(ok(ferry()
        .args(["job", "submit", "--json"])
        .arg(&spec)
        .arg("--dir")
        .arg(&bank)));
    let job = submitted["job_id"].as_str().unwrap().to_string();

    let out = ok(ferry().args(["job", "watch", &job, "--dir"]).arg(&bank));
    let last = out.lines().last().unwrap_or_default();
    assert!(last.contains("succeeded"), "{out}");
    assert!(
        last.contains("read succeeded 100%") && last.contains("intersect succeeded 100%"),
        "{out}"
    );
    assert!(last.contains("bank") && last.contains("telco"), "{out}");

    // --json: one JobEvent per line, the last one succeeded.
    let out = ok(ferry()
        .args(["job", "watch", &job, "--json", "--dir"])
        .arg(&bank));
    let last: ferry_api::events::JobEvent =
        serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last.status, ferry_api::JobStatus::Succeeded);
    assert_eq!(last.id, job);

    // An unknown job is refused naming it.
    let err = refused(
        ferry()
            .args(["job", "watch", "job-nope", "--dir"])
            .arg(&bank),
    );
    assert!(err.contains("job-nope"), "{err}");
}
