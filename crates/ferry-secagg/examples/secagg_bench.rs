//! Cost of one secure aggregation in-process: wall time and traffic for several client counts
//! and vector lengths, with and without one client dropping after its masked input.
//!
//! Run: `cargo run --release -p ferry-secagg --example secagg_bench`

use ferry_context::{LocalCluster, PartyId, Role, Roster};
use ferry_secagg::{SecAggConfig, SecAggError, advertise, aggregate, run_client};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::time::Instant;

fn main() {
    println!(
        "{:>7} {:>9} {:>8} {:>12} {:>16} {:>18}",
        "clients", "length", "dropout", "ms/aggr.", "server bytes", "bytes per client"
    );
    for n in [3usize, 10] {
        for len in [1_000usize, 100_000] {
            for dropout in [false, true] {
                let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
                let mut parties = vec![("server", Role::Arbiter)];
                for (i, name) in names.iter().enumerate() {
                    parties.push((name.as_str(), if i == 0 { Role::Guest } else { Role::Host }));
                }
                let roster = Roster::of(&parties);
                let clients: Vec<PartyId> = names
                    .iter()
                    .map(|n| PartyId::new(n.as_str()).unwrap())
                    .collect();
                let config = SecAggConfig::default();
                let input: Vec<u64> = (0..len as u64).collect();
                let mut best = f64::INFINITY;
                let mut server_bytes = 0;
                for _ in 0..3 {
                    let started = Instant::now();
                    let outcomes =
                        LocalCluster::new(roster.clone()).run(|ctx| -> Result<(), SecAggError> {
                            if ctx.role() == Role::Arbiter {
                                let agg = aggregate(&ctx, &clients, len, &config)?;
                                assert_eq!(agg.included.len(), n);
                                return Ok(());
                            }
                            let i = clients.iter().position(|c| c == ctx.me()).unwrap();
                            let mut rng = ChaCha20Rng::seed_from_u64(i as u64);
                            let server = ctx.arbiter()?;
                            if dropout && i == n - 1 {
                                advertise(&ctx, &server, len, &config, &mut rng)?
                                    .share_keys(&ctx, &mut rng)?
                                    .send_masked_input(&ctx, &input)?;
                                return Err(SecAggError::Config("offline".into()));
                            }
                            run_client(&ctx, &server, &input, &config, &mut rng).map(|_| ())
                        });
                    best = best.min(started.elapsed().as_secs_f64());
                    assert!(outcomes[0].result.is_ok(), "{:?}", outcomes[0].result);
                    server_bytes =
                        outcomes[0].counters.bytes_sent() + outcomes[0].counters.bytes_received();
                }
                println!(
                    "{:>7} {:>9} {:>8} {:>12.2} {:>16} {:>18}",
                    n,
                    len,
                    if dropout { "1" } else { "0" },
                    best * 1e3,
                    server_bytes,
                    server_bytes / n as u64
                );
            }
        }
    }
}
