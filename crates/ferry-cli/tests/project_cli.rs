//! `ferry project` against two served nodes: create and invite, the partner's to-do list and
//! its printed approve command, both nodes recording the member, a grant to the project, and
//! a declined invitation.

mod common;

use common::*;

#[test]
fn a_project_is_created_approved_through_the_printed_command_and_granted_to() {
    let tmp = tempfile::tempdir().unwrap();
    let (bank, telco) = two_nodes(tmp.path());
    let _b = serve(&bank);
    let _t = serve(&telco);
    wait_api(&bank);
    wait_api(&telco);

    let out = ok(ferry()
        .args([
            "project",
            "create",
            "risk",
            "--partner",
            "telco",
            "--description",
            "joint risk model",
            "--dir",
        ])
        .arg(&bank));
    assert!(out.contains("bank (joined), telco (invited)"), "{out}");
    let err = refused(
        ferry()
            .args(["project", "create", "x", "--partner", "insurer", "--dir"])
            .arg(&bank),
    );
    assert!(err.contains("'insurer' is not a pinned partner"), "{err}");

    // The partner's to-do list shows the invitation and how to decide it.
    let listing = wait_output(&telco, &["approvals"], "project risk");
    assert!(
        listing.contains("from 'bank'") && listing.contains("joint risk model"),
        "{listing}"
    );
    let line = listing
        .lines()
        .find(|l| l.contains("ferry project approve"))
        .unwrap();
    let printed = line
        .split("decide:")
        .nth(1)
        .unwrap()
        .split("   or   ")
        .next()
        .unwrap()
        .trim();
    let words: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(&words[..4], ["ferry", "project", "approve", "risk"]);
    let out = ok(ferry().args(&words[1..]));
    assert!(out.contains("joined project 'risk'"), "{out}");
    wait_output(&bank, &["project", "show", "risk"], "telco (joined)");
    assert!(ok(ferry().args(["approvals", "--dir"]).arg(&telco)).contains("nothing waits"));

    // A grant to the project, listed by the project.
    let host = tmp.path().join("h.csv");
    write_ids(&host, 0..20);
    ok(ferry()
        .args(["dataset", "add", "d", "--file"])
        .arg(&host)
        .arg("--dir")
        .arg(&telco));
    let out = ok(ferry()
        .args(["dataset", "grant", "d", "--project", "risk", "--dir"])
        .arg(&telco));
    assert!(out.contains("jobs of project 'risk'"), "{out}");
    let err = refused(
        ferry()
            .args([
                "dataset",
                "grant",
                "d",
                "--project",
                "risk",
                "--party",
                "bank",
                "--dir",
            ])
            .arg(&telco),
    );
    assert!(err.contains("exactly one of"), "{err}");
    let show = ok(ferry()
        .args(["project", "show", "risk", "--dir"])
        .arg(&telco));
    assert!(
        show.contains("created by") || show.contains("by bank"),
        "{show}"
    );
    assert!(show.contains("    d\n"), "{show}");
    let v = json_of(ok(ferry()
        .args(["project", "show", "risk", "--json", "--dir"])
        .arg(&telco)));
    assert_eq!(v["datasets"][0], "d");
    let list = ok(ferry().args(["project", "list", "--dir"]).arg(&bank));
    assert!(
        list.contains("risk") && list.contains("telco (joined)"),
        "{list}"
    );

    // A declined invitation.
    ok(ferry()
        .args(["project", "create", "ads", "--partner", "telco", "--dir"])
        .arg(&bank));
    wait_output(&telco, &["approvals"], "project ads");
    let out = ok(ferry()
        .args(["project", "decline", "ads", "--reason", "not now", "--dir"])
        .arg(&telco));
    assert!(out.contains("declined project 'ads'"), "{out}");
    wait_output(&bank, &["project", "show", "ads"], "telco (declined)");
}
