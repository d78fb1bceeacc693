//! Helpers shared by the CLI's integration tests: running the `ferry` binary, serving a node
//! directory, waiting for its API, and two nodes pinned to each other.
#![allow(dead_code)]

pub mod browser;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `ferry` binary under test.
pub fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("ferry runs")
}

pub fn ok(cmd: &mut Command) -> String {
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

pub fn refused(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(!out.status.success(), "{cmd:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub struct Served(pub Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn serve(dir: &Path) -> Served {
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

/// Waits until the node's API answers.
pub fn wait_api(dir: &Path) {
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

/// `ferry init` of node `party` in `root/party` on free loopback ports; `auto_approve` runs
/// partners' jobs without a person.
pub fn init_node(root: &Path, party: &str, auto_approve: bool) -> PathBuf {
    let extra: &[&str] = if auto_approve {
        &["--auto-approve"]
    } else {
        &[]
    };
    init_node_with(root, party, extra).0
}

/// `ferry init` of node `party` in `root/party` on free loopback ports with `extra`
/// arguments (`--auto-approve`, `--suite gm`, ...); the directory and what init printed.
pub fn init_node_with(root: &Path, party: &str, extra: &[&str]) -> (PathBuf, String) {
    let dir = root.join(party);
    let out = ok(ferry()
        .args(["init", "--party", party, "--dir"])
        .arg(&dir)
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--api",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args(extra));
    (dir, out)
}

/// Pins `peer`'s certificate and address in `me` as partner `name` (`ferry peer add`).
pub fn pin(me: &Path, peer: &Path, name: &str) {
    ok(ferry()
        .args(["peer", "add", name, "--addr", &fed_addr(peer), "--cert"])
        .arg(peer.join("identity/cert.pem"))
        .arg("--dir")
        .arg(me));
}

/// The federation address a node directory's ferry.toml listens on.
pub fn fed_addr(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("ferry.toml")).unwrap();
    text.lines()
        .find(|l| l.starts_with("federation_listen"))
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_string()
}

/// `bank` and `telco` initialised and pinned to each other; telco approves jobs itself.
pub fn two_nodes(root: &Path) -> (PathBuf, PathBuf) {
    let bank = init_node(root, "bank", false);
    let telco = init_node(root, "telco", true);
    pin(&bank, &telco, "telco");
    pin(&telco, &bank, "bank");
    (bank, telco)
}

/// Runs `ferry ARGS --dir DIR` until its output contains `want` (at most 30 s).
pub fn wait_output(dir: &Path, args: &[&str], want: &str) -> String {
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

pub fn write_ids(path: &Path, ids: impl Iterator<Item = usize>) {
    let mut text = String::from("id,x\n");
    for i in ids {
        text += &format!("u{i},{}\n", i % 10);
    }
    std::fs::write(path, text).unwrap();
}

pub fn free_port() -> u16 {
    ferry_transport::unused_loopback_port().unwrap()
}

pub fn json_of(out: String) -> Value {
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}
