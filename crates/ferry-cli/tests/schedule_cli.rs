//! `ferry job schedule` and `ferry schedule` against two served nodes: a bad cron expression
//! refused naming its field, a schedule created with a name and a fixed offset, approved by
//! the partner (which approves automatically), listed on both nodes as a table and as JSON,
//! shown with every party's decision and its next fire times, paused, and deleted.

mod common;

use common::*;

#[test]
fn a_job_is_scheduled_approved_by_the_partner_listed_paused_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (bank, telco) = two_nodes(tmp.path());
    let _b = serve(&bank);
    let _t = serve(&telco);
    wait_api(&bank);
    wait_api(&telco);
    for (dir, ids, name) in [(&bank, 0..30, "b.csv"), (&telco, 10..40, "t.csv")] {
        let file = tmp.path().join(name);
        write_ids(&file, ids);
        ok(ferry()
            .args(["dataset", "add", "d", "--file"])
            .arg(&file)
            .arg("--dir")
            .arg(dir));
    }
    ok(ferry()
        .args(["dataset", "grant", "d", "--party", "bank", "--dir"])
        .arg(&telco));
    let spec = tmp.path().join("psi.yaml");
    std::fs::write(
        &spec,
        "name: daily-psi\nparties: {guest: bank, hosts: [telco]}\ntasks:\n  \
         - {name: read, component: reader, params: {dataset: d}}\n  \
         - {name: psi, component: psi, inputs: {data: read}}\n",
    )
    .unwrap();

    let err = refused(
        ferry()
            .args(["job", "schedule"])
            .arg(&spec)
            .args(["--cron", "0 25 * * *", "--dir"])
            .arg(&bank),
    );
    assert!(err.contains("hour field '25': 25 is outside 0-23"), "{err}");
    let err = refused(
        ferry()
            .args(["job", "schedule"])
            .arg(&spec)
            .args(["--cron", "0 2 * * *", "--timezone", "Europe/Paris", "--dir"])
            .arg(&bank),
    );
    assert!(err.contains("fixed offset"), "{err}");

    let out = ok(ferry()
        .args(["job", "schedule"])
        .arg(&spec)
        .args([
            "--cron",
            "0 2 * * *",
            "--name",
            "nightly",
            "--timezone",
            "+08:00",
            "--dir",
        ])
        .arg(&bank));
    assert!(
        out.contains("created schedule sched-")
            && out.contains("'nightly': cron '0 2 * * *' (UTC+08:00), pending_approval"),
        "{out}"
    );
    let id = out
        .split_whitespace()
        .find(|w| w.starts_with("sched-"))
        .unwrap()
        .to_string();

    // telco approves automatically; the schedule is active on bank.
    let list = wait_output(&bank, &["schedule", "list"], "active");
    assert!(
        list.contains(&id) && list.contains("nightly") && list.contains("0 2 * * * (UTC+08:00)"),
        "{list}"
    );
    let v = json_of(ok(ferry()
        .args(["schedule", "list", "--json", "--dir"])
        .arg(&bank)));
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["id"], id.as_str());
    assert_eq!(v[0]["status"], "active");
    // 02:00 at UTC+08:00 is 18:00 UTC.
    assert!(
        v[0]["next_run"]
            .as_str()
            .unwrap()
            .ends_with("T18:00:00.000Z"),
        "{v}"
    );
    let show = ok(ferry().args(["schedule", "show", &id, "--dir"]).arg(&bank));
    assert!(
        show.contains("bank (approved), telco (approved)")
            && show.contains("next runs")
            && show.contains("this node is the guest")
            && show.contains("runs:       none yet"),
        "{show}"
    );
    let on_telco = ok(ferry().args(["schedule", "list", "--dir"]).arg(&telco));
    assert!(
        on_telco.contains(&id) && on_telco.contains("bank"),
        "{on_telco}"
    );

    // Only the guest pauses; the partner is told.
    let err = refused(
        ferry()
            .args(["schedule", "pause", &id, "--dir"])
            .arg(&telco),
    );
    assert!(err.contains("belongs to 'bank'"), "{err}");
    let out = ok(ferry().args(["schedule", "pause", &id, "--dir"]).arg(&bank));
    assert!(out.contains(&format!("paused schedule {id}")), "{out}");
    wait_output(&telco, &["schedule", "show", &id], "status      paused");

    let out = ok(ferry()
        .args(["schedule", "delete", &id, "--dir"])
        .arg(&bank));
    assert!(out.contains("deleted schedule"), "{out}");
    assert!(ok(ferry().args(["schedule", "list", "--dir"]).arg(&bank)).contains("no schedules"));
    let all = ok(ferry()
        .args(["schedule", "list", "--deleted", "--dir"])
        .arg(&bank));
    assert!(all.contains(&id) && all.contains("deleted"), "{all}");
}
