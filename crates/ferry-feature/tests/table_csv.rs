//! Reading, writing and converting a party's table with text columns.

use ferry_feature::table::{Column, ColumnValues, Table, TableError};
use std::path::PathBuf;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Kind and written cells of every column (`NaN != NaN`, so values are compared as cells).
fn cells(t: &Table) -> Vec<(&'static str, Vec<String>)> {
    t.columns
        .iter()
        .map(|c| {
            let cells = (0..t.n_rows()).map(|i| c.values.cell(i)).collect();
            (c.values.kind(), cells)
        })
        .collect()
}

fn text(values: &[Option<&str>]) -> ColumnValues {
    ColumnValues::Text(values.iter().map(|v| v.map(str::to_string)).collect())
}

#[test]
fn columns_are_numeric_or_text_and_missing_cells_follow_parse_number() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "g.csv",
        "id,y,age,city,score,empty\n\
         a,1,35, Paris ,1e2,\n\
         b,0,NA,,-0.5,null\n\
         c,0,41,Lyon,?,\n\
         d,1,,nan,7,NA\n",
    );
    let t = Table::read_csv(&p, &[], Some("y")).unwrap();
    assert_eq!(t.ids, ["a", "b", "c", "d"]);
    assert_eq!(t.id_columns, ["id"]);
    assert_eq!(t.label_name.as_deref(), Some("y"));
    assert_eq!(t.labels.as_deref(), Some(&[1.0, 0.0, 0.0, 1.0][..]));
    assert_eq!(t.column_names(), ["age", "city", "score", "empty"]);

    let ColumnValues::Numeric(age) = &t.column("age").unwrap().values else {
        panic!("age should be numeric");
    };
    assert_eq!(age[0], 35.0);
    assert!(age[1].is_nan() && age[3].is_nan());
    assert_eq!(age[2], 41.0);
    // Text is trimmed; the empty cell and `nan` are missing, as in numeric columns.
    assert_eq!(
        t.column("city").unwrap().values,
        text(&[Some("Paris"), None, Some("Lyon"), None])
    );
    let score = &t.column("score").unwrap().values;
    assert!(score.is_numeric());
    assert_eq!(score.missing_count(), 1);
    // A column with no value at all is numeric.
    let empty = &t.column("empty").unwrap().values;
    assert!(empty.is_numeric() && empty.missing_count() == 4);
    assert_eq!(t.text_columns(), ["city"]);
    assert!(t.column("nope").is_none());
    let e = t.require_column("nope").unwrap_err().to_string();
    assert!(
        e.contains("'nope'") && e.contains("age, city, score, empty"),
        "{e}"
    );
}

#[test]
fn one_word_makes_a_column_text_and_keeps_its_numbers_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "t.csv", "id,code\n1,007\n2,12\n3,x9\n");
    let t = Table::read_csv(&p, &[], None).unwrap();
    assert_eq!(t.labels, None);
    assert_eq!(
        t.columns[0].values,
        text(&[Some("007"), Some("12"), Some("x9")])
    );
}

#[test]
fn a_bad_or_missing_label_names_file_row_column_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "lab.csv", "id,y,x\n1,0,1\n2,yes,2\n");
    let e = Table::read_csv(&p, &[], Some("y")).unwrap_err();
    assert!(matches!(e, TableError::BadLabel { row: 3, .. }), "{e:?}");
    let e = e.to_string();
    assert!(
        e.contains("lab.csv, row 3, column 'y': the label 'yes' is not a number"),
        "{e}"
    );

    let p = write(&dir, "nolab.csv", "id,y,x\n1,0,1\n2,1,2\n3,,3\n");
    let e = Table::read_csv(&p, &[], Some("y")).unwrap_err().to_string();
    assert!(
        e.contains("nolab.csv, row 4, column 'y': the label is missing"),
        "{e}"
    );

    let e = Table::read_csv(&p, &[], Some("target"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no column named 'target' (columns are: id, y, x)"),
        "{e}"
    );
}

#[test]
fn file_errors_name_the_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "ragged.csv", "id,x\n1,2\n3,4,5\n");
    let e = Table::read_csv(&p, &[], None).unwrap_err().to_string();
    assert!(
        e.contains("ragged.csv, row 3: has 3 fields but the header has 2"),
        "{e}"
    );
    let p = write(&dir, "dup.csv", "id,x,x\n1,2,3\n");
    let e = Table::read_csv(&p, &[], None).unwrap_err().to_string();
    assert!(e.contains("'x' appears more than once"), "{e}");
    let p = write(&dir, "noid.csv", "id,x\n,2\n");
    let e = Table::read_csv(&p, &[], None).unwrap_err().to_string();
    assert!(
        e.contains("noid.csv, row 2, column 'id': the id is empty"),
        "{e}"
    );
    let p = write(&dir, "header.csv", "id,x\n");
    let e = Table::read_csv(&p, &[], None).unwrap_err().to_string();
    assert!(e.contains("no data rows"), "{e}");
    let e = Table::read_csv(dir.path().join("absent.csv"), &[], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.csv: cannot open"), "{e}");
}

#[test]
fn to_dataset_names_text_columns_and_suggests_the_encoders() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "m.csv",
        "id,y,a,job,b,city\n1,0,1,dev,2,Oslo\n2,1,3,ops,,Rome\n",
    );
    let t = Table::read_csv(&p, &[], Some("y")).unwrap();
    let e = t.to_dataset().unwrap_err();
    assert!(
        matches!(&e, TableError::TextColumns { columns } if columns == &["job", "city"]),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(e.contains("columns 'job', 'city' hold text"), "{e}");
    assert!(
        e.contains("feature_transform") && e.contains("one_hot"),
        "{e}"
    );

    let numeric = Table {
        columns: t
            .columns
            .iter()
            .filter(|c| c.values.is_numeric())
            .cloned()
            .collect(),
        ..t.clone()
    };
    let d = numeric.to_dataset().unwrap();
    assert_eq!(d.feature_names, ["a", "b"]);
    assert_eq!(d.labels(), Some(&[0.0, 1.0][..]));
    assert_eq!(d.row(0), [1.0, 2.0]);
    assert_eq!(d.value(1, 0), 3.0);
    assert!(d.value(1, 1).is_nan());
    let back = Table::from_dataset(&d);
    assert_eq!(back.column_names(), ["a", "b"]);
    assert_eq!(cells(&back), cells(&numeric));
}

#[test]
fn select_rows_reorders_every_column_and_checks_bounds() {
    let t = Table {
        ids: vec!["a".into(), "b".into(), "c".into()],
        id_columns: vec!["id".into()],
        label_name: Some("y".into()),
        labels: Some(vec![0.0, 1.0, 0.0]),
        columns: vec![
            Column::numeric("x", vec![1.0, f64::NAN, 3.0]),
            Column::text("c", vec![Some("u"), None, Some("w")]),
        ],
    };
    let s = t.select_rows(&[2, 0, 2]).unwrap();
    assert_eq!(s.ids, ["c", "a", "c"]);
    assert_eq!(s.labels.as_deref(), Some(&[0.0, 0.0, 0.0][..]));
    assert_eq!(
        s.columns[0].values,
        ColumnValues::Numeric(vec![3.0, 1.0, 3.0])
    );
    assert_eq!(
        s.columns[1].values,
        text(&[Some("w"), Some("u"), Some("w")])
    );
    let e = t.select_rows(&[0, 3]).unwrap_err().to_string();
    assert!(
        e.contains("row 3 is out of range: the table has 3 rows"),
        "{e}"
    );
}

#[test]
fn write_then_read_gives_the_same_table_with_composite_ids() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "c.csv",
        "bank,cust,y,x,city\nb1,7,1,0.1,Oslo\nb1,8,0,,\nb2,7,0,-3e-7,Rome\n",
    );
    let ids = ["bank".to_string(), "cust".to_string()];
    let t = Table::read_csv(&p, &ids, Some("y")).unwrap();
    assert_eq!(t.ids[0], "b1\u{1f}7");
    let out = dir.path().join("out.csv");
    t.write_csv(&out).unwrap();
    let back = Table::read_csv(&out, &ids, Some("y")).unwrap();
    assert_eq!(back.ids, t.ids);
    assert_eq!(back.labels, t.labels);
    assert_eq!(back.column_names(), t.column_names());
    assert_eq!(cells(&back), cells(&t));
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        text,
        "bank,cust,y,x,city\nb1,7,1,0.1,Oslo\nb1,8,0,,\nb2,7,0,-0.0000003,Rome\n"
    );
}
