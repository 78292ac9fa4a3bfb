//! What a `builtin:fetchurl` is asked (the request read from a derivation's environment, the
//! options from the configuration: URL rewrites, timeouts, retries, progress and log callbacks)
//! and what it answers (the outcome, or an error naming every URL tried and why).
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kiln_store::hash::{Hash, HashAlgo, HashEncoding, HashError};

/// A configured URL rewrite: a URL starting with `from_prefix` is fetched from `to_prefix`
/// followed by the rest of the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRewrite {
    pub from_prefix: String,
    pub to_prefix: String,
}

impl UrlRewrite {
    pub fn new(from_prefix: impl Into<String>, to_prefix: impl Into<String>) -> Self {
        Self {
            from_prefix: from_prefix.into(),
            to_prefix: to_prefix.into(),
        }
    }

    /// Applies the first rule whose prefix matches `url`; `None` when no rule matches.
    pub fn rewrite(rules: &[UrlRewrite], url: &str) -> Option<String> {
        rules.iter().find_map(|rule| {
            url.strip_prefix(&rule.from_prefix)
                .map(|rest| format!("{}{rest}", rule.to_prefix))
        })
    }
}

/// One progress report of a running download.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchProgress {
    /// The URL being fetched (after rewriting).
    pub url: String,
    /// Bytes received so far in this attempt.
    pub bytes: u64,
    /// The body size the server announced, if it did.
    pub total: Option<u64>,
    /// Average rate of this attempt so far, in bytes per second.
    pub bytes_per_second: f64,
}

/// Receives progress reports (at most every [`FetchOptions::progress_interval`], and once at the
/// end of each attempt).
pub type ProgressCallback = Arc<dyn Fn(&FetchProgress) + Send + Sync>;
/// Receives the build-log lines of a builtin builder.
pub type LogCallback = Arc<dyn Fn(&str) + Send + Sync>;

/// How downloads behave; the scheduler fills this from the configuration.
#[derive(Clone)]
pub struct FetchOptions {
    /// URL rewrite rules, first match wins.
    pub rewrites: Vec<UrlRewrite>,
    /// Attempts per URL for transient failures (at least one is always made).
    pub attempts_per_url: u32,
    /// Delay before the first retry; it doubles after each retry.
    pub initial_backoff: Duration,
    /// Upper bound of the delay between retries.
    pub max_backoff: Duration,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for any single read or write on the connection (a stalled transfer).
    pub stall_timeout: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Minimum time between two progress reports.
    pub progress_interval: Duration,
    pub progress: Option<ProgressCallback>,
    pub log: Option<LogCallback>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            rewrites: Vec::new(),
            attempts_per_url: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(120),
            user_agent: format!("kiln/{}", env!("CARGO_PKG_VERSION")),
            progress_interval: Duration::from_millis(200),
            progress: None,
            log: None,
        }
    }
}

impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("rewrites", &self.rewrites)
            .field("attempts_per_url", &self.attempts_per_url)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

/// How the output hash covers the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputHashMode {
    /// The hash of the file's bytes.
    Flat,
    /// The hash of the NAR serialisation of the file.
    Recursive,
}

/// What to fetch, as read from a derivation's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The URLs in the order they are tried (before rewriting).
    pub urls: Vec<String>,
    /// The declared hash; its algorithm is the one the download is hashed with.
    pub expected: Hash,
    /// Whether `expected` is checked. An unpinned fetch (an impure `builtins.fetchurl` without
    /// `sha256`) takes only the algorithm from `expected` and reports the hash it got.
    pub verify: bool,
    pub mode: OutputHashMode,
    pub executable: bool,
    /// The download is a NAR to restore as the output.
    pub unpack: bool,
}

impl FetchRequest {
    /// Reads `url`, `urls`, `outputHash`, `outputHashAlgo`, `outputHashMode`, `executable` and
    /// `unpack` from a derivation's environment.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Self, FetchError> {
        let attr = |name: &str| env.get(name).map(String::as_str).unwrap_or("");
        let mut urls: Vec<String> = Vec::new();
        for url in std::iter::once(attr("url")).chain(attr("urls").split_whitespace()) {
            if !url.is_empty() && !urls.iter().any(|known| known == url) {
                urls.push(url.to_owned());
            }
        }
        if urls.is_empty() {
            return Err(FetchError::MissingAttribute("url"));
        }
        if !env.contains_key("outputHash") {
            return Err(FetchError::MissingAttribute("outputHash"));
        }
        let algo = match attr("outputHashAlgo") {
            "" => None,
            name => Some(name.parse::<HashAlgo>()?),
        };
        let expected = Hash::parse_allow_empty(attr("outputHash"), algo)?;
        let mode = match attr("outputHashMode") {
            "" | "flat" => OutputHashMode::Flat,
            "recursive" => OutputHashMode::Recursive,
            other => return Err(FetchError::BadHashMode(other.to_owned())),
        };
        let unpack = attr("unpack") == "1";
        if unpack && mode == OutputHashMode::Flat {
            return Err(FetchError::FlatUnpack);
        }
        Ok(Self {
            urls,
            expected,
            verify: true,
            mode,
            executable: attr("executable") == "1",
            unpack,
        })
    }
}

/// A successful download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOutcome {
    /// The URL requested (after rewriting).
    pub url: String,
    /// The URL that answered (after redirects).
    pub final_url: String,
    /// The size of the downloaded file.
    pub bytes: u64,
    /// The verified output hash.
    pub hash: Hash,
}

/// What went wrong with one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlFailure {
    pub url: String,
    pub reason: String,
}

/// Why `builtin:fetchurl` failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("builtin:fetchurl needs the attribute `{0}`")]
    MissingAttribute(&'static str),
    #[error("builtin:fetchurl: outputHash: {0}")]
    BadHash(#[from] HashError),
    #[error("builtin:fetchurl: outputHashMode must be `flat` or `recursive`, not `{0}`")]
    BadHashMode(String),
    #[error("builtin:fetchurl: `unpack` restores a NAR, whose hash is recursive: set outputHashMode = \"recursive\"")]
    FlatUnpack,
    #[error(transparent)]
    HashMismatch(Box<HashMismatch>),
    #[error("could not fetch {}", render_failures(.0))]
    AllUrlsFailed(Vec<UrlFailure>),
    #[error("builtin:fetchurl: cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("builtin:fetchurl: writing {path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A download whose content has another hash than the derivation declares.
#[derive(Debug, thiserror::Error)]
#[error("hash mismatch for {url}:\n  wanted: {wanted_sri} ({wanted_nix32})\n  got:    {got_sri} ({got_nix32})", wanted_sri = .wanted.to_sri(), wanted_nix32 = nixbase32_form(.wanted), got_sri = .got.to_sri(), got_nix32 = nixbase32_form(.got))]
pub struct HashMismatch {
    pub url: String,
    pub wanted: Hash,
    pub got: Hash,
}

/// `sha256:<nixbase32>`, the form `nix hash to-base32` prints with its algorithm.
pub fn nixbase32_form(hash: &Hash) -> String {
    hash.encode(HashEncoding::Nixbase32, true)
}

fn render_failures(failures: &[UrlFailure]) -> String {
    match failures {
        [only] => format!("{}: {}", only.url, only.reason),
        many => many
            .iter()
            .map(|failure| format!("\n  {}: {}", failure.url, failure.reason))
            .collect(),
    }
}
