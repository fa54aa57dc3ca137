//! The binary's one error type: a kind that decides the exit code, a message and hints.

use std::process::ExitCode;

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad input or a request that cannot be met (exit 1).
    User,
    /// Something broke that is not the user's fault (exit 3).
    Internal,
}

/// An error the CLI prints and exits with.
#[derive(Debug)]
pub struct CliError {
    kind: Kind,
    message: String,
    hints: Vec<String>,
}

impl CliError {
    /// A user error (exit 1).
    pub fn user(message: impl Into<String>) -> Self {
        CliError {
            kind: Kind::User,
            message: message.into(),
            hints: Vec::new(),
        }
    }

    /// An internal error (exit 3).
    pub fn internal(message: impl Into<String>) -> Self {
        CliError {
            kind: Kind::Internal,
            message: message.into(),
            hints: Vec::new(),
        }
    }

    /// Adds a hint printed under the message.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Prints the error to standard error and returns the exit code.
    pub fn report(self) -> ExitCode {
        eprintln!("error: {}", self.message);
        for h in &self.hints {
            eprintln!("  hint: {h}");
        }
        match self.kind {
            Kind::User => ExitCode::from(1),
            Kind::Internal => ExitCode::from(3),
        }
    }
}

impl From<waterfall_store::StoreError> for CliError {
    fn from(e: waterfall_store::StoreError) -> Self {
        match e {
            waterfall_store::StoreError::TooNew { .. } | waterfall_store::StoreError::Model(_) => {
                CliError::user(e.to_string())
            }
            _ => CliError::internal(e.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::user(e.to_string())
    }
}

/// The result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;
