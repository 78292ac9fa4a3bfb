//! `builtin:fetchurl`: downloads a fixed-output derivation's file over HTTP(S).
//!
//! Attributes, as Nix's builtin understands them plus kiln's mirror list:
//! - `url`: the main URL; `urls`: more URLs (the derivation env carries a list as
//!   space-separated words), tried in order after `url` — a 404 (or any other definitive answer)
//!   moves on to the next one;
//! - `outputHash`, `outputHashAlgo`, `outputHashMode` (`flat`, the default, hashes the file's
//!   bytes; `recursive` hashes the NAR serialisation of the single file);
//! - `executable = "1"`: the file is made executable (mode 0755, as Nix does);
//! - `unpack = "1"`: the download is a NAR (compressed or not: xz, gzip, zstd and bzip2 are
//!   recognised by their magic bytes, where Nix only looks for a `.xz` suffix), restored as the
//!   output; the hash is then the NAR hash of the restored tree, computed after the restore
//!   (`outputHashMode` must be `recursive`).
//!
//! The body streams to the output file while it is hashed: no second pass over the data (the
//! one exception is a `recursive` fetch whose server sends no `Content-Length`, where the NAR
//! framing needs the size up front; that file is hashed after it is written). Transient failures
//! (connection errors, timeouts, truncated bodies, 408/429/5xx) are retried with exponential
//! backoff. The download's hash is checked before success is returned; a mismatch names the URL
//! and both hashes in SRI and nixbase32 form. Proxies come from `http_proxy`, `https_proxy`,
//! `all_proxy` and `no_proxy` (upper- or lower-case), which reqwest reads whenever a client is
//! built. URL rewrite rules from the user's configuration are applied here, at fetch time, so the
//! `.drv` (and every hash) stays the same whichever mirror serves the file. An empty
//! `outputHash` stands for the all-zero hash, as in Nix: the fetch then fails and the error
//! shows the hash to write down. [`fetch`] also serves unpinned downloads (`verify: false`,
//! for an impure `builtins.fetchurl`), which report the hash they got instead of checking one.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kiln_store::hash::{Hash, HashAlgo, HashEncoding, HashError, Hasher};
use kiln_store::nar::{self, HashingSink};
use reqwest::StatusCode;

use super::unpack::compression::decompressing_reader;

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

/// Runs `builtin:fetchurl` for a derivation's environment, writing the output file at `out`
/// (the physical location of the output path; anything already there is replaced).
pub fn fetchurl(
    env: &BTreeMap<String, String>,
    out: &Path,
    options: &FetchOptions,
) -> Result<FetchOutcome, FetchError> {
    fetch(&FetchRequest::from_env(env)?, out, options)
}

/// Downloads `request` to `out`, trying each URL in turn, and verifies the hash.
pub fn fetch(
    request: &FetchRequest,
    out: &Path,
    options: &FetchOptions,
) -> Result<FetchOutcome, FetchError> {
    let client = reqwest::blocking::Client::builder()
        .user_agent(options.user_agent.clone())
        .connect_timeout(options.connect_timeout)
        .timeout(options.stall_timeout)
        .build()
        .map_err(FetchError::Client)?;
    let mut failures = Vec::new();
    for original in &request.urls {
        let url = match UrlRewrite::rewrite(&options.rewrites, original) {
            Some(rewritten) => {
                log(options, &format!("rewriting {original} to {rewritten}"));
                rewritten
            }
            None => original.clone(),
        };
        match fetch_with_retries(&client, &url, request, out, options)? {
            Ok(outcome) => return Ok(outcome),
            Err(failure) => {
                remove_partial(out)?;
                failures.push(failure);
            }
        }
    }
    Err(match failures.pop() {
        Some(AttemptFailure::Mismatch { url, got }) if failures.is_empty() => {
            FetchError::HashMismatch(Box::new(HashMismatch {
                url,
                wanted: request.expected,
                got,
            }))
        }
        last => FetchError::AllUrlsFailed(
            failures
                .into_iter()
                .chain(last)
                .map(|failure| failure.describe(&request.expected))
                .collect(),
        ),
    })
}

/// How one URL failed in the end.
enum AttemptFailure {
    /// Retrying would not help (404, 403, a bad URL, too many redirects, ...).
    Definitive { url: String, reason: String },
    /// Every attempt failed with a transient error; the reason is the last one.
    Transient { url: String, reason: String },
    /// The URL served different content.
    Mismatch { url: String, got: Hash },
}

impl AttemptFailure {
    fn describe(self, wanted: &Hash) -> UrlFailure {
        match self {
            Self::Definitive { url, reason } | Self::Transient { url, reason } => {
                UrlFailure { url, reason }
            }
            Self::Mismatch { url, got } => UrlFailure {
                url,
                reason: format!(
                    "hash mismatch: wanted {} ({}), got {} ({})",
                    wanted.to_sri(),
                    nixbase32_form(wanted),
                    got.to_sri(),
                    nixbase32_form(&got)
                ),
            },
        }
    }
}

/// Tries one URL up to `attempts_per_url` times. The outer error is fatal (the output cannot be
/// written); the inner one says why this URL is given up.
fn fetch_with_retries(
    client: &reqwest::blocking::Client,
    url: &str,
    request: &FetchRequest,
    out: &Path,
    options: &FetchOptions,
) -> Result<Result<FetchOutcome, AttemptFailure>, FetchError> {
    let attempts = options.attempts_per_url.max(1);
    let mut backoff = options.initial_backoff;
    let mut attempt = 1;
    loop {
        remove_partial(out)?;
        log(options, &format!("downloading '{url}'"));
        let reason = match download_once(client, url, request, out, options)? {
            Attempt::Done {
                final_url,
                bytes,
                hash,
            } => {
                if request.verify && hash != request.expected {
                    log(
                        options,
                        &format!("hash mismatch for {final_url}: got {}", hash.to_sri()),
                    );
                    return Ok(Err(AttemptFailure::Mismatch {
                        url: url.to_owned(),
                        got: hash,
                    }));
                }
                return Ok(Ok(FetchOutcome {
                    url: url.to_owned(),
                    final_url,
                    bytes,
                    hash,
                }));
            }
            Attempt::Definitive(reason) => {
                log(options, &format!("giving up on {url}: {reason}"));
                return Ok(Err(AttemptFailure::Definitive {
                    url: url.to_owned(),
                    reason,
                }));
            }
            Attempt::Transient(reason) => reason,
        };
        if attempt >= attempts {
            log(
                options,
                &format!("giving up on {url} after {attempt} attempts: {reason}"),
            );
            return Ok(Err(AttemptFailure::Transient {
                url: url.to_owned(),
                reason: format!("{reason} (after {attempt} attempts)"),
            }));
        }
        log(
            options,
            &format!(
                "attempt {attempt} of {attempts} for {url} failed: {reason}; retrying in {} ms",
                backoff.as_millis()
            ),
        );
        thread::sleep(backoff);
        backoff = (backoff * 2).min(options.max_backoff);
        attempt += 1;
    }
}

enum Attempt {
    Done {
        final_url: String,
        bytes: u64,
        hash: Hash,
    },
    Transient(String),
    Definitive(String),
}

/// Hashes the output while it streams, in the form the derivation's hash mode asks for.
enum StreamingHash {
    Flat(Hasher),
    /// The NAR prefix (which carries the size) is already fed.
    NarOfFile {
        hasher: Hasher,
        announced_size: u64,
    },
    /// No size was announced: the NAR hash is computed from the written file afterwards.
    NarAfterwards,
}

fn download_once(
    client: &reqwest::blocking::Client,
    url: &str,
    request: &FetchRequest,
    out: &Path,
    options: &FetchOptions,
) -> Result<Attempt, FetchError> {
    let mut response = match client.get(url).send() {
        Ok(response) => response,
        Err(error) => return Ok(classify_request_error(&error)),
    };
    let status = response.status();
    if !status.is_success() {
        let reason = format!("HTTP status {status}");
        return Ok(if is_transient_status(status) {
            Attempt::Transient(reason)
        } else {
            Attempt::Definitive(reason)
        });
    }
    let final_url = response.url().to_string();
    if final_url != url {
        log(options, &format!("{url} redirected to {final_url}"));
    }
    let total = response.content_length();
    if request.unpack {
        return restore_nar(response, url, final_url, total, out, request, options);
    }
    let output_error = |source| FetchError::Output {
        path: out.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(out)
        .map_err(output_error)?;
    let algo = request.expected.algo();
    let mut hash = match (request.mode, total) {
        (OutputHashMode::Flat, _) => StreamingHash::Flat(Hasher::new(algo)),
        (OutputHashMode::Recursive, Some(size)) => {
            let mut hasher = Hasher::new(algo);
            hasher.update(&nar::file_prefix(request.executable, size));
            StreamingHash::NarOfFile {
                hasher,
                announced_size: size,
            }
        }
        (OutputHashMode::Recursive, None) => StreamingHash::NarAfterwards,
    };
    let started = Instant::now();
    let mut last_report: Option<Instant> = None;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut bytes: u64 = 0;
    loop {
        let read = match response.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Ok(Attempt::Transient(format!(
                    "transfer broke off after {bytes} bytes: {}",
                    error_chain(&error)
                )))
            }
        };
        let chunk = &buffer[..read];
        file.write_all(chunk).map_err(output_error)?;
        match &mut hash {
            StreamingHash::Flat(hasher) | StreamingHash::NarOfFile { hasher, .. } => {
                hasher.update(chunk)
            }
            StreamingHash::NarAfterwards => {}
        }
        bytes += read as u64;
        if last_report.is_none_or(|at| at.elapsed() >= options.progress_interval) {
            report_progress(options, url, bytes, total, started);
            last_report = Some(Instant::now());
        }
    }
    report_progress(options, url, bytes, total, started);
    if let Some(total) = total.filter(|total| *total != bytes) {
        return Ok(Attempt::Transient(format!(
            "body truncated: got {bytes} of {total} bytes"
        )));
    }
    file.flush().map_err(output_error)?;
    let mode = if request.executable { 0o755 } else { 0o644 };
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(output_error)?;
    drop(file);
    let hash = match hash {
        StreamingHash::Flat(hasher) => hasher.finish(),
        StreamingHash::NarOfFile {
            mut hasher,
            announced_size,
        } => {
            hasher.update(&nar::file_suffix(announced_size));
            hasher.finish()
        }
        StreamingHash::NarAfterwards => {
            let mut hasher = Hasher::new(algo);
            hasher.update(&nar::file_prefix(request.executable, bytes));
            let mut written = File::open(out).map_err(output_error)?;
            loop {
                let read = written.read(&mut buffer).map_err(output_error)?;
                if read == 0 {
                    break;
                }
                hasher.update(&buffer[..read]);
            }
            hasher.update(&nar::file_suffix(bytes));
            hasher.finish()
        }
    };
    log(
        options,
        &format!("fetched {bytes} bytes from {final_url}: {}", hash.to_sri()),
    );
    Ok(Attempt::Done {
        final_url,
        bytes,
        hash,
    })
}

/// Streams the body (decompressing it if needed) into a NAR restore at `out`, then hashes the
/// restored tree.
fn restore_nar(
    response: reqwest::blocking::Response,
    url: &str,
    final_url: String,
    total: Option<u64>,
    out: &Path,
    request: &FetchRequest,
    options: &FetchOptions,
) -> Result<Attempt, FetchError> {
    let mut body = BodyReader {
        response,
        url,
        total,
        bytes: 0,
        started: Instant::now(),
        last_report: None,
        options,
        failure: None,
    };
    let restored = decompressing_reader(&mut body, 1)
        .map_err(|error| error.to_string())
        .and_then(|(_, decoded)| nar::restore(decoded, out).map_err(|error| error.to_string()));
    report_progress(options, url, body.bytes, total, body.started);
    if let Some(failure) = body.failure {
        return Ok(Attempt::Transient(failure));
    }
    if let Err(reason) = restored {
        return Ok(Attempt::Definitive(format!(
            "cannot restore the NAR: {reason}"
        )));
    }
    let mut sink = HashingSink::new(request.expected.algo());
    nar::dump_path(out, &mut sink).map_err(|error| FetchError::Output {
        path: out.to_owned(),
        source: io::Error::other(error),
    })?;
    let (hash, _) = sink.finish();
    log(
        options,
        &format!(
            "restored a NAR of {} bytes from {final_url}: {}",
            body.bytes,
            hash.to_sri()
        ),
    );
    Ok(Attempt::Done {
        final_url,
        bytes: body.bytes,
        hash,
    })
}

/// The response body as a reader that reports progress and remembers a transfer failure (so
/// that it can be told apart from a malformed NAR).
struct BodyReader<'a> {
    response: reqwest::blocking::Response,
    url: &'a str,
    total: Option<u64>,
    bytes: u64,
    started: Instant,
    last_report: Option<Instant>,
    options: &'a FetchOptions,
    failure: Option<String>,
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.response.read(buf) {
            Ok(0) => {
                if let Some(total) = self.total.filter(|total| *total != self.bytes) {
                    let reason = format!("body truncated: got {} of {total} bytes", self.bytes);
                    self.failure = Some(reason.clone());
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, reason));
                }
                Ok(0)
            }
            Ok(read) => {
                self.bytes += read as u64;
                if self
                    .last_report
                    .is_none_or(|at| at.elapsed() >= self.options.progress_interval)
                {
                    report_progress(self.options, self.url, self.bytes, self.total, self.started);
                    self.last_report = Some(Instant::now());
                }
                Ok(read)
            }
            Err(error) => {
                self.failure = Some(format!(
                    "transfer broke off after {} bytes: {}",
                    self.bytes,
                    error_chain(&error)
                ));
                Err(error)
            }
        }
    }
}

fn classify_request_error(error: &reqwest::Error) -> Attempt {
    let reason = error_chain(error);
    if error.is_builder() || error.is_redirect() {
        Attempt::Definitive(reason)
    } else {
        // Connection refused or reset, DNS failures, timeouts, TLS handshakes cut short: all
        // may pass, so they are retried.
        Attempt::Transient(reason)
    }
}

fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// An error and its sources on one line (reqwest's own message is often just "error sending
/// request").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn report_progress(
    options: &FetchOptions,
    url: &str,
    bytes: u64,
    total: Option<u64>,
    started: Instant,
) {
    if let Some(progress) = &options.progress {
        let seconds = started.elapsed().as_secs_f64();
        progress(&FetchProgress {
            url: url.to_owned(),
            bytes,
            total,
            bytes_per_second: if seconds > 0.0 {
                bytes as f64 / seconds
            } else {
                0.0
            },
        });
    }
}

fn log(options: &FetchOptions, line: &str) {
    if let Some(log) = &options.log {
        log(line);
    }
}

/// Removes what a failed attempt (or an earlier crashed build) left at the output path.
fn remove_partial(out: &Path) -> Result<(), FetchError> {
    let result = match fs::symlink_metadata(out) {
        Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(out),
        Ok(_) => fs::remove_file(out),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    };
    result.map_err(|source| FetchError::Output {
        path: out.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_SHA256: &str = "sha256-WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM=";

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn url_comes_first_then_the_mirrors_without_repeats() {
        let request = FetchRequest::from_env(&env(&[
            ("url", "http://a/x"),
            ("urls", "http://b/x http://a/x  http://c/x"),
            ("outputHash", HELLO_SHA256),
        ]))
        .unwrap();
        assert_eq!(request.urls, ["http://a/x", "http://b/x", "http://c/x"]);
        assert_eq!(request.mode, OutputHashMode::Flat);
        assert!(!request.executable);
    }

    #[test]
    fn missing_and_bad_attributes_are_named() {
        let error = FetchRequest::from_env(&env(&[("outputHash", HELLO_SHA256)])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "builtin:fetchurl needs the attribute `url`"
        );
        let error = FetchRequest::from_env(&env(&[
            ("url", "http://a/x"),
            ("outputHash", HELLO_SHA256),
            ("outputHashMode", "text"),
        ]))
        .unwrap_err();
        assert!(matches!(error, FetchError::BadHashMode(mode) if mode == "text"));
        let error = FetchRequest::from_env(&env(&[
            ("url", "http://a/x"),
            ("outputHash", HELLO_SHA256),
            ("unpack", "1"),
        ]))
        .unwrap_err();
        assert!(matches!(error, FetchError::FlatUnpack));
        let error = FetchRequest::from_env(&env(&[
            ("url", "http://a/x"),
            ("outputHash", HELLO_SHA256),
            ("outputHashAlgo", "sha1"),
        ]))
        .unwrap_err();
        assert!(matches!(error, FetchError::BadHash(_)), "{error}");
    }

    #[test]
    fn an_empty_hash_stands_for_zeros() {
        let request = FetchRequest::from_env(&env(&[
            ("url", "http://a/x"),
            ("outputHash", ""),
            ("outputHashAlgo", "sha256"),
        ]))
        .unwrap();
        assert_eq!(request.expected, Hash::zero(HashAlgo::Sha256));
    }

    #[test]
    fn first_matching_rewrite_wins() {
        let rules = [
            UrlRewrite::new("https://cloud.example/", "http://mirror.local/cloud/"),
            UrlRewrite::new("https://", "http://other.local/"),
        ];
        assert_eq!(
            UrlRewrite::rewrite(&rules, "https://cloud.example/a/b.tar.xz").as_deref(),
            Some("http://mirror.local/cloud/a/b.tar.xz")
        );
        assert_eq!(
            UrlRewrite::rewrite(&rules, "https://elsewhere/c").as_deref(),
            Some("http://other.local/elsewhere/c")
        );
        assert_eq!(UrlRewrite::rewrite(&rules, "ftp://x/y"), None);
    }

    #[test]
    fn default_user_agent_names_kiln_and_its_version() {
        assert_eq!(
            FetchOptions::default().user_agent,
            format!("kiln/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
