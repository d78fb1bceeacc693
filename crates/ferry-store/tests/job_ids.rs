//! Job ids arrive from partners in proposals and become directory names, so the store refuses
//! any id that could name another directory.

use ferry_store::{JobRow, JobStatus, Store, validate_job_id};

#[test]
fn job_ids_that_could_leave_the_jobs_directory_are_refused() {
    for bad in [
        "",
        "job-",
        "../etc",
        "job-../../x",
        "job-a/b",
        "job-a\\b",
        "job-.",
        "job-a.b",
        "job- a",
        "job-\u{0}",
        "evil",
        "/abs",
    ] {
        let e = validate_job_id(bad).expect_err(bad);
        assert!(e.to_string().contains("invalid job id"), "{bad}: {e}");
    }
    let long = format!("job-{}", "a".repeat(61));
    assert!(validate_job_id(&long).is_err());
    for good in ["job-1764806400-a1b2c3", "job-x", "job-A_b-9"] {
        validate_job_id(good).unwrap();
    }
}

#[test]
fn the_store_does_not_record_a_job_under_a_bad_id() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = ferry_store::ModelSigner::generate().unwrap();
    let store = Store::open(&tmp.path().join("state"), &tmp.path().join("data"), signer).unwrap();
    let row = JobRow::new("job-../../x", "{}", "bank", "guest", JobStatus::Queued);
    assert!(store.insert_job(&row).is_err());
    assert!(store.list_jobs().unwrap().is_empty());
}
