//! Reading and writing a binary cache's files by their path relative to the cache's root:
//! `file:///DIR` (writes go to a temporary file in the same directory, then are renamed into
//! place, so a reader never sees half a file) and `http(s)://HOST/PREFIX` (GET, HEAD, and PUT
//! as Nix's HTTP binary cache store uploads). A missing file is `Ok(None)`, any other failure
//! an error naming the cache. HTTP requests that fail for a passing reason (a refused or
//! reset connection, a 5xx or 429 answer) are retried, [`HTTP_ATTEMPTS`] attempts in all with
//! a growing pause, as Nix's `download-attempts`; a server that stalls past the timeout is not
//! retried (it would multiply the wait).
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why talking to a cache failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("'{0}' is not a binary cache URL (file:///DIR, http://HOST/PREFIX or https://…)")]
    BadUrl(String),
    #[error("{url}: {message}")]
    Failed { url: String, message: String },
}

/// How long a request may wait for the server (to connect, or between two reads), by default.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long an upload may take at most.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// How many times an HTTP request is tried before its failure counts (Nix's
/// `download-attempts` default).
pub const HTTP_ATTEMPTS: u32 = 5;
/// The pause before the second attempt; it doubles for each further one.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// The largest small file (narinfo, nix-cache-info) read whole.
const SMALL_FILE_LIMIT: u64 = 1 << 20;

/// A cache's files.
pub enum Transport {
    /// A directory on this machine.
    File { url: String, root: PathBuf },
    /// A web server; `base` ends without a slash.
    Http {
        base: String,
        client: reqwest::blocking::Client,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.url())
    }
}

impl Transport {
    /// The transport of `url`; `stall_timeout` bounds connecting and each wait for data.
    pub fn from_url(url: &str, stall_timeout: Duration) -> Result<Transport, TransportError> {
        let url = url.trim_end_matches('/');
        if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(TransportError::BadUrl(url.to_owned()));
            }
            return Ok(Transport::File {
                url: url.to_owned(),
                root: PathBuf::from(dir),
            });
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            let client = reqwest::blocking::Client::builder()
                .connect_timeout(stall_timeout)
                .timeout(stall_timeout)
                .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| TransportError::Failed {
                    url: url.to_owned(),
                    message: e.to_string(),
                })?;
            return Ok(Transport::Http {
                base: url.to_owned(),
                client,
            });
        }
        Err(TransportError::BadUrl(url.to_owned()))
    }

    /// The cache's URL.
    pub fn url(&self) -> &str {
        match self {
            Transport::File { url, .. } => url,
            Transport::Http { base, .. } => base,
        }
    }

    fn failed(&self, relative: &str, message: impl std::fmt::Display) -> TransportError {
        TransportError::Failed {
            url: format!("{}/{relative}", self.url()),
            message: message.to_string(),
        }
    }

    /// The file's place on disk (file:// only), refusing paths that leave the cache.
    fn local(&self, root: &Path, relative: &str) -> Result<PathBuf, TransportError> {
        let escapes =
            relative.split('/').any(|c| c.is_empty() || c == "..") || relative.starts_with('/');
        if escapes {
            return Err(self.failed(relative, "the path leaves the cache"));
        }
        Ok(root.join(relative))
    }

    fn http_url(base: &str, relative: &str) -> String {
        format!("{base}/{relative}")
    }

    /// Sends the request `build` makes (anew for each attempt), retrying passing failures
    /// (see the module doc).
    fn send(
        &self,
        relative: &str,
        build: impl Fn() -> Result<reqwest::blocking::RequestBuilder, TransportError>,
    ) -> Result<reqwest::blocking::Response, TransportError> {
        let mut attempt = 1;
        loop {
            let outcome = build()?.send();
            let passing = match &outcome {
                Ok(response) => {
                    let status = response.status();
                    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                }
                Err(error) => is_passing(error),
            };
            if !passing || attempt >= HTTP_ATTEMPTS {
                return outcome.map_err(|e| self.failed(relative, error_chain(&e)));
            }
            std::thread::sleep(FIRST_RETRY_PAUSE * 2u32.pow(attempt - 1));
            attempt += 1;
        }
    }

    /// A reader of the file, `None` if the cache does not have it.
    pub fn get(&self, relative: &str) -> Result<Option<Box<dyn Read + Send>>, TransportError> {
        match self {
            Transport::File { root, .. } => {
                let path = self.local(root, relative)?;
                match fs::File::open(&path) {
                    Ok(file) => Ok(Some(Box::new(file))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(self.failed(relative, e)),
                }
            }
            Transport::Http { base, client } => {
                let response =
                    self.send(relative, || Ok(client.get(Self::http_url(base, relative))))?;
                let status = response.status();
                if status == reqwest::StatusCode::NOT_FOUND
                    || status == reqwest::StatusCode::FORBIDDEN
                {
                    return Ok(None);
                }
                if !status.is_success() {
                    return Err(self.failed(relative, format!("HTTP status {status}")));
                }
                Ok(Some(Box::new(response)))
            }
        }
    }

    /// A small file's bytes (at most 1 MiB), `None` if the cache does not have it.
    pub fn get_small(&self, relative: &str) -> Result<Option<Vec<u8>>, TransportError> {
        let Some(reader) = self.get(relative)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        reader
            .take(SMALL_FILE_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.failed(relative, e))?;
        if bytes.len() as u64 > SMALL_FILE_LIMIT {
            return Err(self.failed(relative, "the file is larger than 1 MiB"));
        }
        Ok(Some(bytes))
    }

    /// Whether the cache has the file.
    pub fn exists(&self, relative: &str) -> Result<bool, TransportError> {
        match self {
            Transport::File { root, .. } => {
                let path = self.local(root, relative)?;
                match fs::symlink_metadata(&path) {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(self.failed(relative, e)),
                }
            }
            Transport::Http { base, client } => {
                let response =
                    self.send(relative, || Ok(client.head(Self::http_url(base, relative))))?;
                let status = response.status();
                if status.is_success() {
                    Ok(true)
                } else if status == reqwest::StatusCode::NOT_FOUND
                    || status == reqwest::StatusCode::FORBIDDEN
                {
                    Ok(false)
                } else {
                    Err(self.failed(relative, format!("HTTP status {status}")))
                }
            }
        }
    }

    /// Stores `data` as the file.
    pub fn put_bytes(
        &self,
        relative: &str,
        data: &[u8],
        content_type: &str,
    ) -> Result<(), TransportError> {
        match self {
            Transport::File { root, .. } => {
                let path = self.local(root, relative)?;
                self.write_atomically(&path, relative, |file| file.write_all(data))
            }
            Transport::Http { base, client } => {
                let response = self.send(relative, || {
                    Ok(client
                        .put(Self::http_url(base, relative))
                        .header(reqwest::header::CONTENT_TYPE, content_type)
                        .body(data.to_vec()))
                })?;
                self.check_put(relative, response.status())
            }
        }
    }

    /// Stores the local file `source` as the file (moving it when the cache is a directory on
    /// the same file system).
    pub fn put_file(
        &self,
        relative: &str,
        source: &Path,
        content_type: &str,
    ) -> Result<(), TransportError> {
        match self {
            Transport::File { root, .. } => {
                let path = self.local(root, relative)?;
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(|e| self.failed(relative, e))?;
                }
                if fs::rename(source, &path).is_ok() {
                    return Ok(());
                }
                self.write_atomically(&path, relative, |file| {
                    io::copy(&mut fs::File::open(source)?, file).map(drop)
                })
            }
            Transport::Http { base, client } => {
                let response = self.send(relative, || {
                    let file = fs::File::open(source).map_err(|e| self.failed(relative, e))?;
                    let len = file.metadata().map_err(|e| self.failed(relative, e))?.len();
                    Ok(client
                        .put(Self::http_url(base, relative))
                        .header(reqwest::header::CONTENT_TYPE, content_type)
                        .timeout(UPLOAD_TIMEOUT)
                        .body(reqwest::blocking::Body::sized(file, len)))
                })?;
                self.check_put(relative, response.status())
            }
        }
    }

    /// A directory where a file on its way to `relative` may be staged: the cache's own
    /// directory for file:// (so that the final rename is atomic), else `None`.
    pub fn staging_dir(&self, relative: &str) -> Result<Option<PathBuf>, TransportError> {
        match self {
            Transport::File { root, .. } => {
                let path = self.local(root, relative)?;
                let parent = path.parent().unwrap_or(root).to_owned();
                fs::create_dir_all(&parent).map_err(|e| self.failed(relative, e))?;
                Ok(Some(parent))
            }
            Transport::Http { .. } => Ok(None),
        }
    }

    fn check_put(&self, relative: &str, status: reqwest::StatusCode) -> Result<(), TransportError> {
        if status.is_success() {
            Ok(())
        } else {
            Err(self.failed(
                relative,
                format!("upload refused with HTTP status {status}"),
            ))
        }
    }

    fn write_atomically(
        &self,
        path: &Path,
        relative: &str,
        write: impl FnOnce(&mut fs::File) -> io::Result<()>,
    ) -> Result<(), TransportError> {
        let parent = path.parent().unwrap_or(Path::new("/"));
        fs::create_dir_all(parent).map_err(|e| self.failed(relative, e))?;
        let mut temporary = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(parent)
            .map_err(|e| self.failed(relative, e))?;
        write(temporary.as_file_mut())
            .and_then(|()| temporary.as_file().sync_all())
            .map_err(|e| self.failed(relative, e))?;
        set_readable(temporary.path()).map_err(|e| self.failed(relative, e))?;
        temporary
            .persist(path)
            .map_err(|e| self.failed(relative, e.error))?;
        Ok(())
    }
}

/// Files in a cache are world-readable, as a static file server needs them.
pub(crate) fn set_readable(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
}

/// Whether a request's failure may pass if it is tried again: the connection was refused or
/// broke, but the server did not stall past the timeout.
fn is_passing(error: &reqwest::Error) -> bool {
    !error.is_timeout() && (error.is_connect() || error.is_request() || error.is_body())
}

/// An error with its causes, `a: b: c`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_transport_reads_writes_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let transport = Transport::from_url(&url, DEFAULT_STALL_TIMEOUT).unwrap();
        assert!(transport.get("x.narinfo").unwrap().is_none());
        assert!(!transport.exists("x.narinfo").unwrap());
        transport
            .put_bytes("nar/a.nar", b"abc", "text/plain")
            .unwrap();
        assert_eq!(transport.get_small("nar/a.nar").unwrap().unwrap(), b"abc");
        assert!(transport.exists("nar/a.nar").unwrap());
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("nar"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["a.nar"], "no temporary file is left");
        assert!(transport.get("../etc/passwd").is_err());
        assert!(transport.get("/etc/passwd").is_err());
        assert!(Transport::from_url("ftp://x", DEFAULT_STALL_TIMEOUT).is_err());
        assert!(Transport::from_url("file://relative", DEFAULT_STALL_TIMEOUT).is_err());
    }
}
