//! The federation wire protocol: one bidirectional gRPC stream per (sender → receiver) link.
//!
//! Opening a stream is the hello: the request carries the sender's protocol version
//! ([`VERSION_HEADER`]) and its incarnation ([`INCARNATION_HEADER`]), the response the
//! receiver's incarnation, before any frame is written. An incarnation is a random number a
//! transport draws when it starts; a peer answering with another one than before has
//! restarted and lost what it held (see the transport's module docs for what follows).
//!
//! ```text
//! package ferry.federation.v1;
//! service Federation { rpc Exchange(stream Frame) returns (stream Ack); }
//! message Frame {
//!   uint32 protocol_version = 1;  // PROTOCOL_VERSION of the sender
//!   string sender = 2;            // must equal the party the TLS certificate identifies
//!   string session = 3;           // job/task the message belongs to
//!   string tag = 4;               // namespaced protocol tag
//!   uint64 seq = 5;               // per (sender, receiver, session) message number, from 0
//!   uint32 chunk_index = 6;       // large messages are split into chunks sent in order
//!   uint32 chunk_count = 7;
//!   uint64 total_len = 8;         // length of the whole message
//!   bytes data = 9;
//! }
//! message Ack {
//!   uint32 protocol_version = 1;
//!   string session = 2;
//!   uint64 seq = 3;               // the message is stored in the receiver's mailbox
//!   string error = 4;             // non-empty: the receiver refused it (and says why)
//!   uint32 error_kind = 5;
//! }
//! ```
//!
//! The messages are defined with prost derives (no protoc at build time); the schema above is
//! the contract. Every frame is validated by [`validate_frame`] before anything is allocated.

use bytes::Bytes;

/// Version of this wire protocol. A peer speaking another version is refused with an error
/// that names both versions. Version 2 added the incarnations to the hello.
pub const PROTOCOL_VERSION: u32 = 2;

/// gRPC service and method names.
pub const SERVICE_NAME: &str = "ferry.federation.v1.Federation";
pub const EXCHANGE_PATH: &str = "/ferry.federation.v1.Federation/Exchange";

/// Metadata header carrying the sender's protocol version on stream open.
pub const VERSION_HEADER: &str = "ferry-protocol-version";

/// Metadata header carrying an incarnation (16 hex digits): the sender's on the request that
/// opens a stream, the receiver's on the response.
pub const INCARNATION_HEADER: &str = "ferry-incarnation";

/// An incarnation as [`INCARNATION_HEADER`] carries it.
pub fn format_incarnation(incarnation: u64) -> String {
    format!("{incarnation:016x}")
}

/// Reads an [`INCARNATION_HEADER`] value (`None` if it is not 16 hex digits).
pub fn parse_incarnation(value: &str) -> Option<u64> {
    if value.len() != 16 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(value, 16).ok()
}

/// Largest session or tag name accepted.
pub const MAX_NAME_BYTES: usize = 1024;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Frame {
    #[prost(uint32, tag = "1")]
    pub protocol_version: u32,
    #[prost(string, tag = "2")]
    pub sender: String,
    #[prost(string, tag = "3")]
    pub session: String,
    #[prost(string, tag = "4")]
    pub tag: String,
    #[prost(uint64, tag = "5")]
    pub seq: u64,
    #[prost(uint32, tag = "6")]
    pub chunk_index: u32,
    #[prost(uint32, tag = "7")]
    pub chunk_count: u32,
    #[prost(uint64, tag = "8")]
    pub total_len: u64,
    #[prost(bytes = "bytes", tag = "9")]
    pub data: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Ack {
    #[prost(uint32, tag = "1")]
    pub protocol_version: u32,
    #[prost(string, tag = "2")]
    pub session: String,
    #[prost(uint64, tag = "3")]
    pub seq: u64,
    #[prost(string, tag = "4")]
    pub error: String,
    #[prost(uint32, tag = "5")]
    pub error_kind: u32,
}

/// Why a receiver refused a frame (carried in [`Ack::error_kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Refusal {
    Version = 1,
    MessageTooLarge = 2,
    SessionTooLarge = 3,
    Malformed = 4,
    WrongSender = 5,
    /// The receiver does not buffer this session for this sender (it is not a session of a
    /// job the sender takes part in). Receivers of an older build never send it; senders of
    /// an older build treat it as a generic refusal of the session.
    NotAdmitted = 6,
    /// The sender already has as many open sessions on the receiver as it allows.
    TooManySessions = 7,
    /// The stream belongs to an instance of the sender that has since been replaced by a
    /// newer one (the sender restarted).
    Superseded = 8,
}

impl Refusal {
    pub fn from_u32(v: u32) -> Option<Refusal> {
        match v {
            1 => Some(Refusal::Version),
            2 => Some(Refusal::MessageTooLarge),
            3 => Some(Refusal::SessionTooLarge),
            4 => Some(Refusal::Malformed),
            5 => Some(Refusal::WrongSender),
            6 => Some(Refusal::NotAdmitted),
            7 => Some(Refusal::TooManySessions),
            8 => Some(Refusal::Superseded),
            _ => None,
        }
    }
}

/// Limits a receiver applies to what it accepts.
#[derive(Clone, Copy, Debug)]
pub struct FrameLimits {
    pub max_message_bytes: u64,
    pub max_chunk_bytes: usize,
}

/// A frame that does not pass validation: the refusal kind and a message for the peer.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameError {
    pub kind: Refusal,
    pub reason: String,
}

/// Checks a frame's version, names, chunk indices and sizes against the limits. Called on
/// every received frame before it is buffered.
pub fn validate_frame(frame: &Frame, limits: &FrameLimits) -> Result<(), FrameError> {
    let fail = |kind, reason: String| Err(FrameError { kind, reason });
    if frame.protocol_version != PROTOCOL_VERSION {
        return fail(
            Refusal::Version,
            format!(
                "peer speaks federation protocol version {}; this node speaks version {PROTOCOL_VERSION}",
                frame.protocol_version
            ),
        );
    }
    if frame.session.is_empty()
        || frame.session.len() > MAX_NAME_BYTES
        || frame.tag.len() > MAX_NAME_BYTES
    {
        return fail(
            Refusal::Malformed,
            "session or tag name missing or too long".into(),
        );
    }
    if frame.chunk_count == 0 || frame.chunk_index >= frame.chunk_count {
        return fail(
            Refusal::Malformed,
            format!(
                "chunk {} of {} is out of range",
                frame.chunk_index, frame.chunk_count
            ),
        );
    }
    if frame.total_len > limits.max_message_bytes {
        return fail(
            Refusal::MessageTooLarge,
            format!(
                "message '{}' is {} bytes, above the receiver's limit of {} bytes",
                frame.tag, frame.total_len, limits.max_message_bytes
            ),
        );
    }
    if frame.data.len() > limits.max_chunk_bytes || frame.data.len() as u64 > frame.total_len {
        return fail(
            Refusal::Malformed,
            format!("chunk of {} bytes is larger than allowed", frame.data.len()),
        );
    }
    // The chunk count must be consistent with the total length and the chunk size limit.
    let min_chunks = frame
        .total_len
        .div_ceil(limits.max_chunk_bytes as u64)
        .max(1);
    if (frame.chunk_count as u64) < min_chunks || frame.chunk_count as u64 > frame.total_len.max(1)
    {
        return fail(
            Refusal::Malformed,
            "chunk count does not match the message length".into(),
        );
    }
    Ok(())
}

/// Reassembles the chunks of one message from frames that arrive in order on one stream.
#[derive(Default)]
pub struct Reassembly {
    current: Option<Partial>,
}

/// The message being reassembled.
struct Partial {
    session: String,
    tag: String,
    seq: u64,
    next_chunk: u32,
    total: u64,
    /// Bytes received so far (also counted while discarding, to check the declared length).
    received: u64,
    data: Vec<u8>,
    /// The receiver decided not to keep this message: its chunks are checked and counted but
    /// not stored.
    discard: bool,
}

/// A complete message.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub session: String,
    pub tag: String,
    pub seq: u64,
    pub data: Vec<u8>,
}

impl Reassembly {
    /// Adds a validated frame; returns the message once its last chunk arrived. A message
    /// marked with [`Reassembly::discard_current`] comes out with empty `data`.
    pub fn push(&mut self, frame: Frame) -> Result<Option<Message>, FrameError> {
        let malformed = |reason: &str| {
            Err(FrameError {
                kind: Refusal::Malformed,
                reason: reason.to_string(),
            })
        };
        if frame.chunk_index == 0 {
            if self.current.is_some() {
                return malformed("a new message started before the previous one was complete");
            }
            // Capacity grows with the chunks actually received, never from the declared total.
            self.current = Some(Partial {
                session: frame.session.clone(),
                tag: frame.tag.clone(),
                seq: frame.seq,
                next_chunk: 0,
                total: frame.total_len,
                received: 0,
                data: Vec::new(),
                discard: false,
            });
        }
        let Some(p) = self.current.as_mut() else {
            return malformed("a continuation chunk arrived without its first chunk");
        };
        if frame.chunk_index != p.next_chunk || frame.seq != p.seq || frame.total_len != p.total {
            return malformed("chunks arrived out of order or with inconsistent headers");
        }
        if frame.chunk_index > 0 && (frame.session != p.session || frame.tag != p.tag) {
            return malformed("chunk headers changed within a message");
        }
        if p.received + frame.data.len() as u64 > p.total {
            return malformed("chunks add up to more than the declared length");
        }
        p.received += frame.data.len() as u64;
        if !p.discard {
            p.data.extend_from_slice(&frame.data);
        }
        p.next_chunk += 1;
        if p.next_chunk == frame.chunk_count {
            let p = self.current.take().expect("current message");
            if p.received != p.total {
                return malformed("chunks add up to less than the declared length");
            }
            return Ok(Some(Message {
                session: p.session,
                tag: p.tag,
                seq: p.seq,
                data: p.data,
            }));
        }
        Ok(None)
    }

    /// Stops keeping the message being reassembled (the receiver refused or drops it): what
    /// was stored is freed and its remaining chunks are only checked, so a refused message
    /// costs no memory however large it says it is.
    pub fn discard_current(&mut self) {
        if let Some(p) = self.current.as_mut() {
            p.discard = true;
            p.data = Vec::new();
        }
    }

    /// Drops a partially received message (its sender will retransmit it whole).
    pub fn reset(&mut self) {
        self.current = None;
    }
}

/// Splits a message into frames of at most `chunk_bytes`.
pub fn chunk_message(
    sender: &str,
    session: &str,
    tag: &str,
    seq: u64,
    data: &Bytes,
    chunk_bytes: usize,
) -> Vec<Frame> {
    let total = data.len();
    let count = total.div_ceil(chunk_bytes).max(1);
    (0..count)
        .map(|i| {
            let start = i * chunk_bytes;
            let end = (start + chunk_bytes).min(total);
            Frame {
                protocol_version: PROTOCOL_VERSION,
                sender: sender.to_string(),
                session: session.to_string(),
                tag: tag.to_string(),
                seq,
                chunk_index: i as u32,
                chunk_count: count as u32,
                total_len: total as u64,
                data: data.slice(start..end),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    const LIMITS: FrameLimits = FrameLimits {
        max_message_bytes: 1 << 20,
        max_chunk_bytes: 1000,
    };

    fn reassemble(frames: Vec<Frame>) -> Result<Option<Message>, FrameError> {
        let mut r = Reassembly::default();
        let mut out = None;
        for f in frames {
            validate_frame(&f, &LIMITS)?;
            out = r.push(f)?;
        }
        Ok(out)
    }

    #[test]
    fn chunks_reassemble_to_the_message() {
        for len in [0usize, 1, 999, 1000, 1001, 5500] {
            let data = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>());
            let frames = chunk_message("bank", "job-1", "t", 7, &data, 1000);
            assert_eq!(frames.len(), len.div_ceil(1000).max(1));
            let msg = reassemble(frames).unwrap().unwrap();
            assert_eq!(msg.data, data.to_vec());
            assert_eq!(
                (msg.session.as_str(), msg.tag.as_str(), msg.seq),
                ("job-1", "t", 7)
            );
        }
    }

    #[test]
    fn a_discarded_message_is_checked_but_not_kept() {
        let data = Bytes::from(vec![5u8; 2500]);
        let frames = chunk_message("bank", "s", "t", 0, &data, 1000);
        let mut r = Reassembly::default();
        assert!(r.push(frames[0].clone()).unwrap().is_none());
        r.discard_current();
        assert!(r.push(frames[1].clone()).unwrap().is_none());
        let msg = r.push(frames[2].clone()).unwrap().unwrap();
        assert_eq!((msg.session.as_str(), msg.seq), ("s", 0));
        assert!(msg.data.is_empty());
        // The declared length is still enforced while discarding.
        let mut lying = chunk_message("bank", "s", "t", 1, &Bytes::from(vec![1u8; 10]), 1000);
        lying[0].total_len = 20;
        let mut r = Reassembly::default();
        r.discard_current();
        assert!(r.push(lying.remove(0)).is_err());
        // The next message reassembles normally.
        let next = chunk_message("bank", "s", "t", 1, &Bytes::from_static(b"ok"), 1000);
        assert_eq!(reassemble(next).unwrap().unwrap().data, b"ok");
    }

    #[test]
    fn version_mismatch_names_both_versions() {
        let mut f = chunk_message("bank", "s", "t", 0, &Bytes::from_static(b"x"), 1000).remove(0);
        let theirs = PROTOCOL_VERSION + 1;
        f.protocol_version = theirs;
        let e = validate_frame(&f, &LIMITS).unwrap_err();
        assert_eq!(e.kind, Refusal::Version);
        assert!(
            e.reason.contains(&format!("version {theirs}"))
                && e.reason.contains(&format!("version {PROTOCOL_VERSION}")),
            "{}",
            e.reason
        );
    }

    #[test]
    fn oversized_truncated_and_inconsistent_frames_are_refused() {
        let data = Bytes::from(vec![1u8; 2500]);
        let frames = chunk_message("bank", "s", "t", 0, &data, 1000);

        let mut big = frames[0].clone();
        big.total_len = (1 << 20) + 1;
        assert_eq!(
            validate_frame(&big, &LIMITS).unwrap_err().kind,
            Refusal::MessageTooLarge
        );

        let mut fat_chunk = frames[0].clone();
        fat_chunk.data = Bytes::from(vec![0u8; 1001]);
        assert_eq!(
            validate_frame(&fat_chunk, &LIMITS).unwrap_err().kind,
            Refusal::Malformed
        );

        // Truncated: the last chunk is missing; a new message then starts.
        let mut r = Reassembly::default();
        r.push(frames[0].clone()).unwrap();
        r.push(frames[1].clone()).unwrap();
        let next = chunk_message("bank", "s", "t", 1, &Bytes::from_static(b"y"), 1000).remove(0);
        assert!(r.push(next).is_err());

        // Short: the declared total is larger than what the chunks carry.
        let mut lying = chunk_message("bank", "s", "t", 0, &Bytes::from(vec![1u8; 10]), 1000);
        lying[0].total_len = 20;
        assert!(reassemble(lying).is_err());

        // Out of order.
        let swapped = vec![frames[1].clone(), frames[0].clone()];
        assert!(reassemble(swapped).is_err());

        let mut bad_index = frames[0].clone();
        bad_index.chunk_index = 5;
        assert_eq!(
            validate_frame(&bad_index, &LIMITS).unwrap_err().kind,
            Refusal::Malformed
        );
    }

    #[test]
    fn incarnations_round_trip_and_garbage_is_refused() {
        for v in [0u64, 1, 0xdead_beef, u64::MAX] {
            assert_eq!(parse_incarnation(&format_incarnation(v)), Some(v));
        }
        for bad in [
            "",
            "12",
            "zzzzzzzzzzzzzzzz",
            "+123456789abcdef",
            "00000000000000001",
        ] {
            assert_eq!(parse_incarnation(bad), None, "{bad}");
        }
    }

    #[test]
    fn tampered_encodings_never_panic() {
        let frame = chunk_message(
            "bank",
            "session",
            "tag",
            3,
            &Bytes::from(vec![9u8; 300]),
            1000,
        )
        .remove(0);
        let bytes = frame.encode_to_vec();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut b = bytes.clone();
            // Flip a few pseudo-random bytes, or truncate.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state as usize) % b.len();
            if state.is_multiple_of(4) {
                b.truncate(i);
            } else {
                b[i] ^= (state >> 32) as u8 | 1;
            }
            if let Ok(f) = Frame::decode(b.as_slice())
                && validate_frame(&f, &LIMITS).is_ok()
            {
                let _ = Reassembly::default().push(f);
            }
        }
        // The untampered frame still decodes to itself.
        assert_eq!(Frame::decode(bytes.as_slice()).unwrap(), frame);
    }
}
