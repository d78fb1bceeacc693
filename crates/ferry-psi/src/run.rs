//! PSI on a party's file: read keys, run the protocol, write the rows, report.

use crate::input::{InputFormat, PsiInput, read_keys, write_rows};
use crate::protocol::intersect_with_arity;
use crate::{GroupKind, KeyMode, PsiConfig, PsiError, Receivers};
use ferry_context::{Context, CountersSnapshot, PartyId};
use ferry_crypto::ecdh::{EcdhGroup, Ristretto255, Sm2Sm3};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// What one party's PSI run did (serialisable for the job's result and the CLI).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PsiReport {
    pub party: PartyId,
    pub protocol: String,
    pub group: String,
    pub receivers: Receivers,
    /// `fresh` or `cached`.
    pub key_mode: String,
    pub input_file: PathBuf,
    pub input_format: InputFormat,
    pub key_columns: Vec<String>,
    /// Data rows in the file.
    pub input_rows: u64,
    /// Rows whose key columns were all empty (or null): dropped.
    pub empty_keys: u64,
    /// Rows whose key repeated an earlier row's: dropped (the first row is kept).
    pub duplicates_dropped: u64,
    /// Distinct keys that took part.
    pub unique_keys: u64,
    /// Set sizes of the other parties, as far as this party learned them.
    pub peer_set_sizes: BTreeMap<PartyId, u64>,
    /// For a party that receives the result.
    pub intersection_size: Option<u64>,
    pub output_file: Option<PathBuf>,
    pub output_rows: Option<u64>,
    /// Whole run: reading, protocol, writing.
    pub wall_seconds: f64,
    pub protocol_seconds: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Peak resident memory of this process so far (VmHWM), where the OS reports it.
    pub peak_rss_bytes: Option<u64>,
}

/// The report, and for a receiving party its rows in the intersection.
#[derive(Clone, Debug, PartialEq)]
pub struct PsiOutcome {
    pub report: PsiReport,
    /// 0-based data rows of the input in the intersection, in the agreed order.
    pub rows: Option<Vec<u64>>,
}

/// Runs PSI on `input`'s key columns with every other party of `ctx`, writes this party's
/// rows in the intersection to `input.output` (if it receives the result and an output is
/// set) and reports.
pub fn run_psi(
    ctx: &Context,
    input: &PsiInput,
    config: &PsiConfig,
) -> Result<PsiOutcome, PsiError> {
    match config.group {
        GroupKind::Ristretto255 => run_psi_in::<Ristretto255>(ctx, input, config),
        GroupKind::Sm2 => run_psi_in::<Sm2Sm3>(ctx, input, config),
    }
}

/// [`run_psi`] in a given group.
pub fn run_psi_in<G: EcdhGroup>(
    ctx: &Context,
    input: &PsiInput,
    config: &PsiConfig,
) -> Result<PsiOutcome, PsiError> {
    let started = Instant::now();
    let before = ctx.counters();
    let keys = read_keys(input)?;
    ctx.log(&format!(
        "PSI: {} rows, {} keys ({} empty) from {}",
        keys.input_rows,
        keys.ids.len(),
        keys.empty_keys,
        input.path.display()
    ));
    let arity = u32::try_from(input.key_columns.len())
        .map_err(|_| PsiError::Config("too many key columns".into()))?;
    let result = intersect_with_arity::<G>(ctx, &keys.ids, config, arity)?;
    let rows: Option<Vec<u64>> = result
        .rows
        .as_ref()
        .map(|r| r.iter().map(|&i| keys.rows[i]).collect());
    let (input_rows, empty_keys) = (keys.input_rows, keys.empty_keys);
    drop(keys);
    let output_file = match (&rows, &input.output) {
        (Some(rows), Some(out)) => {
            write_rows(input, rows, out)?;
            Some(out.clone())
        }
        _ => None,
    };
    let traffic = delta(&before, &ctx.counters());
    let stats = result.stats;
    let report = PsiReport {
        party: ctx.me().clone(),
        protocol: stats.protocol,
        group: stats.group,
        receivers: config.receivers.clone(),
        key_mode: match config.keys {
            KeyMode::Fresh => "fresh".into(),
            KeyMode::Cached { .. } => "cached".into(),
        },
        input_file: input.path.clone(),
        input_format: input.format(),
        key_columns: input.key_columns.clone(),
        input_rows,
        empty_keys,
        duplicates_dropped: stats.duplicates_dropped,
        unique_keys: stats.unique_ids,
        peer_set_sizes: stats.peer_set_sizes,
        intersection_size: stats.intersection_size,
        output_rows: output_file
            .as_ref()
            .and(rows.as_ref())
            .map(|r| r.len() as u64),
        output_file,
        wall_seconds: started.elapsed().as_secs_f64(),
        protocol_seconds: stats.seconds,
        bytes_sent: traffic.bytes_sent(),
        bytes_received: traffic.bytes_received(),
        messages_sent: traffic.messages_sent(),
        messages_received: traffic.messages_received(),
        peak_rss_bytes: peak_rss_bytes(),
    };
    Ok(PsiOutcome { report, rows })
}

fn delta(before: &CountersSnapshot, after: &CountersSnapshot) -> CountersSnapshot {
    let mut d = after.clone();
    for (peer, c) in d.peers.iter_mut() {
        if let Some(b) = before.peers.get(peer) {
            c.bytes_sent -= b.bytes_sent;
            c.bytes_received -= b.bytes_received;
            c.messages_sent -= b.messages_sent;
            c.messages_received -= b.messages_received;
        }
    }
    d.rounds -= before.rounds;
    d
}

/// Peak resident set size of this process (`VmHWM` in `/proc/self/status`), if available.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
