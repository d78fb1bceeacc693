//! Test-only crash points: the durability tests kill a real `ferry serve` process at exact
//! moments of a write (a dataset copied and scanned but not yet recorded, a model file renamed
//! into place but not yet recorded, a job's status about to change), which a kill from outside
//! hits only by luck.
//!
//! A crash point aborts the process (no unwinding, no destructors, no flush: on disk it is
//! the same as SIGKILL) when the environment variable [`CRASH_ENV`] names it. The variable is
//! read only in debug builds (`debug_assertions`, which the test profile has and release
//! builds do not): in a release binary [`crash_point`] is empty. It is set only in the
//! environment of the process by whoever starts it; nothing a job spec, an API request or a
//! partner sends can reach it.

/// The environment variable naming the crash point to abort at (debug builds only).
pub const CRASH_ENV: &str = "FERRY_TEST_CRASH_AT";

/// Aborts the process if [`CRASH_ENV`] names `point` (debug builds only; see the module
/// docs).
#[inline]
pub fn crash_point(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os(CRASH_ENV).is_some_and(|v| v == point) {
        eprintln!("{CRASH_ENV}: crash point '{point}' reached, aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}
