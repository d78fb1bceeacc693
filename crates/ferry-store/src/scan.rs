//! One streaming pass over a CSV or Parquet file: schema inference and validation at
//! registration, statistics for `describe`.

use crate::datasets::{ColumnInfo, ColumnStats, ColumnType, DataFormat, Quantiles};
use crate::fsutil::HashingReader;
use crate::{LabelKind, StoreError};
use ferry_data::{DataRead, Source};
use ferry_data::{MISSING_MARKERS, parse_number};
use std::collections::{BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// Distinct values are counted exactly up to this many per column, then estimated.
pub(crate) const DISTINCT_EXACT_CAP: usize = 100_000;
/// Size of the k-minimum-values sketch used past the cap (relative error about 1/sqrt(k), 1.6%).
const KMV_SIZE: usize = 4096;
/// Quantiles are exact up to this many values per column, then computed on a uniform
/// reservoir sample of this size (rank error about 0.2%).
pub(crate) const QUANTILE_SAMPLE_CAP: usize = 200_000;

pub(crate) fn is_missing(cell: &str) -> bool {
    let t = cell.trim();
    t.is_empty() || MISSING_MARKERS.iter().any(|m| t.eq_ignore_ascii_case(m))
}

fn parse_bool(cell: &str) -> Option<bool> {
    let t = cell.trim();
    if t.eq_ignore_ascii_case("true") {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Detects Parquet by its magic bytes (of the plaintext), whatever the file is called.
pub(crate) fn detect_format(src: Source<'_>) -> Result<DataFormat, StoreError> {
    use std::io::Read;
    let path = src.path();
    let mut head = [0u8; 4];
    let mut file = src.stream()?;
    let mut got = 0;
    while got < 4 {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::io(path, "cannot read", e)),
        }
    }
    Ok(if got == 4 && &head == b"PAR1" {
        DataFormat::Parquet
    } else {
        DataFormat::Csv
    })
}

/// Rows of a CSV or Parquet file, one at a time, with 1-based row numbers (CSV counts the
/// header as row 1, as an editor shows it; Parquet counts data rows).
enum RowReader {
    Csv {
        path: PathBuf,
        reader: csv::Reader<HashingReader<DataRead>>,
        header: Vec<String>,
        record: csv::StringRecord,
        line: u64,
    },
    Parquet {
        rows: ferry_data::parquet::ParquetRows,
        header: Vec<String>,
        cells: Vec<Option<String>>,
        row: u64,
    },
}

impl RowReader {
    fn open(src: Source<'_>, format: DataFormat) -> Result<Self, StoreError> {
        let path = src.path();
        match format {
            DataFormat::Csv => {
                let file = src.stream()?;
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(false)
                    .trim(csv::Trim::Headers)
                    .from_reader(HashingReader::new(file));
                let header: Vec<String> = reader
                    .headers()
                    .map_err(|e| csv_error(path, 1, &e))?
                    .iter()
                    .map(str::to_string)
                    .collect();
                check_header(path, &header)?;
                Ok(RowReader::Csv {
                    path: path.to_path_buf(),
                    reader,
                    header,
                    record: csv::StringRecord::new(),
                    line: 1,
                })
            }
            DataFormat::Parquet => {
                let rows = ferry_data::parquet::ParquetRows::open(src.clone())?;
                let header = rows.columns().to_vec();
                check_header(path, &header)?;
                Ok(RowReader::Parquet {
                    rows,
                    header,
                    cells: Vec::new(),
                    row: 0,
                })
            }
        }
    }

    fn header(&self) -> &[String] {
        match self {
            RowReader::Csv { header, .. } | RowReader::Parquet { header, .. } => header,
        }
    }

    /// Advances to the next row; its number, or `None` at the end.
    fn next_row(&mut self) -> Result<Option<u64>, StoreError> {
        match self {
            RowReader::Csv {
                path,
                reader,
                record,
                line,
                ..
            } => match reader.read_record(record) {
                Ok(false) => Ok(None),
                Ok(true) => {
                    *line = record.position().map(|p| p.line()).unwrap_or(*line + 1);
                    Ok(Some(*line))
                }
                Err(e) => Err(csv_error(path, *line + 1, &e)),
            },
            RowReader::Parquet {
                rows, cells, row, ..
            } => {
                if rows.next_row(cells)? {
                    *row += 1;
                    Ok(Some(*row))
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// The current row's cell `i` as text; `None` for a Parquet null.
    fn cell(&self, i: usize) -> Option<&str> {
        match self {
            RowReader::Csv { record, .. } => record.get(i),
            RowReader::Parquet { cells, .. } => cells.get(i).and_then(|c| c.as_deref()),
        }
    }

    /// Size and SHA-256 of the file's plaintext: of the bytes read for CSV (no second read),
    /// by hashing the file for Parquet (which is read out of order).
    fn finish(self, src: Source<'_>) -> Result<(u64, String), StoreError> {
        let path = src.path();
        match self {
            RowReader::Csv { reader, .. } => reader
                .into_inner()
                .finish()
                .map_err(|e| StoreError::io(path, "cannot read", e)),
            RowReader::Parquet { .. } => crate::fsutil::hash_stream(path, src.stream()?),
        }
    }
}

fn check_header(path: &Path, header: &[String]) -> Result<(), StoreError> {
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(StoreError::invalid_file(
            path,
            "the file is empty (no header row)",
        ));
    }
    for (i, h) in header.iter().enumerate() {
        if h.is_empty() {
            return Err(StoreError::InvalidInput {
                file: Some(path.to_path_buf()),
                row: Some(1),
                column: None,
                reason: format!("column {} has an empty name", i + 1),
            });
        }
        if header[..i].contains(h) {
            return Err(StoreError::InvalidInput {
                file: Some(path.to_path_buf()),
                row: None,
                column: Some(h.clone()),
                reason: "appears more than once in the header".into(),
            });
        }
    }
    Ok(())
}

fn csv_error(path: &Path, fallback_row: u64, e: &csv::Error) -> StoreError {
    let row = e.position().map(|p| p.line()).unwrap_or(fallback_row);
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("has {len} fields but the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".to_string(),
        csv::ErrorKind::Io(io) => return StoreError::io(path, "cannot read", io),
        _ => e.to_string(),
    };
    StoreError::InvalidInput {
        file: Some(path.to_path_buf()),
        row: Some(row),
        column: None,
        reason,
    }
}

/// What registration learns from a file.
pub(crate) struct Inferred {
    pub columns: Vec<ColumnInfo>,
    pub id_columns: Vec<String>,
    pub rows: u64,
}

#[derive(Default)]
struct TypeEvidence {
    integer: bool,
    float: bool,
    boolean: bool,
    text: bool,
    missing: u64,
}

impl TypeEvidence {
    fn observe(&mut self, cell: Option<&str>) {
        let Some(c) = cell.filter(|c| !is_missing(c)) else {
            self.missing += 1;
            return;
        };
        if self.text {
            return;
        }
        let t = c.trim();
        if t.parse::<i64>().is_ok() {
            self.integer = true;
        } else if matches!(parse_number(t), Ok(Some(_))) {
            self.float = true;
        } else if parse_bool(t).is_some() {
            self.boolean = true;
        } else {
            self.text = true;
        }
    }

    fn column_type(&self) -> ColumnType {
        let numeric = self.integer || self.float;
        if self.text || (self.boolean && numeric) || !(numeric || self.boolean) {
            ColumnType::String
        } else if self.boolean {
            ColumnType::Bool
        } else if self.float {
            ColumnType::Float
        } else {
            ColumnType::Integer
        }
    }
}

fn column_index(
    path: &Path,
    header: &[String],
    name: &str,
    role: &str,
) -> Result<usize, StoreError> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| StoreError::InvalidInput {
            file: Some(path.to_path_buf()),
            row: None,
            column: Some(name.to_string()),
            reason: format!(
                "the declared {role} column is not in the file (columns are: {})",
                header.join(", ")
            ),
        })
}

fn check_label(value: Option<&str>, kind: LabelKind) -> Result<(), String> {
    let Some(text) = value.filter(|c| !is_missing(c)) else {
        return Err("the label is missing".into());
    };
    let v = match parse_number(text) {
        Ok(Some(v)) => v,
        _ => return Err(format!("label '{}' is not a number", text.trim())),
    };
    match kind {
        LabelKind::Binary if v != 0.0 && v != 1.0 => Err(format!(
            "label {v} is not 0 or 1 (the label is declared binary)"
        )),
        LabelKind::Multiclass if v < 0.0 || v.fract() != 0.0 || v > u32::MAX as f64 => {
            Err(format!(
                "label {v} is not a class number 0, 1, 2, ... (the label is declared multiclass)"
            ))
        }
        _ => Ok(()),
    }
}

/// Infers the column types, checks the declared id and label columns (present, ids never
/// empty, labels valid for their kind) and counts rows. Empty `id_columns` means `id` if the
/// header has it, else the first column (the ferry-data convention).
pub(crate) fn infer(
    src: Source<'_>,
    format: DataFormat,
    id_columns: &[String],
    label: Option<(&str, LabelKind)>,
) -> Result<Inferred, StoreError> {
    let file = src.file();
    let mut reader = RowReader::open(src, format)?;
    let header = reader.header().to_vec();
    let resolved_ids: Vec<String> = if id_columns.is_empty() {
        vec![if header.iter().any(|c| c == "id") {
            "id".to_string()
        } else {
            header[0].clone()
        }]
    } else {
        id_columns.to_vec()
    };
    let mut id_idx = Vec::with_capacity(resolved_ids.len());
    for (i, name) in resolved_ids.iter().enumerate() {
        if resolved_ids[..i].contains(name) {
            return Err(StoreError::InvalidInput {
                file: Some(file),
                row: None,
                column: Some(name.clone()),
                reason: "declared twice as an id column".into(),
            });
        }
        id_idx.push(column_index(&file, &header, name, "id")?);
    }
    let label_idx = match label {
        Some((name, _)) if resolved_ids.iter().any(|i| i == name) => {
            return Err(StoreError::InvalidInput {
                file: Some(file),
                row: None,
                column: Some(name.to_string()),
                reason: "declared as both an id column and the label".into(),
            });
        }
        Some((name, kind)) => Some((column_index(&file, &header, name, "label")?, kind)),
        None => None,
    };
    let mut evidence: Vec<TypeEvidence> = header.iter().map(|_| TypeEvidence::default()).collect();
    let mut rows = 0u64;
    while let Some(row) = reader.next_row()? {
        rows += 1;
        for &i in &id_idx {
            if reader.cell(i).is_none_or(|c| c.trim().is_empty()) {
                return Err(StoreError::InvalidInput {
                    file: Some(file),
                    row: Some(row),
                    column: Some(header[i].clone()),
                    reason: "the id is empty".into(),
                });
            }
        }
        if let Some((i, kind)) = label_idx {
            check_label(reader.cell(i), kind).map_err(|reason| StoreError::InvalidInput {
                file: Some(file.clone()),
                row: Some(row),
                column: Some(header[i].clone()),
                reason,
            })?;
        }
        for (i, ev) in evidence.iter_mut().enumerate() {
            ev.observe(reader.cell(i));
        }
    }
    if rows == 0 {
        return Err(StoreError::invalid_file(
            &file,
            "has a header but no data rows",
        ));
    }
    let columns = header
        .iter()
        .zip(&evidence)
        .map(|(name, ev)| ColumnInfo {
            name: name.clone(),
            dtype: ev.column_type(),
            nullable: ev.missing > 0,
        })
        .collect();
    Ok(Inferred {
        columns,
        id_columns: resolved_ids,
        rows,
    })
}

/// A well-mixed 64-bit hash for distinct counting (`DefaultHasher::new()` is SipHash with fixed
/// keys, so counts are reproducible within a build).
fn hash64<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Exact distinct count up to a cap, then a k-minimum-values estimate: the k smallest of n
/// uniform 64-bit hashes sit near k/n of the range, so n ≈ (k-1) / (k-th smallest / 2^64).
struct DistinctCounter {
    exact: Option<HashSet<u64>>,
    smallest: BTreeSet<u64>,
}

impl DistinctCounter {
    fn new() -> Self {
        DistinctCounter {
            exact: Some(HashSet::new()),
            smallest: BTreeSet::new(),
        }
    }

    fn add(&mut self, hash: u64) {
        if let Some(set) = &mut self.exact {
            set.insert(hash);
            if set.len() <= DISTINCT_EXACT_CAP {
                return;
            }
            let all = std::mem::take(set);
            self.exact = None;
            for h in all {
                self.add_sketch(h);
            }
            return;
        }
        self.add_sketch(hash);
    }

    fn add_sketch(&mut self, hash: u64) {
        if self.smallest.len() < KMV_SIZE {
            self.smallest.insert(hash);
        } else if let Some(&largest) = self.smallest.last()
            && hash < largest
            && self.smallest.insert(hash)
        {
            self.smallest.pop_last();
        }
    }

    /// (count, exact?)
    fn result(&self) -> (u64, bool) {
        match &self.exact {
            Some(set) => (set.len() as u64, true),
            None => {
                let kth = self.smallest.last().copied().unwrap_or(u64::MAX).max(1) as f64;
                let estimate = (KMV_SIZE as f64 - 1.0) * (u64::MAX as f64 / kth);
                (estimate.round() as u64, false)
            }
        }
    }
}

/// Running moments (Welford), extremes and a reservoir sample for quantiles.
struct NumericSummary {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    sample: Vec<f64>,
    rng_state: u64,
}

impl NumericSummary {
    fn new(seed: u64) -> Self {
        NumericSummary {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sample: Vec::new(),
            rng_state: seed,
        }
    }

    /// splitmix64: a fixed seed per column makes the sample, and so the statistics,
    /// reproducible.
    fn next_random(&mut self) -> u64 {
        self.rng_state = self.rng_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn add(&mut self, v: f64) {
        self.count += 1;
        let delta = v - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (v - self.mean);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if self.sample.len() < QUANTILE_SAMPLE_CAP {
            self.sample.push(v);
        } else {
            // Reservoir sampling: the i-th value replaces a random slot with probability cap/i.
            let slot = self.next_random() % self.count;
            if (slot as usize) < QUANTILE_SAMPLE_CAP {
                self.sample[slot as usize] = v;
            }
        }
    }
}

/// Linear interpolation between closest ranks (NumPy's default, Hyndman–Fan type 7):
/// position (n-1)p in the sorted values.
pub(crate) fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    let pos = (sorted.len() - 1) as f64 * p;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

struct ColumnAccumulator {
    dtype: ColumnType,
    missing: u64,
    numeric: Option<NumericSummary>,
    distinct: DistinctCounter,
}

/// Statistics of every column, and the file's SHA-256 as read (CSV) or hashed (Parquet).
pub(crate) fn describe(
    src: Source<'_>,
    format: DataFormat,
    columns: &[ColumnInfo],
) -> Result<(u64, Vec<ColumnStats>, String), StoreError> {
    let file = src.file();
    let mut acc: Vec<ColumnAccumulator> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| ColumnAccumulator {
            dtype: c.dtype,
            missing: 0,
            numeric: (c.dtype != ColumnType::String).then(|| NumericSummary::new(i as u64)),
            distinct: DistinctCounter::new(),
        })
        .collect();
    let mut reader = RowReader::open(src.clone(), format)?;
    if reader
        .header()
        .iter()
        .map(String::as_str)
        .ne(columns.iter().map(|c| c.name.as_str()))
    {
        return Err(StoreError::invalid_file(
            &file,
            "the columns differ from those recorded at registration; re-register the dataset",
        ));
    }
    let mut rows = 0u64;
    while let Some(row) = reader.next_row()? {
        rows += 1;
        for (i, a) in acc.iter_mut().enumerate() {
            let Some(text) = reader.cell(i).filter(|c| !is_missing(c)) else {
                a.missing += 1;
                continue;
            };
            let text = text.trim();
            let value = match a.dtype {
                ColumnType::String => {
                    a.distinct.add(hash64(text));
                    continue;
                }
                ColumnType::Bool => parse_bool(text).map(|b| if b { 1.0 } else { 0.0 }),
                ColumnType::Integer | ColumnType::Float => parse_number(text).ok().flatten(),
            };
            let Some(v) = value else {
                return Err(StoreError::InvalidInput {
                    file: Some(file),
                    row: Some(row),
                    column: Some(columns[i].name.clone()),
                    reason: format!(
                        "'{text}' is not a {} value as recorded at registration",
                        a.dtype.as_str()
                    ),
                });
            };
            // -0.0 and 0.0 are one value.
            let canonical = if v == 0.0 { 0.0f64 } else { v };
            a.distinct.add(hash64(&canonical.to_bits()));
            if let Some(n) = &mut a.numeric {
                n.add(v);
            }
        }
    }
    let (_, sha) = reader.finish(src)?;
    let stats = columns
        .iter()
        .zip(acc)
        .map(|(col, a)| {
            let (distinct, distinct_exact) = a.distinct.result();
            let mut stats = ColumnStats {
                name: col.name.clone(),
                dtype: col.dtype,
                count: rows - a.missing,
                missing: a.missing,
                mean: None,
                std: None,
                min: None,
                max: None,
                quantiles: None,
                quantiles_exact: true,
                distinct,
                distinct_exact,
            };
            if let Some(mut n) = a.numeric
                && n.count > 0
            {
                stats.mean = Some(n.mean);
                stats.std = (n.count > 1).then(|| (n.m2 / (n.count - 1) as f64).sqrt());
                stats.min = Some(n.min);
                stats.max = Some(n.max);
                if col.dtype != ColumnType::Bool {
                    n.sample.sort_by(f64::total_cmp);
                    let q = |p| quantile_sorted(&n.sample, p);
                    stats.quantiles = Some(Quantiles {
                        p1: q(0.01),
                        p5: q(0.05),
                        p25: q(0.25),
                        p50: q(0.50),
                        p75: q(0.75),
                        p95: q(0.95),
                        p99: q(0.99),
                    });
                    stats.quantiles_exact = n.count as usize <= QUANTILE_SAMPLE_CAP;
                }
            }
            stats
        })
        .collect();
    Ok((rows, stats, sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_inference_lattice() {
        let infer = |cells: &[&str]| {
            let mut ev = TypeEvidence::default();
            for c in cells {
                ev.observe(Some(c));
            }
            ev.column_type()
        };
        assert_eq!(infer(&["1", "2", ""]), ColumnType::Integer);
        assert_eq!(infer(&["1", "2.5"]), ColumnType::Float);
        assert_eq!(infer(&["true", "FALSE", "NA"]), ColumnType::Bool);
        assert_eq!(infer(&["true", "1"]), ColumnType::String);
        assert_eq!(infer(&["1", "x"]), ColumnType::String);
        assert_eq!(infer(&["", "na"]), ColumnType::String);
        assert_eq!(infer(&["inf"]), ColumnType::String);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.5), 2.5);
        assert_eq!(quantile_sorted(&v, 0.25), 1.75);
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 1.0), 4.0);
        assert_eq!(quantile_sorted(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn distinct_estimate_is_close_past_the_cap() {
        let mut d = DistinctCounter::new();
        let n = DISTINCT_EXACT_CAP as u64 + 50_000;
        for i in 0..n {
            d.add(hash64(&i));
            d.add(hash64(&i)); // duplicates must not count
        }
        let (estimate, exact) = d.result();
        assert!(!exact);
        let err = (estimate as f64 - n as f64).abs() / n as f64;
        assert!(err < 0.05, "estimate {estimate} for {n} distinct values");

        let mut small = DistinctCounter::new();
        for i in 0..1000u64 {
            small.add(hash64(&(i % 300)));
        }
        assert_eq!(small.result(), (300, true));
    }

    #[test]
    fn reservoir_keeps_a_uniform_sample() {
        let mut n = NumericSummary::new(7);
        let total = QUANTILE_SAMPLE_CAP * 3;
        for i in 0..total {
            n.add(i as f64);
        }
        assert_eq!(n.sample.len(), QUANTILE_SAMPLE_CAP);
        n.sample.sort_by(f64::total_cmp);
        let median = quantile_sorted(&n.sample, 0.5);
        let expected = (total - 1) as f64 / 2.0;
        assert!(
            (median - expected).abs() / (total as f64) < 0.01,
            "median {median}"
        );
        assert_eq!(n.count as usize, total);
        assert_eq!(n.max, (total - 1) as f64);
    }
}
