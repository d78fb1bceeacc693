//! `ferry project` against two served nodes: create and invite, the partner's to-do list and
//! its printed approve command, both nodes recording the member, a grant to the project, and
//! a declined invitation.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("ferry runs")
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "command failed: {:?}\nstdout: {}\nstderr: {}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(!out.status.success(), "{cmd:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> Served {
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    Served(
        ferry()
            .arg("serve")
            .arg("--dir")
            .arg(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait_api(dir: &Path) {
    let start = Instant::now();
    while !run(ferry().args(["dataset", "list", "--dir"]).arg(dir))
        .status
        .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "node at {} did not start",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `bank` and `telco` initialised and pinned to each other; telco approves jobs itself.
fn two_nodes(root: &Path) -> (PathBuf, PathBuf) {
    let port = || ferry_transport::unused_loopback_port().unwrap();
    let bank = root.join("bank");
    let telco = root.join("telco");
    for (party, dir) in [("bank", &bank), ("telco", &telco)] {
        let mut cmd = ferry();
        cmd.args(["init", "--party", party, "--dir"])
            .arg(dir)
            .args([
                "--listen",
                &format!("127.0.0.1:{}", port()),
                "--api",
                &format!("127.0.0.1:{}", port()),
            ]);
        if party == "telco" {
            cmd.arg("--auto-approve");
        }
        ok(&mut cmd);
    }
    let addr = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("ferry.toml")).unwrap();
        text.lines()
            .find(|l| l.starts_with("federation_listen"))
            .unwrap()
            .split('"')
            .nth(1)
            .unwrap()
            .to_string()
    };
    for (me, peer, name) in [(&bank, &telco, "telco"), (&telco, &bank, "bank")] {
        ok(ferry()
            .args(["peer", "add", name, "--addr", &addr(peer), "--cert"])
            .arg(peer.join("identity/cert.pem"))
            .arg("--dir")
            .arg(me));
    }
    (bank, telco)
}

fn write_ids(path: &Path, ids: impl Iterator<Item = usize>) {
    let mut text = String::from("id,x\n");
    for i in ids {
        text += &format!("u{i},{}\n", i % 10);
    }
    std::fs::write(path, text).unwrap();
}

/// Runs `ferry ARGS --dir DIR` until its output contains `want`.
fn wait_output(dir: &Path, args: &[&str], want: &str) -> String {
    let start = Instant::now();
    loop {
        let out = ok(ferry().args(args).arg("--dir").arg(dir));
        if out.contains(want) {
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{args:?} never showed {want}: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

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

fn json_of(out: String) -> Value {
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}
