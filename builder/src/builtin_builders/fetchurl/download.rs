//! One attempt at one URL of a `builtin:fetchurl`: the request, the body streamed to the output
//! while it is hashed (flat, or as the NAR of a single file, or restored from a NAR with
//! `unpack`), progress reports, and the verdict: done, worth another try, or definitive.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

use kiln_store::hash::{Hash, Hasher};
use kiln_store::nar::{self, HashingSink};
use reqwest::StatusCode;

use super::request::*;
use crate::builtin_builders::unpack::compression::decompressing_reader;

pub(super) enum Attempt {
    Done {
        final_url: String,
        bytes: u64,
        hash: Hash,
    },
    Transient(String),
    Definitive(String),
}

/// Hashes the output while it streams, in the form the derivation's hash mode asks for.
pub(super) enum StreamingHash {
    Flat(Hasher),
    /// The NAR prefix (which carries the size) is already fed.
    NarOfFile {
        hasher: Hasher,
        announced_size: u64,
    },
    /// No size was announced: the NAR hash is computed from the written file afterwards.
    NarAfterwards,
}

pub(super) fn download_once(
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
pub(super) fn restore_nar(
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
pub(super) struct BodyReader<'a> {
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

pub(super) fn classify_request_error(error: &reqwest::Error) -> Attempt {
    let reason = error_chain(error);
    if error.is_builder() || error.is_redirect() {
        Attempt::Definitive(reason)
    } else {
        // Connection refused or reset, DNS failures, timeouts, TLS handshakes cut short: all
        // may pass, so they are retried.
        Attempt::Transient(reason)
    }
}

pub(super) fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// An error and its sources on one line (reqwest's own message is often just "error sending
/// request").
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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

pub(super) fn report_progress(
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

pub(super) fn log(options: &FetchOptions, line: &str) {
    if let Some(log) = &options.log {
        log(line);
    }
}

/// Removes what a failed attempt (or an earlier crashed build) left at the output path.
pub(super) fn remove_partial(out: &Path) -> Result<(), FetchError> {
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
