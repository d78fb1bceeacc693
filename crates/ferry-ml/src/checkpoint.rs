//! Checkpoints of long training: where an algorithm puts its state after every tree, epoch or
//! round, and where a resumed run reads it back.
//!
//! Algorithms know nothing about files or nodes: the caller hands them a [`CheckpointStore`]
//! (the node keeps one per job and party in the job's work directory; tests keep one in
//! memory). A checkpoint is identified by its *step*, the number of completed units of work
//! (trees for SecureBoost, epochs for LR, rounds for FedAvg), so that parties can agree on the
//! last step they all have. The bytes are the algorithm's own versioned format; a store only
//! keeps them.
//!
//! A stored checkpoint is untrusted input to the algorithm that reads it back (a file may be
//! truncated, damaged or from another job): every decoder checks its length, version and
//! consistency with the run it continues.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Why a checkpoint could not be stored or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint: {0}")]
pub struct CheckpointError(pub String);

/// Where one party's checkpoints of one training run live.
pub trait CheckpointStore: Send + Sync {
    /// Stores the state after `step` completed steps. A store may drop older steps, but keeps
    /// at least the two latest (parties can be one step apart when a run is interrupted).
    fn save(&self, step: u64, state: &[u8]) -> Result<(), CheckpointError>;
    /// The steps stored, ascending.
    fn steps(&self) -> Result<Vec<u64>, CheckpointError>;
    /// The state stored for `step`.
    fn load(&self, step: u64) -> Result<Vec<u8>, CheckpointError>;
}

/// What a training run does with checkpoints: save into one store, resume from another (a
/// resumed job saves into its own store and reads the interrupted job's).
#[derive(Clone, Copy, Default)]
pub struct Checkpoints<'a> {
    pub save: Option<&'a dyn CheckpointStore>,
    pub resume_from: Option<&'a dyn CheckpointStore>,
}

impl<'a> Checkpoints<'a> {
    /// No checkpoints: train from scratch and save nothing.
    pub const NONE: Checkpoints<'static> = Checkpoints {
        save: None,
        resume_from: None,
    };

    /// Saves `state` after `step` steps if a store was given.
    pub fn save(&self, step: u64, state: impl FnOnce() -> Vec<u8>) -> Result<(), CheckpointError> {
        match self.save {
            Some(store) => store.save(step, &state()),
            None => Ok(()),
        }
    }

    /// The latest step of the store to resume from (`None` when not resuming).
    pub fn resume_latest(&self) -> Result<Option<u64>, CheckpointError> {
        match self.resume_from {
            None => Ok(None),
            Some(store) => {
                let steps = store.steps()?;
                steps
                    .last()
                    .copied()
                    .map(Some)
                    .ok_or_else(|| CheckpointError("there is no checkpoint to resume from".into()))
            }
        }
    }
}

/// Checkpoints in memory, all steps kept (tests, benchmarks).
#[derive(Default)]
pub struct MemoryCheckpoints {
    states: Mutex<BTreeMap<u64, Vec<u8>>>,
}

impl MemoryCheckpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every step after `step`, as if the run had stopped there.
    pub fn truncate_after(&self, step: u64) {
        if let Ok(mut s) = self.states.lock() {
            s.retain(|&k, _| k <= step);
        }
    }
}

impl CheckpointStore for MemoryCheckpoints {
    fn save(&self, step: u64, state: &[u8]) -> Result<(), CheckpointError> {
        let mut s = self
            .states
            .lock()
            .map_err(|_| CheckpointError("store lock poisoned".into()))?;
        s.insert(step, state.to_vec());
        Ok(())
    }

    fn steps(&self) -> Result<Vec<u64>, CheckpointError> {
        let s = self
            .states
            .lock()
            .map_err(|_| CheckpointError("store lock poisoned".into()))?;
        Ok(s.keys().copied().collect())
    }

    fn load(&self, step: u64) -> Result<Vec<u8>, CheckpointError> {
        let s = self
            .states
            .lock()
            .map_err(|_| CheckpointError("store lock poisoned".into()))?;
        s.get(&step)
            .cloned()
            .ok_or_else(|| CheckpointError(format!("no checkpoint after step {step}")))
    }
}

/// A little-endian reader for checkpoint decoders: every read is bounds-checked, so a
/// truncated or damaged file is an error, never a panic.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        if self.bytes.len() < n {
            return Err(CheckpointError(format!(
                "truncated: {n} bytes needed, {} left",
                self.bytes.len()
            )));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub fn u64(&mut self) -> Result<u64, CheckpointError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// `count` f64 values; `count` comes from the file, so it is checked against the bytes
    /// left before anything is allocated.
    pub fn f64s(&mut self, count: u64) -> Result<Vec<f64>, CheckpointError> {
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(8))
            .ok_or_else(|| CheckpointError(format!("{count} values do not fit in memory")))?;
        let b = self.take(len)?;
        Ok(b.chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a)
            })
            .collect())
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], CheckpointError> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| CheckpointError(format!("length {n} too large")))?;
        self.take(n)
    }

    pub fn finish(&self) -> Result<(), CheckpointError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(CheckpointError(format!(
                "{} unexpected bytes at the end",
                self.bytes.len()
            )))
        }
    }
}

/// The writing half of [`Reader`].
#[derive(Default)]
pub struct Writer {
    pub out: Vec<u8>,
}

impl Writer {
    pub fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64s(&mut self, v: &[f64]) {
        self.out.reserve(v.len() * 8);
        for x in v {
            self.out.extend_from_slice(&x.to_le_bytes());
        }
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.out.extend_from_slice(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_refuse_truncated_and_oversized_input() {
        let mut w = Writer::default();
        w.u64(3);
        w.f64s(&[1.5, -0.0, f64::MIN_POSITIVE]);
        w.bytes(b"abc");
        let mut r = Reader::new(&w.out);
        let n = r.u64().unwrap();
        let v = r.f64s(n).unwrap();
        assert_eq!(
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            [1.5, -0.0, f64::MIN_POSITIVE].map(f64::to_bits)
        );
        assert_eq!(r.bytes().unwrap(), b"abc");
        r.finish().unwrap();
        // A count from a damaged file must not allocate or panic.
        let mut r = Reader::new(&w.out[..20]);
        assert!(r.f64s(u64::MAX).is_err());
        assert!(Reader::new(&w.out[..20]).f64s(3).is_err());
        let mut r = Reader::new(&w.out);
        r.u64().unwrap();
        assert!(r.finish().is_err());
    }

    #[test]
    fn memory_store_keeps_steps_and_resume_needs_one() {
        let m = MemoryCheckpoints::new();
        let c = Checkpoints {
            save: Some(&m),
            resume_from: Some(&m),
        };
        assert!(c.resume_latest().is_err());
        c.save(1, || vec![1]).unwrap();
        c.save(2, || vec![2]).unwrap();
        assert_eq!(c.resume_latest().unwrap(), Some(2));
        m.truncate_after(1);
        assert_eq!(m.steps().unwrap(), vec![1]);
        assert_eq!(m.load(1).unwrap(), vec![1]);
        assert!(m.load(2).is_err());
        assert_eq!(Checkpoints::NONE.resume_latest().unwrap(), None);
    }
}
