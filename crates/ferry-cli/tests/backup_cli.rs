//! `ferry backup` of a running node and `ferry restore` into a new directory: the restored
//! node starts with its identity (key 0600), partners, users, datasets and action log; a
//! changed backup is refused before anything is written; nothing is ever overwritten.

mod common;

use common::*;

#[test]
fn a_running_node_is_backed_up_and_restored_into_a_node_that_starts_with_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let (bank, _telco) = two_nodes(tmp.path());
    let node = serve(&bank);
    wait_api(&bank);
    let data = tmp.path().join("ids.csv");
    write_ids(&data, 0..50);
    ok(ferry()
        .args(["dataset", "add", "customers", "--id", "id", "--file"])
        .arg(&data)
        .arg("--dir")
        .arg(&bank));

    // Backed up while the node runs.
    let backup = tmp.path().join("backup");
    let out = ok(ferry()
        .args(["backup", "--out"])
        .arg(&backup)
        .arg("--dir")
        .arg(&bank));
    assert!(out.contains("backed up node 'bank'"), "{out}");
    let manifest = json_of(std::fs::read_to_string(backup.join("ferry-backup.json")).unwrap());
    let paths: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for want in [
        "ferry.toml",
        "identity/key.pem",
        "peers/telco.pem",
        "state/ferry.db",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    // Never into an existing directory, never inside the node.
    let again = refused(
        ferry()
            .args(["backup", "--out"])
            .arg(&backup)
            .arg("--dir")
            .arg(&bank),
    );
    assert!(again.contains("exists already"), "{again}");
    drop(node);

    // A changed file in the backup: refused, naming it, and nothing written.
    let damaged = tmp.path().join("damaged");
    copy_dir(&backup, &damaged);
    std::fs::write(
        damaged.join("peers/telco.pem"),
        "not the pinned certificate",
    )
    .unwrap();
    let target = tmp.path().join("restored-bad");
    let err = refused(
        ferry()
            .args(["restore", "--from"])
            .arg(&damaged)
            .arg("--dir")
            .arg(&target),
    );
    assert!(
        err.contains("telco.pem") && err.contains("does not match the manifest"),
        "{err}"
    );
    assert!(!target.exists(), "a refused restore wrote something");

    // Restored into a new directory: it starts, with the key private and everything there.
    let restored = tmp.path().join("restored");
    let out = ok(ferry()
        .args(["restore", "--from"])
        .arg(&backup)
        .arg("--dir")
        .arg(&restored));
    assert!(out.contains("ferry serve --dir"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(restored.join("identity/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let original_fp = ok(ferry().args(["identity", "show", "--dir"]).arg(&bank));
    let restored_fp = ok(ferry().args(["identity", "show", "--dir"]).arg(&restored));
    assert_eq!(original_fp.split('(').nth(1), restored_fp.split('(').nth(1));
    // Into a non-empty directory: refused.
    let err = refused(
        ferry()
            .args(["restore", "--from"])
            .arg(&backup)
            .arg("--dir")
            .arg(&restored),
    );
    assert!(err.contains("not empty"), "{err}");

    let _restored_node = serve(&restored);
    wait_api(&restored);
    let shown = ok(ferry()
        .args(["dataset", "show", "customers", "--dir"])
        .arg(&restored));
    assert!(shown.contains("50 rows"), "{shown}");
    let partners = ok(ferry().args(["peer", "list", "--dir"]).arg(&restored));
    assert!(partners.contains("telco"), "{partners}");
    // The action log came along, its chain intact, with the backup and the restore in it.
    let verified = ok(ferry().args(["audit", "verify", "--dir"]).arg(&restored));
    assert!(verified.contains("OK:"), "{verified}");
    let exported = tmp.path().join("log.jsonl");
    ok(ferry()
        .args(["audit", "export", "--out"])
        .arg(&exported)
        .arg("--dir")
        .arg(&restored));
    let log = std::fs::read_to_string(&exported).unwrap();
    assert!(log.contains("node.restore"), "{log}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}
