use crate::source::{DataRead, Source};
use crate::{DataError, parse_number};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a label column must contain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    /// 0 or 1.
    Binary,
    /// 0, 1, ..., k-1.
    Multiclass,
    /// Any finite number.
    #[default]
    Continuous,
}

/// Which columns of a file are the id, the label and the features.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatasetSpec {
    /// Id column(s). Empty: `id` if the header has it, else the first column. Several columns
    /// form a composite id joined with [`Dataset::ID_SEPARATOR`].
    pub id_columns: Vec<String>,
    /// The label column, if this party holds labels.
    pub label: Option<String>,
    pub label_kind: LabelKind,
    /// Feature columns in this order. `None`: every column that is neither id nor label nor
    /// excluded, in file order.
    pub features: Option<Vec<String>>,
    pub exclude: Vec<String>,
}

impl DatasetSpec {
    /// Id `id`, no label.
    pub fn features_only() -> Self {
        DatasetSpec::default()
    }

    /// Id `id`, label `label` of the given kind.
    pub fn with_label(label: &str, kind: LabelKind) -> Self {
        DatasetSpec {
            label: Some(label.to_string()),
            label_kind: kind,
            ..DatasetSpec::default()
        }
    }
}

/// A party's table: ids, a dense feature matrix (row-major, `NaN` = missing) and maybe labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub ids: Vec<String>,
    pub feature_names: Vec<String>,
    /// `n_rows * n_features` values, row-major.
    pub features: Vec<f64>,
    pub label_name: Option<String>,
    pub labels: Option<Vec<f64>>,
}

/// Opens a CSV file with a header row (names trimmed); returns the reader and the names.
/// A file with no header, or only an empty line, is [`DataError::Empty`].
pub(crate) fn open_csv(
    src: &Source<'_>,
) -> Result<(csv::Reader<DataRead>, Vec<String>), DataError> {
    let file = src.file();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::Headers)
        .from_reader(src.stream()?);
    let header: Vec<String> = match reader.headers() {
        Ok(h) if !(h.is_empty() || (h.len() == 1 && h[0].is_empty())) => {
            h.iter().map(str::to_string).collect()
        }
        Ok(_) => return Err(DataError::Empty { file }),
        Err(e) => {
            return Err(DataError::BadRow {
                file,
                row: 1,
                reason: csv_reason(&e),
            });
        }
    };
    Ok((reader, header))
}

/// The id column(s) of a table with columns `header`: `id_columns` when it names any, else
/// `id` if the header has it, else the first column (see [`DatasetSpec::id_columns`]). Whether
/// they exist is for the caller to check.
pub fn id_column_names(header: &[String], id_columns: &[String]) -> Vec<String> {
    if !id_columns.is_empty() {
        id_columns.to_vec()
    } else if header.iter().any(|h| h == "id") {
        vec!["id".to_string()]
    } else {
        header.iter().take(1).cloned().collect()
    }
}

/// A CSV table being read row by row: the header read (names trimmed, none twice) and the id
/// column(s) found the way every reader of tables in Ferry finds them (see
/// [`DatasetSpec::id_columns`]). [`Dataset::read_csv`] reads through it, and so does
/// `ferry_feature::table::Table::read_csv`, which keeps text columns as text.
///
/// Every error names the file, and the row (the header is row 1) and column where they apply.
pub struct CsvTableReader {
    reader: csv::Reader<DataRead>,
    file: PathBuf,
    header: Vec<String>,
    id_names: Vec<String>,
    id_idx: Vec<usize>,
    row: u64,
}

impl CsvTableReader {
    /// Opens `src` (a path, or a [`Source`] with its opener) and reads its header.
    /// `id_columns` empty: the id is column `id` if the header has it, else the first column;
    /// several id columns form a composite id.
    pub fn open<'a>(
        src: impl Into<Source<'a>>,
        id_columns: &[String],
    ) -> Result<CsvTableReader, DataError> {
        let src = src.into();
        let path = src.path();
        let file = path.to_path_buf();
        let (reader, header) = open_csv(&src)?;
        for (i, h) in header.iter().enumerate() {
            if header[..i].contains(h) {
                return Err(DataError::DuplicateColumn {
                    file,
                    column: h.clone(),
                });
            }
        }
        let id_names = id_column_names(&header, id_columns);
        let id_idx = id_names
            .iter()
            .map(|n| header_index(path, &header, n))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CsvTableReader {
            reader,
            file,
            header,
            id_names,
            id_idx,
            row: 1,
        })
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The column names, in file order.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The id column name(s).
    pub fn id_columns(&self) -> &[String] {
        &self.id_names
    }

    /// The positions of the id column(s) in the header.
    pub fn id_indices(&self) -> &[usize] {
        &self.id_idx
    }

    /// The position of column `name`; a missing one is [`DataError::MissingColumn`], which
    /// lists the columns the file has.
    pub fn column_index(&self, name: &str) -> Result<usize, DataError> {
        header_index(&self.file, &self.header, name)
    }

    /// Reads the next data row into `record`: `None` at the end of the file, else the row
    /// number and the row's id (its id cells trimmed, joined with [`Dataset::ID_SEPARATOR`]).
    /// A malformed row ([`DataError::BadRow`]) and an empty id ([`DataError::BadValue`]) are
    /// errors.
    pub fn next_row(
        &mut self,
        record: &mut csv::StringRecord,
    ) -> Result<Option<(u64, String)>, DataError> {
        match self.reader.read_record(record) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => {
                return Err(DataError::BadRow {
                    file: self.file.clone(),
                    row: e.position().map(|p| p.line()).unwrap_or(self.row + 1),
                    reason: csv_reason(&e),
                });
            }
        }
        self.row = record.position().map(|p| p.line()).unwrap_or(self.row + 1);
        if self.id_idx.iter().all(|&i| record[i].trim().is_empty()) {
            return Err(DataError::BadValue {
                file: self.file.clone(),
                row: self.row,
                column: self.id_names.join("+"),
                reason: "the id is empty".into(),
            });
        }
        let id = if let [i] = self.id_idx[..] {
            record[i].trim().to_string()
        } else {
            let parts: Vec<&str> = self.id_idx.iter().map(|&i| record[i].trim()).collect();
            parts.join(&Dataset::ID_SEPARATOR.to_string())
        };
        Ok(Some((self.row, id)))
    }
}

pub(crate) fn header_index(file: &Path, header: &[String], name: &str) -> Result<usize, DataError> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| DataError::MissingColumn {
            file: file.to_path_buf(),
            column: name.to_string(),
            available: header.join(", "),
        })
}

impl Dataset {
    /// Separator between the parts of a composite id (ASCII unit separator: never in CSV text
    /// keys, so `("a|b", "c")` and `("a", "b|c")` stay distinct).
    pub const ID_SEPARATOR: char = '\u{1f}';

    /// Builds a dataset, checking the shapes agree.
    pub fn from_parts(
        ids: Vec<String>,
        feature_names: Vec<String>,
        features: Vec<f64>,
        label_name: Option<String>,
        labels: Option<Vec<f64>>,
    ) -> Result<Self, String> {
        if features.len() != ids.len() * feature_names.len() {
            return Err(format!(
                "{} values do not make {} rows of {} features",
                features.len(),
                ids.len(),
                feature_names.len()
            ));
        }
        if let Some(l) = &labels
            && l.len() != ids.len()
        {
            return Err(format!("{} labels for {} rows", l.len(), ids.len()));
        }
        Ok(Dataset {
            ids,
            feature_names,
            features,
            label_name,
            labels,
        })
    }

    /// Reads a CSV file with a header row (a path, or a [`Source`] with its opener).
    pub fn read_csv<'a>(
        src: impl Into<Source<'a>>,
        spec: &DatasetSpec,
    ) -> Result<Dataset, DataError> {
        let src = src.into();
        let file = src.file();
        let mut table = CsvTableReader::open(src, &spec.id_columns)?;
        let header = table.header().to_vec();
        let id_idx = table.id_indices().to_vec();
        let label_idx = spec
            .label
            .as_deref()
            .map(|n| table.column_index(n))
            .transpose()?;
        for ex in &spec.exclude {
            table.column_index(ex)?;
        }
        let feature_idx: Vec<usize> = match &spec.features {
            Some(names) => names
                .iter()
                .map(|n| table.column_index(n))
                .collect::<Result<_, _>>()?,
            None => (0..header.len())
                .filter(|i| {
                    !id_idx.contains(i)
                        && Some(*i) != label_idx
                        && !spec.exclude.contains(&header[*i])
                })
                .collect(),
        };
        let feature_names: Vec<String> = feature_idx.iter().map(|&i| header[i].clone()).collect();

        let mut ids = Vec::new();
        let mut features = Vec::new();
        let mut labels = label_idx.map(|_| Vec::new());
        let mut record = csv::StringRecord::new();
        while let Some((row, id)) = table.next_row(&mut record)? {
            ids.push(id);
            for (&i, name) in feature_idx.iter().zip(&feature_names) {
                let v = parse_number(&record[i]).map_err(|reason| DataError::BadValue {
                    file: file.clone(),
                    row,
                    column: name.clone(),
                    reason: format!("{reason} (feature columns must be numeric: encode it as numbers, or leave the column out, in a job with the reader's `exclude_columns`)"),
                })?;
                features.push(v.unwrap_or(f64::NAN));
            }
            if let (Some(li), Some(labels)) = (label_idx, labels.as_mut()) {
                let column = header[li].clone();
                let v = parse_number(&record[li])
                    .map_err(|reason| DataError::BadValue {
                        file: file.clone(),
                        row,
                        column: column.clone(),
                        reason,
                    })?
                    .ok_or_else(|| DataError::BadValue {
                        file: file.clone(),
                        row,
                        column: column.clone(),
                        reason: "the label is missing".into(),
                    })?;
                check_label(v, spec.label_kind).map_err(|reason| DataError::BadValue {
                    file: file.clone(),
                    row,
                    column,
                    reason,
                })?;
                labels.push(v);
            }
        }
        if ids.is_empty() {
            return Err(DataError::NoRows { file });
        }
        Ok(Dataset {
            ids,
            feature_names,
            features,
            label_name: spec.label.clone(),
            labels,
        })
    }

    pub fn n_rows(&self) -> usize {
        self.ids.len()
    }

    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Features of row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let d = self.n_features();
        &self.features[i * d..(i + 1) * d]
    }

    pub fn value(&self, row: usize, feature: usize) -> f64 {
        self.features[row * self.n_features() + feature]
    }

    /// Column `j` as a vector.
    pub fn column(&self, j: usize) -> Vec<f64> {
        (0..self.n_rows()).map(|i| self.value(i, j)).collect()
    }

    pub fn labels(&self) -> Option<&[f64]> {
        self.labels.as_deref()
    }

    /// The rows at `indices`, in that order.
    pub fn select_rows(&self, indices: &[usize]) -> Dataset {
        let d = self.n_features();
        let mut features = Vec::with_capacity(indices.len() * d);
        for &i in indices {
            features.extend_from_slice(self.row(i));
        }
        Dataset {
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            feature_names: self.feature_names.clone(),
            features,
            label_name: self.label_name.clone(),
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
        }
    }

    /// Reorders rows to follow `ids` exactly (every id must be present once).
    pub fn align_to(&self, ids: &[String]) -> Result<Dataset, String> {
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(self.ids.len());
        for (i, id) in self.ids.iter().enumerate() {
            if index.insert(id.as_str(), i).is_some() {
                return Err(format!("id '{id}' appears more than once"));
            }
        }
        let rows = ids
            .iter()
            .map(|id| {
                index
                    .get(id.as_str())
                    .copied()
                    .ok_or_else(|| format!("id '{id}' is not in the dataset"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.select_rows(&rows))
    }

    /// Columns of `self` followed by the columns of `other` (same ids in the same order).
    /// Used to build the pooled table that federated results are checked against.
    pub fn hstack(&self, other: &Dataset) -> Result<Dataset, String> {
        if self.ids != other.ids {
            return Err("datasets do not have the same ids in the same order".into());
        }
        let (da, db) = (self.n_features(), other.n_features());
        let mut features = Vec::with_capacity(self.n_rows() * (da + db));
        for i in 0..self.n_rows() {
            features.extend_from_slice(self.row(i));
            features.extend_from_slice(other.row(i));
        }
        let mut feature_names = self.feature_names.clone();
        feature_names.extend(other.feature_names.iter().cloned());
        Ok(Dataset {
            ids: self.ids.clone(),
            feature_names,
            features,
            label_name: self.label_name.clone().or(other.label_name.clone()),
            labels: self.labels.clone().or(other.labels.clone()),
        })
    }

    /// Writes `id[,label],features...`; missing values are written as empty cells. `output`
    /// is a path, or a [`Source`] whose opener writes it (sealed, on an encrypting node).
    pub fn write_csv<'a>(&self, output: impl Into<Source<'a>>) -> Result<(), DataError> {
        let output = output.into();
        let file: PathBuf = output.file();
        let err = |e: &dyn std::fmt::Display| DataError::Write {
            file: file.clone(),
            reason: e.to_string(),
        };
        let mut w = csv::Writer::from_writer(output.create()?);
        let mut header = vec!["id".to_string()];
        if let Some(name) = &self.label_name
            && self.labels.is_some()
        {
            header.push(name.clone());
        }
        header.extend(self.feature_names.iter().cloned());
        w.write_record(&header).map_err(|e| err(&e))?;
        let mut rec: Vec<String> = Vec::with_capacity(header.len());
        for i in 0..self.n_rows() {
            rec.clear();
            rec.push(self.ids[i].clone());
            if let (Some(_), Some(l)) = (&self.label_name, &self.labels) {
                rec.push(format_number(l[i]));
            }
            rec.extend(self.row(i).iter().map(|&v| format_number(v)));
            w.write_record(&rec).map_err(|e| err(&e))?;
        }
        w.into_inner()
            .map_err(|e| err(e.error()))?
            .finish()
            .map_err(|e| err(&e))
    }
}

fn format_number(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        format!("{v}")
    }
}

fn check_label(v: f64, kind: LabelKind) -> Result<(), String> {
    match kind {
        LabelKind::Continuous => Ok(()),
        LabelKind::Binary if v == 0.0 || v == 1.0 => Ok(()),
        LabelKind::Binary => Err(format!("label {v} is not 0 or 1 (binary classification)")),
        LabelKind::Multiclass if v >= 0.0 && v.fract() == 0.0 && v < 65536.0 => Ok(()),
        LabelKind::Multiclass => Err(format!("label {v} is not a class index 0, 1, 2, ...")),
    }
}

fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("has {len} fields but the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    #[test]
    fn reads_ids_labels_features_and_missing_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "g.csv", "id,y,x0,x1\n7,1,0.5,\n9,0,NA,-2e3\n");
        let d = Dataset::read_csv(&p, &DatasetSpec::with_label("y", LabelKind::Binary)).unwrap();
        assert_eq!(d.ids, ["7", "9"]);
        assert_eq!(d.feature_names, ["x0", "x1"]);
        assert_eq!(d.labels().unwrap(), [1.0, 0.0]);
        assert_eq!(d.value(0, 0), 0.5);
        assert!(d.value(0, 1).is_nan() && d.value(1, 0).is_nan());
        assert_eq!(d.value(1, 1), -2000.0);
    }

    #[test]
    fn errors_name_file_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "bad.csv", "id,y,x0\n1,0,1.0\n2,1,abc\n");
        let e = Dataset::read_csv(&p, &DatasetSpec::with_label("y", LabelKind::Binary))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad.csv, row 3, column 'x0': 'abc' is not a number"),
            "{e}"
        );

        let p = write(&dir, "label.csv", "id,y,x0\n1,2,1.0\n");
        let e = Dataset::read_csv(&p, &DatasetSpec::with_label("y", LabelKind::Binary))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("row 2, column 'y': label 2 is not 0 or 1"),
            "{e}"
        );

        let e = Dataset::read_csv(&p, &DatasetSpec::with_label("target", LabelKind::Binary))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no column named 'target' (columns are: id, y, x0)"),
            "{e}"
        );

        let p = write(&dir, "ragged.csv", "id,x0\n1,2\n3,4,5\n");
        let e = Dataset::read_csv(&p, &DatasetSpec::features_only())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("row 3: has 3 fields but the header has 2"),
            "{e}"
        );

        let p = write(&dir, "empty.csv", "");
        let e = Dataset::read_csv(&p, &DatasetSpec::features_only())
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");

        let p = write(&dir, "header.csv", "id,x0\n");
        let e = Dataset::read_csv(&p, &DatasetSpec::features_only())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no data rows"), "{e}");

        let e = Dataset::read_csv(dir.path().join("absent.csv"), &DatasetSpec::features_only())
            .unwrap_err()
            .to_string();
        assert!(e.contains("absent.csv: cannot open"), "{e}");
    }

    #[test]
    fn the_table_reader_finds_the_ids_and_numbers_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let ids = |path: &Path, id_columns: &[String]| -> Result<Vec<(u64, String)>, String> {
            let mut t = CsvTableReader::open(path, id_columns).map_err(|e| e.to_string())?;
            let mut record = csv::StringRecord::new();
            let mut out = Vec::new();
            while let Some(r) = t.next_row(&mut record).map_err(|e| e.to_string())? {
                out.push(r);
            }
            Ok(out)
        };
        // No `id` column: the first one is the id.
        let p = write(&dir, "first.csv", "key,x\n a ,1\nb,2\n");
        let t = CsvTableReader::open(&p, &[]).unwrap();
        assert_eq!(
            (t.id_columns(), t.id_indices()),
            (&["key".to_string()][..], &[0][..])
        );
        assert_eq!(t.column_index("x").unwrap(), 1);
        assert_eq!(
            ids(&p, &[]).unwrap(),
            [(2, "a".to_string()), (3, "b".to_string())]
        );
        // `id` wherever it stands; named columns form a composite id.
        let p = write(&dir, "two.csv", "x,id,k\n1,7,u\n2,8,\n");
        assert_eq!(ids(&p, &[]).unwrap()[1], (3, "8".to_string()));
        let both = ["id".to_string(), "k".to_string()];
        assert_eq!(ids(&p, &both).unwrap()[0], (2, "7\u{1f}u".to_string()));
        let e = ids(&p, &["k".to_string()]).unwrap_err();
        assert!(
            e.contains("two.csv, row 3, column 'k': the id is empty"),
            "{e}"
        );
        let e = ids(&p, &["nope".to_string()]).unwrap_err();
        assert!(e.contains("two.csv: no column named 'nope'"), "{e}");
        // The header: no name twice, and valid UTF-8.
        let p = write(&dir, "dup.csv", "id,x,x\n1,2,3\n");
        let e = ids(&p, &[]).unwrap_err();
        assert!(
            e.contains("dup.csv: column 'x' appears more than once"),
            "{e}"
        );
        let p = dir.path().join("latin1.csv");
        std::fs::write(&p, b"id,caf\xe9\n1,2\n").unwrap();
        let e = ids(&p, &[]).unwrap_err();
        assert!(e.contains("latin1.csv, row 1: is not valid UTF-8"), "{e}");
        // A row with too few fields.
        let p = write(&dir, "short.csv", "id,x\n1,2\n3\n");
        let e = ids(&p, &[]).unwrap_err();
        assert!(e.contains("short.csv, row 3: has 1 fields"), "{e}");
    }

    #[test]
    fn composite_ids_stay_unambiguous_and_alignment_reorders() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "c.csv", "a,b,x\nx|y,z,1\nx,y|z,2\n");
        let spec = DatasetSpec {
            id_columns: vec!["a".into(), "b".into()],
            ..DatasetSpec::default()
        };
        let d = Dataset::read_csv(&p, &spec).unwrap();
        assert_ne!(d.ids[0], d.ids[1]);
        let flipped = d.align_to(&[d.ids[1].clone(), d.ids[0].clone()]).unwrap();
        assert_eq!(flipped.column(0), [2.0, 1.0]);
        assert!(d.align_to(&["nope".into()]).is_err());
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dataset::from_parts(
            vec!["a".into(), "b".into()],
            vec!["f".into(), "g".into()],
            vec![1.5, f64::NAN, -3.0, 0.1],
            Some("y".into()),
            Some(vec![0.0, 1.0]),
        )
        .unwrap();
        let p = dir.path().join("out.csv");
        d.write_csv(&p).unwrap();
        let back = Dataset::read_csv(&p, &DatasetSpec::with_label("y", LabelKind::Binary)).unwrap();
        assert_eq!(back.ids, d.ids);
        assert_eq!(back.labels, d.labels);
        assert_eq!(back.value(0, 0), 1.5);
        assert!(back.value(0, 1).is_nan());
        assert_eq!(back.value(1, 1), 0.1);
    }
}
