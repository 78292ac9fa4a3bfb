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
//! max-build-memory = "8G"           # memory of one build (default: half the RAM; 0: no limit)
//! max-build-pids = 4096             # processes of one build at once (default 4096; 0: no limit)
//! max-silent-time = 3600            # kill a build silent this long, in s (default 3600; 0: never)
//! timeout = 0                       # kill a build running this long, in s (default 0: never)
//! secret-key-files = ["/etc/kiln/cache-key.sec"]  # sign what `kiln copy --to` pushes
//! substituters = ["https://cache.example.org"]    # binary caches `realise` fetches from
//! trusted-public-keys = ["cache.example.org-1:…"] # whose signatures are accepted
//! require-sigs = true               # refuse unsigned narinfos (default true)
//! stalled-download-timeout = 300    # give up on a cache silent this long, in s
//! push-to = "file:///srv/cache"     # `realise` uploads what it builds there
//! remote-executor = "grpc://build.example.org:8980"  # build on a REAPI v2 cluster
//! remote-instance-name = ""         # the cluster's REAPI instance (default empty)
//! remote-jobs = 64                  # builds sent to the cluster at once (default 64)
//! remote-token-file = "/secrets/reapi-token"  # sent as `authorization: Bearer …`
//!
//! [[rewrite]]                       # applied at fetch time: no .drv or output path changes
//! from = "https://cloud.centos.org/"
//! to = "https://mirror.internal/centos/"
//! ```
//!
//! Unknown keys are errors, so a misspelt key is never silently ignored.
use std::path::{Path, PathBuf};

use anyhow::Context;
use kiln_cache::signing::SecretKey;
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
    /// Default of `realise --max-build-memory` (bytes, or a size such as "8G"; 0: no limit).
    pub max_build_memory: Option<ByteSize>,
    /// Default of `realise --max-build-pids` (0: no limit).
    pub max_build_pids: Option<u64>,
    /// Default of `realise --max-silent-time`, in seconds (0: never).
    pub max_silent_time: Option<u64>,
    /// Default of `realise --timeout`, in seconds (0: never).
    pub timeout: Option<u64>,
    /// Secret keys (`NAME:base64` files) that sign what is pushed to binary caches.
    #[serde(default)]
    pub secret_key_files: Vec<PathBuf>,
    /// Binary caches to substitute from, in order (`file:///DIR`, `http(s)://…`).
    pub substituters: Option<Vec<String>>,
    /// Public keys (`NAME:base64`) whose signatures make a narinfo trusted.
    #[serde(default)]
    pub trusted_public_keys: Vec<String>,
    /// Whether narinfos need a trusted signature (default true).
    pub require_sigs: Option<bool>,
    /// Seconds a binary cache may send nothing before the request fails.
    pub stalled_download_timeout: Option<u64>,
    /// A binary cache every path `realise` builds is pushed to.
    pub push_to: Option<String>,
    /// A REAPI v2 server (`grpc://HOST:PORT`) that `realise` builds on.
    pub remote_executor: Option<String>,
    /// The REAPI instance name on `remote_executor`.
    pub remote_instance_name: Option<String>,
    /// Builds sent to the remote executor at once.
    pub remote_jobs: Option<usize>,
    /// A file holding the bearer token sent to the remote executor.
    pub remote_token_file: Option<PathBuf>,
    /// URL prefix rewrites for fetches, first match wins.
    #[serde(default)]
    pub rewrite: Vec<RewriteRule>,
}

/// A number of bytes, written as an integer or as a string with an optional binary suffix
/// (`"512M"`, `"8G"`, `"1T"`: powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ByteSizeText")]
pub struct ByteSize(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum ByteSizeText {
    Number(u64),
    Text(String),
}

impl TryFrom<ByteSizeText> for ByteSize {
    type Error = String;

    fn try_from(text: ByteSizeText) -> Result<Self, String> {
        match text {
            ByteSizeText::Number(bytes) => Ok(ByteSize(bytes)),
            ByteSizeText::Text(text) => text.parse(),
        }
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (digits, shift) = match text.char_indices().last() {
            Some((at, 'K' | 'k')) => (&text[..at], 10),
            Some((at, 'M' | 'm')) => (&text[..at], 20),
            Some((at, 'G' | 'g')) => (&text[..at], 30),
            Some((at, 'T' | 't')) => (&text[..at], 40),
            _ => (text, 0),
        };
        digits
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|number| number.checked_mul(1u64 << shift))
            .map(ByteSize)
            .ok_or_else(|| {
                format!("invalid size {text:?} (expected bytes, or a number with K, M, G or T)")
            })
    }
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

/// Reads a secret key file (`NAME:base64`).
pub fn read_secret_key(file: &Path) -> anyhow::Result<SecretKey> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the secret key file '{}'", file.display()))?;
    SecretKey::parse(&text).with_context(|| format!("invalid secret key file '{}'", file.display()))
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
            max-build-memory = "512M"
            max-build-pids = 64
            max-silent-time = 60
            timeout = 0
            secret-key-files = ["/k1", "/k2"]
            substituters = ["file:///c1", "http://127.0.0.1:1/c2"]
            trusted-public-keys = ["k-1:AAAA"]
            require-sigs = false
            stalled-download-timeout = 5
            push-to = "file:///c3"
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
        assert_eq!(config.max_build_memory, Some(ByteSize(512 << 20)));
        assert_eq!(config.max_build_pids, Some(64));
        assert_eq!(config.max_silent_time, Some(60));
        assert_eq!(config.timeout, Some(0));
        assert_eq!(
            config.secret_key_files,
            [Path::new("/k1"), Path::new("/k2")]
        );
        assert_eq!(
            config.substituters.as_deref(),
            Some(&["file:///c1".to_owned(), "http://127.0.0.1:1/c2".to_owned()][..])
        );
        assert_eq!(config.trusted_public_keys, ["k-1:AAAA"]);
        assert_eq!(config.require_sigs, Some(false));
        assert_eq!(config.stalled_download_timeout, Some(5));
        assert_eq!(config.push_to.as_deref(), Some("file:///c3"));
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
        assert!(Config::parse("max-build-memory = \"8X\"").is_err());
        assert!(Config::parse("max-build-memory = \"99999999999T\"").is_err());
        assert_eq!(
            Config::parse("max-build-memory = 1024")
                .unwrap()
                .max_build_memory,
            Some(ByteSize(1024))
        );
        assert_eq!("2g".parse(), Ok(ByteSize(2 << 30)));
    }

    #[test]
    fn an_empty_file_says_nothing() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }
}
