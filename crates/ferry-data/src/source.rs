//! Where a reader gets a data file's bytes: the one seam between Ferry's table readers and the
//! files on disk.
//!
//! Every reader in this crate (CSV tables, column selection, the id split, Parquet rows) and
//! those built on it (`ferry_feature::table::Table`, PSI's key reader, the node's statistics,
//! query services and downloads) opens its input through a [`Source`]: a path, for errors and
//! for opening, and an [`Opener`], which decides how the path is opened. [`Plain`] opens the
//! file as it is; a node that encrypts its files at rest passes the opener of its store
//! (`ferry_store::DataFiles`), which decrypts files that are encrypted and opens the others as
//! they are. This crate knows nothing about keys or ciphers: it only asks the opener.
//!
//! Writers take the same [`Source`] for their output ([`Source::create`]): the node's opener
//! seals what a job writes into its scratch directory, so a derived dataset is never in the
//! clear on disk when the node encrypts its files.
//!
//! A path (`&Path`, `PathBuf`, `&str`, anything `AsRef<Path>`) converts into a plain
//! [`Source`], so code that reads a user's own file reads it as before.

use crate::DataError;
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// A stream of a file's bytes.
pub type DataRead = Box<dyn Read + Send>;

/// A data file opened by an [`Opener`].
pub enum Opened {
    /// The file itself, as it is on disk (seekable: Parquet reads it in place).
    File(File),
    /// A stream of the file's plaintext that is not the file itself (decrypted as it is read;
    /// every error it returns names what went wrong, its reader adds the file).
    Stream(DataRead),
}

impl Opened {
    /// The bytes as one stream.
    pub fn into_read(self) -> DataRead {
        match self {
            Opened::File(f) => Box::new(f),
            Opened::Stream(s) => s,
        }
    }
}

/// A new file being written (see [`Opener::create`]).
pub trait DataWrite: Write + Send {
    /// Writes what is pending (for a sealed file, its final record). A file not finished is
    /// incomplete.
    fn finish(self: Box<Self>) -> std::io::Result<()>;
}

impl DataWrite for BufWriter<File> {
    fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        self.flush()
    }
}

/// How the files of a [`Source`] are opened and created.
pub trait Opener: Send + Sync + std::fmt::Debug {
    /// Opens `path` for reading from its start. Errors name `path`.
    fn open(&self, path: &Path) -> Result<Opened, DataError>;

    /// Creates (or truncates) `path` for writing. Errors name `path`. The default writes the
    /// file as it is.
    fn create(&self, path: &Path) -> Result<Box<dyn DataWrite>, DataError> {
        let file = File::create(path).map_err(|e| DataError::Write {
            file: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Box::new(BufWriter::with_capacity(1 << 16, file)))
    }
}

/// Opens files as they are on disk.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

/// The [`Plain`] opener, for [`Source`]s made from a path.
pub static PLAIN: Plain = Plain;

impl Opener for Plain {
    fn open(&self, path: &Path) -> Result<Opened, DataError> {
        File::open(path)
            .map(Opened::File)
            .map_err(|e| DataError::Open {
                file: path.to_path_buf(),
                reason: e.to_string(),
            })
    }
}

/// A shared [`Opener`] (plain unless said otherwise), for inputs that keep one, such as
/// `ferry_psi::PsiInput`.
pub fn plain_opener() -> std::sync::Arc<dyn Opener> {
    std::sync::Arc::new(Plain)
}

/// A data file to read: its path and how to open it.
#[derive(Clone, Debug)]
pub struct Source<'a> {
    path: Cow<'a, Path>,
    opener: &'a dyn Opener,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a Path, opener: &'a dyn Opener) -> Self {
        Source {
            path: Cow::Borrowed(path),
            opener,
        }
    }

    /// `path` opened as it is on disk.
    pub fn plain(path: &'a Path) -> Self {
        Source::new(path, &PLAIN)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn opener(&self) -> &'a dyn Opener {
        self.opener
    }

    pub fn file(&self) -> PathBuf {
        self.path.to_path_buf()
    }

    /// Opens the file (see [`Opener::open`]).
    pub fn open(&self) -> Result<Opened, DataError> {
        self.opener.open(&self.path)
    }

    /// Creates the file for writing (see [`Opener::create`]).
    pub fn create(&self) -> Result<Box<dyn DataWrite>, DataError> {
        self.opener.create(&self.path)
    }

    /// The file's bytes as one stream.
    pub fn stream(&self) -> Result<DataRead, DataError> {
        Ok(self.open()?.into_read())
    }

    /// The file's bytes for random access (Parquet): the file itself when it is stored as it
    /// is, otherwise its whole plaintext read into memory — an encrypted Parquet file of N
    /// bytes costs N bytes of memory (plus the rows being decoded) for as long as it is read,
    /// where a plain one is read in place.
    #[cfg(feature = "parquet")]
    pub fn random_access(&self) -> Result<RandomAccess, DataError> {
        match self.open()? {
            Opened::File(f) => Ok(RandomAccess::File(f)),
            Opened::Stream(mut s) => {
                let mut plain = Vec::new();
                s.read_to_end(&mut plain).map_err(|e| DataError::Open {
                    file: self.file(),
                    reason: e.to_string(),
                })?;
                Ok(RandomAccess::Bytes(bytes::Bytes::from(plain)))
            }
        }
    }
}

impl<'a, P: AsRef<Path> + ?Sized> From<&'a P> for Source<'a> {
    fn from(path: &'a P) -> Self {
        Source::plain(path.as_ref())
    }
}

impl From<PathBuf> for Source<'static> {
    fn from(path: PathBuf) -> Self {
        Source {
            path: Cow::Owned(path),
            opener: &PLAIN,
        }
    }
}

impl From<String> for Source<'static> {
    fn from(path: String) -> Self {
        PathBuf::from(path).into()
    }
}

/// A file's bytes for random access (see [`Source::random_access`]).
#[cfg(feature = "parquet")]
pub enum RandomAccess {
    File(File),
    Bytes(bytes::Bytes),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// An opener that serves every path from memory, as an encrypting store does.
    #[derive(Debug)]
    struct Memory(Vec<u8>);

    impl Opener for Memory {
        fn open(&self, _path: &Path) -> Result<Opened, DataError> {
            Ok(Opened::Stream(Box::new(Cursor::new(self.0.clone()))))
        }
    }

    #[test]
    fn readers_read_what_the_opener_gives_and_plain_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "id,x\n1,2\n").unwrap();
        let spec = crate::DatasetSpec::default();
        assert_eq!(crate::Dataset::read_csv(&p, &spec).unwrap().ids, ["1"]);
        let other = Memory(b"id,x\n7,8\n9,10\n".to_vec());
        let d = crate::Dataset::read_csv(Source::new(&p, &other), &spec).unwrap();
        assert_eq!(d.ids, ["7", "9"]);
        let missing = dir.path().join("gone.csv");
        let e = crate::Dataset::read_csv(&missing, &spec).unwrap_err();
        assert!(e.to_string().contains("gone.csv: cannot open"), "{e}");
    }
}
