//! `ferry demo --serve`: after the demo's job the nodes keep running with a console user each,
//! the printed addresses and sign-ins work, every printed command works as printed, and
//! SIGTERM stops the nodes.

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One node's line of the console section: party, address, user, password.
struct Console {
    party: String,
    url: String,
    user: String,
    password: String,
}

fn parse_console(line: &str) -> Option<Console> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [party, url, "user", user, "password", password] if url.starts_with("http://") => {
            Some(Console {
                party: party.to_string(),
                url: url.to_string(),
                user: user.to_string(),
                password: password.to_string(),
            })
        }
        _ => None,
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// Status and JSON body of `POST {url}api/v1/session`.
fn sign_in(url: &str, name: &str, password: &str) -> (u16, Value, Option<String>) {
    let mut resp = agent()
        .post(&format!("{url}api/v1/session"))
        .header("Content-Type", "application/json")
        .send(
            json!({"name": name, "password": password})
                .to_string()
                .as_str(),
        )
        .expect("the console's API answers");
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        resp.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        cookie,
    )
}

/// The demo process; SIGTERM when a failed assertion drops it, so that it stops its nodes
/// rather than leaving them running as SIGKILL would.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn demo_serve_keeps_the_nodes_up_with_console_sign_ins_until_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let demo = ferry()
        .args([
            "demo", "--serve", "--rows", "600", "--scheme", "ou", "--dir",
        ])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let demo_pid = demo.id();
    let mut guard = Demo(demo);
    let stdout = guard.0.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let start = Instant::now();
    while !printed
        .iter()
        .any(|l: &String| l.contains("Ctrl-C stops them"))
    {
        let left = Duration::from_secs(240).saturating_sub(start.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(e) => panic!(
                "the demo never said its nodes keep running ({e}); it printed:\n{}",
                printed.join("\n")
            ),
        }
    }
    let all = printed.join("\n");
    let consoles: Vec<Console> = printed.iter().filter_map(|l| parse_console(l)).collect();
    let parties: Vec<&str> = consoles.iter().map(|c| c.party.as_str()).collect();
    assert_eq!(parties, ["bank", "telco", "insurer"], "{all}");

    for c in &consoles {
        // The console's page is served at the printed address.
        let mut page = agent().get(&c.url).call().expect("the console answers");
        assert_eq!(page.status().as_u16(), 200, "{}", c.url);
        let html = page.body_mut().read_to_string().unwrap();
        assert!(
            html.contains("<script"),
            "{}: not the console: {html}",
            c.url
        );
        // A wrong password is refused; the printed one signs in, with every role.
        let (status, _, _) = sign_in(&c.url, &c.user, "not-the-printed-password");
        assert_eq!(status, 401, "{}: a wrong password was not refused", c.party);
        let (status, body, cookie) = sign_in(&c.url, &c.user, &c.password);
        assert_eq!(status, 200, "{}: {body}", c.party);
        assert!(body["csrf_token"].is_string(), "{}: {body}", c.party);
        let cookie = cookie.expect("a session cookie");
        let session = cookie.split(';').next().unwrap().to_string();
        let mut me = agent()
            .get(&format!("{}api/v1/session", c.url))
            .header("Cookie", &session)
            .call()
            .unwrap();
        let me: Value = serde_json::from_str(&me.body_mut().read_to_string().unwrap()).unwrap();
        for permission in ["manage_data", "run_jobs", "approve", "read_audit"] {
            assert!(
                me["permissions"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p == permission)),
                "{}: the demo user cannot {permission}: {me}",
                c.party
            );
        }
    }

    // Every `ferry ...` command the demo printed works as printed, on the running nodes.
    let commands: Vec<&str> = printed
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("ferry "))
        .collect();
    assert!(commands.len() >= 5, "{all}");
    for command in commands {
        // What follows a run of spaces and "(" is the demo's comment on the command.
        let command = command.split("  (").next().unwrap().trim();
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let out = run(ferry().args(&args));
        assert!(
            out.status.success(),
            "`{command}` failed while the demo serves: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // SIGTERM stops the demo, which stops its nodes.
    let killed = Command::new("kill")
        .args(["-TERM", &demo_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the demo did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "the demo ended with {status}");
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("stopping the nodes")),
        "{rest:?}"
    );
    for c in &consoles {
        assert!(
            agent().get(&c.url).call().is_err(),
            "{}'s node still answers at {} after the demo stopped",
            c.party,
            c.url
        );
        let log = std::fs::read_to_string(dir.join("nodes").join(&c.party).join("node.log"))
            .unwrap_or_default();
        assert!(
            log.contains("stopping"),
            "{} did not shut down cleanly: {log}",
            c.party
        );
    }
}
