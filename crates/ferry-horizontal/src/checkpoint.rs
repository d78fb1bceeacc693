//! Checkpoints of FedAvg: each party's state after a completed round, in a versioned,
//! length-checked binary form (magic, version, then the state in bincode, which keeps every
//! `f64` bit for bit).
//!
//! * The **server** keeps the global model after the round, the RDP accountant's per-order
//!   totals and step count, and the per-round reports and evaluations (so the resumed run's
//!   summary counts every round).
//! * A **client** keeps the last global model it received, its top-k error-feedback residual
//!   (the only state a client carries from one round to the next) and its evaluations.
//!
//! Nothing else is needed to continue exactly: the model's initialisation, the hold-out split,
//! client selection without DP, the local SGD shuffles and random-k's coordinates are all
//! derived from `(seed, round, party)`, and a sum through secure aggregation decodes to the
//! same numbers whatever the masks were. What is drawn from operating-system entropy on
//! purpose (secure aggregation's keys and masks, DP noise and the DP Poisson sample in a real
//! job) is drawn afresh in the resumed rounds and never stored here.
//!
//! A checkpoint names the parameters' fingerprint and, for a client, its party name and
//! training-row count: a checkpoint of another job, party or dataset is refused.

use crate::dp::RdpAccountant;
use crate::fedavg::{Evaluation, RoundReport};
use bincode::Options;
use ferry_ml::checkpoint::{CheckpointError, Reader, Writer};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"FHFLSTAT";
/// Version of the checkpoint layout; any other is refused.
pub const CHECKPOINT_VERSION: u64 = 1;

fn err(msg: impl Into<String>) -> CheckpointError {
    CheckpointError(msg.into())
}

/// The server's state after `round` completed rounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServerCheckpoint {
    pub fingerprint: u64,
    pub round: u64,
    pub model: Vec<f64>,
    pub rdp: Vec<f64>,
    pub rdp_steps: u64,
    pub rounds: Vec<RoundReport>,
    pub evaluations: Vec<Evaluation>,
}

/// A client's state after it took part in (or idled through) round `round`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClientCheckpoint {
    pub fingerprint: u64,
    pub party: String,
    pub n_train: u64,
    pub round: u64,
    pub model: Vec<f64>,
    pub residual: Vec<f64>,
    pub evaluations: Vec<Evaluation>,
}

#[derive(Serialize, Deserialize)]
enum State {
    Server(ServerCheckpoint),
    Client(ClientCheckpoint),
}

fn encode(state: &State) -> Vec<u8> {
    let mut w = Writer::default();
    w.out.extend_from_slice(MAGIC);
    w.u64(CHECKPOINT_VERSION);
    // Serialising plain structs of numbers and strings into memory cannot fail; an empty
    // state would be refused when read back, so the run is re-run, never resumed wrongly.
    w.bytes(
        &bincode::DefaultOptions::new()
            .serialize(state)
            .unwrap_or_default(),
    );
    w.out
}

fn decode(bytes: &[u8]) -> Result<State, CheckpointError> {
    let mut r = Reader::new(bytes);
    if r.take(8)? != MAGIC {
        return Err(err("not a FedAvg checkpoint"));
    }
    let version = r.u64()?;
    if version != CHECKPOINT_VERSION {
        return Err(err(format!(
            "checkpoint version {version} (this build reads {CHECKPOINT_VERSION})"
        )));
    }
    let body = r.bytes()?;
    r.finish()?;
    // The limit is the body's own length: a damaged length inside cannot allocate more.
    bincode::DefaultOptions::new()
        .with_limit(body.len() as u64)
        .reject_trailing_bytes()
        .deserialize(body)
        .map_err(|e| err(format!("damaged state: {e}")))
}

fn finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}

impl ServerCheckpoint {
    pub fn new(
        fingerprint: u64,
        round: usize,
        model: &[f64],
        accountant: &RdpAccountant,
        rounds: &[RoundReport],
        evaluations: &[Evaluation],
    ) -> Self {
        let (rdp, steps) = accountant.parts();
        ServerCheckpoint {
            fingerprint,
            round: round as u64,
            model: model.to_vec(),
            rdp: rdp.to_vec(),
            rdp_steps: steps as u64,
            rounds: rounds.to_vec(),
            evaluations: evaluations.to_vec(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(&State::Server(self.clone()))
    }

    /// Decodes and checks a server checkpoint against the run that continues it.
    pub fn decode(
        bytes: &[u8],
        fingerprint: u64,
        n_params: usize,
        round: u64,
    ) -> Result<(Self, RdpAccountant), CheckpointError> {
        let State::Server(s) = decode(bytes)? else {
            return Err(err("it is a client's checkpoint, not the server's"));
        };
        if s.fingerprint != fingerprint {
            return Err(err("it was written by a training with other parameters"));
        }
        if s.round != round || s.rounds.len() as u64 != round {
            return Err(err(format!(
                "asked for the state after round {round}, it holds round {} ({} reports)",
                s.round,
                s.rounds.len()
            )));
        }
        if s.model.len() != n_params || !finite(&s.model) {
            return Err(err(format!(
                "a model of {} parameters or with non-finite values (expected {n_params})",
                s.model.len()
            )));
        }
        let accountant = RdpAccountant::from_parts(s.rdp.clone(), s.rdp_steps as usize)
            .ok_or_else(|| err("a damaged privacy accountant"))?;
        Ok((s, accountant))
    }
}

impl ClientCheckpoint {
    pub fn encode(&self) -> Vec<u8> {
        encode(&State::Client(self.clone()))
    }

    /// Decodes and checks a client checkpoint against the run that continues it: same
    /// parameters, party and training rows, `n_params` parameters, the round asked for.
    pub fn decode(
        bytes: &[u8],
        fingerprint: u64,
        party: &str,
        n_train: u64,
        n_params: usize,
        round: u64,
    ) -> Result<Self, CheckpointError> {
        let State::Client(c) = decode(bytes)? else {
            return Err(err("it is the server's checkpoint, not a client's"));
        };
        if c.fingerprint != fingerprint {
            return Err(err("it was written by a training with other parameters"));
        }
        if c.party != party || c.n_train != n_train {
            return Err(err(format!(
                "it was written by party '{}' with {} training rows (this is '{party}' with \
                 {n_train})",
                c.party, c.n_train
            )));
        }
        if c.round != round {
            return Err(err(format!(
                "asked for the state after round {round}, it holds round {}",
                c.round
            )));
        }
        let residual_ok = c.residual.is_empty() || c.residual.len() == n_params;
        if c.model.len() != n_params || !residual_ok || !finite(&c.model) || !finite(&c.residual) {
            return Err(err(format!(
                "a model or residual of the wrong length or with non-finite values (expected \
                 {n_params} parameters)"
            )));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientCheckpoint {
        ClientCheckpoint {
            fingerprint: 7,
            party: "bank".into(),
            n_train: 100,
            round: 3,
            model: vec![0.5, -1.25, f64::MIN_POSITIVE],
            residual: vec![],
            evaluations: vec![],
        }
    }

    #[test]
    fn states_round_trip_bit_for_bit_and_mismatches_are_refused() {
        let c = client();
        let bytes = c.encode();
        assert_eq!(
            ClientCheckpoint::decode(&bytes, 7, "bank", 100, 3, 3).unwrap(),
            c
        );
        for (fp, party, n, p, round) in [
            (8, "bank", 100, 3, 3),
            (7, "telco", 100, 3, 3),
            (7, "bank", 99, 3, 3),
            (7, "bank", 100, 4, 3),
            (7, "bank", 100, 3, 2),
        ] {
            assert!(ClientCheckpoint::decode(&bytes, fp, party, n, p, round).is_err());
        }
        // A client's state is not the server's, and a truncated or extended file is refused.
        assert!(ServerCheckpoint::decode(&bytes, 7, 3, 3).is_err());
        for cut in [0, 9, 16, bytes.len() - 1] {
            assert!(ClientCheckpoint::decode(&bytes[..cut], 7, "bank", 100, 3, 3).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ClientCheckpoint::decode(&longer, 7, "bank", 100, 3, 3).is_err());

        let mut acc = RdpAccountant::new();
        acc.step(1.1, 1.0);
        let s = ServerCheckpoint::new(7, 0, &[1.0, 2.0], &acc, &[], &[]);
        let (back, acc2) = ServerCheckpoint::decode(&s.encode(), 7, 2, 0).unwrap();
        assert_eq!(back, s);
        assert_eq!(acc2.parts().0, acc.parts().0);
        assert_eq!(acc2.steps(), 1);
    }
}
