//! The streaming core shared by every role: blind the own set chunk by chunk and send each
//! chunk at once, re-blind peers' chunks as they arrive, collect comparison keys.
//!
//! One receiver thread per peer drains that peer's stream into a channel as messages arrive,
//! so a transport that applies backpressure can never deadlock two parties that are both
//! sending, and the compute loop sees every chunk as soon as it exists. The compute loop
//! prefers re-blinding arrived chunks (a peer waits for them) unless a role says its own
//! chunks are more urgent (the n-party leader, whose set the helper is waiting for).

use crate::PsiError;
use crate::ids::IdList;
use crate::wire::{
    FromLeader, Key, Stream, TAG_RESULT, TAG_STREAM, chunk_count, chunk_range, element_bytes,
    elements_from_bytes, fold, keys_from_bytes,
};
use ferry_context::{Context, FederationError, PartyId};
use ferry_crypto::ecdh::EcdhGroup;
use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Peer-announced sizes are untrusted: buffers are reserved for at most this many elements up
/// front and grow past it only as elements actually arrive.
const MAX_RESERVE: u64 = 1 << 25;

/// How often a computing party tells the parties waiting for it that it is still at work:
/// often enough that no receive waits a whole session timeout.
pub(crate) fn heartbeat_interval(ctx: &Context) -> Duration {
    (ctx.config().timeout / 4).min(Duration::from_secs(20))
}

/// This party's own set: blinded in the order `order` (a fresh shuffle), sent to `to`.
pub(crate) struct OwnStream<'a> {
    pub ids: &'a IdList,
    /// Sent position → index into `ids`.
    pub order: &'a [u32],
    pub to: PartyId,
    pub chunk: u64,
    /// `to` sends every chunk back blinded with its key too (two-party receiver).
    pub returned: bool,
}

/// A peer's blinded set arriving as a stream.
pub(crate) struct Inbound {
    pub peer: PartyId,
    pub set_size: u64,
    pub chunk: u64,
    /// Send each re-blinded chunk back to the peer.
    pub send_back: bool,
    /// Keep the comparison keys of the re-blinded elements (in arrival order).
    pub keep_keys: bool,
}

/// Comparison keys arriving ready-made (the helper's keys of the leader's set).
pub(crate) struct KeysInbound {
    pub peer: PartyId,
    pub count: u64,
    pub chunk: u64,
}

pub(crate) struct Engine<'a> {
    pub own: Option<OwnStream<'a>>,
    pub inbound: Vec<Inbound>,
    pub keys: Option<KeysInbound>,
    /// Blind own chunks before re-blinding arrived ones.
    pub blind_first: bool,
    /// Parties waiting for this one's news on the result tag (the n-party leader's hosts);
    /// the parties expecting this one's stream hear from it on the stream tag anyway.
    pub notify_on_result: Vec<PartyId>,
}

#[derive(Default)]
pub(crate) struct EngineOutput {
    /// Keys of the own set blinded by both parties, by sent position (when `returned`).
    pub own_keys: Vec<Key>,
    /// Per inbound stream, keys of its elements re-blinded here, by the peer's sent position.
    pub inbound_keys: Vec<Vec<Key>>,
    /// The ready-made keys.
    pub keys: Vec<Key>,
}

type Incoming = (PartyId, Result<Stream, FederationError>);

/// Reads `count` stream messages from `peer` on a detached thread. If this party stops early,
/// the thread ends at its next message (the channel is closed) or when the peer stops.
fn spawn_receiver(
    ctx: &Context,
    peer: PartyId,
    count: u64,
    tx: mpsc::Sender<Incoming>,
) -> Result<(), PsiError> {
    let ctx = ctx.clone();
    std::thread::Builder::new()
        .name(format!("psi-recv-{peer}"))
        .spawn(move || {
            let mut chunks = 0;
            while chunks < count {
                let received = ctx.recv::<Stream>(&peer, TAG_STREAM);
                if matches!(received, Ok(Stream::Working)) {
                    continue;
                }
                chunks += 1;
                let failed = received.is_err();
                if tx.send((peer.clone(), received)).is_err() || failed {
                    break;
                }
            }
        })
        .map_err(|e| PsiError::Config(format!("cannot start a receiver thread: {e}")))?;
    Ok(())
}

struct State {
    next_blind: u64,
    own_chunks: u64,
    own_returned: u64,
    inbound_got: Vec<u64>,
    keys_got: u64,
    pending: VecDeque<(usize, u32, Vec<u8>)>,
    ops_done: u64,
}

impl Engine<'_> {
    pub fn run<G: EcdhGroup>(&self, ctx: &Context, key: &G::Key) -> Result<EngineOutput, PsiError> {
        let own_n = self.own.as_ref().map_or(0, |o| o.order.len() as u64);
        let own_chunks = self.own.as_ref().map_or(0, |o| chunk_count(own_n, o.chunk));
        let total_ops = own_n + self.inbound.iter().map(|i| i.set_size).sum::<u64>();

        let mut expected: Vec<(PartyId, u64)> = Vec::new();
        let mut expect = |peer: &PartyId, n: u64| match expected.iter_mut().find(|(p, _)| p == peer)
        {
            Some((_, c)) => *c += n,
            None => expected.push((peer.clone(), n)),
        };
        if let Some(o) = &self.own
            && o.returned
        {
            expect(&o.to, own_chunks);
        }
        for i in &self.inbound {
            expect(&i.peer, chunk_count(i.set_size, i.chunk));
        }
        if let Some(k) = &self.keys {
            expect(&k.peer, chunk_count(k.count, k.chunk));
        }
        let (tx, rx) = mpsc::channel::<Incoming>();
        for (peer, count) in expected {
            if count > 0 {
                spawn_receiver(ctx, peer, count, tx.clone())?;
            }
        }
        drop(tx);

        let mut out = EngineOutput {
            own_keys: match &self.own {
                Some(o) if o.returned => vec![(0, 0); own_n as usize],
                _ => Vec::new(),
            },
            inbound_keys: self
                .inbound
                .iter()
                .map(|i| {
                    let reserve = if i.keep_keys {
                        i.set_size.min(MAX_RESERVE)
                    } else {
                        0
                    };
                    Vec::with_capacity(reserve as usize)
                })
                .collect(),
            keys: Vec::with_capacity(self.keys.as_ref().map_or(0, |k| k.count as usize)),
        };
        let mut st = State {
            next_blind: 0,
            own_chunks,
            own_returned: 0,
            inbound_got: vec![0; self.inbound.len()],
            keys_got: 0,
            pending: VecDeque::new(),
            ops_done: 0,
        };

        let mut stream_waiters: Vec<&PartyId> = self.own.iter().map(|o| &o.to).collect();
        for i in self.inbound.iter().filter(|i| i.send_back) {
            if !stream_waiters.contains(&&i.peer) {
                stream_waiters.push(&i.peer);
            }
        }
        let every = heartbeat_interval(ctx);
        let mut last_beat = Instant::now();
        loop {
            ctx.check_cancelled()?;
            if last_beat.elapsed() >= every {
                for p in &stream_waiters {
                    ctx.send(p, TAG_STREAM, &Stream::Working)?;
                }
                for p in &self.notify_on_result {
                    ctx.send(p, TAG_RESULT, &FromLeader::Working)?;
                }
                last_beat = Instant::now();
            }
            while let Ok(incoming) = rx.try_recv() {
                self.accept::<G>(incoming, &mut st, &mut out)?;
            }
            let can_blind = st.next_blind < st.own_chunks;
            let can_reblind = !st.pending.is_empty();
            if can_blind && (self.blind_first || !can_reblind) {
                self.blind_next::<G>(ctx, key, &mut st)?;
            } else if can_reblind {
                self.reblind_next::<G>(ctx, key, &mut st, &mut out)?;
            } else if self.finished(&st) {
                break;
            } else {
                // Wait with a deadline, so the heartbeats go on while this party waits too
                // (a host may be waiting for the leader that waits for the helper).
                let wait = every.saturating_sub(last_beat.elapsed());
                match rx.recv_timeout(wait) {
                    Ok(incoming) => self.accept::<G>(incoming, &mut st, &mut out)?,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(PsiError::Config(
                            "a PSI receiver thread stopped unexpectedly".into(),
                        ));
                    }
                }
                continue;
            }
            if total_ops > 0 {
                ctx.progress(
                    st.ops_done as f64 / total_ops as f64,
                    "PSI: blinding and exchanging identifiers",
                );
            }
        }
        Ok(out)
    }

    fn finished(&self, st: &State) -> bool {
        let own_done = match &self.own {
            Some(o) => {
                st.next_blind == st.own_chunks && (!o.returned || st.own_returned == st.own_chunks)
            }
            None => true,
        };
        let inbound_done = self
            .inbound
            .iter()
            .zip(&st.inbound_got)
            .all(|(i, got)| *got == chunk_count(i.set_size, i.chunk));
        let keys_done = self
            .keys
            .as_ref()
            .is_none_or(|k| st.keys_got == chunk_count(k.count, k.chunk));
        own_done && inbound_done && keys_done && st.pending.is_empty()
    }

    fn blind_next<G: EcdhGroup>(
        &self,
        ctx: &Context,
        key: &G::Key,
        st: &mut State,
    ) -> Result<(), PsiError> {
        let own = self
            .own
            .as_ref()
            .expect("blind_next runs only with an own set");
        let n = own.order.len() as u64;
        let range = chunk_range(st.next_blind, n, own.chunk);
        let batch: Vec<&[u8]> = own.order[range]
            .iter()
            .map(|&i| own.ids.get(i as usize))
            .collect();
        let blinded = G::blind_many(key, &batch);
        ctx.send(
            &own.to,
            TAG_STREAM,
            &Stream::Blinded {
                chunk: st.next_blind as u32,
                elements: element_bytes::<G>(&blinded),
            },
        )?;
        st.next_blind += 1;
        st.ops_done += batch.len() as u64;
        Ok(())
    }

    fn reblind_next<G: EcdhGroup>(
        &self,
        ctx: &Context,
        key: &G::Key,
        st: &mut State,
        out: &mut EngineOutput,
    ) -> Result<(), PsiError> {
        let (slot, chunk, bytes) = st.pending.pop_front().expect("checked non-empty");
        let inbound = &self.inbound[slot];
        let range = chunk_range(chunk as u64, inbound.set_size, inbound.chunk);
        let what = format!("blinded chunk {chunk}");
        let elements = elements_from_bytes::<G>(&inbound.peer, &what, &bytes, range.len())?;
        drop(bytes);
        let reblinded = G::reblind_many(key, &elements).map_err(|e| {
            PsiError::protocol(
                &inbound.peer,
                format!(
                    "{what}: element {} is not a valid {} element ({})",
                    e.index, e.group, e.reason
                ),
            )
        })?;
        if inbound.send_back {
            ctx.send(
                &inbound.peer,
                TAG_STREAM,
                &Stream::Reblinded {
                    chunk,
                    elements: element_bytes::<G>(&reblinded),
                },
            )?;
        }
        if inbound.keep_keys {
            out.inbound_keys[slot].extend(reblinded.iter().map(|e| fold(e.as_ref())));
        }
        st.ops_done += reblinded.len() as u64;
        Ok(())
    }

    /// Checks an arrived message against what this role expects and files it.
    fn accept<G: EcdhGroup>(
        &self,
        (peer, received): Incoming,
        st: &mut State,
        out: &mut EngineOutput,
    ) -> Result<(), PsiError> {
        let message = received?;
        let unexpected = |what: &str| {
            Err(PsiError::protocol(
                &peer,
                format!("unexpected {what} in this role of the protocol"),
            ))
        };
        match message {
            Stream::Blinded { chunk, elements } => {
                let Some(slot) = self.inbound.iter().position(|i| i.peer == peer) else {
                    return unexpected("blinded chunk");
                };
                let inbound = &self.inbound[slot];
                let expected = st.inbound_got[slot];
                if chunk as u64 != expected
                    || expected >= chunk_count(inbound.set_size, inbound.chunk)
                {
                    return Err(PsiError::protocol(
                        &peer,
                        format!("blinded chunk {chunk} arrived where chunk {expected} was due"),
                    ));
                }
                st.inbound_got[slot] += 1;
                st.pending.push_back((slot, chunk, elements.0));
            }
            Stream::Reblinded { chunk, elements } => {
                let Some(own) = self.own.as_ref().filter(|o| o.returned && o.to == peer) else {
                    return unexpected("re-blinded chunk");
                };
                let expected = st.own_returned;
                if chunk as u64 != expected || expected >= st.next_blind {
                    return Err(PsiError::protocol(
                        &peer,
                        format!("re-blinded chunk {chunk} arrived where chunk {expected} was due"),
                    ));
                }
                let range = chunk_range(chunk as u64, own.order.len() as u64, own.chunk);
                let what = format!("re-blinded chunk {chunk}");
                let elements = elements_from_bytes::<G>(&peer, &what, &elements.0, range.len())?;
                for (slot, e) in out.own_keys[range].iter_mut().zip(&elements) {
                    *slot = fold(e.as_ref());
                }
                st.own_returned += 1;
            }
            Stream::Keys { chunk, keys } => {
                let Some(k) = self.keys.as_ref().filter(|k| k.peer == peer) else {
                    return unexpected("comparison keys");
                };
                let expected = st.keys_got;
                if chunk as u64 != expected || expected >= chunk_count(k.count, k.chunk) {
                    return Err(PsiError::protocol(
                        &peer,
                        format!("key chunk {chunk} arrived where chunk {expected} was due"),
                    ));
                }
                let range = chunk_range(chunk as u64, k.count, k.chunk);
                let what = format!("key chunk {chunk}");
                out.keys
                    .extend(keys_from_bytes(&peer, &what, &keys.0, range.len())?);
                st.keys_got += 1;
            }
            // Filtered out by the receiver thread.
            Stream::Working => {}
        }
        Ok(())
    }
}
