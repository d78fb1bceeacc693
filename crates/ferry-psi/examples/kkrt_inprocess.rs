//! In-process two-party PSI, KKRT16 beside ECDH: both parties as threads of this process
//! over the in-memory backend, on synthetic ids.
//!
//! ```text
//! cargo run --release -p ferry-psi --example kkrt_inprocess -- [SIZE ...] [--no-ecdh]
//! ```
//!
//! Prints per size and protocol the wall time, the bytes both parties sent, and KKRT's
//! speed-up over ECDH measured in the same run.

use ferry_context::{LocalCluster, Role, Roster};
use ferry_psi::{PsiConfig, PsiProtocol, intersect_ids, synthetic_ids, synthetic_overlap_count};
use std::time::Instant;

fn run(size: usize, protocol: PsiProtocol) -> (f64, u64) {
    let sets = [
        synthetic_ids(size, 0.5, 1, 0),
        synthetic_ids(size, 0.5, 1, 1),
    ];
    let config = PsiConfig {
        protocol,
        ..PsiConfig::default()
    };
    let started = Instant::now();
    let outcomes = LocalCluster::new(Roster::of(&[("bank", Role::Guest), ("telco", Role::Host)]))
        .run_ok(|ctx| {
            let i = usize::from(ctx.me().as_str() != "bank");
            intersect_ids(&ctx, &sets[i], &config)
        });
    let wall = started.elapsed().as_secs_f64();
    let mut bytes = 0;
    for o in &outcomes {
        bytes += o.counters.bytes_sent();
        let found = o.result.as_ref().unwrap().rows.as_ref().map(Vec::len);
        assert_eq!(found, Some(synthetic_overlap_count(size, 0.5)));
    }
    (wall, bytes)
}

fn main() {
    let mut sizes = Vec::new();
    let mut ecdh = true;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--no-ecdh" => ecdh = false,
            s => sizes.push(s.parse::<usize>().expect("a size")),
        }
    }
    if sizes.is_empty() {
        sizes.push(100_000);
    }
    println!(
        "{:>10} {:>6} {:>9} {:>10} {:>8}",
        "size", "proto", "wall s", "sent MB", "speedup"
    );
    for size in sizes {
        let (kw, kb) = run(size, PsiProtocol::Kkrt);
        let speedup = if ecdh {
            let (ew, eb) = run(size, PsiProtocol::Ecdh);
            println!(
                "{size:>10} {:>6} {ew:>9.2} {:>10.1} {:>8}",
                "ecdh",
                eb as f64 / 1e6,
                ""
            );
            format!("{:.1}x", ew / kw)
        } else {
            String::new()
        };
        println!(
            "{size:>10} {:>6} {kw:>9.2} {:>10.1} {speedup:>8}",
            "kkrt",
            kb as f64 / 1e6
        );
    }
}
