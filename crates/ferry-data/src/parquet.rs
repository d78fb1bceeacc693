//! Parquet files read row by row as text cells (feature `parquet`).
//!
//! Ferry's protocols that join on identifiers (PSI) compare keys as text, whatever format the
//! file came in, so a key written as `INT64 123` in a Parquet file and as `123` in a CSV file
//! match. [`ParquetRows`] streams the rows of a file (optionally only some columns, so reading
//! a key column of a wide file does not decode the rest) and turns every cell into its text
//! form with [`cell_text`]; a null cell is `None`.
//!
//! Rows in errors are 1-based data rows (a Parquet file has no header row, unlike CSV where
//! the header is row 1).
//!
//! Parquet is read at random (footer first, then column chunks), so a file is opened through
//! [`Source::random_access`]: a file stored as it is is read in place, an encrypted one is
//! decrypted into memory first (its plaintext size in memory while it is read).

use crate::DataError;
use crate::source::{RandomAccess, Source};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row, reader::RowIter};
use parquet::schema::types::Type;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A streaming reader of a Parquet file's rows as text cells.
pub struct ParquetRows {
    file: PathBuf,
    columns: Vec<String>,
    /// For each requested column, its position among the projected (file-order) columns.
    projected_position: Vec<usize>,
    rows: RowIter<'static>,
    total_rows: u64,
    rows_read: u64,
}

fn open_reader(src: &Source<'_>) -> Result<Box<dyn FileReader>, DataError> {
    let file = src.file();
    let not_parquet = |e: parquet::errors::ParquetError| DataError::Open {
        file: file.clone(),
        reason: format!("not a readable Parquet file: {e}"),
    };
    let empty = || DataError::Empty { file: file.clone() };
    match src.random_access()? {
        RandomAccess::File(handle) => {
            if handle.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
                return Err(empty());
            }
            Ok(Box::new(
                SerializedFileReader::new(handle).map_err(not_parquet)?,
            ))
        }
        RandomAccess::Bytes(bytes) => {
            if bytes.is_empty() {
                return Err(empty());
            }
            Ok(Box::new(
                SerializedFileReader::new(bytes).map_err(not_parquet)?,
            ))
        }
    }
}

/// Names of the top-level columns of a Parquet file, in file order.
pub fn parquet_columns<'a>(src: impl Into<Source<'a>>) -> Result<Vec<String>, DataError> {
    let reader = open_reader(&src.into())?;
    Ok(top_level_names(reader.as_ref()))
}

fn top_level_names(reader: &dyn FileReader) -> Vec<String> {
    reader
        .metadata()
        .file_metadata()
        .schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect()
}

impl ParquetRows {
    /// Every top-level column, in file order.
    pub fn open<'a>(src: impl Into<Source<'a>>) -> Result<Self, DataError> {
        Self::open_inner(src.into(), None)
    }

    /// Only `columns`, in the order given (each must exist, else the error lists the columns
    /// the file has).
    pub fn open_columns<'a>(
        src: impl Into<Source<'a>>,
        columns: &[String],
    ) -> Result<Self, DataError> {
        Self::open_inner(src.into(), Some(columns))
    }

    fn open_inner(src: Source<'_>, wanted: Option<&[String]>) -> Result<Self, DataError> {
        let file = src.file();
        let reader = open_reader(&src)?;
        let names = top_level_names(reader.as_ref());
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(DataError::DuplicateColumn {
                    file,
                    column: n.clone(),
                });
            }
        }
        let columns: Vec<String> = match wanted {
            None => names.clone(),
            Some(w) => w.to_vec(),
        };
        for c in &columns {
            if !names.contains(c) {
                return Err(DataError::MissingColumn {
                    file,
                    column: c.clone(),
                    available: names.join(", "),
                });
            }
        }
        let schema = reader.metadata().file_metadata().schema();
        // The projection keeps file order; `projected_position` maps it to the order asked for.
        let kept: Vec<Arc<Type>> = schema
            .get_fields()
            .iter()
            .filter(|f| columns.iter().any(|c| c == f.name()))
            .cloned()
            .collect();
        let kept_names: Vec<&str> = kept.iter().map(|f| f.name()).collect();
        let projected_position = columns
            .iter()
            .map(|c| {
                kept_names
                    .iter()
                    .position(|k| k == c)
                    .expect("every requested column was checked to exist")
            })
            .collect();
        let projection = Type::group_type_builder(schema.name())
            .with_fields(kept)
            .build()
            .map_err(|e| DataError::Invalid {
                file: file.clone(),
                reason: format!("cannot select columns: {e}"),
            })?;
        let total_rows = reader.metadata().file_metadata().num_rows().max(0) as u64;
        let rows = RowIter::from_file_into(reader)
            .project(Some(projection))
            .map_err(|e| DataError::Invalid {
                file: file.clone(),
                reason: format!("cannot select columns: {e}"),
            })?;
        Ok(ParquetRows {
            file,
            columns,
            projected_position,
            rows,
            total_rows,
            rows_read: 0,
        })
    }

    /// The columns each row has, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Number of rows the file's metadata declares.
    pub fn total_rows(&self) -> u64 {
        self.total_rows
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Reads the next row into `cells` (one entry per column, `None` for null). Returns
    /// `Ok(false)` at the end of the file.
    pub fn next_row(&mut self, cells: &mut Vec<Option<String>>) -> Result<bool, DataError> {
        let row: Row = match self.rows.next() {
            None => return Ok(false),
            Some(Ok(row)) => row,
            Some(Err(e)) => {
                return Err(DataError::BadRow {
                    file: self.file.clone(),
                    row: self.rows_read + 1,
                    reason: format!("cannot decode: {e}"),
                });
            }
        };
        self.rows_read += 1;
        let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
        if fields.len() != self.projected_position.iter().max().map_or(0, |m| m + 1) {
            return Err(DataError::BadRow {
                file: self.file.clone(),
                row: self.rows_read,
                reason: format!(
                    "has {} columns, expected {}",
                    fields.len(),
                    self.columns.len()
                ),
            });
        }
        cells.clear();
        cells.extend(
            self.projected_position
                .iter()
                .map(|&p| cell_text(fields[p])),
        );
        Ok(true)
    }
}

/// The text form of a Parquet cell: integers in decimal, strings as they are, binary as UTF-8
/// when valid (else lowercase hex), booleans `true`/`false`, floats in Rust's shortest
/// round-trip form, dates and timestamps as the parquet crate prints them. `None` for null.
pub fn cell_text(field: &Field) -> Option<String> {
    Some(match field {
        Field::Null => return None,
        Field::Bool(v) => v.to_string(),
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Float(v) => v.to_string(),
        Field::Double(v) => v.to_string(),
        Field::Str(s) => s.clone(),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => s.to_string(),
            Err(_) => b.data().iter().map(|x| format!("{x:02x}")).collect(),
        },
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use std::fs::File;

    fn write_file(path: &Path, ids: &[i64], names: &[Option<&str>]) {
        let schema = Arc::new(
            parse_message_type("message t { required int64 id; optional binary name (UTF8); }")
                .unwrap(),
        );
        let props = Arc::new(WriterProperties::builder().build());
        let mut w = SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
        let mut rg = w.next_row_group().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        col.typed::<Int64Type>()
            .write_batch(ids, None, None)
            .unwrap();
        col.close().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let values: Vec<ByteArray> = names.iter().flatten().map(|s| (*s).into()).collect();
        let def: Vec<i16> = names.iter().map(|n| i16::from(n.is_some())).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&values, Some(&def), None)
            .unwrap();
        col.close().unwrap();
        rg.close().unwrap();
        w.close().unwrap();
    }

    #[test]
    fn reads_rows_as_text_with_nulls_and_projection_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        write_file(&p, &[7, -3, 12], &[Some("a"), None, Some("c d")]);
        assert_eq!(parquet_columns(&p).unwrap(), ["id", "name"]);

        let mut all = ParquetRows::open(&p).unwrap();
        assert_eq!(all.total_rows(), 3);
        let mut cells = Vec::new();
        let mut rows = Vec::new();
        while all.next_row(&mut cells).unwrap() {
            rows.push(cells.clone());
        }
        assert_eq!(
            rows,
            vec![
                vec![Some("7".to_string()), Some("a".to_string())],
                vec![Some("-3".to_string()), None],
                vec![Some("12".to_string()), Some("c d".to_string())],
            ]
        );

        let mut swapped = ParquetRows::open_columns(&p, &["name".into(), "id".into()]).unwrap();
        assert!(swapped.next_row(&mut cells).unwrap());
        assert_eq!(cells, [Some("a".to_string()), Some("7".to_string())]);

        let mut only = ParquetRows::open_columns(&p, &["name".into()]).unwrap();
        let mut n = 0;
        while only.next_row(&mut cells).unwrap() {
            assert_eq!(cells.len(), 1);
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn errors_name_the_file_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        write_file(&p, &[1], &[Some("x")]);
        let e = ParquetRows::open_columns(&p, &["phone".into()])
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("t.parquet: no column named 'phone' (columns are: id, name)"),
            "{e}"
        );

        let empty = dir.path().join("empty.parquet");
        File::create(&empty).unwrap();
        let e = ParquetRows::open(&empty).err().unwrap().to_string();
        assert!(e.contains("empty.parquet: the file is empty"), "{e}");

        let text = dir.path().join("text.parquet");
        std::fs::write(&text, "id,name\n1,a\n").unwrap();
        let e = ParquetRows::open(&text).err().unwrap().to_string();
        assert!(
            e.contains("text.parquet: cannot open: not a readable Parquet file"),
            "{e}"
        );
    }
}
