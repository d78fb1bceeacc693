//! Reading key columns from CSV or Parquet and writing the rows in the intersection.
//!
//! The file is read twice, both times streaming: once for the keys (the only thing kept per
//! row is the key bytes and, per key, its row number) and, after the protocol, once more to
//! copy the selected rows. Memory is the key list plus the selected rows' text, never the
//! whole table.

use crate::PsiError;
use crate::ids::IdList;
use ferry_data::{DataError, DataRead, Opener, Source};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File formats PSI reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    Csv,
    Parquet,
}

impl InputFormat {
    /// `.parquet` / `.pq` (any case) is Parquet, anything else CSV.
    pub fn from_path(path: &Path) -> InputFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("parquet") | Some("pq") => InputFormat::Parquet,
            _ => InputFormat::Csv,
        }
    }
}

/// One party's input to [`crate::run_psi`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PsiInput {
    pub path: PathBuf,
    /// How `path` is opened: as it is ([`ferry_data::plain_opener`], the default), or through
    /// a node's store, which decrypts a file encrypted at rest.
    #[serde(skip, default = "ferry_data::plain_opener")]
    pub opener: Arc<dyn Opener>,
    /// Key column(s). Several columns form a composite key (see the crate docs for the
    /// encoding); every party must list the same number of columns, in the same meaning.
    pub key_columns: Vec<String>,
    /// `None`: from the file extension.
    #[serde(default)]
    pub format: Option<InputFormat>,
    /// Where to write this party's rows in the intersection (CSV, header first; through
    /// `opener`, so a node that encrypts its files writes it sealed). `None`: only the report
    /// and the row numbers are returned.
    #[serde(default)]
    pub output: Option<PathBuf>,
}

impl PsiInput {
    pub fn new(path: impl Into<PathBuf>, key_columns: &[&str]) -> Self {
        PsiInput {
            path: path.into(),
            opener: ferry_data::plain_opener(),
            key_columns: key_columns.iter().map(|s| s.to_string()).collect(),
            format: None,
            output: None,
        }
    }

    pub fn with_output(mut self, output: impl Into<PathBuf>) -> Self {
        self.output = Some(output.into());
        self
    }

    /// The input file to read, through its opener.
    pub fn source(&self) -> Source<'_> {
        Source::new(&self.path, self.opener.as_ref())
    }

    pub fn format(&self) -> InputFormat {
        self.format
            .unwrap_or_else(|| InputFormat::from_path(&self.path))
    }

    /// Checks, without reading the rows, that the file opens and has the key columns: the
    /// errors a run would otherwise hit only after its peers started waiting for it.
    pub fn check(&self) -> Result<(), PsiError> {
        let header = match self.format() {
            InputFormat::Csv => open_csv(self.source())?.1,
            #[cfg(feature = "parquet")]
            InputFormat::Parquet => ferry_data::parquet::parquet_columns(self.source())?,
            #[cfg(not(feature = "parquet"))]
            InputFormat::Parquet => return read_parquet_keys(self.source(), &[]).map(|_| ()),
        };
        check_key_columns(&self.path, &header, &self.key_columns).map(|_| ())
    }
}

/// The keys of a file.
pub(crate) struct KeyTable {
    /// Non-empty keys, in file order.
    pub ids: IdList,
    /// For each key, its 0-based data row.
    pub rows: Vec<u64>,
    pub input_rows: u64,
    pub empty_keys: u64,
}

impl KeyTable {
    /// Counts the next data row and records its key made of `parts` (one per key column),
    /// unless every part is empty. `key` is scratch space reused across rows.
    fn add_row<'a>(
        &mut self,
        arity: usize,
        parts: impl Iterator<Item = &'a [u8]> + Clone,
        key: &mut Vec<u8>,
    ) {
        let row = self.input_rows;
        self.input_rows += 1;
        if parts.clone().all(<[u8]>::is_empty) {
            self.empty_keys += 1;
            return;
        }
        key.clear();
        encode_key(arity, parts, key);
        self.ids.push(key);
        self.rows.push(row);
    }
}

/// Appends the key made of `parts`: a single column is its bytes as they are; a composite key
/// is each part preceded by its length as 4 little-endian bytes, so no choice of part values
/// can make two different tuples encode alike (unlike joining with a separator character,
/// which a value may contain).
pub(crate) fn encode_key<'a>(
    arity: usize,
    parts: impl Iterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) {
    for p in parts {
        if arity != 1 {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(p);
    }
}

fn check_key_columns(
    file: &Path,
    header: &[String],
    keys: &[String],
) -> Result<Vec<usize>, PsiError> {
    if keys.is_empty() {
        return Err(PsiError::Config(format!(
            "{}: no key column given (columns are: {})",
            file.display(),
            header.join(", ")
        )));
    }
    keys.iter()
        .map(|k| {
            let mut at = header
                .iter()
                .enumerate()
                .filter(|(_, h)| *h == k)
                .map(|(i, _)| i);
            match (at.next(), at.next()) {
                (Some(i), None) => Ok(i),
                (Some(_), Some(_)) => Err(DataError::DuplicateColumn {
                    file: file.to_path_buf(),
                    column: k.clone(),
                }
                .into()),
                (None, _) => Err(DataError::MissingColumn {
                    file: file.to_path_buf(),
                    column: k.clone(),
                    available: header.join(", "),
                }
                .into()),
            }
        })
        .collect()
}

fn open_csv(src: Source<'_>) -> Result<(csv::Reader<DataRead>, Vec<String>), PsiError> {
    let file = src.path();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(src.stream()?);
    let header = reader.byte_headers().map_err(|e| DataError::BadRow {
        file: file.to_path_buf(),
        row: 1,
        reason: csv_reason(&e),
    })?;
    if header.is_empty() || (header.len() == 1 && header[0].trim_ascii().is_empty()) {
        return Err(DataError::Empty {
            file: file.to_path_buf(),
        }
        .into());
    }
    let header = header
        .iter()
        .map(|h| String::from_utf8_lossy(h.trim_ascii()).into_owned())
        .collect();
    Ok((reader, header))
}

fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("unreadable row: it has {len} fields but the header has {expected_len}")
        }
        _ => format!("unreadable row: {e}"),
    }
}

fn csv_row_error(file: &Path, e: &csv::Error, fallback_row: u64) -> PsiError {
    DataError::BadRow {
        file: file.to_path_buf(),
        row: e.position().map_or(fallback_row, |p| p.line()),
        reason: csv_reason(e),
    }
    .into()
}

/// Reads the key columns of `input` (first pass).
pub(crate) fn read_keys(input: &PsiInput) -> Result<KeyTable, PsiError> {
    match input.format() {
        InputFormat::Csv => read_csv_keys(input.source(), &input.key_columns),
        InputFormat::Parquet => read_parquet_keys(input.source(), &input.key_columns),
    }
}

fn no_rows(file: &Path) -> PsiError {
    DataError::NoRows {
        file: file.to_path_buf(),
    }
    .into()
}

fn read_csv_keys(src: Source<'_>, key_columns: &[String]) -> Result<KeyTable, PsiError> {
    let file = src.path();
    let (mut reader, header) = open_csv(src.clone())?;
    let key_idx = check_key_columns(file, &header, key_columns)?;
    let mut table = KeyTable {
        ids: IdList::new(),
        rows: Vec::new(),
        input_rows: 0,
        empty_keys: 0,
    };
    let mut record = csv::ByteRecord::new();
    let mut key = Vec::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_row_error(file, &e, table.input_rows + 2)),
        }
        let parts = key_idx.iter().map(|&i| record[i].trim_ascii());
        table.add_row(key_idx.len(), parts, &mut key);
    }
    if table.input_rows == 0 {
        return Err(no_rows(file));
    }
    Ok(table)
}

#[cfg(feature = "parquet")]
fn read_parquet_keys(src: Source<'_>, key_columns: &[String]) -> Result<KeyTable, PsiError> {
    use ferry_data::parquet::ParquetRows;
    let file = src.path();
    let header = ferry_data::parquet::parquet_columns(src.clone())?;
    check_key_columns(file, &header, key_columns)?;
    let mut reader = ParquetRows::open_columns(src.clone(), key_columns)?;
    let mut table = KeyTable {
        ids: IdList::with_capacity(reader.total_rows() as usize, 0),
        rows: Vec::with_capacity(reader.total_rows() as usize),
        input_rows: 0,
        empty_keys: 0,
    };
    let mut cells = Vec::new();
    let mut key = Vec::new();
    while reader.next_row(&mut cells)? {
        let parts = cells
            .iter()
            .map(|c| c.as_deref().map_or(&b""[..], |s| s.as_bytes().trim_ascii()));
        table.add_row(key_columns.len(), parts, &mut key);
    }
    if table.input_rows == 0 {
        return Err(no_rows(file));
    }
    Ok(table)
}

#[cfg(not(feature = "parquet"))]
fn read_parquet_keys(src: Source<'_>, _key_columns: &[String]) -> Result<KeyTable, PsiError> {
    Err(PsiError::Config(format!(
        "{}: Parquet input needs ferry-psi's `parquet` feature",
        src.path().display()
    )))
}

/// Writes the header and then the data rows `rows` (0-based, in this order) of `input` as
/// CSV to `output` (second pass over the input).
pub(crate) fn write_rows(input: &PsiInput, rows: &[u64], output: &Path) -> Result<(), PsiError> {
    let out_err = |reason: String| PsiError::Output {
        file: output.to_path_buf(),
        reason,
    };
    // rank_of[row] = position of the row in the output.
    let mut rank_of: Vec<u32> = Vec::new();
    for (rank, &row) in rows.iter().enumerate() {
        let row = row as usize;
        if row >= rank_of.len() {
            rank_of.resize(row + 1, u32::MAX);
        }
        rank_of[row] = rank as u32;
    }
    // Selected rows as CSV text, filled in file order, written in output order.
    let mut arena = csv::WriterBuilder::new().from_writer(Vec::new());
    let mut spans: Vec<(u64, u64)> = vec![(0, 0); rows.len()];
    let mut store = |arena: &mut csv::Writer<Vec<u8>>, rank: u32, record: &csv::ByteRecord| {
        let start = arena.get_ref().len() as u64;
        arena
            .write_byte_record(record)
            .and_then(|_| arena.flush().map_err(csv::Error::from))
            .map_err(|e| out_err(e.to_string()))?;
        spans[rank as usize] = (start, arena.get_ref().len() as u64);
        Ok::<(), PsiError>(())
    };
    let header: csv::ByteRecord;
    match input.format() {
        InputFormat::Csv => {
            let (mut reader, names) = open_csv(input.source())?;
            header = names.iter().map(String::as_bytes).collect();
            let mut record = csv::ByteRecord::new();
            let mut row = 0usize;
            while row < rank_of.len() {
                match reader.read_byte_record(&mut record) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => return Err(csv_row_error(&input.path, &e, row as u64 + 2)),
                }
                if rank_of[row] != u32::MAX {
                    store(&mut arena, rank_of[row], &record)?;
                }
                row += 1;
            }
        }
        InputFormat::Parquet => {
            #[cfg(feature = "parquet")]
            {
                let mut reader = ferry_data::parquet::ParquetRows::open(input.source())?;
                header = reader.columns().iter().map(String::as_bytes).collect();
                let mut cells = Vec::new();
                let mut record = csv::ByteRecord::new();
                let mut row = 0usize;
                while row < rank_of.len() && reader.next_row(&mut cells)? {
                    if rank_of[row] != u32::MAX {
                        record.clear();
                        for c in &cells {
                            record.push_field(c.as_deref().unwrap_or("").as_bytes());
                        }
                        store(&mut arena, rank_of[row], &record)?;
                    }
                    row += 1;
                }
            }
            #[cfg(not(feature = "parquet"))]
            return read_parquet_keys(input.source(), &[]).map(|_| ());
        }
    }
    let arena = arena.into_inner().map_err(|e| out_err(e.to_string()))?;
    let mut w = input.opener.create(output)?;
    let mut head = csv::WriterBuilder::new().from_writer(Vec::new());
    head.write_byte_record(&header)
        .map_err(|e| out_err(e.to_string()))?;
    let head = head.into_inner().map_err(|e| out_err(e.to_string()))?;
    w.write_all(&head).map_err(|e| out_err(e.to_string()))?;
    for &(start, end) in &spans {
        if end == start {
            return Err(out_err(format!(
                "{} changed while PSI ran: a selected row is missing",
                input.path.display()
            )));
        }
        w.write_all(&arena[start as usize..end as usize])
            .map_err(|e| out_err(e.to_string()))?;
    }
    w.finish().map_err(|e| out_err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_are_unambiguous() {
        let enc = |parts: &[&str]| {
            let mut out = Vec::new();
            encode_key(parts.len(), parts.iter().map(|p| p.as_bytes()), &mut out);
            out
        };
        assert_eq!(enc(&["abc"]), b"abc");
        assert_ne!(enc(&["a|b", "c"]), enc(&["a", "b|c"]));
        assert_ne!(enc(&["ab", ""]), enc(&["a", "b"]));
        assert_ne!(enc(&["a\u{1f}b", "c"]), enc(&["a", "b\u{1f}c"]));
        assert_eq!(enc(&["x", "yz"]), b"\x01\0\0\0x\x02\0\0\0yz");
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            InputFormat::from_path(Path::new("a/b.PARQUET")),
            InputFormat::Parquet
        );
        assert_eq!(
            InputFormat::from_path(Path::new("b.pq")),
            InputFormat::Parquet
        );
        assert_eq!(InputFormat::from_path(Path::new("b.csv")), InputFormat::Csv);
        assert_eq!(InputFormat::from_path(Path::new("b")), InputFormat::Csv);
    }
}
