//! Small protocols that exercise a backend end to end: connectivity checks for operators
//! (`ferry launch ping-pong`), and the shared test suite that every backend must pass.

use crate::context::Context;
use crate::error::FederationError;
use crate::party::PartyId;
use serde::{Deserialize, Serialize};

/// Result of a ping-pong run, as seen by the party that started it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PingPongReport {
    pub rounds: u32,
    pub payload_bytes: usize,
    /// Mean round-trip time in microseconds (measured by the initiator; 0 for the responder).
    pub mean_round_trip_us: f64,
}

/// The first party in roster order sends `rounds` payloads of `payload_bytes` to the second,
/// which echoes each one back; the initiator checks every echo byte for byte.
pub fn ping_pong(
    ctx: &Context,
    rounds: u32,
    payload_bytes: usize,
) -> Result<PingPongReport, FederationError> {
    let parties: Vec<PartyId> = ctx.roster().parties().map(|(p, _)| p.clone()).collect();
    let (Some(first), Some(second)) = (parties.first(), parties.get(1)) else {
        return Err(FederationError::MissingRole(crate::party::Role::Host));
    };
    let ctx = ctx.sub("ping-pong");
    if ctx.me() == first {
        let mut total = std::time::Duration::ZERO;
        for round in 0..rounds {
            let payload: Vec<u8> = (0..payload_bytes)
                .map(|i| (i as u32 ^ round) as u8)
                .collect();
            let start = std::time::Instant::now();
            ctx.send(second, "ping", &payload)?;
            let echo: Vec<u8> = ctx.recv(second, "pong")?;
            total += start.elapsed();
            if echo != payload {
                return Err(FederationError::protocol(
                    second,
                    format!("round {round}: echo differs from the ping"),
                ));
            }
        }
        ctx.flush()?;
        let mean = if rounds == 0 {
            0.0
        } else {
            total.as_secs_f64() * 1e6 / rounds as f64
        };
        Ok(PingPongReport {
            rounds,
            payload_bytes,
            mean_round_trip_us: mean,
        })
    } else if ctx.me() == second {
        for _ in 0..rounds {
            let ping: Vec<u8> = ctx.recv(first, "ping")?;
            ctx.send(first, "pong", &ping)?;
        }
        ctx.flush()?;
        Ok(PingPongReport {
            rounds,
            payload_bytes,
            mean_round_trip_us: 0.0,
        })
    } else {
        Ok(PingPongReport {
            rounds: 0,
            payload_bytes,
            mean_round_trip_us: 0.0,
        })
    }
}

/// Every party broadcasts `value` tagged with its name and gathers everyone's, in roster order.
pub fn all_gather(ctx: &Context, value: u64) -> Result<Vec<(PartyId, u64)>, FederationError> {
    let ctx = ctx.sub("all-gather");
    let others = ctx.others();
    ctx.broadcast(&others, "value", &(ctx.me().clone(), value))?;
    let mut out = Vec::new();
    for (party, _) in ctx.roster().parties() {
        if party == ctx.me() {
            out.push((party.clone(), value));
        } else {
            let (claimed, v): (PartyId, u64) = ctx.recv(party, "value")?;
            if &claimed != party {
                return Err(FederationError::protocol(
                    party,
                    format!("message claims to come from '{claimed}'"),
                ));
            }
            out.push((claimed, v));
        }
    }
    ctx.flush()?;
    Ok(out)
}
