//! `ferry bench ...`: throughput figures printed as tables or JSON.

mod crypto;
pub mod federated;
mod load;
pub mod machine;
pub mod pir;
pub mod reference;
pub mod serving;
pub mod transport;
pub mod unbalanced_psi;
pub mod woe;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Per-core rates of the homomorphic schemes, packing and the PSI curve operations.
    Crypto(crypto::CryptoBenchArgs),
    /// Latency and throughput of the TLS transport between two processes, beside raw TCP.
    Transport(transport::TransportBenchArgs),
    /// ECDH-PSI between processes over TLS: wall time, elements/s, bytes, peak RSS, floor.
    Psi(federated::PsiBenchArgs),
    /// Vertical SecureBoost, guest and host as processes over TLS, with the crypto floor.
    Secureboost(federated::SecureBoostBenchArgs),
    /// Vertical logistic regression over TLS, with or without an arbiter.
    HeteroLr(federated::LinearBenchArgs),
    /// Horizontal FedAvg, 3 clients and a server over TLS.
    Fedavg(federated::FedAvgBenchArgs),
    /// Federated binning and WOE/IV of every feature of both parties, in-process.
    Woe(woe::WoeBenchArgs),
    /// Keyword PIR, querier and provider as processes over TLS: preprocessing, online, batch.
    Pir(pir::PirBenchArgs),
    /// Many small jobs across three node processes: jobs/minute and each node's memory.
    Load(load::LoadBenchArgs),
    /// Online inference: guest + 2 hosts (three nodes in one process over TLS), SecureBoost and
    /// LR, single-id latency and batched predictions/s through the guest's API.
    Serving(serving::ServingBenchArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Crypto(args) => crypto::run(args),
        BenchCommand::Transport(args) => transport::run(args),
        BenchCommand::Psi(args) => federated::psi(args),
        BenchCommand::Secureboost(args) => federated::secureboost(args),
        BenchCommand::HeteroLr(args) => federated::hetero_lr(args),
        BenchCommand::Fedavg(args) => federated::fedavg(args),
        BenchCommand::Woe(args) => woe::run(args),
        BenchCommand::Pir(args) => pir::run(args),
        BenchCommand::Load(args) => load::run(args),
        BenchCommand::Serving(args) => serving::run(args),
    }
}

/// Runs `op` repeatedly for about `budget` seconds (after a short warm-up) and returns
/// operations per second on the calling thread.
pub fn ops_per_second(budget: f64, mut op: impl FnMut()) -> f64 {
    use std::time::Instant;
    op();
    let start = Instant::now();
    let mut count = 0u64;
    let mut batch = 1u64;
    loop {
        for _ in 0..batch {
            op();
        }
        count += batch;
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= budget {
            return count as f64 / elapsed;
        }
        // Grow batches so the clock is read rarely for fast operations.
        if elapsed < budget / 20.0 {
            batch *= 2;
        }
    }
}

/// Median of `runs` measurements of [`ops_per_second`].
pub fn median_rate(runs: usize, budget: f64, mut op: impl FnMut()) -> f64 {
    let mut rates: Vec<f64> = (0..runs).map(|_| ops_per_second(budget, &mut op)).collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    rates[rates.len() / 2]
}
