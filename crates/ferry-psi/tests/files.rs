//! PSI on files: key columns, composite keys, duplicates and empty keys, the rows written,
//! Parquet input, and errors that name the file and column.

use ferry_context::{LocalCluster, Role, Roster};
use ferry_psi::{PsiConfig, PsiInput, PsiOutcome, Receivers, run_psi};
use std::path::{Path, PathBuf};

fn roster(n: usize) -> Roster {
    let all = [
        ("bank", Role::Guest),
        ("telco", Role::Host),
        ("shop", Role::Host),
    ];
    Roster::of(&all[..n])
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(inputs: &[PsiInput], config: &PsiConfig) -> Vec<Result<PsiOutcome, String>> {
    LocalCluster::new(roster(inputs.len()))
        .run(|ctx| {
            let i = ["bank", "telco", "shop"]
                .iter()
                .position(|n| *n == ctx.me().as_str())
                .unwrap();
            run_psi(&ctx, &inputs[i], config)
        })
        .into_iter()
        .map(|o| o.result)
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn csv_rows_in_the_intersection_are_written_in_the_same_order_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let bank = write(
        dir.path(),
        "bank.csv",
        "id,income,note\n\
         u1,10,\"first, quoted\"\n\
         u2,20,x\n\
         u3,30,y\n\
         u2,21,duplicate of u2\n\
         ,40,empty key\n\
         u5,50,z\n\
         u6,60,w\n",
    );
    let telco = write(
        dir.path(),
        "telco.csv",
        "phone,plan\n u6 ,gold\nu3,silver\nu9,bronze\nu1,none\nu3,again\n",
    );
    let inputs = [
        PsiInput::new(&bank, &["id"]).with_output(dir.path().join("bank_out.csv")),
        PsiInput::new(&telco, &["phone"]).with_output(dir.path().join("telco_out.csv")),
    ];
    let outcomes = run(&inputs, &PsiConfig::default());
    let bank_out = outcomes[0].as_ref().unwrap();
    let telco_out = outcomes[1].as_ref().unwrap();

    let r = &bank_out.report;
    assert_eq!(
        (
            r.input_rows,
            r.empty_keys,
            r.duplicates_dropped,
            r.unique_keys
        ),
        (7, 1, 1, 5)
    );
    assert_eq!(r.intersection_size, Some(3));
    assert_eq!(r.output_rows, Some(3));
    assert!(r.bytes_sent > 0 && r.bytes_received > 0);
    assert!(r.wall_seconds > 0.0);
    let r = &telco_out.report;
    assert_eq!(
        (
            r.input_rows,
            r.empty_keys,
            r.duplicates_dropped,
            r.unique_keys
        ),
        (5, 0, 1, 4)
    );
    assert_eq!(r.peer_set_sizes.values().copied().collect::<Vec<_>>(), [5]);

    // Same ids in the same order on both sides, each side's own columns.
    let b = lines(&dir.path().join("bank_out.csv"));
    let t = lines(&dir.path().join("telco_out.csv"));
    assert_eq!(b[0], "id,income,note");
    assert_eq!(t[0], "phone,plan");
    let key = |line: &str| line.split(',').next().unwrap().trim().to_string();
    let b_ids: Vec<String> = b[1..].iter().map(|l| key(l)).collect();
    let t_ids: Vec<String> = t[1..].iter().map(|l| key(l)).collect();
    assert_eq!(b_ids, t_ids);
    let mut sorted = b_ids.clone();
    sorted.sort();
    assert_eq!(sorted, ["u1", "u3", "u6"]);
    // The first occurrence is kept, and quoted fields survive.
    assert!(b.contains(&"u1,10,\"first, quoted\"".to_string()), "{b:?}");
    assert!(t.contains(&"u3,silver".to_string()), "{t:?}");
    assert!(!t.contains(&"u3,again".to_string()));
    // The row numbers returned match the file.
    let rows = bank_out.rows.as_ref().unwrap();
    let by_row = ["u1", "u2", "u3", "u2", "", "u5", "u6"];
    let named: Vec<&str> = rows.iter().map(|&r| by_row[r as usize]).collect();
    assert_eq!(named, b_ids);
}

#[test]
fn composite_keys_match_column_by_column() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.csv",
        "first,last,v\nann,lee,1\nann,leex,2\nbo,,3\n,,4\nx|y,z,5\n",
    );
    let b = write(
        dir.path(),
        "b.csv",
        "surname,given\nlee,ann\nlee,annx\n,bo\nz,x\ny|z,x\n",
    );
    let inputs = [
        PsiInput::new(&a, &["first", "last"]),
        PsiInput::new(&b, &["given", "surname"]),
    ];
    let outcomes = run(&inputs, &PsiConfig::receiver("bank".parse().unwrap()));
    let a_out = outcomes[0].as_ref().unwrap();
    // (ann, lee) and (bo, "") match; ("x|y","z") vs ("x","y|z") must not.
    let mut rows = a_out.rows.clone().unwrap();
    rows.sort();
    assert_eq!(rows, [0, 2]);
    assert_eq!(a_out.report.empty_keys, 1);
    assert!(outcomes[1].as_ref().unwrap().rows.is_none());
    assert_eq!(outcomes[1].as_ref().unwrap().report.intersection_size, None);
}

#[test]
fn three_parties_write_the_same_ids_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let texts = [
        "id,x\n1,a\n2,b\n3,c\n4,d\n5,e\n",
        "id,y\n5,p\n3,q\n1,r\n9,s\n",
        "key,z\n3,k\n1,l\n5,m\n4,n\n",
    ];
    let inputs: Vec<PsiInput> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let col = if i == 2 { "key" } else { "id" };
            PsiInput::new(write(dir.path(), &format!("p{i}.csv"), t), &[col])
                .with_output(dir.path().join(format!("out{i}.csv")))
        })
        .collect();
    let outcomes = run(&inputs, &PsiConfig::default());
    let mut orders = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.as_ref().unwrap().report.intersection_size, Some(3));
        let l = lines(&dir.path().join(format!("out{i}.csv")));
        orders.push(
            l[1..]
                .iter()
                .map(|r| r.split(',').next().unwrap().to_string())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[1], orders[2]);
    let mut ids = orders[0].clone();
    ids.sort();
    assert_eq!(ids, ["1", "3", "5"]);
}

#[test]
fn bad_input_errors_name_the_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.csv", "id\n1\n2\n");
    let cases = [
        (
            "missing.csv",
            "id,x\n1,2\n",
            "phone",
            "missing.csv: no column named 'phone' (columns are: id, x)",
        ),
        ("empty.csv", "", "id", "empty.csv: the file is empty"),
        (
            "ragged.csv",
            "id,x\n1,2\n3\n",
            "id",
            "ragged.csv, row 3: unreadable row: it has 1 fields but the header has 2",
        ),
        (
            "header.csv",
            "id,x\n",
            "id",
            "header.csv: has a header but no data rows",
        ),
        (
            "twice.csv",
            "id,id\n1,2\n",
            "id",
            "twice.csv: column 'id' appears more than once",
        ),
    ];
    for (name, text, column, message) in cases {
        let bad = write(dir.path(), name, text);
        let inputs = [
            PsiInput::new(&bad, &[column]),
            PsiInput::new(&good, &["id"]),
        ];
        let outcomes = run(&inputs, &PsiConfig::default());
        let e = outcomes[0].as_ref().unwrap_err();
        assert!(e.contains(message), "{name}: {e}");
        // The peer is told its peer failed instead of waiting for the timeout.
        assert!(outcomes[1].is_err());
    }
    let inputs = [
        PsiInput::new(dir.path().join("absent.csv"), &["id"]),
        PsiInput::new(&good, &["id"]),
    ];
    let e = run(&inputs, &PsiConfig::default())[0].clone().unwrap_err();
    assert!(e.contains("absent.csv: cannot open"), "{e}");

    // Different numbers of key columns on the two sides.
    let two = write(dir.path(), "two.csv", "a,b\n1,2\n");
    let inputs = [
        PsiInput::new(&two, &["a", "b"]),
        PsiInput::new(&good, &["id"]),
    ];
    for o in run(&inputs, &PsiConfig::default()) {
        let e = o.unwrap_err();
        assert!(e.contains("number of key columns"), "{e}");
    }
}

#[test]
fn a_key_column_that_is_empty_everywhere_gives_an_empty_intersection() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.csv", "id,v\n,1\n  ,2\n");
    let b = write(dir.path(), "b.csv", "id\nx\n");
    let inputs = [
        PsiInput::new(&a, &["id"]).with_output(dir.path().join("a_out.csv")),
        PsiInput::new(&b, &["id"]),
    ];
    let outcomes = run(&inputs, &PsiConfig::default());
    let r = &outcomes[0].as_ref().unwrap().report;
    assert_eq!((r.input_rows, r.empty_keys, r.unique_keys), (2, 2, 0));
    assert_eq!(r.intersection_size, Some(0));
    assert_eq!(lines(&dir.path().join("a_out.csv")), ["id,v"]);
}

#[test]
fn reports_serialise_for_the_job_result() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.csv", "id\n1\n2\n");
    let inputs = [PsiInput::new(&a, &["id"]), PsiInput::new(&a, &["id"])];
    let outcomes = run(
        &inputs,
        &PsiConfig {
            receivers: Receivers::All,
            ..PsiConfig::default()
        },
    );
    let json = serde_json::to_value(&outcomes[0].as_ref().unwrap().report).unwrap();
    assert_eq!(json["intersection_size"], 2);
    assert_eq!(json["input_format"], "csv");
    assert_eq!(json["protocol"], "ecdh-psi-2p");
    let config: PsiConfig =
        serde_json::from_str(r#"{"receivers": {"party": "bank"}, "chunk_size": 100}"#).unwrap();
    assert_eq!(config.receivers, Receivers::Party("bank".parse().unwrap()));
    assert_eq!(config.chunk_size, 100);
}

mod parquet_input {
    use super::*;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;

    fn write_parquet(path: &Path, ids: &[i64], names: &[&str]) {
        let schema = Arc::new(
            parse_message_type("message t { required int64 cust; required binary name (UTF8); }")
                .unwrap(),
        );
        let props = Arc::new(WriterProperties::builder().build());
        let file = std::fs::File::create(path).unwrap();
        let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
        let mut rg = w.next_row_group().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        col.typed::<Int64Type>()
            .write_batch(ids, None, None)
            .unwrap();
        col.close().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let values: Vec<ByteArray> = names.iter().map(|s| (*s).into()).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&values, None, None)
            .unwrap();
        col.close().unwrap();
        rg.close().unwrap();
        w.close().unwrap();
    }

    #[test]
    fn parquet_and_csv_parties_match_on_key_text() {
        let dir = tempfile::tempdir().unwrap();
        let pq = dir.path().join("bank.parquet");
        write_parquet(&pq, &[101, 102, 103, 101], &["a", "b", "c", "dup"]);
        let csv = write(dir.path(), "telco.csv", "id,plan\n103,x\n999,y\n101,z\n");
        let inputs = [
            PsiInput::new(&pq, &["cust"]).with_output(dir.path().join("bank_out.csv")),
            PsiInput::new(&csv, &["id"]).with_output(dir.path().join("telco_out.csv")),
        ];
        let outcomes = run(&inputs, &PsiConfig::default());
        let bank = outcomes[0].as_ref().unwrap();
        assert_eq!(bank.report.input_format, ferry_psi::InputFormat::Parquet);
        assert_eq!(bank.report.duplicates_dropped, 1);
        assert_eq!(bank.report.intersection_size, Some(2));
        let b = lines(&dir.path().join("bank_out.csv"));
        let t = lines(&dir.path().join("telco_out.csv"));
        assert_eq!(b[0], "cust,name");
        let first = |v: &[String]| -> Vec<String> {
            v[1..]
                .iter()
                .map(|l| l.split(',').next().unwrap().to_string())
                .collect()
        };
        assert_eq!(first(&b), first(&t));
        assert!(
            b.contains(&"101,a".to_string()) && b.contains(&"103,c".to_string()),
            "{b:?}"
        );

        let inputs = [PsiInput::new(&pq, &["phone"]), PsiInput::new(&csv, &["id"])];
        let e = run(&inputs, &PsiConfig::default())[0].clone().unwrap_err();
        assert!(
            e.contains("bank.parquet: no column named 'phone' (columns are: cust, name)"),
            "{e}"
        );
    }
}
