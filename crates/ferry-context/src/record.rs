//! Counters and transcripts: what a party sent and received in a session.

use crate::party::PartyId;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Sent,
    Received,
}

/// Traffic with one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeerCounters {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
}

/// Traffic of a session: per peer, and the number of rounds (receives that followed sends:
/// each is a point where this party had to wait for the others).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CountersSnapshot {
    pub peers: BTreeMap<PartyId, PeerCounters>,
    pub rounds: u64,
}

impl CountersSnapshot {
    pub fn bytes_sent(&self) -> u64 {
        self.peers.values().map(|c| c.bytes_sent).sum()
    }
    pub fn bytes_received(&self) -> u64 {
        self.peers.values().map(|c| c.bytes_received).sum()
    }
    pub fn messages_sent(&self) -> u64 {
        self.peers.values().map(|c| c.messages_sent).sum()
    }
    pub fn messages_received(&self) -> u64 {
        self.peers.values().map(|c| c.messages_received).sum()
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    inner: Mutex<(CountersSnapshot, Option<Direction>)>,
}

impl Counters {
    pub(crate) fn add(&self, peer: &PartyId, dir: Direction, bytes: usize) {
        let mut guard = self.inner.lock().expect("counters lock");
        let (snap, last) = &mut *guard;
        let c = snap.peers.entry(peer.clone()).or_default();
        match dir {
            Direction::Sent => {
                c.bytes_sent += bytes as u64;
                c.messages_sent += 1;
            }
            Direction::Received => {
                c.bytes_received += bytes as u64;
                c.messages_received += 1;
                if *last != Some(Direction::Received) {
                    snap.rounds += 1;
                }
            }
        }
        *last = Some(dir);
    }

    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        self.inner.lock().expect("counters lock").0.clone()
    }
}

/// One message as recorded in a transcript.
#[derive(Clone, Debug, Serialize)]
pub struct TranscriptEntry {
    pub direction: Direction,
    pub peer: PartyId,
    pub tag: String,
    /// Rust type the payload was sent or read as.
    pub payload_type: &'static str,
    pub bytes: usize,
    /// The serialised payload, when the transcript captures payloads.
    #[serde(skip)]
    pub payload: Option<Vec<u8>>,
}

/// Every message a party sent and received in a session, in order.
///
/// Privacy tests capture payloads and assert what crossed the wire; the node's audit trail
/// keeps the metadata (tag, size, type) without payloads.
pub struct Transcript {
    capture_payloads: bool,
    entries: Mutex<Vec<TranscriptEntry>>,
}

impl Transcript {
    /// Metadata only.
    pub fn metadata_only() -> Self {
        Transcript {
            capture_payloads: false,
            entries: Mutex::new(Vec::new()),
        }
    }

    /// Metadata and payload bytes (tests).
    pub fn with_payloads() -> Self {
        Transcript {
            capture_payloads: true,
            entries: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn record(
        &self,
        direction: Direction,
        peer: &PartyId,
        tag: &str,
        payload_type: &'static str,
        bytes: &[u8],
    ) {
        let entry = TranscriptEntry {
            direction,
            peer: peer.clone(),
            tag: tag.to_string(),
            payload_type,
            bytes: bytes.len(),
            payload: self.capture_payloads.then(|| bytes.to_vec()),
        };
        self.entries.lock().expect("transcript lock").push(entry);
    }

    pub fn entries(&self) -> Vec<TranscriptEntry> {
        self.entries.lock().expect("transcript lock").clone()
    }

    /// Entries in one direction.
    pub fn received(&self) -> Vec<TranscriptEntry> {
        self.entries()
            .into_iter()
            .filter(|e| e.direction == Direction::Received)
            .collect()
    }

    pub fn sent(&self) -> Vec<TranscriptEntry> {
        self.entries()
            .into_iter()
            .filter(|e| e.direction == Direction::Sent)
            .collect()
    }
}

impl TranscriptEntry {
    /// Whether the captured payload contains `needle` as a byte substring.
    pub fn payload_contains(&self, needle: &[u8]) -> bool {
        match &self.payload {
            Some(p) if !needle.is_empty() => p.windows(needle.len()).any(|w| w == needle),
            _ => false,
        }
    }

    /// Decodes the captured payload as `T` (with the codec `Context` uses).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        use bincode::Options;
        self.payload
            .as_ref()
            .and_then(|p| bincode::DefaultOptions::new().deserialize(p).ok())
    }
}
