//! Logging: `tracing` to stderr (the journal under systemd), as text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Errors setting up logging.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `RUST_LOG` is set but is not a valid filter.
    #[error("RUST_LOG is not a valid log filter: {0}")]
    Filter(String),
    /// A subscriber was already installed (a second call in one process).
    #[error("logging is already initialised")]
    AlreadySet,
}

/// Installs the process's log subscriber: `RUST_LOG` when set, else `config.level`.
pub fn init(config: &LogConfig) -> Result<(), LogError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(rust_log) if !rust_log.is_empty() => {
            EnvFilter::try_new(&rust_log).map_err(|e| LogError::Filter(e.to_string()))?
        }
        // Validated at config load.
        _ => EnvFilter::try_new(&config.level).map_err(|e| LogError::Filter(e.to_string()))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, never into the journal or a file.
        .with_ansi(std::io::stderr().is_terminal());
    let result = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|_| LogError::AlreadySet)
}
