//! Fuzzes what a node does with bytes from a peer's stream: decode a sequence of frames,
//! validate each, reassemble messages. Must never panic, and never accept a message whose
//! length differs from what its frames declared.
#![no_main]

use ferry_transport::wire::{Frame, FrameLimits, Reassembly, validate_frame};
use libfuzzer_sys::fuzz_target;
use prost::Message;

const LIMITS: FrameLimits = FrameLimits { max_message_bytes: 1 << 20, max_chunk_bytes: 4096 };

fuzz_target!(|data: &[u8]| {
    let mut reassembly = Reassembly::default();
    // Split the input into length-prefixed frames (u16 little-endian length).
    let mut rest = data;
    while rest.len() >= 2 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        let take = len.min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let Ok(frame) = Frame::decode(chunk) else { continue };
        if validate_frame(&frame, &LIMITS).is_err() {
            reassembly.reset();
            continue;
        }
        let declared = frame.total_len;
        match reassembly.push(frame) {
            Ok(Some(msg)) => assert_eq!(msg.data.len() as u64, declared),
            Ok(None) => {}
            Err(_) => reassembly.reset(),
        }
    }
});
