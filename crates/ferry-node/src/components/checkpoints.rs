//! Checkpoints of a training task on disk: `jobs/<job id>/checkpoints/<task>/step-<n>.ckpt`
//! in the job's work directory, one file per step (tree, round or epoch), on every party.
//!
//! A file is `length (u64 LE) ‖ state ‖ checksum (u64 LE)`, written to a temporary file,
//! synced and renamed, with mode 0600 (it holds this party's model so far and, at the guest, a
//! score per row). Reading it back checks the file's size against the length it states (and a
//! ceiling) before reading, then the checksum: a torn, truncated or damaged file is an error,
//! never a state. The checksum (FNV-1a) detects damage, not tampering: whoever can write the
//! node's directory can change its database too; the state's own decoder checks its version,
//! shape and fingerprint on top. Only the latest [`KEEP`] steps are kept; parties are at most one step apart
//! when a run stops, so the step common to all is among them.

use ferry_ml::{CheckpointError, CheckpointStore};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Steps kept per task: two would do (parties are at most one step apart); one more covers a
/// file lost to a crash during its rename.
pub const KEEP: usize = 3;

/// Largest checkpoint read back: a guest's scores for 10⁸ rows × 10 classes are 8 GB; a
/// stated length beyond this is a damaged file, not a state.
pub const MAX_CHECKPOINT_BYTES: u64 = 16 << 30;

const SUFFIX: &str = ".ckpt";
/// Bytes of the length prefix and of the checksum.
const FRAME: u64 = 16;
const PREFIX: &str = "step-";

/// One task's checkpoints in a directory.
pub struct FileCheckpoints {
    dir: PathBuf,
}

fn err(msg: String) -> CheckpointError {
    CheckpointError(msg)
}

/// 64-bit FNV-1a.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl FileCheckpoints {
    /// The checkpoints of `task` in the work directory `job_dir` of a job.
    pub fn of_task(job_dir: &Path, task: &str) -> Self {
        FileCheckpoints {
            dir: job_dir.join("checkpoints").join(task),
        }
    }

    /// Removes every checkpoint of the task (once its model is stored, nothing resumes it).
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn path(&self, step: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{step}{SUFFIX}"))
    }
}

impl CheckpointStore for FileCheckpoints {
    fn save(&self, step: u64, state: &[u8]) -> Result<(), CheckpointError> {
        let io = |what: &str, e: std::io::Error| {
            err(format!("cannot {what} in {}: {e}", self.dir.display()))
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| io("create the directory", e))?;
        let tmp = self.dir.join(format!(".{PREFIX}{step}{SUFFIX}.tmp"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options
            .open(&tmp)
            .map_err(|e| io("write a checkpoint", e))?;
        f.write_all(&(state.len() as u64).to_le_bytes())
            .and_then(|()| f.write_all(state))
            .and_then(|()| f.write_all(&checksum(state).to_le_bytes()))
            .and_then(|()| f.sync_all())
            .map_err(|e| io("write a checkpoint", e))?;
        drop(f);
        std::fs::rename(&tmp, self.path(step)).map_err(|e| io("store a checkpoint", e))?;
        // Older steps are no longer needed; failing to remove one costs only space.
        let steps = self.steps()?;
        if steps.len() > KEEP {
            for old in &steps[..steps.len() - KEEP] {
                let _ = std::fs::remove_file(self.path(*old));
            }
        }
        Ok(())
    }

    fn steps(&self) -> Result<Vec<u64>, CheckpointError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(format!("cannot list {}: {e}", self.dir.display()))),
        };
        let mut steps: Vec<u64> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix(PREFIX)?
                    .strip_suffix(SUFFIX)?
                    .parse::<u64>()
                    .ok()
            })
            .collect();
        steps.sort_unstable();
        Ok(steps)
    }

    fn load(&self, step: u64) -> Result<Vec<u8>, CheckpointError> {
        let path = self.path(step);
        let damaged = |why: String| err(format!("{} is damaged: {why}", path.display()));
        let mut f = std::fs::File::open(&path)
            .map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
        let size = f
            .metadata()
            .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?
            .len();
        let mut len = [0u8; 8];
        f.read_exact(&mut len)
            .map_err(|e| damaged(format!("no length ({e})")))?;
        let len = u64::from_le_bytes(len);
        if len > MAX_CHECKPOINT_BYTES || size != len + FRAME {
            return Err(damaged(format!(
                "it states {len} bytes of state but the file has {size} bytes"
            )));
        }
        let mut state = vec![0u8; len as usize];
        let mut sum = [0u8; 8];
        f.read_exact(&mut state)
            .and_then(|()| f.read_exact(&mut sum))
            .map_err(|e| damaged(format!("short read ({e})")))?;
        if checksum(&state) != u64::from_le_bytes(sum) {
            return Err(damaged("its checksum does not match".into()));
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_keep_the_latest_steps_and_refuse_damage() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCheckpoints::of_task(dir.path(), "fit");
        assert_eq!(c.steps().unwrap(), Vec::<u64>::new());
        for step in 1..=5u64 {
            c.save(step, &[step as u8; 100]).unwrap();
        }
        assert_eq!(c.steps().unwrap(), vec![3, 4, 5]);
        assert_eq!(c.load(5).unwrap(), vec![5u8; 100]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(c.path(5)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Truncated: the size no longer matches the stated length.
        let bytes = std::fs::read(c.path(4)).unwrap();
        std::fs::write(c.path(4), &bytes[..bytes.len() - 1]).unwrap();
        assert!(c.load(4).unwrap_err().0.contains("file has"), "truncated");
        // Same size, one byte changed.
        let mut bytes = std::fs::read(c.path(3)).unwrap();
        bytes[20] ^= 1;
        std::fs::write(c.path(3), &bytes).unwrap();
        assert!(c.load(3).unwrap_err().0.contains("checksum"));
        // A huge stated length is refused before anything is allocated.
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend([0u8; 16]);
        std::fs::write(c.path(9), &huge).unwrap();
        assert!(c.load(9).unwrap_err().0.contains("states"));
        assert!(c.load(7).is_err());
        c.remove().unwrap();
        assert_eq!(c.steps().unwrap(), Vec::<u64>::new());
        c.remove().unwrap();
    }
}
