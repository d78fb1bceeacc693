//! Splitting a table into train and test rows by its ids, the same way at every party.
//!
//! A row goes to the test set when `SHA-256(seed, id)` read as a fraction of 2^64 falls below
//! `test_fraction`. The decision depends only on the id and the seed, so parties holding the
//! same ids (after PSI) split them identically without exchanging a message, and a row keeps
//! its side when rows are added or reordered.

use crate::DataError;
use crate::select::{CsvOut, next_record, positions};
use crate::source::Source;
use crate::table::open_csv;
use sha2::{Digest, Sha256};

/// Rows written to each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitCounts {
    pub train: u64,
    pub test: u64,
}

/// Whether the row with id `id` belongs to the test set.
pub fn is_test_row(id: &str, seed: u64, test_fraction: f64) -> bool {
    let mut h = Sha256::new();
    h.update(b"ferry/split/v1\0");
    h.update(seed.to_le_bytes());
    h.update(id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 53 bits make an exactly representable fraction in [0, 1).
    let u = (u64::from_le_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
    u < test_fraction
}

/// Copies the rows of the CSV file `input` to `train` or `test` (both with the header) by
/// their id (the `id_columns` joined with [`crate::Dataset::ID_SEPARATOR`]).
pub fn split_csv_by_id<'a, 'b>(
    input: impl Into<Source<'a>>,
    id_columns: &[String],
    test_fraction: f64,
    seed: u64,
    train: impl Into<Source<'b>>,
    test: impl Into<Source<'b>>,
) -> Result<SplitCounts, DataError> {
    let src = input.into();
    let input = src.path();
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(DataError::Invalid {
            file: input.to_path_buf(),
            reason: format!("test_fraction must be between 0 and 1, got {test_fraction}"),
        });
    }
    let (mut reader, header) = open_csv(&src)?;
    let id_idx = positions(input, &header, id_columns)?;
    if id_idx.is_empty() {
        return Err(DataError::Invalid {
            file: input.to_path_buf(),
            reason: "no id column to split by".into(),
        });
    }
    let (mut w_train, mut w_test) = (
        CsvOut::create(&train.into())?,
        CsvOut::create(&test.into())?,
    );
    w_train.row(header.iter().map(String::as_str))?;
    w_test.row(header.iter().map(String::as_str))?;
    let mut counts = SplitCounts { train: 0, test: 0 };
    let mut record = csv::StringRecord::new();
    let mut id = String::new();
    while next_record(input, &mut reader, &mut record, counts.train + counts.test)? {
        id.clear();
        for (k, &i) in id_idx.iter().enumerate() {
            if k > 0 {
                id.push(crate::Dataset::ID_SEPARATOR);
            }
            id.push_str(record[i].trim());
        }
        if is_test_row(&id, seed, test_fraction) {
            w_test.row(&record)?;
            counts.test += 1;
        } else {
            w_train.row(&record)?;
            counts.train += 1;
        }
    }
    w_train.finish()?;
    w_test.finish()?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_depends_on_id_and_seed_only_and_follows_the_fraction() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("u{i}")).collect();
        let test: Vec<bool> = ids.iter().map(|id| is_test_row(id, 7, 0.2)).collect();
        let share = test.iter().filter(|&&t| t).count() as f64 / ids.len() as f64;
        // Binomial(20000, 0.2): sd ≈ 0.0028; 0.015 is over five of them.
        assert!((share - 0.2).abs() < 0.015, "{share}");
        // Same ids in another order: same decisions.
        let mut rev = ids.clone();
        rev.reverse();
        for id in &rev[..100] {
            let i = ids.iter().position(|x| x == id).unwrap();
            assert_eq!(is_test_row(id, 7, 0.2), test[i]);
        }
        // Another seed: another split.
        let other = ids.iter().filter(|id| is_test_row(id, 8, 0.2)).count();
        let both = ids
            .iter()
            .zip(&test)
            .filter(|(id, t)| **t && is_test_row(id, 8, 0.2))
            .count();
        assert!(
            other > 0 && (both as f64) < 0.3 * other as f64,
            "{both} of {other}"
        );
        // Nested: a larger fraction keeps every row a smaller one put in the test set.
        assert!(
            ids.iter()
                .all(|id| !is_test_row(id, 7, 0.1) || is_test_row(id, 7, 0.3))
        );
    }

    #[test]
    fn two_parties_with_the_same_ids_split_alike_and_every_row_lands_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = String::from("id,x\n");
        let mut b = String::from("y,id,z\n");
        for i in 0..500 {
            a.push_str(&format!("p{i},{i}\n"));
            b.push_str(&format!("{},p{i},\"q,{i}\"\n", i % 2));
        }
        let (fa, fb) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        std::fs::write(&fa, a).unwrap();
        std::fs::write(&fb, b).unwrap();
        let out = |n: &str| dir.path().join(n);
        let ids = vec!["id".to_string()];
        let ca = split_csv_by_id(&fa, &ids, 0.25, 3, out("a_tr"), out("a_te")).unwrap();
        let cb = split_csv_by_id(&fb, &ids, 0.25, 3, out("b_tr"), out("b_te")).unwrap();
        assert_eq!(ca, cb);
        assert_eq!(ca.train + ca.test, 500);
        let ids_of = |p: &std::path::Path, col: usize| -> Vec<String> {
            let mut r = csv::Reader::from_path(p).unwrap();
            r.records().map(|x| x.unwrap()[col].to_string()).collect()
        };
        assert_eq!(ids_of(&out("a_te"), 0), ids_of(&out("b_te"), 1));
        assert_eq!(ids_of(&out("a_tr"), 0), ids_of(&out("b_tr"), 1));
        // Quoted cells survive.
        let first = std::fs::read_to_string(out("b_tr")).unwrap();
        assert!(
            first.starts_with("y,id,z\n") && first.contains("\"q,"),
            "{first}"
        );
    }

    #[test]
    fn bad_fractions_and_missing_id_columns_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.csv");
        std::fs::write(&f, "id,x\n1,2\n").unwrap();
        let (tr, te) = (dir.path().join("tr"), dir.path().join("te"));
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            let e = split_csv_by_id(&f, &["id".into()], bad, 1, &tr, &te).unwrap_err();
            assert!(e.to_string().contains("test_fraction"), "{e}");
        }
        let e = split_csv_by_id(&f, &["key".into()], 0.2, 1, &tr, &te).unwrap_err();
        assert!(e.to_string().contains("'key'"), "{e}");
    }
}
