//! `ferry bench transport`: round-trip latency and throughput between two processes on
//! loopback over Ferry's TLS transport, beside raw TCP between two processes in the same run.

use super::machine::Machine;
use crate::launch::{Launch, launch, parse_roster};
use anyhow::{Context as _, bail};
use clap::Args;
use serde::Serialize;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct TransportBenchArgs {
    /// Round trips for the latency figure.
    #[arg(long, default_value_t = 2000)]
    rounds: u32,
    /// Payload sizes for throughput, in MB.
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    sizes_mb: Vec<u64>,
    /// Repetitions per throughput size (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    #[arg(long)]
    json: bool,
    /// Where node directories and logs go (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

#[derive(Serialize)]
struct Row {
    measure: String,
    ferry_tls: f64,
    raw_tcp: f64,
    unit: &'static str,
}

pub fn run(args: TransportBenchArgs) -> anyhow::Result<()> {
    let machine = Machine::detect();
    let exe = std::env::current_exe()?;
    let tmp = tempfile::tempdir()?;
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let roster = parse_roster("bank:guest,telco:host")?;
    let log = |m: &str| {
        if !args.json {
            eprintln!("{m}");
        }
    };

    let tcp = TcpPeer::spawn(&exe)?;
    let mut rows = Vec::new();

    log(&format!("latency: {} round trips of 1 KB...", args.rounds));
    let outputs = launch(&Launch {
        roster: roster.clone(),
        protocol: "ping-pong".into(),
        params: json!({"rounds": args.rounds, "bytes": 1024}),
        work_dir: work.join("latency"),
        timeout: Duration::from_secs(300),
        binary: exe.clone(),
    })?;
    let tls_rtt = outputs[0]
        .result
        .get("mean_round_trip_us")
        .and_then(|v| v.as_f64())
        .with_context(|| {
            format!(
                "ping-pong failed: {:?}",
                outputs.iter().map(|o| &o.error).collect::<Vec<_>>()
            )
        })?;
    let tcp_rtt = tcp.ping(args.rounds, 1024)?;
    rows.push(Row {
        measure: "round trip, 1 KB".into(),
        ferry_tls: tls_rtt,
        raw_tcp: tcp_rtt,
        unit: "µs",
    });

    for &mb in &args.sizes_mb {
        log(&format!("throughput: {mb} MB x {}...", args.repeat));
        let bytes = mb * 1_000_000;
        let outputs = launch(&Launch {
            roster: roster.clone(),
            protocol: "throughput".into(),
            params: json!({"bytes": bytes, "repeat": args.repeat}),
            work_dir: work.join(format!("throughput-{mb}")),
            timeout: Duration::from_secs(600),
            binary: exe.clone(),
        })?;
        let tls = outputs[0]
            .result
            .get("median_mb_per_s")
            .and_then(|v| v.as_f64())
            .with_context(|| {
                format!(
                    "throughput run failed: {:?}",
                    outputs.iter().map(|o| &o.error).collect::<Vec<_>>()
                )
            })?;
        let raw = tcp.throughput(bytes as usize, args.repeat)?;
        rows.push(Row {
            measure: format!("throughput, {mb} MB message"),
            ferry_tls: tls,
            raw_tcp: raw,
            unit: "MB/s",
        });
    }
    drop(tcp);

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"machine": machine, "rows": rows}))?
        );
    } else {
        println!(
            "ferry bench transport — two processes on loopback (Ferry: gRPC over mutual TLS 1.3; baseline: plain TCP, measured in this run)"
        );
        println!("{}", machine.render());
        println!();
        println!(
            "{:<30} {:>14} {:>14} {:>8}",
            "measure", "Ferry TLS", "raw TCP", "ratio"
        );
        for r in &rows {
            let ratio = if r.unit == "µs" {
                r.ferry_tls / r.raw_tcp
            } else {
                r.raw_tcp / r.ferry_tls
            };
            println!(
                "{:<30} {:>10.1} {:<3} {:>10.1} {:<3} {:>7.2}x",
                r.measure, r.ferry_tls, r.unit, r.raw_tcp, r.unit, ratio
            );
        }
        println!();
        println!(
            "ratio: how many times slower Ferry is than raw TCP (latency: time ratio; throughput: rate ratio)"
        );
    }
    Ok(())
}

/// A child `ferry tcp-peer` process serving the raw TCP baseline.
struct TcpPeer {
    child: std::process::Child,
    addr: String,
}

impl TcpPeer {
    fn spawn(exe: &PathBuf) -> anyhow::Result<TcpPeer> {
        let mut child = Command::new(exe)
            .arg("tcp-peer")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("no stdout from tcp-peer")?;
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        let addr = line.trim().to_string();
        if addr.is_empty() {
            bail!("tcp-peer did not report its address");
        }
        Ok(TcpPeer { child, addr })
    }

    fn connect(&self) -> anyhow::Result<TcpStream> {
        let s = TcpStream::connect(&self.addr)?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// Mean round trip in µs of `rounds` echoes of `bytes`.
    fn ping(&self, rounds: u32, bytes: usize) -> anyhow::Result<f64> {
        let mut s = self.connect()?;
        let payload = vec![1u8; bytes];
        let mut back = vec![0u8; bytes];
        let start = Instant::now();
        for _ in 0..rounds {
            s.write_all(b"P")?;
            s.write_all(&(bytes as u64).to_le_bytes())?;
            s.write_all(&payload)?;
            s.read_exact(&mut back)?;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / rounds as f64)
    }

    /// Median MB/s of sending `bytes` and getting a confirmation.
    fn throughput(&self, bytes: usize, repeat: u32) -> anyhow::Result<f64> {
        let mut s = self.connect()?;
        let payload = vec![0x5au8; bytes];
        let mut rates = Vec::new();
        for _ in 0..repeat {
            let start = Instant::now();
            s.write_all(b"T")?;
            s.write_all(&(bytes as u64).to_le_bytes())?;
            s.write_all(&payload)?;
            let mut ack = [0u8; 8];
            s.read_exact(&mut ack)?;
            anyhow::ensure!(
                u64::from_le_bytes(ack) == bytes as u64,
                "tcp-peer confirmed the wrong size"
            );
            rates.push(bytes as f64 / 1e6 / start.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        Ok(rates[rates.len() / 2])
    }
}

impl Drop for TcpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ferry tcp-peer`: prints its address, then serves echo ('P') and sink ('T') requests:
/// `[mode u8][len u64 LE][payload]`; echo answers with the payload, sink with the length.
pub fn serve_tcp_peer() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    for conn in listener.incoming() {
        let mut s = conn?;
        s.set_nodelay(true)?;
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut buf = Vec::new();
            loop {
                let mut mode = [0u8; 1];
                if s.read_exact(&mut mode).is_err() {
                    return Ok(());
                }
                let mut len = [0u8; 8];
                s.read_exact(&mut len)?;
                let n = u64::from_le_bytes(len) as usize;
                buf.resize(n, 0);
                s.read_exact(&mut buf)?;
                match mode[0] {
                    b'P' => s.write_all(&buf)?,
                    _ => s.write_all(&(n as u64).to_le_bytes())?,
                }
            }
        });
    }
    Ok(())
}
