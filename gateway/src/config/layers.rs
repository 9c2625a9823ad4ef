//! The configuration's layers (main file, system file, environment), kept apart as well as
//! merged, so an error can name the layer a key came from.

use std::collections::HashMap;
use std::path::Path;

use config::{Environment, File, FileFormat};

use super::ConfigError;

/// The environment variables' prefix; `LANDLINE__SIP__UDP` sets `sip.udp`.
pub const ENV_PREFIX: &str = "LANDLINE";

/// Every layer on its own, and their merge.
#[derive(Debug)]
pub(crate) struct Layers {
    /// Lowest precedence first.
    layers: Vec<Layer>,
    merged: config::Config,
}

#[derive(Debug)]
struct Layer {
    /// A file's path as given, or `None` for the environment.
    file: Option<String>,
    values: config::Config,
}

impl Layers {
    /// Reads `main` (required), then `system` if it exists, then the environment (`env`
    /// replaces the process environment, for tests).
    pub(crate) fn read(
        main: &Path,
        system: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Layers, ConfigError> {
        let mut layers = vec![file_layer(main)?];
        if let Some(system) = system.filter(|s| s.exists() && !same_file(s, main)) {
            layers.push(file_layer(system)?);
        }
        let environment = Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .source(env);
        let values = config::Config::builder()
            .add_source(environment)
            .build()
            .map_err(|e| ConfigError::Read {
                file: "the environment".to_string(),
                reason: e.to_string(),
                fix: format!("check the {ENV_PREFIX}__* variables"),
            })?;
        layers.push(Layer { file: None, values });

        let mut builder = config::Config::builder();
        for layer in &layers {
            builder = builder.add_source(layer.values.clone());
        }
        let merged = builder.build().map_err(|e| ConfigError::Read {
            file: main.display().to_string(),
            reason: e.to_string(),
            fix: "check the layers' syntax".to_string(),
        })?;
        Ok(Layers { layers, merged })
    }

    /// The merged values, to deserialise.
    pub(crate) fn merged(&self) -> config::Config {
        self.merged.clone()
    }

    /// The file given with `--config`.
    pub(crate) fn main_file(&self) -> &str {
        self.layers
            .first()
            .and_then(|l| l.file.as_deref())
            .unwrap_or("the configuration")
    }

    /// The files that were read, in order.
    pub(crate) fn files(&self) -> Vec<String> {
        self.layers.iter().filter_map(|l| l.file.clone()).collect()
    }

    /// Where `key` (or, failing that, its closest parent) was last set: a file, or the
    /// environment variable. A key nobody set is a default, blamed on the main file.
    pub(crate) fn origin(&self, key: &str) -> String {
        let mut candidate = Some(key);
        while let Some(path) = candidate.filter(|p| !p.is_empty()) {
            for layer in self.layers.iter().rev() {
                if layer.values.get::<config::Value>(path).is_ok() {
                    return match &layer.file {
                        Some(file) => file.clone(),
                        None => format!("environment variable {}", env_name(path)),
                    };
                }
            }
            candidate = parent(path);
        }
        self.main_file().to_string()
    }

    /// An [`ConfigError::Invalid`] for `key`, naming where it was set.
    pub(crate) fn invalid(
        &self,
        key: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.origin(key),
            key: key.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// A [`ConfigError::MissingKey`] for `key`.
    pub(crate) fn missing(&self, key: &str, fix: impl Into<String>) -> ConfigError {
        ConfigError::MissingKey {
            file: self.origin(key),
            key: key.to_string(),
            fix: fix.into(),
        }
    }
}

fn file_layer(path: &Path) -> Result<Layer, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        file: name.clone(),
        reason: e.to_string(),
        fix: "pass an existing file with `--config FILE` (conf/landline.toml is the documented default)"
            .to_string(),
    })?;
    let values = config::Config::builder()
        .add_source(File::from_str(&text, FileFormat::Toml))
        .build()
        .map_err(|e| ConfigError::Read {
            file: name.clone(),
            reason: e.to_string(),
            fix: "fix the TOML syntax at the place shown".to_string(),
        })?;
    Ok(Layer {
        file: Some(name),
        values,
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `trunks[0].address` → `trunks[0]` → `trunks`.
fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}

/// The environment variable that sets `key` (`sip.udp` → `LANDLINE__SIP__UDP`).
pub(crate) fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_uppercase())
}
