//! Where a secret's value is read from: an environment variable or a file,
//! written `{ env: NAME }` or `{ file: PATH }`. Only the source is part of
//! a ruleset; the value is read when it is needed, never kept in a rule.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretSource {
    /// `{ env: NAME }`: the value of an environment variable.
    Env(String),
    /// `{ file: PATH }`: the contents of a file (a trailing newline dropped).
    File(PathBuf),
}

/// Why a secret could not be read (the message names the source, never a value).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The variable is unset, empty or not UTF-8.
    #[error("the environment variable {0} is not set (or empty)")]
    MissingEnv(String),
    /// The file cannot be read.
    #[error("cannot read the secret file {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("the secret file {0} is empty")]
    EmptyFile(PathBuf),
}

impl SecretSource {
    /// Reads the value now.
    pub fn read(&self) -> Result<String, SecretError> {
        match self {
            SecretSource::Env(name) => std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| SecretError::MissingEnv(name.clone())),
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                // Files written by editors and `echo` end with a newline that
                // is not part of the secret.
                let value = text.trim_end_matches(['\n', '\r']);
                match value.is_empty() {
                    true => Err(SecretError::EmptyFile(path.clone())),
                    false => Ok(value.to_owned()),
                }
            }
        }
    }
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "env {name}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}
