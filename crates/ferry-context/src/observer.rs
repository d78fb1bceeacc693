//! Where a running protocol reports progress, metrics and log lines (the node stores them per
//! task; tests and the CLI may print them).

/// Receives progress, metrics and logs from a running protocol. Must be cheap and never block.
pub trait Observer: Send + Sync {
    fn progress(&self, _fraction: f64, _message: &str) {}
    fn metric(&self, _name: &str, _step: u64, _value: f64) {}
    fn log(&self, message: &str) {
        tracing::info!("{message}");
    }
}

/// Discards progress and metrics; forwards log lines to `tracing`.
pub struct NoopObserver;

impl Observer for NoopObserver {}

/// Keeps everything in memory (tests, the launcher's JSON output).
#[derive(Default)]
pub struct RecordingObserver {
    pub metrics: std::sync::Mutex<Vec<(String, u64, f64)>>,
    pub logs: std::sync::Mutex<Vec<String>>,
    pub last_progress: std::sync::Mutex<f64>,
}

impl Observer for RecordingObserver {
    fn progress(&self, fraction: f64, _message: &str) {
        *self.last_progress.lock().expect("observer lock") = fraction;
    }
    fn metric(&self, name: &str, step: u64, value: f64) {
        self.metrics
            .lock()
            .expect("observer lock")
            .push((name.to_string(), step, value));
    }
    fn log(&self, message: &str) {
        self.logs
            .lock()
            .expect("observer lock")
            .push(message.to_string());
    }
}
