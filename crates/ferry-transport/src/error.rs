use std::path::PathBuf;

/// Errors from setting up identities, node directories and the transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("identity: {0}")]
    Identity(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: invalid configuration: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

impl TransportError {
    pub(crate) fn file(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        TransportError::File {
            path: path.into(),
            reason: e.to_string(),
        }
    }
}
