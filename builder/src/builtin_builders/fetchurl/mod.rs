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

mod download;
mod request;

pub use self::request::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::thread;

use kiln_store::hash::Hash;

use self::download::{download_once, log, remove_partial, Attempt};

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

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_store::hash::HashAlgo;

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
