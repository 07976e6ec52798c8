//! Reading a config file: from a path, or from its text, to a validated [`Config`] or every
//! problem at once. The file is read through [`crate::files`] (bounded), relative paths in
//! it are resolved against its directory, and the YAML is checked for hostile nesting
//! before it is parsed.

use std::path::Path;

use serde_yaml::Value;

use super::environment::{Environment, RelativeTo};
use super::parse::parse_root;
use super::yaml::{one_line, too_deep, Problems, MAX_NESTING};
use super::{Config, ConfigError};
use crate::files;

impl Config {
    /// Reads and validates a config file.
    /// Blocking: call it off the async runtime (`spawn_blocking`).
    pub fn load(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
        let text = files::read_regular_file(path, files::MAX_FILE_BYTES).map_err(|source| {
            ConfigError::Read {
                path: path.to_owned(),
                source,
            }
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Config::parse(&text, &RelativeTo { dir, inner: env })
    }

    /// Validates the YAML text of a config file.
    pub fn parse(text: &str, env: &dyn Environment) -> Result<Config, ConfigError> {
        if let Some(line) = too_deep(text) {
            return Err(ConfigError::Invalid(vec![format!(
                "line {line}: collections nested deeper than {MAX_NESTING} levels"
            )]));
        }
        let root: Value = serde_yaml::from_str(text).map_err(|e| {
            ConfigError::Invalid(vec![format!(
                "not valid YAML: {}",
                one_line(&e.to_string())
            )])
        })?;
        let mut p = Problems(Vec::new(), text.to_owned());
        let config = parse_root(&root, env, &mut p);
        match config {
            Some(config) if p.0.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid(p.0)),
        }
    }
}
