//! `ferry peer` against running nodes: two strangers pin each other without a restart and a
//! project invitation crosses at once; the telco rotates its key (prepare, the bank pins the
//! new certificate with an overlap, activate, restart) and invitations still cross;
//! a removal cuts the partner off; with the node stopped the same commands edit ferry.toml.

mod common;

use common::*;

#[test]
fn partners_are_added_rotated_and_removed_on_running_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let (bank, telco) = (
        init_node(tmp.path(), "bank", false),
        init_node(tmp.path(), "telco", false),
    );
    let bank_node = serve(&bank);
    let telco_node = serve(&telco);
    wait_api(&bank);
    wait_api(&telco);

    // Pinned while both run: no "takes effect when ferry serve starts" note.
    for (me, other, name) in [(&bank, &telco, "telco"), (&telco, &bank, "bank")] {
        let out = ok(ferry()
            .args(["peer", "add", name, "--addr", &fed_addr(other), "--cert"])
            .arg(other.join("identity/cert.pem"))
            .arg("--dir")
            .arg(me));
        assert!(out.contains(&format!("pinned '{name}'")), "{out}");
        assert!(!out.contains("not running"), "{out}");
    }
    // The partnership works at once: an invitation reaches the telco's to-do list.
    ok(ferry()
        .args(["project", "create", "joint", "--partner", "telco", "--dir"])
        .arg(&bank));
    wait_output(&telco, &["approvals"], "joint");

    // The telco rotates its own key: it prepares a new one, the bank pins it with an
    // overlap, the telco activates it (stopped) and comes back with it.
    let out = ok(ferry().args(["identity", "rotate", "--dir"]).arg(&telco));
    assert!(out.contains("ferry peer rotate telco"), "{out}");
    let out = ok(ferry()
        .args(["peer", "rotate", "telco", "--overlap-hours", "2", "--cert"])
        .arg(telco.join("identity/next-cert.pem"))
        .arg("--dir")
        .arg(&bank));
    assert!(out.contains("previous certificate"), "{out}");
    let list = ok(ferry().args(["peer", "list", "--dir"]).arg(&bank));
    assert!(
        list.contains("telco") && list.contains("accepted until"),
        "{list}"
    );
    let listed = json_of(ok(ferry()
        .args(["peer", "list", "--json", "--dir"])
        .arg(&bank)));
    assert!(listed[0]["previous_fingerprint"].is_string(), "{listed}");
    let err = refused(ferry().args(["identity", "activate", "--dir"]).arg(&telco));
    assert!(err.contains("stop it first"), "{err}");
    drop(telco_node);
    let out = ok(ferry().args(["identity", "activate", "--dir"]).arg(&telco));
    assert!(out.contains("now uses the new key"), "{out}");
    let shown = ok(ferry().args(["identity", "show", "--dir"]).arg(&telco));
    assert!(
        shown.contains(listed[0]["fingerprint"].as_str().unwrap()),
        "the telco's active key is the one the bank pinned: {shown} {listed}"
    );
    let telco_node = serve(&telco);
    wait_api(&telco);
    // The telco, under its new key, and the bank still talk: a second invitation arrives.
    ok(ferry()
        .args(["project", "create", "joint2", "--partner", "telco", "--dir"])
        .arg(&bank));
    wait_output(&telco, &["approvals"], "joint2");

    // Removed: gone from the list, and its files kept under peers/removed/.
    let out = ok(ferry()
        .args([
            "peer",
            "remove",
            "telco",
            "--reason",
            "contract ended",
            "--dir",
        ])
        .arg(&bank));
    assert!(out.contains("removed partner 'telco'"), "{out}");
    let list = ok(ferry().args(["peer", "list", "--dir"]).arg(&bank));
    assert!(list.contains("no partners"), "{list}");
    assert!(bank.join("peers/removed").read_dir().unwrap().count() >= 1);
    let err = refused(
        ferry()
            .args(["peer", "remove", "telco", "--dir"])
            .arg(&bank),
    );
    assert!(err.contains("not a partner"), "{err}");

    // With the node stopped the command edits ferry.toml and says when it takes effect.
    drop(bank_node);
    let out = ok(ferry()
        .args([
            "peer",
            "add",
            "telco",
            "--addr",
            &fed_addr(&telco),
            "--cert",
        ])
        .arg(telco.join("identity/cert.pem"))
        .arg("--dir")
        .arg(&bank));
    assert!(out.contains("not running"), "{out}");
    let list = ok(ferry().args(["peer", "list", "--dir"]).arg(&bank));
    assert!(list.contains("telco"), "{list}");
    drop(telco_node);
}
