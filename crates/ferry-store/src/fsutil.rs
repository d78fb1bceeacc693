//! Atomic file writes: write a temporary file in the destination directory, fsync it, rename
//! it over the final name, fsync the directory. A crash leaves either no file or the whole
//! file under the final name, never a partial one; leftovers carry a `.partial` suffix and a
//! leading dot, and the orphan sweep removes them.

use crate::{StoreError, hex};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub(crate) const PARTIAL_SUFFIX: &str = ".partial";

/// `n` random bytes from the OS, as hex.
pub(crate) fn random_hex(n: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| StoreError::Key("the system random source failed".into()))?;
    Ok(hex(&buf))
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| StoreError::Key("the system random source failed".into()))?;
    Ok(buf)
}

pub(crate) fn create_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, "cannot create directory", e))
}

/// Makes a rename or removal inside `dir` durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, "cannot sync directory", e))
}

fn temp_name_for(dest: &Path) -> Result<PathBuf, StoreError> {
    let dir = dest.parent().ok_or_else(|| {
        StoreError::invalid(format!("{} has no parent directory", dest.display()))
    })?;
    let base = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(dir.join(format!(".{base}.{}{PARTIAL_SUFFIX}", random_hex(6)?)))
}

/// Streams the plaintext of `source` (read through `files`, so a sealed source is decrypted)
/// into `dest` atomically, sealed when `files` has a key; returns the byte count and SHA-256
/// (hex) of the plaintext.
pub(crate) fn copy_sealed(
    files: &crate::DataFiles,
    source: &Path,
    dest: &Path,
) -> Result<(u64, String), StoreError> {
    let mut input = ferry_data::Opener::open(files, source)?.into_read();
    write_atomic_with(dest, |out| {
        let mut out = files.writer(std::io::BufWriter::with_capacity(1 << 16, out))?;
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io(source, "cannot read", e)),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| StoreError::io(dest, "cannot write", e))?;
            total += n as u64;
        }
        out.finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .map_err(|e| StoreError::io(dest, "cannot write", e))?;
        Ok((total, hex(&hasher.finalize())))
    })
}

/// Writes `bytes` to `dest` atomically.
pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomic_with(dest, |out| {
        out.write_all(bytes)
            .map_err(|e| StoreError::io(dest, "cannot write", e))
    })
}

/// Writes `bytes` to `dest` atomically, the file readable and writable by its owner only
/// (set before any byte is written).
pub(crate) fn write_atomic_private(dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomic_with(dest, |out| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            out.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(|e| StoreError::io(dest, "cannot restrict permissions", e))?;
        }
        out.write_all(bytes)
            .map_err(|e| StoreError::io(dest, "cannot write", e))
    })
}

fn write_atomic_with<T>(
    dest: &Path,
    fill: impl FnOnce(&mut File) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let temp = temp_name_for(dest)?;
    let result = (|| {
        let mut out = File::create_new(&temp)
            .map_err(|e| StoreError::io(&temp, "cannot create temporary file", e))?;
        let value = fill(&mut out)?;
        out.sync_all()
            .map_err(|e| StoreError::io(&temp, "cannot sync", e))?;
        drop(out);
        fs::rename(&temp, dest).map_err(|e| StoreError::io(dest, "cannot move into place", e))?;
        Ok(value)
    })();
    match result {
        Ok(value) => {
            if let Some(dir) = dest.parent() {
                fsync_dir(dir)?;
            }
            Ok(value)
        }
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Size and SHA-256 (hex) of everything `input` yields (the plaintext of a file read
/// through the at-rest seam); errors name `path`.
pub(crate) fn hash_stream(path: &Path, mut input: impl Read) -> Result<(u64, String), StoreError> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::io(path, "cannot read", e)),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex(&hasher.finalize())))
}

/// A reader that hashes what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    pub(crate) bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads what is left, then returns the byte count and SHA-256 (hex) of everything read.
    pub(crate) fn finish(mut self) -> std::io::Result<(u64, String)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((self.bytes, hex(&self.hasher.finalize())))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Removes a file or directory tree that may already be gone.
pub(crate) fn remove_path(path: &Path) -> Result<(), StoreError> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                let _ = fsync_dir(dir);
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(path, "cannot remove", e)),
    }
}

/// Reads the secret kept as hex in `file`, or creates the file (mode 0600, written and synced
/// in full before it appears under its name) from `generate`'s value and bytes if absent.
/// An existing file is never replaced: the hard link that publishes it fails if the name
/// exists, so two processes starting at once both end up with the one key that won.
/// `what` names the secret in errors ("the SM2 key"); `parse` turns the file's bytes into the
/// secret, and `expected` says what the file should hold when it does not.
pub(crate) fn load_or_create_secret_hex<T>(
    file: &Path,
    what: &str,
    expected: &str,
    parse: impl Fn(&[u8]) -> Option<T>,
    generate: impl FnOnce() -> Result<(T, Vec<u8>), StoreError>,
) -> Result<T, StoreError> {
    let read = || -> Result<T, StoreError> {
        let text = fs::read_to_string(file)
            .map_err(|e| StoreError::io(file, &format!("cannot read {what}"), e))?;
        crate::unhex(text.trim())
            .and_then(|b| parse(&b))
            .ok_or_else(|| StoreError::Key(format!("{}: expected {expected}", file.display())))
    };
    if file.exists() {
        return read();
    }
    let (secret, bytes) = generate()?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staged = file.with_file_name(format!(".{name}.tmp"));
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options
            .open(&staged)
            .map_err(|e| StoreError::io(&staged, &format!("cannot create {what}"), e))?;
        f.write_all(format!("{}\n", hex(&bytes)).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| StoreError::io(&staged, &format!("cannot write {what}"), e))?;
    }
    match fs::hard_link(&staged, file) {
        Ok(()) => {
            let _ = fs::remove_file(&staged);
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(&staged);
            read()
        }
        Err(e) => Err(StoreError::io(file, &format!("cannot create {what}"), e)),
    }
}
