//! kiln's configuration file: where it is found, what it may say, and how it combines with the
//! command line (a flag or environment variable always wins over the file).
//!
//! The file is TOML, read from `--config FILE`, else `$KILN_CONFIG`, else
//! `$XDG_CONFIG_HOME/kiln/config.toml` (`~/.config/kiln/config.toml`) when that exists:
//!
//! ```toml
//! store = "/srv/kiln"               # the store root (holds store/ and var/)
//! store-dir = "/kiln/store"         # the logical store directory hashed into paths
//! jobs = 4                          # builds run at once by `realise`
//! allow-network = false             # let non-fixed-output `__network` builds use the network
//! max-unpack-size = 8589934592      # bytes a builtin:unpack may create (default: 100 times
//!                                   # the archive's size, at least 1 GiB)
//!
//! [[rewrite]]                       # applied at fetch time: no .drv or output path changes
//! from = "https://cloud.centos.org/"
//! to = "https://mirror.internal/centos/"
//! ```
//!
//! Unknown keys are errors, so a misspelt key is never silently ignored.
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The settings a configuration file may hold; `None` where it says nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The store root.
    pub store: Option<PathBuf>,
    /// The logical store directory.
    pub store_dir: Option<String>,
    /// Default of `realise -j`.
    pub jobs: Option<usize>,
    /// Default of `realise --allow-network`.
    pub allow_network: Option<bool>,
    /// The most bytes (logical file sizes) one `builtin:unpack` may create.
    pub max_unpack_size: Option<u64>,
    /// URL prefix rewrites for fetches, first match wins.
    #[serde(default)]
    pub rewrite: Vec<RewriteRule>,
}

/// `[[rewrite]] from = "PREFIX" to = "PREFIX"`: a fetch of a URL starting with `from` goes to
/// `to` followed by the rest of the URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteRule {
    pub from: String,
    pub to: String,
}

impl Config {
    /// Reads the configuration: the explicit file (which must exist), else the default
    /// location if a file is there, else an empty configuration.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
        match explicit {
            Some(file) => Config::read(file),
            None => match default_location() {
                Some(file) if file.exists() => Config::read(&file),
                _ => Ok(Config::default()),
            },
        }
    }

    fn read(file: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the configuration '{}'", file.display()))?;
        Config::parse(&text).with_context(|| format!("invalid configuration '{}'", file.display()))
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text)?;
        if config.jobs == Some(0) {
            anyhow::bail!("`jobs` must be at least 1");
        }
        for rule in &config.rewrite {
            if rule.from.is_empty() {
                anyhow::bail!("a [[rewrite]] rule has an empty `from`");
            }
        }
        Ok(config)
    }
}

/// `$XDG_CONFIG_HOME/kiln/config.toml`, or `~/.config/kiln/config.toml`.
fn default_location() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir).join("kiln/config.toml"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
    Some(PathBuf::from(home).join(".config/kiln/config.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses() {
        let config = Config::parse(
            r#"
            store = "/srv/kiln"
            store-dir = "/nix/store"
            jobs = 3
            allow-network = true
            max-unpack-size = 4096
            [[rewrite]]
            from = "https://a.example/"
            to = "http://127.0.0.1:8080/a/"
            [[rewrite]]
            from = "https://b.example/"
            to = "http://127.0.0.1:8080/b/"
            "#,
        )
        .unwrap();
        assert_eq!(config.store.as_deref(), Some(Path::new("/srv/kiln")));
        assert_eq!(config.store_dir.as_deref(), Some("/nix/store"));
        assert_eq!(config.jobs, Some(3));
        assert_eq!(config.allow_network, Some(true));
        assert_eq!(config.max_unpack_size, Some(4096));
        assert_eq!(config.rewrite.len(), 2);
        assert_eq!(config.rewrite[1].to, "http://127.0.0.1:8080/b/");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let error = Config::parse("stor = \"/x\"").unwrap_err();
        assert!(format!("{error:#}").contains("stor"), "{error:#}");
        assert!(Config::parse("jobs = 0").is_err());
        assert!(Config::parse("jobs = \"four\"").is_err());
        assert!(Config::parse("[[rewrite]]\nfrom = \"\"\nto = \"x\"").is_err());
        assert!(Config::parse("[[rewrite]]\nfrom = \"a\"").is_err());
    }

    #[test]
    fn an_empty_file_says_nothing() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }
}
