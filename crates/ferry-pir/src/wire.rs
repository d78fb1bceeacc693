//! The messages of the PIR protocol (bincode through [`ferry_context::Context`], under the
//! context's `pir/` namespace). Public so that the format is documented in one place and
//! tests can play a misbehaving peer; see the crate docs for the sequence and the limits.

use crate::TableId;
use crate::params::{LOG_Q, LWE_N, NOISE_SIGMA, PLAINTEXT_BITS, TableLayout};
use ferry_context::Blob;
use serde::{Deserialize, Serialize};

/// Version of these messages; both parties must speak the same. Every message carries it.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest piece of the hint in one message.
pub const HINT_CHUNK_BYTES: usize = 8 << 20;

/// Target size of one message of query vectors (at least one vector per message).
pub const QUERY_MESSAGE_BYTES: usize = 8 << 20;

/// Most query vectors in one message.
pub const MAX_QUERIES_PER_MESSAGE: usize = 64;

/// Query messages a querier sends ahead of the answers it has received (flow control).
pub const QUERY_WINDOW: usize = 2;

/// Tags under the `pir/` namespace.
pub const TAG_HELLO: &str = "hello";
pub const TAG_SETUP: &str = "setup";
pub const TAG_HINT: &str = "hint";
pub const TAG_OPRF: &str = "oprf";
pub const TAG_OPRF_REPLY: &str = "oprf-reply";
pub const TAG_QUERY: &str = "query";
pub const TAG_ANSWER: &str = "answer";

/// Querier → provider: how many ids this session asks, and which table's hint it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    /// Ids this session asks (the provider learns this count and nothing else about them).
    pub ids: u64,
    /// The table whose hint the querier already holds, if any.
    pub cached_table: Option<TableId>,
}

/// The LWE constants a session runs with; the querier refuses anything but its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LweConstants {
    pub n: u32,
    pub log_q: u32,
    pub plaintext_bits: u32,
    /// σ in thousandths (6400 for 6.4).
    pub sigma_milli: u32,
}

impl LweConstants {
    /// This build's constants.
    pub fn ours() -> Self {
        LweConstants {
            n: LWE_N as u32,
            log_q: LOG_Q,
            plaintext_bits: PLAINTEXT_BITS,
            sigma_milli: (NOISE_SIGMA * 1000.0).round() as u32,
        }
    }
}

/// What the querier needs to query one version of the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    pub table_id: TableId,
    pub layout: TableLayout,
    pub lwe: LweConstants,
    /// Seed of the public matrix A.
    pub a_seed: [u8; 32],
    /// Salt of the bucket hash.
    pub bucket_salt: [u8; 32],
}

/// Provider → querier: the table's public description, and how many hint pieces follow.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Setup {
    Ready {
        version: u32,
        info: TableInfo,
        /// Hint pieces that follow on [`TAG_HINT`] (0 when the querier's cached hint is for
        /// this table, or it asks no ids).
        hint_chunks: u32,
    },
    /// The provider refuses the session; the reason is its own words.
    Refused { version: u32, reason: String },
}

/// Provider → querier: a piece of the hint (`matrix_rows × n` little-endian `u32`, row-major,
/// cut into pieces of [`HINT_CHUNK_BYTES`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HintChunk {
    pub version: u32,
    pub table_id: TableId,
    pub index: u32,
    pub bytes: Blob,
}

/// Querier → provider: one blinded element `r·H(x)` (32 bytes) per id, concatenated.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OprfRequest {
    pub version: u32,
    pub table_id: TableId,
    pub elements: Blob,
}

/// Provider → querier: `k·B` for each element, same order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OprfReply {
    pub version: u32,
    pub table_id: TableId,
    pub elements: Blob,
}

/// Querier → provider: query vectors `first .. first + count` (`buckets` little-endian `u32`
/// each, concatenated).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Queries {
    pub version: u32,
    pub table_id: TableId,
    pub first: u64,
    pub count: u32,
    pub vectors: Blob,
}

/// Provider → querier: the answers to the queries `first .. first + count`
/// (`matrix_rows` little-endian `u32` each, concatenated).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Answers {
    pub version: u32,
    pub table_id: TableId,
    pub first: u64,
    pub count: u32,
    pub vectors: Blob,
}

/// Query vectors per message for a table with `buckets` columns.
pub fn queries_per_message(buckets: u32) -> usize {
    (QUERY_MESSAGE_BYTES / (buckets.max(1) as usize * 4)).clamp(1, MAX_QUERIES_PER_MESSAGE)
}
