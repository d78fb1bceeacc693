//! Unbalanced PSI (`unbalanced-psi-2hdh`): a provider with a very large set, precomputed once
//! under a long-lived OPRF key, and a querier with a small set whose online cost grows with its
//! own set only. See the crate docs for the protocol, the parameters and what is revealed.
//!
//! * [`OprfKey`]: the provider's key file (0600), with a key id and a creation time;
//!   [`OprfKey::rotate`] replaces it, after which every filter built under the old key is
//!   refused by id.
//! * [`Filter`]: the sorted, truncated OPRF outputs of the provider's set. Built once
//!   ([`Filter::build`], [`preprocess_input`]), written to a file with a header, downloaded by
//!   queriers and parsed there as untrusted input ([`Filter::from_bytes`]).
//! * [`serve`] (provider) and [`query`] (querier): one online run over a
//!   [`ferry_context::Context`] with exactly two data parties.

use crate::ids::{IdList, first_occurrences};
use crate::input::{PsiInput, read_keys};
use crate::protocol::{IdIntersection, IdStats};
use crate::wire::{Bytes, chunk_count, chunk_range};
use crate::{MAX_CHUNK_SIZE, PsiError};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use ferry_context::{Context, PartyId, Role};
use ferry_crypto::ecdh::Ristretto255;
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const PROTOCOL_UNBALANCED: &str = "unbalanced-psi-2hdh";

/// Version of the filter file and of the online messages; both sides must agree.
pub const UNBALANCED_VERSION: u32 = 1;

/// A query element matches a provider tag by accident with probability at most 2^-σ.
pub const UNBALANCED_STATISTICAL_BITS: u32 = 40;

/// Largest provider set a filter may hold (2^33 ≈ 8.6e9 ids): a downloaded header announcing
/// more is refused before anything is allocated for it.
pub const MAX_FILTER_IDS: u64 = 1 << 33;

/// Default cap on the ids one querier may ask about in one run (see [`Provider::max_query`]).
pub const DEFAULT_MAX_QUERY: u64 = 1 << 20;

/// Default number of blinded points per online message.
pub const DEFAULT_QUERY_CHUNK: usize = 8192;

/// Bytes of filter per download message.
const FILTER_PART_BYTES: usize = 1 << 22;

const MAGIC: &[u8; 8] = b"FRYUPSI\0";
const OPRF_DST: &[u8] = b"ferry-psi/unbalanced/oprf/v1";
const KEY_FILE_FIRST_LINE: &str = "ferry-psi unbalanced OPRF key v1";
/// Longest dataset version label (bytes).
const MAX_VERSION_BYTES: usize = 256;

const TAG_HELLO: &str = "upsi-hello";
const TAG_GO: &str = "upsi-go";
const TAG_FILTER: &str = "upsi-filter";
const TAG_QUERY: &str = "upsi-query";
const TAG_ANSWER: &str = "upsi-answer";

/// Bits of a stored OPRF output for a set of `count` ids: `σ + ⌈log₂ count⌉`, rounded up to
/// whole bytes. A query element not in the set has a pseudo-random output, which equals one of
/// the `count` stored tags with probability at most `count · 2^-bits ≤ 2^-σ` (σ = 40).
/// 1e7 ids: 64 bits (8 bytes); 1e8: 67 → 72 bits; 1.3e9: 71 → 72 bits.
pub fn tag_bits(count: u64) -> u32 {
    let log2 = 64 - count.max(1).saturating_sub(1).leading_zeros();
    (UNBALANCED_STATISTICAL_BITS + log2).div_ceil(8) * 8
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_scalar() -> Scalar {
    let mut wide = [0u8; 64];
    loop {
        rand::rng().fill_bytes(&mut wide);
        let s = Scalar::from_bytes_mod_order_wide(&wide);
        if s != Scalar::ZERO {
            return s;
        }
    }
}

/// The provider's long-lived OPRF key `k`, with a random id that names it in filters and in
/// the online hello, and its creation time.
pub struct OprfKey {
    id: [u8; 16],
    created_unix: u64,
    scalar: Scalar,
}

impl std::fmt::Debug for OprfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the scalar.
        f.debug_struct("OprfKey")
            .field("id", &self.id_hex())
            .field("created_unix", &self.created_unix)
            .finish_non_exhaustive()
    }
}

impl OprfKey {
    fn fresh() -> Self {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        OprfKey {
            id,
            created_unix: now_unix(),
            scalar: random_scalar(),
        }
    }

    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }

    pub fn created_unix(&self) -> u64 {
        self.created_unix
    }

    fn to_text(&self) -> String {
        format!(
            "{KEY_FILE_FIRST_LINE}\nid {}\ncreated {}\nscalar {}\n",
            self.id_hex(),
            self.created_unix,
            hex(self.scalar.as_bytes())
        )
    }

    /// Reads the key in `file`.
    pub fn load(file: &Path) -> Result<Self, PsiError> {
        let err = |reason: String| PsiError::KeyCache {
            file: file.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(file).map_err(|e| err(format!("cannot read: {e}")))?;
        let bad = || {
            err(format!(
                "not an unbalanced-PSI OPRF key this program wrote (expected '{KEY_FILE_FIRST_LINE}', \
                 then 'id', 'created' and 'scalar' lines); restore it from a backup, or rotate \
                 the key (every filter must then be rebuilt)"
            ))
        };
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_FIRST_LINE) {
            return Err(bad());
        }
        let mut field = |name: &str| -> Result<String, PsiError> {
            let line = lines.next().ok_or_else(bad)?;
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(bad)
        };
        let id = unhex::<16>(&field("id")?).ok_or_else(bad)?;
        let created_unix = field("created")?.parse().map_err(|_| bad())?;
        let scalar_bytes = unhex::<32>(&field("scalar")?).ok_or_else(bad)?;
        let scalar: Option<Scalar> = Scalar::from_canonical_bytes(scalar_bytes).into();
        let scalar = scalar.filter(|s| *s != Scalar::ZERO).ok_or_else(bad)?;
        Ok(OprfKey {
            id,
            created_unix,
            scalar,
        })
    }

    /// Reads the key in `file`, or creates one there (mode 0600) if there is none. Creation is
    /// atomic (a private temporary file, synced, then hard-linked into place), so two runs
    /// starting at once end up with the same key.
    pub fn load_or_create(file: &Path) -> Result<Self, PsiError> {
        if file.exists() {
            return Self::load(file);
        }
        let staged = Self::stage(file, &Self::fresh())?;
        match std::fs::hard_link(staged.path(), file) {
            Ok(()) => Self::load(file),
            // Another run created the key first: use the one now in place.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(file),
            Err(e) => Err(PsiError::KeyCache {
                file: file.to_path_buf(),
                reason: format!("cannot create: {e}"),
            }),
        }
    }

    /// Replaces the key in `file` by a new one (a new id): filters built under the old key are
    /// refused from now on and must be rebuilt, and queriers download the new filter. The
    /// replacement is atomic (rename over the old file).
    pub fn rotate(file: &Path) -> Result<Self, PsiError> {
        let key = Self::fresh();
        let staged = Self::stage(file, &key)?;
        staged.persist(file).map_err(|e| PsiError::KeyCache {
            file: file.to_path_buf(),
            reason: format!("cannot replace the key: {}", e.error),
        })?;
        Ok(key)
    }

    fn stage(file: &Path, key: &OprfKey) -> Result<tempfile::NamedTempFile, PsiError> {
        let err = |reason: String| PsiError::KeyCache {
            file: file.to_path_buf(),
            reason,
        };
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // tempfile creates the file with mode 0600 on Unix.
        let mut staged = tempfile::Builder::new()
            .prefix(".upsi-key-")
            .tempfile_in(&dir)
            .map_err(|e| err(format!("cannot create a key in {}: {e}", dir.display())))?;
        staged
            .write_all(key.to_text().as_bytes())
            .and_then(|_| staged.as_file().sync_all())
            .map_err(|e| err(format!("cannot write a new key: {e}")))?;
        Ok(staged)
    }

    /// `k·G`, which lets a querier blind additively (see [`query`]).
    fn public_point(&self) -> RistrettoPoint {
        &self.scalar * RISTRETTO_BASEPOINT_TABLE
    }

    /// `k · H(id)`: the OPRF's inner value, before the outer hash.
    fn inner(&self, id: &[u8]) -> RistrettoPoint {
        Ristretto255::hash_to_group(id) * self.scalar
    }
}

/// The OPRF output `F(x) = SHA-256(DST ‖ len(x) ‖ x ‖ k·H(x))`, its first 16 bytes as a
/// big-endian number (the filter keeps its top [`tag_bits`]). Hashing `x` in with the point is
/// the "2HashDH" construction (Jarecki–Kiayias–Krawczyk 2014), which makes the output a PRF
/// of `x` in the random-oracle model under the one-more-DH assumption.
fn oprf_output(id: &[u8], point: &RistrettoPoint) -> u128 {
    let mut h = Sha256::new();
    h.update(OPRF_DST);
    h.update((id.len() as u64).to_le_bytes());
    h.update(id);
    h.update(point.compress().as_bytes());
    let digest = h.finalize();
    u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"))
}

/// Names the key and the provider's dataset version a filter was built for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterId {
    /// 32 hexadecimal digits.
    pub key_id: String,
    pub dataset_version: String,
}

impl std::fmt::Display for FilterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "key {} / dataset version '{}'",
            self.key_id, self.dataset_version
        )
    }
}

/// What a filter file's header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterHeader {
    pub id: FilterId,
    pub created_unix: u64,
    /// Distinct OPRF outputs stored (the provider's distinct ids, less the rare tag
    /// collisions).
    pub count: u64,
    /// Bits per stored tag ([`tag_bits`] of `count`).
    pub tag_bits: u32,
}

impl FilterHeader {
    fn tag_bytes(&self) -> usize {
        (self.tag_bits / 8) as usize
    }

    fn encode(&self) -> Vec<u8> {
        let key = unhex::<16>(&self.id.key_id).expect("key ids are 32 hex digits");
        let version = self.id.dataset_version.as_bytes();
        let mut out = Vec::with_capacity(50 + version.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&UNBALANCED_VERSION.to_le_bytes());
        out.extend_from_slice(&key);
        out.extend_from_slice(&self.created_unix.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.tag_bits.to_le_bytes());
        out.extend_from_slice(&(version.len() as u16).to_le_bytes());
        out.extend_from_slice(version);
        out
    }

    /// Parses a header from the start of `bytes` (untrusted); returns it and its length.
    fn decode(bytes: &[u8], source: &str) -> Result<(FilterHeader, usize), PsiError> {
        let err = |reason: String| PsiError::Filter {
            origin: source.to_string(),
            reason,
        };
        const FIXED: usize = 8 + 4 + 16 + 8 + 8 + 4 + 2;
        if bytes.len() < FIXED {
            return Err(err(format!(
                "{} bytes, shorter than a filter header ({FIXED} bytes)",
                bytes.len()
            )));
        }
        if &bytes[..8] != MAGIC {
            return Err(err(
                "not an unbalanced-PSI filter (wrong magic bytes)".into()
            ));
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
        let version = u32_at(8);
        if version != UNBALANCED_VERSION {
            return Err(err(format!(
                "filter format version {version}, this program reads version {UNBALANCED_VERSION}"
            )));
        }
        let key_id = hex(&bytes[12..28]);
        let created_unix = u64_at(28);
        let count = u64_at(36);
        let bits = u32_at(44);
        let version_len = u16::from_le_bytes(bytes[48..50].try_into().expect("2")) as usize;
        if count > MAX_FILTER_IDS {
            return Err(err(format!(
                "announces {count} ids, above the limit of {MAX_FILTER_IDS}"
            )));
        }
        // At least the width `count` needs (a wider one only lowers the false-match rate: the
        // provider sizes tags by its distinct ids, and rare tag collisions lower `count`).
        if bits < tag_bits(count) || bits > 128 || bits % 8 != 0 {
            return Err(err(format!(
                "tags of {bits} bits for {count} ids; that many need {} bits (whole bytes, at \
                 most 128) for a false-match rate of 2^-{UNBALANCED_STATISTICAL_BITS} per query",
                tag_bits(count)
            )));
        }
        if version_len > MAX_VERSION_BYTES || bytes.len() < FIXED + version_len {
            return Err(err(format!(
                "dataset version of {version_len} bytes does not fit (at most {MAX_VERSION_BYTES}, \
                 and the header is {} bytes)",
                bytes.len()
            )));
        }
        let dataset_version = String::from_utf8(bytes[FIXED..FIXED + version_len].to_vec())
            .map_err(|_| err("the dataset version is not UTF-8".into()))?;
        Ok((
            FilterHeader {
                id: FilterId {
                    key_id,
                    dataset_version,
                },
                created_unix,
                count,
                tag_bits: bits,
            },
            FIXED + version_len,
        ))
    }
}

/// The provider's OPRF outputs, truncated to [`tag_bits`] and sorted: what a querier looks its
/// own outputs up in. Stored as `count` big-endian tags of `tag_bits / 8` bytes back to back,
/// so a lookup is a binary search on the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    header: FilterHeader,
    tags: Vec<u8>,
}

/// Timing and counts of building a filter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreprocessReport {
    pub filter: FilterId,
    pub input_ids: u64,
    pub unique_tags: u64,
    pub tag_bits: u32,
    pub filter_bytes: u64,
    /// OPRF evaluation of every id (parallel).
    pub oprf_seconds: f64,
    /// Sorting and de-duplicating the tags.
    pub sort_seconds: f64,
}

fn check_version_label(version: &str) -> Result<(), PsiError> {
    if version.len() > MAX_VERSION_BYTES {
        return Err(PsiError::Config(format!(
            "the dataset version label has {} bytes; at most {MAX_VERSION_BYTES}",
            version.len()
        )));
    }
    Ok(())
}

impl Filter {
    /// Evaluates the OPRF on every id (in parallel) and builds the filter. Duplicate ids give
    /// equal tags and are stored once.
    pub fn build(
        key: &OprfKey,
        ids: &IdList,
        dataset_version: &str,
    ) -> Result<(Filter, PreprocessReport), PsiError> {
        check_version_label(dataset_version)?;
        let started = Instant::now();
        let mut outputs: Vec<u128> = (0..ids.len())
            .into_par_iter()
            .with_min_len(1024)
            .map(|i| {
                let id = ids.get(i);
                oprf_output(id, &key.inner(id))
            })
            .collect();
        let oprf_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        // The distinct ids, not the tags, decide the width: a tag collision among distinct
        // ids (probability ≈ n²/2^bits) must not shrink it.
        let distinct_ids = first_occurrences(ids).len() as u64;
        let bits = tag_bits(distinct_ids);
        for o in outputs.iter_mut() {
            *o >>= 128 - bits;
        }
        outputs.par_sort_unstable();
        outputs.dedup();
        let tag_bytes = (bits / 8) as usize;
        let mut tags = vec![0u8; outputs.len() * tag_bytes];
        tags.par_chunks_mut(tag_bytes)
            .zip(outputs.par_iter())
            .for_each(|(out, t)| out.copy_from_slice(&t.to_be_bytes()[16 - tag_bytes..]));
        drop(outputs);
        let header = FilterHeader {
            id: FilterId {
                key_id: key.id_hex(),
                dataset_version: dataset_version.to_string(),
            },
            created_unix: now_unix(),
            count: (tags.len() / tag_bytes) as u64,
            tag_bits: bits,
        };
        let filter = Filter { header, tags };
        let report = PreprocessReport {
            filter: filter.header.id.clone(),
            input_ids: ids.len() as u64,
            unique_tags: filter.header.count,
            tag_bits: filter.header.tag_bits,
            filter_bytes: filter.encoded_len() as u64,
            oprf_seconds,
            sort_seconds: started.elapsed().as_secs_f64(),
        };
        Ok((filter, report))
    }

    pub fn header(&self) -> &FilterHeader {
        &self.header
    }

    pub fn id(&self) -> &FilterId {
        &self.header.id
    }

    pub fn len(&self) -> u64 {
        self.header.count
    }

    pub fn is_empty(&self) -> bool {
        self.header.count == 0
    }

    /// Bytes of the serialised filter (header and tags).
    pub fn encoded_len(&self) -> usize {
        self.header.encode().len() + self.tags.len()
    }

    /// Whether the OPRF output `output` (all 128 bits) is in the filter.
    fn contains(&self, output: u128) -> bool {
        let w = self.header.tag_bytes();
        let tag = output >> (128 - self.header.tag_bits);
        let needle = &tag.to_be_bytes()[16 - w..];
        let (mut lo, mut hi) = (0usize, self.header.count as usize);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.tags[mid * w..(mid + 1) * w].cmp(needle) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header.encode();
        out.extend_from_slice(&self.tags);
        out
    }

    /// Parses a filter from untrusted bytes (a download or a cache file named by `source`):
    /// the header's count, width and version are checked, the length must be exactly the
    /// header plus `count` tags, and the tags must be sorted.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Filter, PsiError> {
        let (header, at) = FilterHeader::decode(bytes, source)?;
        let body = &bytes[at..];
        Self::from_parts(header, body.to_vec(), source)
    }

    fn from_parts(header: FilterHeader, tags: Vec<u8>, source: &str) -> Result<Filter, PsiError> {
        let err = |reason: String| PsiError::Filter {
            origin: source.to_string(),
            reason,
        };
        let w = header.tag_bytes();
        let expected = header.count as u128 * w as u128;
        if tags.len() as u128 != expected {
            return Err(err(format!(
                "{} bytes of tags, expected {} ({} tags of {w} bytes): truncated or corrupt",
                tags.len(),
                expected,
                header.count
            )));
        }
        if let Some(i) = (1..header.count as usize)
            .into_par_iter()
            .with_min_len(1 << 16)
            .find_first(|&i| tags[(i - 1) * w..i * w] > tags[i * w..(i + 1) * w])
        {
            return Err(err(format!("tag {i} is out of order: corrupt filter")));
        }
        Ok(Filter { header, tags })
    }

    /// Writes the filter to `path` atomically (a temporary file in the same directory, synced,
    /// then renamed over `path`).
    pub fn write(&self, path: &Path) -> Result<(), PsiError> {
        let err = |reason: String| PsiError::Filter {
            origin: path.display().to_string(),
            reason,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let mut staged = tempfile::Builder::new()
            .prefix(".upsi-filter-")
            .tempfile_in(&dir)
            .map_err(|e| err(format!("cannot create a file in {}: {e}", dir.display())))?;
        {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, staged.as_file_mut());
            w.write_all(&self.header.encode())
                .and_then(|_| w.write_all(&self.tags))
                .and_then(|_| w.flush())
                .map_err(|e| err(format!("cannot write: {e}")))?;
        }
        staged
            .as_file()
            .sync_all()
            .map_err(|e| err(format!("cannot write: {e}")))?;
        staged
            .persist(path)
            .map_err(|e| err(format!("cannot move into place: {}", e.error)))?;
        Ok(())
    }

    /// Reads and checks a filter file.
    pub fn read(path: &Path) -> Result<Filter, PsiError> {
        let bytes = std::fs::read(path).map_err(|e| PsiError::Filter {
            origin: path.display().to_string(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }
}

/// Reads the key column(s) of `input` and builds the filter of its distinct keys under `key`
/// (keys are encoded exactly as the other protocols read them, so results agree).
pub fn preprocess_input(
    key: &OprfKey,
    input: &PsiInput,
    dataset_version: &str,
) -> Result<(Filter, PreprocessReport), PsiError> {
    let keys = read_keys(input)?;
    Filter::build(key, &keys.ids, dataset_version)
}

/// A dataset version label from a file's contents: `sha256:` and the first 16 bytes of the
/// SHA-256 of the file, in hex. The same data gives the same label on every node, and any
/// change of the file gives a new one (so the filter is rebuilt and queriers download it).
pub fn file_version(path: &Path) -> Result<String, PsiError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| {
        PsiError::Data(ferry_data::DataError::Open {
            file: path.to_path_buf(),
            reason: e.to_string(),
        })
    })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| {
            PsiError::Data(ferry_data::DataError::Open {
                file: path.to_path_buf(),
                reason: e.to_string(),
            })
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex(&h.finalize()[..16])))
}

/// Where a provider keeps its state: `<dir>/oprf.key` and `<dir>/filter`.
pub struct ProviderState {
    pub dir: PathBuf,
}

impl ProviderState {
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("oprf.key")
    }

    pub fn filter_file(&self) -> PathBuf {
        self.dir.join("filter")
    }

    /// The key (created on first use) and the filter of `input` under it: the stored filter
    /// if it was built under the current key for this dataset version (the file's
    /// [`file_version`] unless one is given), else a new one, built and stored. The report
    /// is `Some` when the filter was (re)built.
    pub fn prepare(
        &self,
        input: &PsiInput,
        dataset_version: Option<&str>,
    ) -> Result<(OprfKey, Filter, Option<PreprocessReport>), PsiError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| PsiError::KeyCache {
            file: self.dir.clone(),
            reason: format!("cannot create the provider's state directory: {e}"),
        })?;
        let key = OprfKey::load_or_create(&self.key_file())?;
        let version = match dataset_version {
            Some(v) => v.to_string(),
            None => file_version(&input.path)?,
        };
        let wanted = FilterId {
            key_id: key.id_hex(),
            dataset_version: version,
        };
        let path = self.filter_file();
        if path.exists()
            && let Ok(stored) = Filter::read(&path)
            && stored.id() == &wanted
        {
            return Ok((key, stored, None));
        }
        let (filter, report) = preprocess_input(&key, input, &wanted.dataset_version)?;
        filter.write(&path)?;
        Ok((key, filter, Some(report)))
    }
}

/// The querier's run on a file: reads its key column(s) as the other protocols do, queries,
/// and writes its rows in the intersection to `input.output` (if set), in file order.
/// Returns the outcome and the 0-based data rows found.
pub fn query_file(
    ctx: &Context,
    input: &PsiInput,
    querier: &Querier,
) -> Result<(QueryOutcome, Vec<u64>), PsiError> {
    let keys = read_keys(input)?;
    let outcome = query(ctx, &keys.ids, querier)?;
    let rows: Vec<u64> = outcome
        .result
        .rows
        .as_ref()
        .map(|r| r.iter().map(|&i| keys.rows[i]).collect())
        .unwrap_or_default();
    drop(keys);
    if let Some(out) = &input.output {
        crate::input::write_rows(input, &rows, out)?;
    }
    Ok((outcome, rows))
}

// ---------------------------------------------------------------------------------------
// Online protocol

/// Querier → provider: what it wants to ask and which filter it holds.
#[derive(Serialize, Deserialize)]
struct QueryHello {
    version: u32,
    protocol: String,
    query_size: u64,
    chunk_size: u64,
    /// The filter the querier has cached, if any.
    have: Option<FilterId>,
    /// Whether it will download the current filter if its copy is missing or stale.
    may_download: bool,
}

/// Provider → querier.
#[derive(Serialize, Deserialize)]
enum Go {
    Ok {
        current: FilterId,
        set_size: u64,
        /// `k·G`, compressed: the querier blinds additively with it.
        public_point: Bytes,
        /// The filter follows in parts (the querier's copy is missing or stale).
        download: bool,
        filter_bytes: u64,
    },
    Refused {
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct FilterPart {
    part: u32,
    bytes: Bytes,
}

/// A chunk of blinded points (querier → provider) or of evaluated ones (provider → querier).
#[derive(Serialize, Deserialize)]
struct Points {
    chunk: u32,
    points: Bytes,
}

/// The provider's side of a run.
pub struct Provider<'a> {
    pub key: &'a OprfKey,
    pub filter: &'a Filter,
    /// Most ids one querier may ask about in one run: a querier evaluating the OPRF on many
    /// ids could test them all against the filter, so each run is capped and counted.
    pub max_query: u64,
}

/// What the provider's run did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderStats {
    pub protocol: String,
    pub querier: PartyId,
    pub filter: FilterId,
    /// Ids the querier asked about (the only thing the provider learns).
    pub query_size: u64,
    pub filter_sent: bool,
    pub seconds: f64,
}

/// The querier's side of a run.
#[derive(Clone, Debug)]
pub struct Querier {
    /// Where the provider's filter is cached (`<dir>/<provider>.filter`).
    pub cache_dir: PathBuf,
    /// Download the provider's current filter when the cached copy is missing or stale; when
    /// false, a stale copy is an error.
    pub may_download: bool,
    pub chunk_size: usize,
    /// Largest filter this querier accepts to download (bytes); a provider announcing more is
    /// refused before anything is received.
    pub max_filter_bytes: u64,
}

/// Default [`Querier::max_filter_bytes`]: 16 GiB (1.3e9 ids of 9 bytes fit).
pub const DEFAULT_MAX_FILTER_BYTES: u64 = 16 << 30;

impl Querier {
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Querier {
            cache_dir: cache_dir.into(),
            may_download: true,
            chunk_size: DEFAULT_QUERY_CHUNK,
            max_filter_bytes: DEFAULT_MAX_FILTER_BYTES,
        }
    }

    pub fn cache_file(&self, provider: &PartyId) -> PathBuf {
        self.cache_dir.join(format!("{provider}.filter"))
    }
}

/// What the querier's run found.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryOutcome {
    /// `rows`: indices into the querier's ids (first occurrences) in the provider's set, in
    /// ascending order.
    pub result: IdIntersection,
    pub filter: FilterId,
    /// Bytes of filter downloaded in this run (0 when the cached copy was current).
    pub filter_downloaded_bytes: u64,
    /// Time spent downloading and checking the filter (not part of the online cost).
    pub download_seconds: f64,
    /// Time of the online part: blinding, the provider's evaluation, unblinding, lookups.
    pub online_seconds: f64,
}

/// The one other data party of a two-party run.
fn peer_of(ctx: &Context) -> Result<PartyId, PsiError> {
    let others: Vec<PartyId> = ctx
        .roster()
        .parties()
        .filter(|(p, r)| *r != Role::Arbiter && *p != ctx.me())
        .map(|(p, _)| p.clone())
        .collect();
    match others.as_slice() {
        [p] => Ok(p.clone()),
        _ => Err(PsiError::Config(format!(
            "unbalanced PSI runs between one provider and one querier; this job has {} other \
             data parties",
            others.len()
        ))),
    }
}

/// The provider's online run: answers one querier's blinded points with `k`, after sending it
/// the filter if its copy is missing or stale.
pub fn serve(ctx: &Context, provider: &Provider) -> Result<ProviderStats, PsiError> {
    let started = Instant::now();
    let peer = peer_of(ctx)?;
    let ctx = ctx.sub("psi");
    let current = provider.filter.id().clone();
    let hello: QueryHello = ctx.recv(&peer, TAG_HELLO)?;
    // Every refusal is told to the querier too, so it fails at once with the reason.
    let tell = |reason: &str| -> Result<(), PsiError> {
        ctx.send(
            &peer,
            TAG_GO,
            &Go::Refused {
                reason: reason.to_string(),
            },
        )?;
        Ok(ctx.flush()?)
    };
    let refuse = |reason: String| -> Result<ProviderStats, PsiError> {
        tell(&reason)?;
        Err(PsiError::Mismatch {
            peer: peer.clone(),
            reason,
        })
    };
    if current.key_id != provider.key.id_hex() {
        tell(
            "the provider's filter is out of date (built under a rotated OPRF key); ask it to rebuild the filter",
        )?;
        return Err(PsiError::Config(format!(
            "the filter was built under OPRF key {} but the current key is {} (the key was \
             rotated): rebuild the filter before serving queries",
            current.key_id,
            provider.key.id_hex()
        )));
    }
    if hello.version != UNBALANCED_VERSION || hello.protocol != PROTOCOL_UNBALANCED {
        return refuse(format!(
            "protocol {} version {}, the provider runs {PROTOCOL_UNBALANCED} version \
             {UNBALANCED_VERSION}",
            hello.protocol, hello.version
        ));
    }
    if hello.query_size > provider.max_query {
        return refuse(format!(
            "the querier asks about {} ids, above the provider's cap of {} per run",
            hello.query_size, provider.max_query
        ));
    }
    if hello.chunk_size == 0 || hello.chunk_size > MAX_CHUNK_SIZE as u64 {
        return refuse(format!(
            "chunk size {} is outside 1..={MAX_CHUNK_SIZE}",
            hello.chunk_size
        ));
    }
    let download = hello.have.as_ref() != Some(&current);
    if download && !hello.may_download {
        let have = hello
            .have
            .as_ref()
            .map_or("no filter".to_string(), |h| format!("a filter for {h}"));
        return refuse(format!(
            "stale filter: the querier holds {have}, the provider now serves {current}; \
             download the current filter"
        ));
    }
    let encoded = if download {
        provider.filter.to_bytes()
    } else {
        Vec::new()
    };
    ctx.send(
        &peer,
        TAG_GO,
        &Go::Ok {
            current: current.clone(),
            set_size: provider.filter.len(),
            public_point: Bytes(provider.key.public_point().compress().as_bytes().to_vec()),
            download,
            filter_bytes: encoded.len() as u64,
        },
    )?;
    for (part, bytes) in encoded.chunks(FILTER_PART_BYTES).enumerate() {
        ctx.send(
            &peer,
            TAG_FILTER,
            &FilterPart {
                part: part as u32,
                bytes: Bytes(bytes.to_vec()),
            },
        )?;
    }
    drop(encoded);
    ctx.log(&format!(
        "unbalanced PSI: '{peer}' asks about {} ids under {current}{}",
        hello.query_size,
        if download { " (filter sent)" } else { "" }
    ));
    let chunks = chunk_count(hello.query_size, hello.chunk_size);
    for c in 0..chunks {
        let range = chunk_range(c, hello.query_size, hello.chunk_size);
        let msg: Points = ctx.recv(&peer, TAG_QUERY)?;
        if msg.chunk as u64 != c {
            return Err(PsiError::protocol(
                &peer,
                format!("query chunk {} arrived where chunk {c} was due", msg.chunk),
            ));
        }
        let points = decode_points(&peer, &format!("query chunk {c}"), &msg.points, range.len())?;
        let answered: Vec<RistrettoPoint> = points
            .par_iter()
            .with_min_len(256)
            .map(|p| p * provider.key.scalar)
            .collect();
        ctx.send(
            &peer,
            TAG_ANSWER,
            &Points {
                chunk: c as u32,
                points: encode_points(&answered),
            },
        )?;
    }
    ctx.flush()?;
    Ok(ProviderStats {
        protocol: PROTOCOL_UNBALANCED.into(),
        querier: peer,
        filter: current,
        query_size: hello.query_size,
        filter_sent: download,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn encode_points(points: &[RistrettoPoint]) -> Bytes {
    let mut out = Vec::with_capacity(points.len() * 32);
    for p in points {
        out.extend_from_slice(p.compress().as_bytes());
    }
    Bytes(out)
}

/// Exactly `expected` valid Ristretto255 points from a peer (parallel decompression). The
/// identity is refused too: an honest party never sends it, and multiplying it reveals nothing
/// but would make every answer to it match.
fn decode_points(
    peer: &PartyId,
    what: &str,
    bytes: &[u8],
    expected: usize,
) -> Result<Vec<RistrettoPoint>, PsiError> {
    if bytes.len() != expected * 32 {
        return Err(PsiError::protocol(
            peer,
            format!(
                "{what}: {} bytes, expected {expected} ristretto255 points of 32 bytes",
                bytes.len()
            ),
        ));
    }
    bytes
        .par_chunks_exact(32)
        .with_min_len(256)
        .enumerate()
        .map(|(i, c)| {
            let compressed = CompressedRistretto(c.try_into().expect("32 bytes"));
            match compressed.decompress() {
                Some(p) if p != RistrettoPoint::default() => Ok(p),
                _ => Err(PsiError::protocol(
                    peer,
                    format!("{what}: point {i} is not a valid ristretto255 element"),
                )),
            }
        })
        .collect()
}

/// The querier's cached filter, if any. A cache file that does not parse is treated as absent
/// (and replaced by the download) when downloads are allowed, and is an error otherwise.
fn cached_filter(path: &Path, may_download: bool) -> Result<Option<Filter>, PsiError> {
    if !path.exists() {
        return Ok(None);
    }
    match Filter::read(path) {
        Ok(f) => Ok(Some(f)),
        Err(_) if may_download => Ok(None),
        Err(e) => Err(e),
    }
}

/// The querier's online run: downloads the provider's filter if its cached copy is missing or
/// stale (and allowed to), then evaluates the OPRF on its distinct ids with the provider's
/// help and looks them up. Only the querier learns the result.
pub fn query(ctx: &Context, ids: &IdList, querier: &Querier) -> Result<QueryOutcome, PsiError> {
    let started = Instant::now();
    if querier.chunk_size == 0 || querier.chunk_size > MAX_CHUNK_SIZE {
        return Err(PsiError::Config(format!(
            "chunk_size {} is outside 1..={MAX_CHUNK_SIZE}",
            querier.chunk_size
        )));
    }
    let peer = peer_of(ctx)?;
    let ctx = ctx.sub("psi");
    // Distinct ids only: a repeated id would give the provider the same blinded point twice.
    let order = first_occurrences(ids);
    let n = order.len() as u64;
    let cache_file = querier.cache_file(&peer);
    let mut filter = cached_filter(&cache_file, querier.may_download)?;
    ctx.send(
        &peer,
        TAG_HELLO,
        &QueryHello {
            version: UNBALANCED_VERSION,
            protocol: PROTOCOL_UNBALANCED.into(),
            query_size: n,
            chunk_size: querier.chunk_size as u64,
            have: filter.as_ref().map(|f| f.id().clone()),
            may_download: querier.may_download,
        },
    )?;
    let (current, set_size, download, filter_bytes, public_point) =
        match ctx.recv::<Go>(&peer, TAG_GO)? {
            Go::Refused { reason } => return Err(PsiError::Mismatch { peer, reason }),
            Go::Ok {
                current,
                set_size,
                public_point,
                download,
                filter_bytes,
            } => (current, set_size, download, filter_bytes, public_point),
        };
    let public_point = decode_points(&peer, "the provider's public point", &public_point.0, 1)?[0];
    let mut downloaded = 0u64;
    if download {
        if !querier.may_download {
            return Err(PsiError::protocol(
                &peer,
                "sent a filter although this querier does not download",
            ));
        }
        if filter_bytes > querier.max_filter_bytes {
            return Err(PsiError::Filter {
                origin: format!("filter from party '{peer}'"),
                reason: format!(
                    "{filter_bytes} bytes announced, above this querier's limit of {} \
                     (raise max_filter_bytes to accept it)",
                    querier.max_filter_bytes
                ),
            });
        }
        let fresh = receive_filter(&ctx, &peer, filter_bytes)?;
        if fresh.id() != &current || fresh.len() != set_size {
            return Err(PsiError::protocol(
                &peer,
                format!(
                    "announced {current} with {set_size} ids but sent a filter for {} with {}",
                    fresh.id(),
                    fresh.len()
                ),
            ));
        }
        fresh.write(&cache_file)?;
        downloaded = filter_bytes;
        filter = Some(fresh);
    }
    let filter = match filter {
        Some(f) if f.id() == &current => f,
        _ => {
            return Err(PsiError::protocol(
                &peer,
                format!("serves {current} but sent no filter for it"),
            ));
        }
    };
    let download_seconds = started.elapsed().as_secs_f64();
    let online = Instant::now();

    // Additive blinding: Q sends H(y) + r_y·G with a fresh uniform r_y per id (a uniformly
    // random point whatever y is), P answers k·(H(y) + r_y·G), and Q removes r_y·(k·G). Both
    // of Q's multiplications are by fixed bases (G and k·G, with precomputed tables), about
    // three times faster than the two variable-base ones of multiplicative blinding
    // (r·H(y), then r⁻¹ times the answer); P's work is unchanged. Correctness needs P to
    // answer with the k of its public point, which a semi-honest P does.
    let public_table = RistrettoBasepointTable::create(&public_point);
    let blinds: Vec<Scalar> = (0..n).map(|_| random_scalar()).collect();
    let chunk = querier.chunk_size as u64;
    let chunks = chunk_count(n, chunk);
    let mut found: Vec<u32> = Vec::new();
    // Blind and send on one thread while the answers are unblinded and looked up on this one,
    // so the provider's evaluation overlaps both.
    std::thread::scope(|s| -> Result<(), PsiError> {
        let sender = s.spawn(|| -> Result<(), PsiError> {
            for c in 0..chunks {
                let range = chunk_range(c, n, chunk);
                let blinded: Vec<RistrettoPoint> = order[range.clone()]
                    .par_iter()
                    .with_min_len(256)
                    .zip(blinds[range.clone()].par_iter())
                    .map(|(&i, r)| {
                        Ristretto255::hash_to_group(ids.get(i as usize))
                            + r * RISTRETTO_BASEPOINT_TABLE
                    })
                    .collect();
                ctx.send(
                    &peer,
                    TAG_QUERY,
                    &Points {
                        chunk: c as u32,
                        points: encode_points(&blinded),
                    },
                )?;
            }
            Ok(())
        });
        let received = (|| -> Result<(), PsiError> {
            for c in 0..chunks {
                let range = chunk_range(c, n, chunk);
                let msg: Points = ctx.recv(&peer, TAG_ANSWER)?;
                if msg.chunk as u64 != c {
                    return Err(PsiError::protocol(
                        &peer,
                        format!("answer chunk {} arrived where chunk {c} was due", msg.chunk),
                    ));
                }
                let what = format!("answer chunk {c}");
                let points = decode_points(&peer, &what, &msg.points, range.len())?;
                let hits: Vec<u32> = order[range.clone()]
                    .par_iter()
                    .zip(points.par_iter())
                    .zip(blinds[range].par_iter())
                    .with_min_len(256)
                    .filter_map(|((&i, p), r)| {
                        let id = ids.get(i as usize);
                        let unblinded = p - r * &public_table;
                        filter.contains(oprf_output(id, &unblinded)).then_some(i)
                    })
                    .collect();
                found.extend(hits);
            }
            Ok(())
        })();
        let sent = sender.join().expect("the blinding thread does not panic");
        received.and(sent)
    })?;
    ctx.flush()?;
    found.sort_unstable();
    let online_seconds = online.elapsed().as_secs_f64();
    let stats = IdStats {
        protocol: PROTOCOL_UNBALANCED.into(),
        group: "ristretto255".into(),
        input_ids: ids.len() as u64,
        unique_ids: n,
        duplicates_dropped: ids.len() as u64 - n,
        peer_set_sizes: [(peer, set_size)].into_iter().collect(),
        intersection_size: Some(found.len() as u64),
        receives_result: true,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(QueryOutcome {
        result: IdIntersection {
            rows: Some(found.into_iter().map(|i| i as usize).collect()),
            stats,
        },
        filter: current,
        filter_downloaded_bytes: downloaded,
        download_seconds,
        online_seconds,
    })
}

/// Receives a filter of `total` bytes in parts, checking the header as soon as it arrives so
/// that a bogus size is refused before the tags are collected.
fn receive_filter(ctx: &Context, peer: &PartyId, total: u64) -> Result<Filter, PsiError> {
    let source = format!("filter from party '{peer}'");
    let mut buffer: Vec<u8> = Vec::new();
    let mut header: Option<(FilterHeader, usize)> = None;
    let mut part = 0u32;
    while (buffer.len() as u64) < total {
        let msg: FilterPart = ctx.recv(peer, TAG_FILTER)?;
        if msg.part != part {
            return Err(PsiError::protocol(
                peer,
                format!("filter part {} arrived where part {part} was due", msg.part),
            ));
        }
        if msg.bytes.0.len() > FILTER_PART_BYTES
            || buffer.len() as u64 + msg.bytes.0.len() as u64 > total
        {
            return Err(PsiError::protocol(
                peer,
                format!(
                    "filter part {part} of {} bytes overruns the announced {total} bytes",
                    msg.bytes.0.len()
                ),
            ));
        }
        if msg.bytes.0.is_empty() {
            return Err(PsiError::protocol(
                peer,
                format!("filter part {part} is empty"),
            ));
        }
        buffer.extend_from_slice(&msg.bytes.0);
        part += 1;
        // The whole header is in the first part (parts are far larger than a header).
        if header.is_none() {
            let (h, at) = FilterHeader::decode(&buffer, &source)?;
            let expected = at as u128 + h.count as u128 * h.tag_bytes() as u128;
            if expected != total as u128 {
                return Err(PsiError::Filter {
                    origin: source,
                    reason: format!(
                        "header announces {} tags ({expected} bytes in all) but {total} bytes \
                         were announced",
                        h.count
                    ),
                });
            }
            buffer.reserve(total as usize - buffer.len());
            header = Some((h, at));
        }
    }
    let (header, at) = match header {
        Some(h) => h,
        None => FilterHeader::decode(&buffer, &source)?,
    };
    let tags = buffer.split_off(at);
    Filter::from_parts(header, tags, &source)
}

#[cfg(test)]
mod peer_tests {
    //! A real party against a scripted peer that sends malformed messages: every case is an
    //! error naming the peer and what is wrong, never a panic or a hang.
    use super::*;
    use ferry_context::{FederationError, LocalCluster, Roster};
    use std::time::Duration;

    fn roster() -> Roster {
        Roster::of(&[("bank", Role::Guest), ("telco", Role::Host)])
    }

    fn setup() -> (tempfile::TempDir, OprfKey, Filter) {
        let dir = tempfile::tempdir().unwrap();
        let key = OprfKey::load_or_create(&dir.path().join("k")).unwrap();
        let ids: IdList = ["a", "b", "c"].into_iter().collect();
        let (filter, _) = Filter::build(&key, &ids, "v").unwrap();
        (dir, key, filter)
    }

    /// The bank queries `["a", "x"]`; the telco runs `script`. Returns the bank's error.
    fn querier_error_against(
        cache: &Path,
        script: impl Fn(&Context, &PartyId) -> Result<(), FederationError> + Sync,
    ) -> String {
        let ids: IdList = ["a", "x"].into_iter().collect();
        let outcomes = LocalCluster::new(roster())
            .timeout(Duration::from_secs(20))
            .run(|ctx| {
                if ctx.me().as_str() == "bank" {
                    let q = Querier {
                        chunk_size: 1,
                        ..Querier::new(cache)
                    };
                    return query(&ctx, &ids, &q).map(|_| ()).map_err(|e| e.to_string());
                }
                let ctx = ctx.sub("psi");
                let bank: PartyId = "bank".parse().unwrap();
                let _: QueryHello = ctx.recv(&bank, TAG_HELLO).map_err(|e| e.to_string())?;
                script(&ctx, &bank).map_err(|e| e.to_string())?;
                let _ = ctx.recv::<QueryHello>(&bank, "never");
                Ok(())
            });
        match &outcomes[0].result {
            Err(e) => e.clone(),
            Ok(()) => panic!("the querier accepted a malformed provider"),
        }
    }

    fn go(filter: &Filter, download: bool, filter_bytes: u64) -> Go {
        Go::Ok {
            current: filter.id().clone(),
            set_size: filter.len(),
            public_point: Bytes(
                curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED
                    .as_bytes()
                    .to_vec(),
            ),
            download,
            filter_bytes,
        }
    }

    #[test]
    fn a_malformed_provider_is_refused_by_name() {
        let (dir, _key, filter) = setup();
        let cache = dir.path().join("cache");
        let encoded = filter.to_bytes();
        let len = encoded.len() as u64;

        // A filter with damaged magic bytes.
        let mut bad = encoded.clone();
        bad[1] = 0;
        let e = querier_error_against(&cache, |ctx, bank| {
            ctx.send(bank, TAG_GO, &go(&filter, true, len))?;
            ctx.send(
                bank,
                TAG_FILTER,
                &FilterPart {
                    part: 0,
                    bytes: Bytes(bad.clone()),
                },
            )
        });
        assert!(
            e.contains("filter from party 'telco'") && e.contains("wrong magic"),
            "{e}"
        );

        // A header whose count disagrees with the announced size.
        let e = querier_error_against(&cache, |ctx, bank| {
            ctx.send(bank, TAG_GO, &go(&filter, true, len + 5))?;
            ctx.send(
                bank,
                TAG_FILTER,
                &FilterPart {
                    part: 0,
                    bytes: Bytes(encoded.clone()),
                },
            )
        });
        assert!(e.contains("bytes were announced"), "{e}");

        // More filter bytes than the querier accepts: refused before any part is read.
        let e = querier_error_against(&cache, |ctx, bank| {
            ctx.send(
                bank,
                TAG_GO,
                &go(&filter, true, DEFAULT_MAX_FILTER_BYTES + 1),
            )
        });
        assert!(e.contains("above this querier's limit"), "{e}");

        // A public point that is not a group element.
        let e = querier_error_against(&cache, |ctx, bank| {
            let mut g = go(&filter, false, 0);
            if let Go::Ok { public_point, .. } = &mut g {
                *public_point = Bytes(vec![0xff; 32]);
            }
            ctx.send(bank, TAG_GO, &g)
        });
        assert!(
            e.contains("the provider's public point: point 0 is not a valid"),
            "{e}"
        );

        // "Use your cached copy" when the querier has none.
        let e = querier_error_against(&cache, |ctx, bank| {
            ctx.send(bank, TAG_GO, &go(&filter, false, 0))
        });
        assert!(e.contains("sent no filter for it"), "{e}");

        // Now with a valid filter, bad answers.
        let answer = |points: Vec<u8>, chunk: u32| {
            let filter = &filter;
            let encoded = encoded.clone();
            move |ctx: &Context, bank: &PartyId| {
                ctx.send(bank, TAG_GO, &go(filter, true, len))?;
                ctx.send(
                    bank,
                    TAG_FILTER,
                    &FilterPart {
                        part: 0,
                        bytes: Bytes(encoded.clone()),
                    },
                )?;
                ctx.send(
                    bank,
                    TAG_ANSWER,
                    &Points {
                        chunk,
                        points: Bytes(points.clone()),
                    },
                )
            }
        };
        let e = querier_error_against(&cache, answer(vec![0; 31], 0));
        assert!(
            e.contains("answer chunk 0: 31 bytes, expected 1 ristretto255 points"),
            "{e}"
        );
        let e = querier_error_against(&cache, answer(vec![0xff; 32], 0));
        assert!(e.contains("answer chunk 0: point 0 is not a valid"), "{e}");
        let e = querier_error_against(&cache, answer(vec![0; 32], 0));
        assert!(
            e.contains("point 0 is not a valid"),
            "the identity is refused: {e}"
        );
        let e = querier_error_against(&cache, answer(vec![0; 32], 3));
        assert!(
            e.contains("answer chunk 3 arrived where chunk 0 was due"),
            "{e}"
        );
        assert!(e.contains("party 'telco'"), "{e}");
    }

    /// The telco serves; the bank sends `hello` and then runs `script`. Returns the telco's
    /// error.
    fn provider_error_against(
        hello: QueryHello,
        script: impl Fn(&Context, &PartyId) -> Result<(), FederationError> + Sync,
    ) -> String {
        let (_dir, key, filter) = setup();
        let outcomes = LocalCluster::new(roster())
            .timeout(Duration::from_secs(20))
            .run(|ctx| {
                if ctx.me().as_str() == "telco" {
                    let p = Provider {
                        key: &key,
                        filter: &filter,
                        max_query: 100,
                    };
                    return serve(&ctx, &p).map(|_| ()).map_err(|e| e.to_string());
                }
                let ctx = ctx.sub("psi");
                let telco: PartyId = "telco".parse().unwrap();
                ctx.send(&telco, TAG_HELLO, &hello)
                    .map_err(|e| e.to_string())?;
                script(&ctx, &telco).map_err(|e| e.to_string())?;
                let _ = ctx.recv::<QueryHello>(&telco, "never");
                Ok(())
            });
        match &outcomes[1].result {
            Err(e) => e.clone(),
            Ok(()) => panic!("the provider accepted a malformed querier"),
        }
    }

    fn hello(query_size: u64, chunk_size: u64) -> QueryHello {
        QueryHello {
            version: UNBALANCED_VERSION,
            protocol: PROTOCOL_UNBALANCED.into(),
            query_size,
            chunk_size,
            have: None,
            may_download: true,
        }
    }

    #[test]
    fn a_malformed_querier_is_refused_by_name() {
        let send = |points: Vec<u8>, chunk: u32| {
            move |ctx: &Context, telco: &PartyId| {
                ctx.send(
                    telco,
                    TAG_QUERY,
                    &Points {
                        chunk,
                        points: Bytes(points.clone()),
                    },
                )
            }
        };
        let e = provider_error_against(hello(2, 2), send(vec![1; 40], 0));
        assert!(
            e.contains("party 'bank'") && e.contains("query chunk 0: 40 bytes, expected 2"),
            "{e}"
        );
        let e = provider_error_against(hello(1, 1), send(vec![0xff; 32], 0));
        assert!(
            e.contains("query chunk 0: point 0 is not a valid ristretto255"),
            "{e}"
        );
        let e = provider_error_against(hello(1, 1), send(vec![0; 32], 0));
        assert!(
            e.contains("point 0 is not a valid"),
            "the identity is refused: {e}"
        );
        let e = provider_error_against(hello(2, 1), send(vec![0; 32], 1));
        assert!(
            e.contains("query chunk 1 arrived where chunk 0 was due"),
            "{e}"
        );
        let e = provider_error_against(hello(2, 0), |_, _| Ok(()));
        assert!(e.contains("chunk size 0 is outside"), "{e}");
        let e = provider_error_against(
            QueryHello {
                version: 9,
                ..hello(1, 1)
            },
            |_, _| Ok(()),
        );
        assert!(e.contains("version 9"), "{e}");
    }
}
