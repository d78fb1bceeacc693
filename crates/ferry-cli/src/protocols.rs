//! Protocols the launcher and `ferry run-party` can run by name.
//!
//! Each entry takes the party's context and JSON parameters and returns a JSON result. The
//! registry is the one place where the CLI names protocols from every layer.

use anyhow::{Context as _, bail};
use ferry_context::Context;
use serde_json::{Value, json};

/// Names accepted by `ferry launch` / `ferry run-party`.
pub const NAMES: &[&str] = &[
    "ping-pong",
    "all-gather",
    "throughput",
    "psi",
    "bench-psi",
    "bench-secureboost",
    "bench-hetero-lr",
    "bench-fedavg",
    "bench-pir",
    "bench-psi-unbalanced",
    "psi-unbalanced",
];

pub fn run(name: &str, ctx: &Context, params: &Value) -> anyhow::Result<Value> {
    match name {
        "ping-pong" => {
            let rounds = params.get("rounds").and_then(Value::as_u64).unwrap_or(100) as u32;
            let bytes = params.get("bytes").and_then(Value::as_u64).unwrap_or(1024) as usize;
            let report = ferry_context::probes::ping_pong(ctx, rounds, bytes)?;
            Ok(serde_json::to_value(report)?)
        }
        "all-gather" => {
            let value = params
                .get("value")
                .and_then(Value::as_u64)
                .unwrap_or(ctx.me().as_str().len() as u64);
            let gathered = ferry_context::probes::all_gather(ctx, value)?;
            Ok(json!(
                gathered
                    .into_iter()
                    .map(|(p, v)| json!({"party": p, "value": v}))
                    .collect::<Vec<_>>()
            ))
        }
        "throughput" => throughput(ctx, params),
        "psi" => crate::psi_cmd::run_protocol(ctx, params),
        crate::psi_cmd::unbalanced::PROTOCOL => {
            crate::psi_cmd::unbalanced::run_protocol(ctx, params)
        }
        n if n.starts_with("bench-") => crate::bench::federated::run_protocol(n, ctx, params),
        other => bail!("unknown protocol '{other}' (known: {})", NAMES.join(", ")),
    }
}

/// The first party sends `repeat` payloads of `bytes` to the second, which confirms receipt of
/// each; the sender reports MB/s (payload bytes over the wall time until the confirmation).
fn throughput(ctx: &Context, params: &Value) -> anyhow::Result<Value> {
    let bytes = params
        .get("bytes")
        .and_then(Value::as_u64)
        .context("throughput needs 'bytes'")? as usize;
    let repeat = params.get("repeat").and_then(Value::as_u64).unwrap_or(3) as usize;
    let parties: Vec<_> = ctx.roster().parties().map(|(p, _)| p.clone()).collect();
    let ctx = ctx.sub("throughput");
    let (first, second) = (&parties[0], &parties[1]);
    if ctx.me() == first {
        // A `Blob`, as protocols send bulk bytes (a `Vec<u8>` would be encoded byte by byte).
        let payload = ferry_context::Blob(vec![0x5au8; bytes]);
        let mut rates = Vec::new();
        for i in 0..repeat {
            let start = std::time::Instant::now();
            ctx.send(second, &format!("data-{i}"), &payload)?;
            let got: u64 = ctx.recv(second, &format!("ok-{i}"))?;
            let secs = start.elapsed().as_secs_f64();
            anyhow::ensure!(
                got == bytes as u64,
                "receiver confirmed {got} bytes, expected {bytes}"
            );
            rates.push(bytes as f64 / 1e6 / secs);
        }
        rates.sort_by(f64::total_cmp);
        ctx.flush()?;
        Ok(json!({"bytes": bytes, "repeat": repeat, "median_mb_per_s": rates[rates.len() / 2]}))
    } else {
        for i in 0..repeat {
            let data: ferry_context::Blob = ctx.recv(first, &format!("data-{i}"))?;
            ctx.send(first, &format!("ok-{i}"), &(data.len() as u64))?;
        }
        ctx.flush()?;
        Ok(json!({"received": repeat}))
    }
}
