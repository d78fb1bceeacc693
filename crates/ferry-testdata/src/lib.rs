//! Where the tests' data lives: `test-data/datasets/` at the root of the repository (public
//! datasets; origin and licence in its README). One helper for every crate's tests, so that a
//! missing file fails the test that needs it, naming the file, instead of letting it pass
//! without running.

use std::path::{Path, PathBuf};

/// `test-data/datasets/<file>`. Panics naming the file when it is missing.
pub fn dataset(file: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../test-data/datasets")
        .join(file);
    assert!(
        path.is_file(),
        "test data file {} is missing (see test-data/datasets/README.md)",
        path.display()
    );
    path
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_shipped_file_is_found_and_a_missing_one_fails_naming_it() {
        assert!(super::dataset("breast_hetero_guest.csv").is_file());
        let missing = std::panic::catch_unwind(|| super::dataset("no_such_file.csv"));
        let message = missing
            .expect_err("a missing file must fail")
            .downcast::<String>()
            .map(|s| *s)
            .unwrap_or_default();
        assert!(message.contains("no_such_file.csv"), "{message}");
    }
}
