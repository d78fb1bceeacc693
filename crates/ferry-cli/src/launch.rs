//! The local launcher: runs a protocol as N real OS processes on loopback, over the real TLS
//! transport, with freshly generated identities — the counterpart of FATE's multiprocess
//! launcher, used by integration tests and benchmarks.
//!
//! `ferry launch <protocol> --parties bank:guest,telco:host` creates one node directory per
//! party under a work directory, pins every party's certificate at every other, starts one
//! `ferry run-party` process per party and collects their JSON outputs. When one party fails,
//! the others are given a short grace period and then stopped, so a failure never hangs.

use anyhow::{Context as _, bail};
use ferry_context::{PartyId, Role, Roster};
use ferry_transport::{FederationTransport, NodeDir, TransportConfig, session_context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Parses `bank:guest,telco:host,...`.
pub fn parse_roster(spec: &str) -> anyhow::Result<Roster> {
    let mut parties = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, role) = item
            .split_once(':')
            .with_context(|| format!("'{item}' is not name:role (e.g. bank:guest)"))?;
        let party = PartyId::new(name)?;
        let role: Role = role.parse().map_err(anyhow::Error::msg)?;
        parties.push((party, role));
    }
    if parties.len() < 2 {
        bail!("a federated run needs at least two parties (got '{spec}')");
    }
    Ok(Roster::new(parties)?)
}

pub fn format_roster(roster: &Roster) -> String {
    roster
        .parties()
        .map(|(p, r)| format!("{p}:{r}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What one party's process reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartyOutput {
    pub party: String,
    pub role: String,
    pub ok: bool,
    #[serde(default)]
    pub result: Value,
    #[serde(default)]
    pub error: Option<String>,
    pub wall_secs: f64,
    /// Peak resident set size of the party's process (VmHWM), in KiB.
    pub peak_rss_kib: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages_sent: u64,
    pub rounds: u64,
}

/// Peak RSS of this process in KiB (Linux), 0 elsewhere.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(ferry_transport::unused_loopback_port()?)
}

/// Creates node directories with fresh identities for every party and pins them mutually.
pub fn prepare_nodes(work_dir: &Path, roster: &Roster) -> anyhow::Result<Vec<(PartyId, PathBuf)>> {
    pinned_nodes(work_dir, roster.parties().map(|(p, _)| p))
}

/// Node directories `work_dir/<party>` with fresh identities and free loopback ports, each
/// pinned to every other.
pub fn pinned_nodes<'a>(
    work_dir: &Path,
    parties: impl IntoIterator<Item = &'a PartyId>,
) -> anyhow::Result<Vec<(PartyId, PathBuf)>> {
    let mut dirs: Vec<NodeDir> = Vec::new();
    for party in parties {
        let dir = work_dir.join(party.as_str());
        let fed = format!("127.0.0.1:{}", free_port()?);
        let api = format!("127.0.0.1:{}", free_port()?);
        dirs.push(NodeDir::init(&dir, party, &fed, &api)?);
    }
    let directory: Vec<(PartyId, String, PathBuf)> = dirs
        .iter()
        .map(|d| {
            (
                d.party(),
                d.config.federation_listen.clone(),
                d.root().join(&d.config.cert_file),
            )
        })
        .collect();
    for dir in dirs.iter_mut() {
        for (party, addr, cert) in &directory {
            if *party != dir.party() {
                dir.add_peer(party, addr, cert)?;
            }
        }
    }
    Ok(dirs
        .iter()
        .map(|d| (d.party(), d.root().to_path_buf()))
        .collect())
}

/// Options of one launch.
pub struct Launch {
    pub roster: Roster,
    pub protocol: String,
    pub params: Value,
    pub work_dir: PathBuf,
    pub timeout: Duration,
    /// The `ferry` binary to run (normally the current executable).
    pub binary: PathBuf,
}

/// Runs the protocol in one process per party and returns their outputs in roster order.
pub fn launch(spec: &Launch) -> anyhow::Result<Vec<PartyOutput>> {
    std::fs::create_dir_all(&spec.work_dir).with_context(|| {
        format!(
            "cannot create the work directory {}",
            spec.work_dir.display()
        )
    })?;
    let nodes = prepare_nodes(&spec.work_dir, &spec.roster)?;
    let params_file = spec.work_dir.join("params.json");
    std::fs::write(&params_file, serde_json::to_vec_pretty(&spec.params)?)?;
    let session = format!("launch-{}", std::process::id());
    let mut children: Vec<(PartyId, PathBuf, Child)> = Vec::new();
    for (party, dir) in &nodes {
        let log = std::fs::File::create(dir.join("party.log"))?;
        let child = Command::new(&spec.binary)
            .arg("run-party")
            .arg("--dir")
            .arg(dir)
            .args([
                "--session",
                &session,
                "--roster",
                &format_roster(&spec.roster),
                "--protocol",
                &spec.protocol,
            ])
            .arg("--params-file")
            .arg(&params_file)
            .arg("--timeout-secs")
            .arg(spec.timeout.as_secs().max(1).to_string())
            .arg("--output")
            .arg(dir.join("output.json"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", spec.binary.display()))?;
        children.push((party.clone(), dir.clone(), child));
    }
    let killed = wait_all(&mut children, spec.timeout + Duration::from_secs(30));
    let mut outputs = Vec::new();
    for (party, dir, _) in &children {
        let path = dir.join("output.json");
        let output = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid output", path.display()))?,
            Err(_) => {
                let log = std::fs::read_to_string(dir.join("party.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                PartyOutput {
                    party: party.to_string(),
                    role: spec
                        .roster
                        .role_of(party)
                        .map(|r| r.to_string())
                        .unwrap_or_default(),
                    ok: false,
                    result: Value::Null,
                    error: Some(format!(
                        "{}; last log lines: {}",
                        match killed.get(party) {
                            Some(Stop::AfterFailure) => {
                                "stopped by the launcher after another party failed"
                            }
                            Some(Stop::Deadline) => "stopped by the launcher at its deadline",
                            None => "the process ended without output (it crashed or was killed)",
                        },
                        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                    )),
                    wall_secs: 0.0,
                    peak_rss_kib: 0,
                    bytes_sent: 0,
                    bytes_received: 0,
                    messages_sent: 0,
                    rounds: 0,
                }
            }
        };
        outputs.push(output);
    }
    Ok(outputs)
}

/// Why the launcher stopped a party.
enum Stop {
    AfterFailure,
    Deadline,
}

/// Waits for every child; after the first failure the others get a grace period, then are
/// killed; nothing outlives `deadline`. Returns the parties it had to stop, and why.
fn wait_all(
    children: &mut [(PartyId, PathBuf, Child)],
    deadline: Duration,
) -> std::collections::HashMap<PartyId, Stop> {
    let start = Instant::now();
    let mut failed_at: Option<Instant> = None;
    let grace = Duration::from_secs(5);
    loop {
        let mut running = 0;
        for (_, _, child) in children.iter_mut() {
            match child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() && failed_at.is_none() {
                        failed_at = Some(Instant::now());
                    }
                }
                Ok(None) => running += 1,
                Err(_) => {}
            }
        }
        if running == 0 {
            return Default::default();
        }
        let after_failure = failed_at.is_some_and(|t| t.elapsed() > grace);
        if after_failure || start.elapsed() > deadline {
            let mut stopped = std::collections::HashMap::new();
            for (party, _, child) in children.iter_mut() {
                if matches!(child.try_wait(), Ok(None)) {
                    let why = if after_failure {
                        Stop::AfterFailure
                    } else {
                        Stop::Deadline
                    };
                    stopped.insert(party.clone(), why);
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            return stopped;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Arguments of `ferry run-party` (one party of a launch).
pub struct RunParty {
    pub dir: PathBuf,
    pub session: String,
    pub roster: Roster,
    pub protocol: String,
    pub params: Value,
    pub timeout: Duration,
    pub output: PathBuf,
}

/// Runs one party: start the node's transport, run the protocol, write the JSON output.
pub fn run_party(args: &RunParty) -> anyhow::Result<bool> {
    let start = Instant::now();
    let node = NodeDir::open(&args.dir)?;
    let transport = FederationTransport::start(TransportConfig::from_node_dir(&node)?)?;
    let ctx = session_context(&transport, args.roster.clone(), &args.session)
        .timeout(args.timeout)
        .build()?;
    let result = crate::protocols::run(&args.protocol, &ctx, &args.params).and_then(|v| {
        ctx.flush()?;
        Ok(v)
    });
    if result.is_err() {
        // Peers waiting for this party stop now instead of at their timeout.
        ctx.abort();
    }
    let counters = ctx.counters();
    let role = ctx.role();
    drop(ctx);
    // After a success, give the last messages time to be acknowledged; after a failure the
    // peers may be gone, and waiting for them only delays this party's report.
    transport.shutdown(if result.is_ok() {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(1)
    });
    let (ok, result, error) = match result {
        Ok(v) => (true, v, None),
        Err(e) => (false, Value::Null, Some(format!("{e:#}"))),
    };
    let output = PartyOutput {
        party: node.config.party.clone(),
        role: role.to_string(),
        ok,
        result,
        error,
        wall_secs: start.elapsed().as_secs_f64(),
        peak_rss_kib: peak_rss_kib(),
        bytes_sent: counters.bytes_sent(),
        bytes_received: counters.bytes_received(),
        messages_sent: counters.messages_sent(),
        rounds: counters.rounds,
    };
    std::fs::write(&args.output, serde_json::to_vec_pretty(&output)?)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    if let Some(e) = &output.error {
        eprintln!("party {} failed: {e}", output.party);
    }
    Ok(ok)
}
