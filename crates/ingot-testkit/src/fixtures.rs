//! Where the shared 3PA fixtures are, for every test that reads them (golden tests,
//! signature vectors, fixture end-to-end tests): one rule, so none of them can pass
//! vacuously in CI.
//!
//! The folder is `$INGOT_FIXTURES_DIR`, else `<workspace>/../shared/fixtures`, and counts as
//! present when it holds `MANIFEST.md`. When it is absent a test is skipped with a printed
//! reason — except when the environment variable `CI` is `true`, where the missing folder
//! fails the test (a CI run that checked nothing must not be green).

use std::path::{Path, PathBuf};

/// The folder the shared fixtures are expected in (whether or not it exists).
pub fn fixtures_path() -> PathBuf {
    std::env::var_os("INGOT_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"))
}

/// Whether `CI` is `true` (GitHub Actions, GitLab and most CI systems set it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The shared fixtures folder, or `None` (with a printed "skipped" reason) when it is
/// absent. Panics instead of skipping when `CI=true`.
pub fn fixtures_dir() -> Option<PathBuf> {
    fixtures_dir_with(&fixtures_path(), in_ci())
}

/// [`fixtures_dir`] for a given folder and CI flag (the rule itself, testable).
pub fn fixtures_dir_with(dir: &Path, ci: bool) -> Option<PathBuf> {
    if dir.join("MANIFEST.md").is_file() {
        return Some(dir.to_path_buf());
    }
    assert!(
        !ci,
        "shared fixtures not found at {} and CI=true: a fixture test must not pass without \
         checking anything (set INGOT_FIXTURES_DIR to the fixtures folder)",
        dir.display()
    );
    eprintln!(
        "skipped: shared fixtures not found at {} (set INGOT_FIXTURES_DIR to the fixtures folder)",
        dir.display()
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_folder_skips_outside_ci() {
        let dir = std::env::temp_dir().join("ingot-no-such-fixtures-dir");
        assert_eq!(fixtures_dir_with(&dir, false), None);
    }

    #[test]
    #[should_panic(expected = "CI=true")]
    fn missing_folder_fails_in_ci() {
        let dir = std::env::temp_dir().join("ingot-no-such-fixtures-dir");
        fixtures_dir_with(&dir, true);
    }

    #[test]
    fn present_folder_is_returned_in_and_out_of_ci() {
        let dir = std::env::temp_dir().join(format!("ingot-fixtures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("MANIFEST.md"), "x").unwrap();
        assert_eq!(fixtures_dir_with(&dir, true), Some(dir.clone()));
        assert_eq!(fixtures_dir_with(&dir, false), Some(dir.clone()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
