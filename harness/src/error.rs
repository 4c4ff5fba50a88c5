//! Brownout's error type and its exit codes: 1 an expectation failed, 2 bad input,
//! 3 the environment could not be set up.

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum BrownoutError {
    /// A scenario or system file, or a command-line argument, is wrong. The message names where.
    #[error("{0}")]
    BadInput(String),
    /// Something the run needs is missing or broken on this machine. The message says the fix.
    #[error("{0}")]
    Environment(String),
    /// The run was interrupted (Ctrl-C / SIGTERM) and cleaned up.
    #[error("interrupted")]
    Interrupted,
}

impl BrownoutError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            BrownoutError::BadInput(_) => 2,
            BrownoutError::Environment(_) => 3,
            BrownoutError::Interrupted => 130,
        })
    }
}

pub type Result<T, E = BrownoutError> = std::result::Result<T, E>;

/// Wraps any error as an environment failure with context.
pub fn env_err(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> BrownoutError {
    move |e| BrownoutError::Environment(format!("{context}: {e}"))
}
