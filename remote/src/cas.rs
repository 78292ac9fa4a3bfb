//! The content-addressable storage of a REAPI server: which blobs it lacks
//! (`FindMissingBlobs`), uploads and downloads — in batches for blobs that fit the server's
//! batch limit, through ByteStream in chunks for larger ones (NARs of root filesystems), so a
//! large blob is never held in memory whole. Every download is checked against its digest.
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bazel_remote_apis::build::bazel::remote::execution::v2::{
    batch_update_blobs_request,
    content_addressable_storage_client::ContentAddressableStorageClient, BatchReadBlobsRequest,
    BatchUpdateBlobsRequest, Digest, FindMissingBlobsRequest,
};
use bazel_remote_apis::google::bytestream::{
    byte_stream_client::ByteStreamClient, ReadRequest, WriteRequest,
};
use sha2::{Digest as _, Sha256};

use crate::connection::Connection;
use crate::RemoteError;

/// ByteStream chunks are this large.
const CHUNK: usize = 1 << 20;

/// The digest (SHA-256, lower-case hex, and size) of `bytes`.
pub fn digest_of(bytes: &[u8]) -> Digest {
    Digest {
        hash: data_encoding::HEXLOWER.encode(&Sha256::digest(bytes)),
        size_bytes: bytes.len() as i64,
    }
}

/// Serialises a message and returns it with its digest.
pub fn encode_message(message: &impl prost::Message) -> (Digest, Vec<u8>) {
    let bytes = message.encode_to_vec();
    (digest_of(&bytes), bytes)
}

/// One REAPI instance's CAS.
#[derive(Clone)]
pub struct Cas {
    channel: Connection,
    instance: String,
    /// The most bytes one batch request may carry (the server's limit less room for framing).
    max_batch_bytes: usize,
    /// Bytes uploaded by this client so far (blobs the server lacked).
    uploaded: std::sync::Arc<AtomicU64>,
}

static UPLOAD_SERIAL: AtomicU64 = AtomicU64::new(0);

impl Cas {
    pub fn new(channel: Connection, instance: &str, max_batch_bytes: usize) -> Cas {
        Cas {
            channel,
            instance: instance.to_owned(),
            max_batch_bytes,
            uploaded: Default::default(),
        }
    }

    /// Bytes uploaded by this client so far.
    pub fn uploaded_bytes(&self) -> u64 {
        self.uploaded.load(Ordering::Relaxed)
    }

    fn fits_batch(&self, size: i64) -> bool {
        usize::try_from(size).is_ok_and(|size| size + 1024 <= self.max_batch_bytes)
    }

    fn resource_prefix(&self) -> String {
        if self.instance.is_empty() {
            String::new()
        } else {
            format!("{}/", self.instance)
        }
    }

    /// The digests among `digests` the server does not have.
    pub async fn find_missing(&self, digests: Vec<Digest>) -> Result<Vec<Digest>, RemoteError> {
        let mut client = ContentAddressableStorageClient::new(self.channel.clone());
        let response = client
            .find_missing_blobs(FindMissingBlobsRequest {
                instance_name: self.instance.clone(),
                blob_digests: digests,
                digest_function: 0,
            })
            .await?;
        Ok(response.into_inner().missing_blob_digests)
    }

    /// Uploads a blob held in memory.
    pub async fn upload_bytes(&self, digest: &Digest, bytes: Vec<u8>) -> Result<(), RemoteError> {
        if self.fits_batch(digest.size_bytes) {
            let mut client = ContentAddressableStorageClient::new(self.channel.clone());
            let response = client
                .batch_update_blobs(BatchUpdateBlobsRequest {
                    instance_name: self.instance.clone(),
                    requests: vec![batch_update_blobs_request::Request {
                        digest: Some(digest.clone()),
                        data: bytes,
                        compressor: 0,
                    }],
                    digest_function: 0,
                })
                .await?;
            for answer in response.into_inner().responses {
                if let Some(status) = answer.status.filter(|status| status.code != 0) {
                    return Err(RemoteError::Protocol(format!(
                        "the CAS refused blob {}: {}",
                        digest.hash, status.message
                    )));
                }
            }
            self.uploaded
                .fetch_add(digest.size_bytes as u64, Ordering::Relaxed);
            return Ok(());
        }
        self.upload_stream(digest, std::io::Cursor::new(bytes))
            .await
    }

    /// Uploads a blob read from a file.
    pub async fn upload_file(&self, digest: &Digest, path: &Path) -> Result<(), RemoteError> {
        let file = std::fs::File::open(path).map_err(|source| RemoteError::Io {
            action: "cannot open",
            path: path.to_owned(),
            source,
        })?;
        if self.fits_batch(digest.size_bytes) {
            let mut bytes = Vec::new();
            std::io::BufReader::new(file)
                .read_to_end(&mut bytes)
                .map_err(|source| RemoteError::Io {
                    action: "cannot read",
                    path: path.to_owned(),
                    source,
                })?;
            return self.upload_bytes(digest, bytes).await;
        }
        self.upload_stream(digest, file).await
    }

    /// Uploads through ByteStream `Write`, in chunks read from `source` as they are sent.
    async fn upload_stream(
        &self,
        digest: &Digest,
        mut source: impl Read + Send + 'static,
    ) -> Result<(), RemoteError> {
        let resource = format!(
            "{}uploads/{}-{}/blobs/{}/{}",
            self.resource_prefix(),
            std::process::id(),
            UPLOAD_SERIAL.fetch_add(1, Ordering::Relaxed),
            digest.hash,
            digest.size_bytes
        );
        let (sender, receiver) = tokio::sync::mpsc::channel::<WriteRequest>(4);
        let total = digest.size_bytes;
        // The reads are blocking: a thread of their own feeds the request stream.
        let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut offset: i64 = 0;
            let mut buffer = vec![0u8; CHUNK];
            loop {
                let mut filled = 0;
                while filled < CHUNK {
                    let read = source.read(&mut buffer[filled..])?;
                    if read == 0 {
                        break;
                    }
                    filled += read;
                }
                let finish = offset + filled as i64 >= total || filled == 0;
                let request = WriteRequest {
                    resource_name: if offset == 0 {
                        resource.clone()
                    } else {
                        String::new()
                    },
                    write_offset: offset,
                    finish_write: finish,
                    data: buffer[..filled].to_vec(),
                };
                offset += filled as i64;
                if sender.blocking_send(request).is_err() || finish {
                    return Ok(());
                }
            }
        });
        let mut client = ByteStreamClient::new(self.channel.clone());
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
        let response = client.write(stream).await;
        reader
            .await
            .map_err(|error| RemoteError::Protocol(format!("upload reader: {error}")))?
            .map_err(|source| RemoteError::Io {
                action: "cannot read an upload of",
                path: digest.hash.clone().into(),
                source,
            })?;
        let committed = response?.into_inner().committed_size;
        if committed != digest.size_bytes {
            return Err(RemoteError::Protocol(format!(
                "the CAS committed {committed} of the {} bytes of blob {}",
                digest.size_bytes, digest.hash
            )));
        }
        self.uploaded
            .fetch_add(digest.size_bytes as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Downloads a blob into memory (for messages and logs), checked against its digest.
    pub async fn read_bytes(&self, digest: &Digest) -> Result<Vec<u8>, RemoteError> {
        let mut bytes = Vec::new();
        self.read_into(digest, &mut bytes).await?;
        Ok(bytes)
    }

    /// Downloads a blob into `sink`, checked against its digest (the sink has received
    /// everything when the check fails: callers write to a scratch place they remove).
    pub async fn read_into(
        &self,
        digest: &Digest,
        sink: &mut impl Write,
    ) -> Result<(), RemoteError> {
        let mut hasher = Sha256::new();
        let mut size: i64 = 0;
        let io_error = |source| RemoteError::Io {
            action: "cannot write the download of",
            path: digest.hash.clone().into(),
            source,
        };
        if self.fits_batch(digest.size_bytes) {
            let mut client = ContentAddressableStorageClient::new(self.channel.clone());
            let response = client
                .batch_read_blobs(BatchReadBlobsRequest {
                    instance_name: self.instance.clone(),
                    digests: vec![digest.clone()],
                    acceptable_compressors: Vec::new(),
                    digest_function: 0,
                })
                .await?;
            let Some(answer) = response.into_inner().responses.into_iter().next() else {
                return Err(RemoteError::Protocol(format!(
                    "the CAS did not answer for blob {}",
                    digest.hash
                )));
            };
            if let Some(status) = answer.status.filter(|status| status.code != 0) {
                return Err(RemoteError::MissingBlob(format!(
                    "{}: {}",
                    digest.hash, status.message
                )));
            }
            hasher.update(&answer.data);
            size += answer.data.len() as i64;
            sink.write_all(&answer.data).map_err(io_error)?;
        } else {
            let mut client = ByteStreamClient::new(self.channel.clone());
            let mut stream = client
                .read(ReadRequest {
                    resource_name: format!(
                        "{}blobs/{}/{}",
                        self.resource_prefix(),
                        digest.hash,
                        digest.size_bytes
                    ),
                    read_offset: 0,
                    read_limit: 0,
                })
                .await?
                .into_inner();
            while let Some(chunk) = stream.message().await? {
                hasher.update(&chunk.data);
                size += chunk.data.len() as i64;
                sink.write_all(&chunk.data).map_err(io_error)?;
            }
        }
        let got = data_encoding::HEXLOWER.encode(&hasher.finalize());
        if got != digest.hash || size != digest.size_bytes {
            return Err(RemoteError::Protocol(format!(
                "the CAS sent {size} bytes hashing to {got} for blob {}/{}",
                digest.hash, digest.size_bytes
            )));
        }
        Ok(())
    }

    /// Downloads a blob into a file at `path`.
    pub async fn read_to_file(&self, digest: &Digest, path: &Path) -> Result<(), RemoteError> {
        let file = std::fs::File::create(path).map_err(|source| RemoteError::Io {
            action: "cannot create",
            path: path.to_owned(),
            source,
        })?;
        let mut writer = std::io::BufWriter::new(file);
        self.read_into(digest, &mut writer).await?;
        writer.flush().map_err(|source| RemoteError::Io {
            action: "cannot write",
            path: path.to_owned(),
            source,
        })
    }
}
