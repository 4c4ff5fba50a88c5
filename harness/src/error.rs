//! Brownout's error type and its exit codes ([`Exit`]): 0 every expectation held, 1 one failed,
//! 2 bad input, 3 the environment could not be set up, 130 interrupted (and cleaned up).

#[derive(Debug, thiserror::Error)]
pub enum BrownoutError {
    /// A scenario or system file, or a command-line argument, is wrong. The message names where.
    #[error("{0}")]
    BadInput(String),
    /// Something the run needs is missing or broken on this machine. The message says the fix.
    #[error("{0}")]
    Environment(String),
    /// The platform cannot inject one of the scenario's faults: refused before anything is
    /// deployed (exit 3). `prove` and `suite` report such a run as "not supported on this
    /// platform", neither passed nor failed; the e2e matrix keys on that phrase.
    #[error("fault {fault} is not supported on this platform ({platform}): {why}")]
    NotSupported {
        /// The platform's name ([`crate::platform::Platform::name`]).
        platform: String,
        /// The fault's kind as the scenario file writes it (e.g. `memory-limit`).
        fault: String,
        /// Why the platform cannot do it.
        why: String,
    },
    /// The run was interrupted (Ctrl-C / SIGTERM) and cleaned up.
    #[error("interrupted")]
    Interrupted,
}

/// Every exit code `brownout` uses, in one place (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Every expectation held (or: the command did what it was asked).
    Pass = 0,
    /// An expectation failed (a `summarize`: a verdict changed between runs).
    Fail = 1,
    /// A scenario or system file, or a command-line argument, is wrong.
    BadInput = 2,
    /// The environment could not be set up (a missing program, a port or process that would not start).
    Environment = 3,
    /// Interrupted by Ctrl-C or SIGTERM; everything was cleaned up.
    Interrupted = 130,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

impl BrownoutError {
    pub fn exit(&self) -> Exit {
        match self {
            BrownoutError::BadInput(_) => Exit::BadInput,
            BrownoutError::Environment(_) | BrownoutError::NotSupported { .. } => Exit::Environment,
            BrownoutError::Interrupted => Exit::Interrupted,
        }
    }
}

pub type Result<T, E = BrownoutError> = std::result::Result<T, E>;

/// Wraps any error as an environment failure with context.
pub fn env_err(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> BrownoutError {
    move |e| BrownoutError::Environment(format!("{context}: {e}"))
}
