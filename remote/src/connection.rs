//! The connection to a REAPI server: a gRPC channel (`grpc://HOST:PORT`) that sends the
//! optional bearer token (`authorization: Bearer …`, read from a file) with every call, and
//! the runtime the client and the worker drive it with.
use std::path::Path;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::RemoteError;

/// A channel to the server that authenticates every call.
pub type Connection = InterceptedService<Channel, BearerToken>;

/// Adds `authorization: Bearer TOKEN` to each request (nothing without a token).
#[derive(Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    /// The token in `file` (surrounding white space removed).
    pub fn from_file(file: &Path) -> Result<BearerToken, RemoteError> {
        let text = std::fs::read_to_string(file).map_err(|source| RemoteError::Io {
            action: "cannot read the token file",
            path: file.to_owned(),
            source,
        })?;
        let value = format!("Bearer {}", text.trim()).parse().map_err(|_| {
            RemoteError::Config(format!(
                "the token in {} is not printable ASCII",
                file.display()
            ))
        })?;
        Ok(BearerToken(Some(value)))
    }
}

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The `http://` URL tonic connects to for a `grpc://` one.
/// The tokio runtime for the server at `url` (two threads: the calls mostly wait).
pub fn runtime_for(url: &str) -> Result<tokio::runtime::Runtime, RemoteError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| RemoteError::Io {
            action: "cannot start the runtime for",
            path: url.into(),
            source,
        })
}

pub fn endpoint_url(url: &str) -> Result<String, RemoteError> {
    if let Some(rest) = url.strip_prefix("grpc://") {
        Ok(format!("http://{rest}"))
    } else if url.starts_with("grpcs://") {
        Err(RemoteError::Config(format!(
            "remote executor {url}: grpcs:// (TLS) is not supported by this kiln yet; use grpc:// through a TLS-terminating proxy"
        )))
    } else {
        Err(RemoteError::Config(format!(
            "remote executor `{url}` must be grpc://HOST:PORT"
        )))
    }
}

/// Connects to `url`, waiting at most a few seconds for the connection.
pub async fn connect(url: &str, token: BearerToken) -> Result<Connection, RemoteError> {
    let endpoint = Endpoint::from_shared(endpoint_url(url)?)
        .map_err(|error| RemoteError::Config(format!("remote executor `{url}`: {error}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| RemoteError::Connect {
            url: url.to_owned(),
            message: error.to_string(),
        })?;
    Ok(InterceptedService::new(channel, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_from_a_file_goes_into_every_request() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret-token\n").unwrap();
        let mut token = BearerToken::from_file(&file).unwrap();
        let request = token.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer s3cret-token"
        );
        let request = BearerToken::default()
            .call(tonic::Request::new(()))
            .unwrap();
        assert!(request.metadata().get("authorization").is_none());
    }

    #[test]
    fn only_grpc_urls_are_accepted_and_grpcs_says_why_not() {
        assert_eq!(
            endpoint_url("grpc://127.0.0.1:8980").unwrap(),
            "http://127.0.0.1:8980"
        );
        let tls = endpoint_url("grpcs://cluster:443").unwrap_err().to_string();
        assert!(tls.contains("grpcs:// (TLS) is not supported"), "{tls}");
        let other = endpoint_url("http://cluster").unwrap_err().to_string();
        assert!(other.contains("must be grpc://HOST:PORT"), "{other}");
    }
}
