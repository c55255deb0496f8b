//! Configuration: `gateway.yaml` → file model ([`file`]) → [`Snapshot`](crate::snapshot::Snapshot)
//! ([`compile`]), with every error located.

pub mod compile;
mod diagnose;
pub mod file;
pub mod forwarding;

use std::fmt;
use std::path::Path;

use serde_saphyr::Location;

pub use compile::{Compiled, Secrets, Unchecked};

/// One configuration problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line and column in the YAML file; `None` when unknown (unreadable file).
    pub line: Option<u64>,
    pub column: Option<u64>,
    /// Dotted path of the offending value (`routes[2].upstream`); empty for syntax errors.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn at(at: Location, path: impl Into<String>, message: impl Into<String>) -> Self {
        let known = at.line() > 0;
        ConfigError {
            line: known.then(|| at.line()),
            column: known.then(|| at.column()),
            path: path.into(),
            message: message.into(),
        }
    }
}

impl ConfigError {
    /// `file:line:column: path: message`, the form compilers use (and editors jump to).
    pub fn in_file(&self, file: &Path) -> String {
        match (self.line, self.column) {
            (Some(_), Some(_)) => format!("{}:{self}", file.display()),
            _ => format!("{}: {self}", file.display()),
        }
    }
}

/// `line:column: path: message`.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, "{line}:{column}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// Every error as `file:line:column: path: message`, one per line.
    pub fn in_file(&self, file: &Path) -> String {
        let lines: Vec<String> = self.0.iter().map(|e| e.in_file(file)).collect();
        lines.join("\n")
    }
}

/// Parse YAML text into the file model. Syntax errors, wrong types and unknown keys end parsing
/// (YAML cannot be read past them); everything else is checked by [`compile::compile`].
pub fn parse(text: &str) -> Result<file::GatewayFile, ConfigErrors> {
    serde_saphyr::from_str(text).map_err(|e| ConfigErrors(vec![diagnose::diagnose(text, &e)]))
}

/// Read, parse and compile a configuration file into stores of its own (for one-off commands
/// and tests; a running gateway compiles into its long-lived stores with [`load_into`]).
pub fn load(path: &Path) -> Result<Compiled, ConfigErrors> {
    load_into(path, &crate::stores::Stores::default())
}

/// [`load`] with `secrets` deciding what an absent secret is: `validate` defers them (CI has no
/// Secrets mounted) and lists them apart.
pub fn load_checking(path: &Path, secrets: Secrets) -> Result<Compiled, ConfigErrors> {
    let (text, base_dir) = read(path)?;
    let compiled = compile::compile_with(
        parse(&text)?,
        compile::Inputs {
            base_dir: &base_dir,
            src: &crate::source::System,
            stores: &crate::stores::Stores::default(),
            secrets,
        },
    )?;
    Ok(with_digest(compiled, &text))
}

/// The compiled configuration, with the digest of the text it came from.
fn with_digest(mut compiled: Compiled, text: &str) -> Compiled {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    compiled.snapshot.config_sha256 = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    compiled
}

/// Read, parse and compile a configuration file; the snapshot refers to `stores`.
pub fn load_into(path: &Path, stores: &crate::stores::Stores) -> Result<Compiled, ConfigErrors> {
    let (text, base_dir) = read(path)?;
    load_str_into(&text, &base_dir, stores)
}

/// The file's text, and the directory its relative paths resolve against.
fn read(path: &Path) -> Result<(String, std::path::PathBuf), ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            line: None,
            column: None,
            path: String::new(),
            message: format!("cannot read {}: {e}", path.display()),
        }])
    })?;
    let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
    Ok((text, base_dir.to_path_buf()))
}

/// Parse and compile configuration text; relative paths resolve against `base_dir`.
pub fn load_str(text: &str, base_dir: &Path) -> Result<Compiled, ConfigErrors> {
    load_str_into(text, base_dir, &crate::stores::Stores::default())
}

/// [`load_str`] into `stores`.
pub fn load_str_into(
    text: &str,
    base_dir: &Path,
    stores: &crate::stores::Stores,
) -> Result<Compiled, ConfigErrors> {
    Ok(with_digest(
        compile::compile(parse(text)?, base_dir, stores)?,
        text,
    ))
}
