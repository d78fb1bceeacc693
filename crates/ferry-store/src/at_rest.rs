//! Encryption at rest of the node's files (`[crypto] encrypt_at_rest = true`): model files,
//! dataset files, query-service (PIR) tables and query results.
//!
//! [`DataFiles`] is the one seam through which the node writes and reads the data files it
//! owns. With a key set ([`Store::set_at_rest_key`]) every file written through it is an
//! SM4-GCM file ([`ferry_crypto::at_rest`]: 64 KiB authenticated records, a key per file);
//! without one, files are written as they are. Reading goes through the same seam: as a stream
//! ([`ferry_data::Opener`], which every table reader in `ferry-data`, `ferry-feature` and
//! `ferry-psi` takes through a [`ferry_data::Source`]; see [`Store::source`]) or, for Parquet,
//! which is read at random, as the whole plaintext in memory (`ferry_data::Source::
//! random_access`: an encrypted Parquet file costs its plaintext size in memory while it is
//! read; a plain one is read in place). Decryption (RustCrypto's `sm4`, software) runs at
//! about 92 MB/s on one core: a 38.6 MB Parquet file of 1,000,000 rows reads in 0.87 s
//! sealed against 0.45 s plain (all three columns), or 0.59 s against 0.17 s for one column,
//! which plain Parquet reads alone but a sealed file decrypts whole (release build, 2-core
//! x86-64 machine shared with other builds).
//!
//! * Files written before encryption was turned on stay readable as they are: a file is
//!   encrypted exactly when it starts with [`ferry_crypto::at_rest::MAGIC`].
//! * An encrypted file on a node without the key is an error naming the file and the key
//!   file; an altered, truncated or reordered one is an error naming the file and the record.
//! * Records keep the SHA-256 (and size) of the *plaintext*: a model's signature covers it,
//!   a dataset's statistics and query services check it, and a download sends it. A file
//!   swapped for another (encrypted or not) is still refused.
//! * What is written through the seam: a registered dataset's stored copy (uploads, imports
//!   from `[datasets] import_dirs` and every derived dataset — reader selections, PSI
//!   intersections, splits, feature engineering outputs, predictions — are all copies the
//!   store makes with [`Store::register_dataset`]), model payloads, query-service tables and
//!   query results ([`Store::write_private_data_file`]). The scratch files a component writes
//!   in its job's work directory before registering them go through the seam too
//!   (`ferry_data::Source::create`: the table writers and PSI's output take the store's
//!   opener), so they are sealed as well, and so is an upload in progress (the API writes it
//!   through [`DataFiles::writer`]). Not encrypted: training checkpoints, PSI key caches (see
//!   SECURITY.md).
//!
//! The key is 16 random bytes in `identity/at-rest.key` (hex, mode 0600), created once and
//! never overwritten ([`load_or_create_at_rest_key`]); a backup copies it with the identity,
//! and losing it loses every encrypted file.

use crate::{Store, StoreError};
use ferry_crypto::at_rest::{
    AtRestKey, DecryptingReader, EncryptingWriter, KEY_BYTES, MAGIC, is_encrypted,
};
use ferry_data::{DataError, DataWrite, Opened, Opener, Source};
use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};
use std::path::Path;

/// File of the node's at-rest key in its identity directory.
pub const AT_REST_KEY_FILE: &str = "at-rest.key";

/// Reads the at-rest key from `identity_dir`/[`AT_REST_KEY_FILE`], or creates it there (mode
/// 0600, written in full before it appears under its name, never replacing a key that is
/// already there) if absent.
pub fn load_or_create_at_rest_key(identity_dir: &Path) -> Result<AtRestKey, StoreError> {
    crate::fsutil::load_or_create_secret_hex(
        &identity_dir.join(AT_REST_KEY_FILE),
        "the at-rest key",
        &format!("{} hexadecimal digits of an SM4 key", 2 * KEY_BYTES),
        |b| {
            <[u8; KEY_BYTES]>::try_from(b)
                .ok()
                .map(AtRestKey::from_bytes)
        },
        || {
            let key = crate::fsutil::random_bytes::<KEY_BYTES>()?;
            Ok((AtRestKey::from_bytes(key), key.to_vec()))
        },
    )
}

/// Why an encrypted file cannot be read on a node without the key.
fn no_key_reason() -> String {
    format!(
        "the file is encrypted at rest (SM4-GCM) but this node has no key: restore \
         identity/{AT_REST_KEY_FILE} and set [crypto] encrypt_at_rest = true"
    )
}

/// A generator for one file's salt, seeded from the system random source.
fn file_rng() -> Result<rand_chacha::ChaCha20Rng, StoreError> {
    let seed = crate::fsutil::random_bytes::<32>()?;
    Ok(<rand_chacha::ChaCha20Rng as rand::SeedableRng>::from_seed(
        seed,
    ))
}

/// How the node writes and reads the data files it owns: sealed (SM4-GCM) under the at-rest
/// key when it has one, as they are otherwise; read back either way (see the module docs).
/// Cheap to clone; `Debug` never shows the key.
#[derive(Clone, Debug, Default)]
pub struct DataFiles {
    key: Option<AtRestKey>,
}

/// A file being written through [`DataFiles::writer`]: sealed record by record, or as is.
/// Call [`SealedWrite::finish`], which writes the final record (a sealed file without it is
/// refused as truncated).
pub enum SealedWrite<W: Write> {
    Plain(W),
    Sealed(Box<EncryptingWriter<W>>),
}

impl<W: Write> SealedWrite<W> {
    /// Writes what is pending and returns the inner writer (not synced).
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            SealedWrite::Plain(mut w) => {
                w.flush()?;
                Ok(w)
            }
            SealedWrite::Sealed(w) => {
                let mut inner = w.finish()?;
                inner.flush()?;
                Ok(inner)
            }
        }
    }
}

impl<W: Write + Send> DataWrite for SealedWrite<W> {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        SealedWrite::finish(*self).map(drop)
    }
}

impl<W: Write> Write for SealedWrite<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            SealedWrite::Plain(w) => w.write(buf),
            SealedWrite::Sealed(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            SealedWrite::Plain(w) => w.flush(),
            SealedWrite::Sealed(w) => w.flush(),
        }
    }
}

impl DataFiles {
    /// Files written as they are; encrypted files cannot be read.
    pub fn plain() -> Self {
        DataFiles { key: None }
    }

    /// Files sealed under `key`.
    pub fn with_key(key: AtRestKey) -> Self {
        DataFiles { key: Some(key) }
    }

    /// Whether files written through this seam are encrypted.
    pub fn encrypts(&self) -> bool {
        self.key.is_some()
    }

    /// `path` to read through this seam.
    pub fn source<'a>(&'a self, path: &'a Path) -> Source<'a> {
        Source::new(path, self)
    }

    /// Wraps `out`, the start of a new file, so that what is written to it is sealed (with a
    /// fresh salt) when this seam has a key, and passes as is otherwise.
    pub fn writer<W: Write>(&self, out: W) -> Result<SealedWrite<W>, StoreError> {
        Ok(match &self.key {
            None => SealedWrite::Plain(out),
            Some(key) => SealedWrite::Sealed(Box::new(
                EncryptingWriter::new(out, key, &mut file_rng()?)
                    .map_err(|e| StoreError::Key(format!("cannot start a sealed file: {e}")))?,
            )),
        })
    }

    /// `plain` as this seam writes it: sealed whole, or as is.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let Some(key) = &self.key else {
            return Ok(plain.to_vec());
        };
        Ok(ferry_crypto::at_rest::encrypt_bytes(
            key,
            plain,
            &mut file_rng()?,
        ))
    }

    /// The whole plaintext of the file at `path` (decrypted, each record authenticated, when it
    /// is encrypted). Errors name the file.
    pub fn read_plain(&self, path: &Path) -> Result<Vec<u8>, StoreError> {
        let mut plain = Vec::new();
        self.open(path)?
            .into_read()
            .read_to_end(&mut plain)
            .map_err(|e| StoreError::io(path, "cannot read", e))?;
        Ok(plain)
    }
}

impl Opener for DataFiles {
    /// The file itself when it does not start with [`MAGIC`]; otherwise a stream that
    /// authenticates and decrypts it record by record (an error naming the file when this node
    /// has no key).
    fn open(&self, path: &Path) -> Result<Opened, DataError> {
        let fail = |reason: String| DataError::Open {
            file: path.to_path_buf(),
            reason,
        };
        let mut file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let mut head = [0u8; MAGIC.len()];
        let mut got = 0;
        while got < head.len() {
            match file.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        file.rewind().map_err(|e| fail(e.to_string()))?;
        if !is_encrypted(&head[..got]) {
            return Ok(Opened::File(file));
        }
        let Some(key) = &self.key else {
            return Err(fail(no_key_reason()));
        };
        let reader = DecryptingReader::new(BufReader::with_capacity(1 << 16, file), key)
            .map_err(|e| fail(format!("cannot decrypt: {e}")))?;
        Ok(Opened::Stream(Box::new(reader)))
    }

    /// A new file, sealed when this seam has a key (a job's scratch output, which the store
    /// copies when it registers it).
    fn create(&self, path: &Path) -> Result<Box<dyn DataWrite>, DataError> {
        let fail = |reason: String| DataError::Write {
            file: path.to_path_buf(),
            reason,
        };
        let file = File::create(path).map_err(|e| fail(e.to_string()))?;
        let out = self
            .writer(std::io::BufWriter::with_capacity(1 << 16, file))
            .map_err(|e| fail(e.to_string()))?;
        Ok(Box::new(out))
    }
}

impl Store {
    /// Encrypts the files written from now on with `key` (SM4-GCM), and decrypts encrypted
    /// ones when they are read.
    pub fn set_at_rest_key(&mut self, key: AtRestKey) {
        self.files = DataFiles::with_key(key);
    }

    /// Whether this store encrypts the files it writes.
    pub fn encrypts_at_rest(&self) -> bool {
        self.files.encrypts()
    }

    /// The seam through which this store's data files are written and read.
    pub fn data_files(&self) -> &DataFiles {
        &self.files
    }

    /// A file of this node (a dataset's stored copy, a derived dataset) to read with the
    /// table readers: decrypted as it is read when it is encrypted.
    pub fn source<'a>(&'a self, path: &'a Path) -> Source<'a> {
        self.files.source(path)
    }

    /// `plain` as this store writes it: SM4-GCM encrypted under the at-rest key, or as is.
    pub(crate) fn seal_for_disk(&self, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.files.seal(plain)
    }

    /// The plaintext of the file at `path`: decrypted (each record authenticated) when it is
    /// encrypted, as is otherwise. Errors name the file.
    pub fn read_file_plain(&self, path: &Path) -> Result<Vec<u8>, StoreError> {
        self.files.read_plain(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelLineage, ModelSigner, StoreModel};

    fn model(payload: &[u8]) -> StoreModel {
        StoreModel {
            name: "scorecard".into(),
            kind: "hetero_lr".into(),
            role: "guest".into(),
            payload: payload.to_vec(),
            lineage: ModelLineage {
                job_id: "job-1".into(),
                task: "train".into(),
                datasets: vec!["loans".into()],
                params: serde_json::json!({}),
            },
            metrics: serde_json::json!({}),
        }
    }

    #[test]
    fn model_files_are_encrypted_read_back_and_checked_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let signer = ModelSigner::generate().unwrap();
        let open = |key: Option<AtRestKey>| open_store(tmp.path(), &signer, key);
        // A model stored before encryption was turned on stays readable after.
        let plain_store = open(None);
        let old = plain_store
            .store_model(model(b"weights in the clear"))
            .unwrap();
        drop(plain_store);
        let key = load_or_create_at_rest_key(&tmp.path().join("state")).unwrap();
        let store = open(Some(key.clone()));
        assert!(store.encrypts_at_rest());
        // Across a record boundary, so that more than one record is checked.
        let payload: Vec<u8> = b"{\"weights\": [0.25, -1.5]}"
            .iter()
            .cycle()
            .take(ferry_crypto::at_rest::RECORD_BYTES + 100)
            .copied()
            .collect();
        let rec = store.store_model(model(&payload)).unwrap();
        let on_disk = std::fs::read(&rec.path).unwrap();
        assert!(ferry_crypto::at_rest::is_encrypted(&on_disk));
        assert!(!on_disk.windows(9).any(|w| w == b"\"weights\""));
        assert_eq!(
            store.load_model("scorecard", Some(rec.version)).unwrap().1,
            payload
        );
        assert_eq!(
            store.load_model("scorecard", Some(old.version)).unwrap().1,
            b"weights in the clear"
        );
        // A flipped bit in the second record: refused, naming the file and the record.
        let mut altered = on_disk.clone();
        let last = altered.len() - 30;
        altered[last] ^= 1;
        std::fs::write(&rec.path, &altered).unwrap();
        let e = store
            .load_model("scorecard", Some(rec.version))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&rec.path.display().to_string()) && e.contains("record 1: SM4-GCM"),
            "{e}"
        );
        // Cut after the first record.
        let cut = ferry_crypto::at_rest::HEADER_BYTES
            + ferry_crypto::at_rest::RECORD_BYTES
            + ferry_crypto::at_rest::TAG_BYTES;
        std::fs::write(&rec.path, &on_disk[..cut]).unwrap();
        let e = store
            .load_model("scorecard", Some(rec.version))
            .unwrap_err()
            .to_string();
        assert!(e.contains("record 0: SM4-GCM authentication failed"), "{e}");
        // Without the key, the node says which key file is missing.
        std::fs::write(&rec.path, &on_disk).unwrap();
        drop(store);
        let e = open(None)
            .load_model("scorecard", Some(rec.version))
            .unwrap_err()
            .to_string();
        assert!(e.contains(AT_REST_KEY_FILE) && e.contains("no key"), "{e}");
    }

    /// A Parquet file with ids `cust-<i>` (string) and `x` (double) for `rows` rows.
    fn write_parquet(path: &Path, rows: usize) {
        use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use parquet::schema::parser::parse_message_type;
        use std::sync::Arc;
        let schema = Arc::new(
            parse_message_type("message t { required binary id (UTF8); required double x; }")
                .unwrap(),
        );
        let props = Arc::new(WriterProperties::builder().build());
        let file = std::fs::File::create(path).unwrap();
        let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
        let mut rg = w.next_row_group().unwrap();
        let ids: Vec<ByteArray> = (0..rows)
            .map(|i| ByteArray::from(format!("cust-{i:06}").as_str()))
            .collect();
        let mut col = rg.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&ids, None, None)
            .unwrap();
        col.close().unwrap();
        let xs: Vec<f64> = (0..rows).map(|i| i as f64 * 0.5).collect();
        let mut col = rg.next_column().unwrap().unwrap();
        col.typed::<DoubleType>()
            .write_batch(&xs, None, None)
            .unwrap();
        col.close().unwrap();
        rg.close().unwrap();
        w.close().unwrap();
    }

    fn parquet_rows(src: Source<'_>) -> Result<Vec<Vec<Option<String>>>, DataError> {
        let mut reader = ferry_data::parquet::ParquetRows::open(src)?;
        let mut cells = Vec::new();
        let mut rows = Vec::new();
        while reader.next_row(&mut cells)? {
            rows.push(cells.clone());
        }
        Ok(rows)
    }

    /// The store under `root`, with `key` as its at-rest key when given.
    fn open_store(root: &std::path::Path, signer: &ModelSigner, key: Option<AtRestKey>) -> Store {
        let mut store =
            Store::open(&root.join("state"), &root.join("data"), signer.clone()).unwrap();
        if let Some(k) = key {
            store.set_at_rest_key(k);
        }
        store
    }

    #[test]
    fn dataset_files_are_sealed_read_back_and_checked_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let signer = ModelSigner::generate().unwrap();
        let open = |key: Option<AtRestKey>| open_store(tmp.path(), &signer, key);
        let inputs = tmp.path().join("inputs");
        std::fs::create_dir_all(&inputs).unwrap();
        // Over two records, so that the stream crosses a record boundary.
        let mut csv_text = String::from("id,x,y\n");
        for i in 0..4000 {
            csv_text.push_str(&format!("cust-{i:06},{}.25,{}\n", i % 97, i % 2));
        }
        assert!(csv_text.len() > ferry_crypto::at_rest::RECORD_BYTES);
        let csv_path = inputs.join("loans.csv");
        std::fs::write(&csv_path, &csv_text).unwrap();
        let pq_path = inputs.join("clients.parquet");
        write_parquet(&pq_path, 3000);
        let spec = ferry_data::DatasetSpec::with_label("y", ferry_data::LabelKind::Binary);
        let expected_csv = ferry_data::Dataset::read_csv(&csv_path, &spec).unwrap();
        let expected_pq = parquet_rows(Source::plain(&pq_path)).unwrap();

        // Registered before encryption was turned on: plaintext, and readable after.
        let plain_store = open(None);
        let old = plain_store
            .register_dataset(crate::RegisterDataset::new("old", &csv_path))
            .unwrap();
        drop(plain_store);
        assert_eq!(std::fs::read(&old.path).unwrap(), csv_text.as_bytes());

        let key = load_or_create_at_rest_key(&tmp.path().join("state")).unwrap();
        let store = open(Some(key));
        let mut req = crate::RegisterDataset::new("loans", &csv_path);
        req.label = Some("y".into());
        req.label_kind = crate::LabelKind::Binary;
        let csv_rec = store.register_dataset(req).unwrap();
        let pq_rec = store
            .register_dataset(crate::RegisterDataset::new("clients", &pq_path))
            .unwrap();
        assert_eq!(pq_rec.format, crate::DataFormat::Parquet);
        assert_eq!((csv_rec.rows, pq_rec.rows), (4000, 3000));
        // The record keeps the size and SHA-256 of the plaintext.
        assert_eq!(csv_rec.sha256, crate::sha256_hex(csv_text.as_bytes()));
        assert_eq!(csv_rec.bytes, csv_text.len() as u64);
        assert_eq!(
            pq_rec.sha256,
            crate::sha256_hex(&std::fs::read(&pq_path).unwrap())
        );
        // On disk: sealed, no row in the clear.
        for rec in [&csv_rec, &pq_rec] {
            let on_disk = std::fs::read(&rec.path).unwrap();
            assert!(is_encrypted(&on_disk), "{}", rec.path.display());
            assert!(!on_disk.windows(11).any(|w| w == b"cust-000042"));
        }
        // A job's scratch output written through the seam is sealed, reads back, and registers
        // (the store's copy decrypts it and seals its own).
        let scratch = tmp.path().join("scratch.csv");
        expected_csv.write_csv(store.source(&scratch)).unwrap();
        let sealed_scratch = std::fs::read(&scratch).unwrap();
        assert!(is_encrypted(&sealed_scratch));
        assert!(!sealed_scratch.windows(11).any(|w| w == b"cust-000042"));
        let mut req = crate::RegisterDataset::new("derived", &scratch);
        req.label = Some("y".into());
        let derived = store.register_dataset(req).unwrap();
        assert_eq!(derived.rows, 4000);
        assert_eq!(
            ferry_data::Dataset::read_csv(store.source(&derived.path), &spec).unwrap(),
            expected_csv
        );
        // Read back equal through the seam, the statistics check the plaintext's hash.
        let got = ferry_data::Dataset::read_csv(store.source(&csv_rec.path), &spec).unwrap();
        assert_eq!(got, expected_csv);
        assert_eq!(
            parquet_rows(store.source(&pq_rec.path)).unwrap(),
            expected_pq
        );
        assert_eq!(store.describe_dataset("loans").unwrap().rows, 4000);
        assert_eq!(store.describe_dataset("clients").unwrap().rows, 3000);
        let old_read = ferry_data::Dataset::read_csv(
            store.source(&old.path),
            &ferry_data::DatasetSpec::default(),
        )
        .unwrap();
        assert_eq!(old_read.ids, expected_csv.ids);
        assert_eq!(store.describe_dataset("old").unwrap().rows, 4000);

        // Query tables and results (written whole, read whole) are sealed as well.
        let result = store
            .write_private_data_file("queries/q1.csv", b"id,found\ncust-000042,true\n")
            .unwrap();
        let on_disk = std::fs::read(&result).unwrap();
        assert!(is_encrypted(&on_disk));
        assert!(!on_disk.windows(11).any(|w| w == b"cust-000042"));
        assert_eq!(
            store.read_file_plain(&result).unwrap(),
            b"id,found\ncust-000042,true\n"
        );

        // A flipped byte in the second record: refused, naming the file.
        for rec in [&csv_rec, &pq_rec] {
            let mut altered = std::fs::read(&rec.path).unwrap();
            let at = altered.len() - 40;
            altered[at] ^= 1;
            std::fs::write(&rec.path, &altered).unwrap();
        }
        let e = ferry_data::Dataset::read_csv(store.source(&csv_rec.path), &spec)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&csv_rec.path.display().to_string())
                && e.contains("SM4-GCM authentication failed"),
            "{e}"
        );
        let e = parquet_rows(store.source(&pq_rec.path))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&pq_rec.path.display().to_string())
                && e.contains("SM4-GCM authentication failed"),
            "{e}"
        );
        // Without the key: the error names the file and the key file.
        drop(store);
        let e = ferry_data::Dataset::read_csv(open(None).source(&csv_rec.path), &spec)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&csv_rec.path.display().to_string()) && e.contains(AT_REST_KEY_FILE),
            "{e}"
        );
    }

    #[test]
    fn the_key_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_at_rest_key(dir.path()).unwrap();
        let again = load_or_create_at_rest_key(dir.path()).unwrap();
        assert_eq!(first.to_bytes(), again.to_bytes());
        let file = dir.path().join(AT_REST_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(&file, "short").unwrap();
        let e = load_or_create_at_rest_key(dir.path()).unwrap_err();
        assert!(e.to_string().contains("32 hexadecimal digits"), "{e}");
    }
}
