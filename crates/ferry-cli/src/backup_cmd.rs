//! `ferry backup` and `ferry restore`: a node's whole state — configuration, identity (key
//! kept 0600), pinned partners, the database, datasets, models and query tables — as a
//! directory with a manifest of every file's size and SHA-256.
//!
//! The database is copied as one consistent snapshot (`VACUUM INTO`), so a backup may be taken
//! while the node runs; the files are copied after it, so every file the snapshot records
//! existed before the snapshot (the store writes a file before recording it). A file the
//! running node deletes meanwhile is reported as missing at restore. `restore` checks every
//! file against the manifest before it writes anything, and writes into a new directory only.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Name of the manifest in a backup directory.
pub const MANIFEST: &str = "ferry-backup.json";
/// Version of the backup layout this build writes and reads.
pub const BACKUP_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BackupFile {
    /// Path relative to the node directory (and to the backup directory), `/`-separated.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    /// Mode 0600 when restored (private keys, tokens).
    pub private: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub party: String,
    pub created_at: String,
    pub ferry_version: String,
    pub files: Vec<BackupFile>,
}

/// Files that are never part of a backup: the live database and its write-ahead log (the
/// snapshot replaces them) and uploads cut off by a stop.
fn skipped(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.starts_with("ferry.db")
        || name.starts_with(".upload-")
        || name.ends_with(".tmp")
        || rel.starts_with("data/uploads/")
}

/// Whether a file holds a secret (restored with mode 0600 whatever its mode was): every file
/// of the identity directory but certificates (the TLS key, the SM2 key, the at-rest key),
/// and tokens.
fn is_private(rel: &str) -> bool {
    rel.starts_with("identity/") && !rel.ends_with("cert.pem") || rel.ends_with(".token")
}

fn sha256_of(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((total, hex))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            continue;
        }
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(root)
                .map_err(|_| anyhow::anyhow!("{} is outside {}", path.display(), root.display()))?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            if !skipped(&rel) {
                out.push(rel);
            }
        }
    }
    Ok(())
}

fn write_private(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// Backs up the node in `dir` into `out` (a new directory). Returns the manifest.
pub fn backup(dir: &Path, out: &Path) -> anyhow::Result<Manifest> {
    if out.exists() {
        bail!(
            "{} exists already: give a new directory for the backup",
            out.display()
        );
    }
    let (node, store) = crate::node_cmds::open_store(dir)?;
    let root = node.root().to_path_buf();
    if out.starts_with(&root) {
        bail!(
            "the backup cannot go inside the node directory {}",
            root.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    // The database first (see the module docs), then the files.
    let state_rel = node.config.state_dir.to_string_lossy().replace('\\', "/");
    let db_rel = format!("{state_rel}/{}", ferry_store::DB_FILE);
    let db_out = out.join(&db_rel);
    std::fs::create_dir_all(db_out.parent().unwrap_or(out))?;
    store.backup_database(&db_out)?;
    let mut rels = Vec::new();
    walk(&root, &root, &mut rels)?;
    rels.sort();
    let mut files = Vec::new();
    for rel in rels {
        let from = root.join(&rel);
        let to = out.join(&rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let private = is_private(&rel);
        match std::fs::read(&from) {
            Ok(bytes) => write_private(&to, &bytes, private)?,
            // Deleted by the running node since it was listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", from.display())),
        }
        let (bytes, sha256) = sha256_of(&to)?;
        files.push(BackupFile {
            path: rel,
            bytes,
            sha256,
            private,
        });
    }
    let (bytes, sha256) = sha256_of(&db_out)?;
    files.push(BackupFile {
        path: db_rel,
        bytes,
        sha256,
        private: false,
    });
    let manifest = Manifest {
        version: BACKUP_VERSION,
        party: node.config.party.clone(),
        created_at: ferry_store::time::now_utc(),
        ferry_version: env!("CARGO_PKG_VERSION").to_string(),
        files,
    };
    write_private(
        &out.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
        false,
    )?;
    // What was done is in the node's own log too.
    crate::node_cmds::record_cli_action(
        &store,
        "node.backup",
        format!("out={}; files={}", out.display(), manifest.files.len()),
    )?;
    Ok(manifest)
}

/// Restores the backup in `from` into `dir` (which must not exist or be empty). Every file is
/// checked against the manifest before anything is written.
pub fn restore(from: &Path, dir: &Path) -> anyhow::Result<Manifest> {
    let manifest_path = from.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("{} is not a Ferry backup (no {MANIFEST})", from.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a backup manifest", manifest_path.display()))?;
    if manifest.version != BACKUP_VERSION {
        bail!(
            "{}: backup layout version {} (this ferry reads version {BACKUP_VERSION})",
            manifest_path.display(),
            manifest.version
        );
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty: restore into a new directory (a node's state is never overwritten)",
            dir.display()
        );
    }
    // Check everything first: nothing is written from a backup that does not match.
    for f in &manifest.files {
        let rel = Path::new(&f.path);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            bail!(
                "{}: file path '{}' leaves the backup",
                manifest_path.display(),
                f.path
            );
        }
        let path = from.join(rel);
        let (bytes, sha256) = sha256_of(&path)
            .with_context(|| format!("the backup lacks {} (listed in the manifest)", f.path))?;
        if bytes != f.bytes || sha256 != f.sha256 {
            bail!(
                "{} does not match the manifest (SHA-256 {sha256}, expected {}): the backup was changed or damaged; nothing was restored",
                path.display(),
                f.sha256
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for f in &manifest.files {
        let to = dir.join(&f.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let bytes = std::fs::read(from.join(&f.path))?;
        write_private(&to, &bytes, f.private)?;
    }
    // The restored node must open: configuration, identity, database.
    let (_, store) = crate::node_cmds::open_store(dir)
        .with_context(|| format!("the restored node at {} does not open", dir.display()))?;
    crate::node_cmds::record_cli_action(
        &store,
        "node.restore",
        format!(
            "from={}; created_at={}",
            from.display(),
            manifest.created_at
        ),
    )?;
    Ok(manifest)
}

pub fn run_backup(dir: PathBuf, out: PathBuf) -> anyhow::Result<()> {
    let m = backup(&dir, &out)?;
    let total: u64 = m.files.iter().map(|f| f.bytes).sum();
    println!(
        "backed up node '{}' to {}: {} files, {} bytes (manifest {MANIFEST})",
        m.party,
        out.display(),
        m.files.len(),
        total
    );
    println!("the backup holds the node's private key: keep it as safe as the node itself");
    Ok(())
}

pub fn run_restore(from: PathBuf, dir: PathBuf) -> anyhow::Result<()> {
    let m = restore(&from, &dir)?;
    println!(
        "restored node '{}' (backup of {}) into {}: {} files checked against the manifest",
        m.party,
        m.created_at,
        dir.display(),
        m.files.len()
    );
    println!("start it with: ferry serve --dir {}", dir.display());
    println!("(run one copy of a node at a time: both would use the same identity)");
    Ok(())
}
