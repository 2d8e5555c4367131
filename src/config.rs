//! Typed configuration: the compiled-in `config/default.toml`, an optional
//! file, then `CXPULSE__SECTION__KEY` environment variables (config crate),
//! deserialized into [`Config`] and validated once at start-up.
//!
//! Raw durations stay strings in [`Config`]; [`Config::engine_settings`]
//! parses and checks them and names the key in every error.

use crate::engine::entities::KpiRules;
use crate::engine::kpi::Dim;
use crate::engine::windows::WindowSpec;
use crate::engine::EngineSettings;
use crate::time::{parse_duration, Micros, MICROS_PER_SEC};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The compiled-in defaults.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// A configuration error, reported at start-up (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub engine: EngineConfig,
    pub kpi: KpiConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    pub max_out_of_orderness: String,
    pub allowed_lateness: String,
    pub idle_timeout: String,
    pub dedup_horizon: String,
    pub entity_ttl: String,
    pub grouping_sets: Vec<Vec<String>>,
    pub windows: Vec<WindowConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub size: String,
    /// Defaults to `size` (a tumbling window).
    #[serde(default)]
    pub step: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiConfig {
    pub service_level_threshold: String,
    pub short_abandon_threshold: String,
    pub cart_abandon_after: String,
}

impl Default for Config {
    fn default() -> Self {
        Config::load_layers(None, false).expect("the compiled-in default config is valid")
    }
}

fn duration(key: &str, value: &str) -> Result<Micros, ConfigError> {
    parse_duration(value).map_err(|e| invalid(key, e))
}

impl Config {
    /// Loads defaults, then `path` (if any), then the environment, and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let cfg = Config::load_layers(path, true)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Loads defaults and a TOML string (tests, embedded examples).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = config::Config::builder()
            .add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            ))
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn load_layers(path: Option<&Path>, env: bool) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(p) = path {
            if !p.exists() {
                return Err(invalid(
                    "--config",
                    format!("file {} not found", p.display()),
                ));
            }
            builder = builder.add_source(
                config::File::from(p)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        if env {
            builder = builder.add_source(
                config::Environment::with_prefix("CXPULSE")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            );
        }
        Ok(builder.build()?.try_deserialize()?)
    }

    /// Checks every rule; the first violation names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.engine_settings().map(|_| ())
    }

    /// Parsed and validated engine settings.
    pub fn engine_settings(&self) -> Result<EngineSettings, ConfigError> {
        let e = &self.engine;
        let k = &self.kpi;
        let idle_timeout = duration("engine.idle_timeout", &e.idle_timeout)?;
        if idle_timeout == 0 {
            return Err(invalid("engine.idle_timeout", "must be above zero"));
        }
        if e.windows.is_empty() {
            return Err(invalid("engine.windows", "at least one window is required"));
        }
        let mut windows: Vec<WindowSpec> = Vec::new();
        for (i, w) in e.windows.iter().enumerate() {
            let key = format!("engine.windows[{i}]");
            let size = duration(&format!("{key}.size"), &w.size)?;
            let step = match &w.step {
                Some(s) => duration(&format!("{key}.step"), s)?,
                None => size,
            };
            if size <= 0 || step <= 0 {
                return Err(invalid(key, "size and step must be above zero"));
            }
            if size % MICROS_PER_SEC != 0 || step % MICROS_PER_SEC != 0 {
                return Err(invalid(key, "size and step must be whole seconds"));
            }
            if size % step != 0 {
                return Err(invalid(
                    key,
                    format!(
                        "size {} is not a multiple of step {}",
                        w.size,
                        w.step.as_deref().unwrap_or("")
                    ),
                ));
            }
            if windows.iter().any(|o| o.size == size) {
                return Err(invalid(
                    key,
                    format!("two windows have the same size {}", w.size),
                ));
            }
            windows.push(WindowSpec::new(size, step));
        }
        if e.grouping_sets.is_empty() {
            return Err(invalid(
                "engine.grouping_sets",
                "at least one grouping set is required",
            ));
        }
        let mut grouping_sets: Vec<Vec<Dim>> = Vec::new();
        for (i, set) in e.grouping_sets.iter().enumerate() {
            let key = format!("engine.grouping_sets[{i}]");
            let mut dims = Vec::new();
            for name in set {
                let d = Dim::parse(name).ok_or_else(|| {
                    invalid(
                        &key,
                        format!("unknown dimension {name:?} (use channel, region, agent_id)"),
                    )
                })?;
                if dims.contains(&d) {
                    return Err(invalid(&key, format!("dimension {name:?} appears twice")));
                }
                dims.push(d);
            }
            if grouping_sets.contains(&dims) {
                return Err(invalid(key, "the same grouping set appears twice"));
            }
            grouping_sets.push(dims);
        }
        Ok(EngineSettings {
            max_out_of_orderness: duration("engine.max_out_of_orderness", &e.max_out_of_orderness)?,
            allowed_lateness: duration("engine.allowed_lateness", &e.allowed_lateness)?,
            idle_timeout,
            dedup_horizon: duration("engine.dedup_horizon", &e.dedup_horizon)?,
            entity_ttl: duration("engine.entity_ttl", &e.entity_ttl)?,
            windows,
            grouping_sets,
            rules: KpiRules {
                service_level_threshold: duration(
                    "kpi.service_level_threshold",
                    &k.service_level_threshold,
                )?,
                short_abandon_threshold: duration(
                    "kpi.short_abandon_threshold",
                    &k.short_abandon_threshold,
                )?,
                cart_abandon_after: duration("kpi.cart_abandon_after", &k.cart_abandon_after)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = Config::default().engine_settings().unwrap();
        assert_eq!(s.windows.len(), 3);
        assert_eq!(&*s.windows[2].name, "24h");
        assert_eq!(s.grouping_sets.len(), 4);
    }

    fn err(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn rejects_bad_configs_naming_the_key() {
        let e = err("[engine]\nwindows = [ { size = \"5m\", step = \"2m\" } ]");
        assert!(
            e.contains("engine.windows[0]") && e.contains("not a multiple"),
            "{e}"
        );
        let e = err("[engine]\nwindows = [ { size = \"5m\", step = \"1m\" }, { size = \"5m\" } ]");
        assert!(e.contains("same size"), "{e}");
        let e = err("[engine]\nmax_out_of_orderness = \"30 seconds\"");
        assert!(e.contains("engine.max_out_of_orderness"), "{e}");
        let e = err("[engine]\nunknown_key = 1");
        assert!(e.contains("unknown_key"), "{e}");
        let e = err("[engine]\ngrouping_sets = [[\"country\"]]");
        assert!(e.contains("country"), "{e}");
    }

    #[test]
    fn file_overrides_defaults_key_by_key() {
        let c = Config::from_toml("[engine]\nallowed_lateness = \"10m\"").unwrap();
        assert_eq!(c.engine.allowed_lateness, "10m");
        assert_eq!(c.engine.max_out_of_orderness, "30s");
    }
}
