//! `builtin:oci`: a container image made from root-file-system layers, bit for bit the same
//! on every machine.
//!
//! Attributes: `layers` (store paths of directories, topmost first as in `rootfs`; each
//! becomes one image layer), `format` (`oci`: an OCI image layout directory with
//! `oci-layout`, `index.json` and `blobs/sha256/`; `docker-archive`: a `docker save` tarball
//! for `docker load`), `imageName`, `tag`, `architecture` (an OCI name: `amd64`, `arm64`),
//! `created` (an RFC 3339 time, also the image's history), `config` (the JSON of the image
//! config's `config` object: `Cmd`, `Entrypoint`, `Env`, `WorkingDir`, `User`, `Labels`, …)
//! and `compression` (`gzip` or `zstd`, OCI layers only; a docker archive holds plain tars).
//!
//! Reproducibility: each layer is a tar of its directory's tree in byte order of the names,
//! every entry owned by 0:0 with modification time 1 (the store's) and the mode the store
//! gives it, no user or group names, no extended attributes; regular files only (hardlinks
//! are stored as copies); compression with fixed settings and no timestamps; every JSON
//! document in a fixed key order; no random ids. So the same layers and settings give the
//! same manifest digest anywhere.
//!
//! Whiteouts: a layer deletes a path of the layers below with an empty regular file named
//! `.wh.<name>` beside it, and hides a whole directory of the layers below with
//! `.wh..wh..opq` inside it: the OCI names, stored as they are, so that tools unpacking the
//! image apply them. A marker that is not an empty regular file is refused.
//!
//! Layers must be store paths (checked against the store on disk, as `builtin:unpack`'s
//! `src`) that are directories; their files are read without following symbolic links, which
//! are stored as links.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kiln_store::path_io_error::PathIoError;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::unpack::{source_in_store, StoreLocation, UnpackError};

/// The modification time of every entry (the store's).
const ENTRY_MTIME: u64 = 1;
/// The name prefix of a whiteout marker.
const WHITEOUT_PREFIX: &str = ".wh.";

/// What to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// An OCI image layout directory.
    Oci,
    /// A `docker save` tarball.
    DockerArchive,
}

/// How OCI layers are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    Gzip,
    Zstd,
}

impl LayerCompression {
    fn media_type(self) -> &'static str {
        match self {
            LayerCompression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            LayerCompression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// The attributes of a `builtin:oci` derivation, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRequest {
    pub format: ImageFormat,
    /// Logical store paths, topmost first.
    pub layers: Vec<PathBuf>,
    pub image_name: String,
    pub tag: String,
    pub architecture: String,
    pub created: String,
    pub config: Value,
    pub compression: LayerCompression,
}

/// Why an image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("builtin:oci needs the attribute `{0}`")]
    MissingAttribute(&'static str),
    #[error("builtin:oci: attribute `{name}`: {reason}")]
    BadAttribute { name: &'static str, reason: String },
    #[error("builtin:oci: layer {layer}: {source}")]
    Layer {
        layer: PathBuf,
        #[source]
        source: UnpackError,
    },
    #[error("builtin:oci: layer {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("builtin:oci: {path} is a whiteout marker but not an empty regular file")]
    BadWhiteout { path: PathBuf },
    #[error("builtin:oci: {path} is neither a file, a directory nor a symbolic link")]
    UnsupportedFile { path: PathBuf },
    #[error("builtin:oci: no store location was given")]
    NoStoreLocation,
    #[error("builtin:oci: {0}")]
    Io(#[from] PathIoError),
}

impl ImageRequest {
    /// Reads and checks the derivation's attributes.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<ImageRequest, ImageError> {
        let get = |name: &'static str| {
            env.get(name)
                .map(String::as_str)
                .ok_or(ImageError::MissingAttribute(name))
        };
        let bad = |name: &'static str, reason: String| ImageError::BadAttribute { name, reason };
        let format = match get("format")? {
            "oci" => ImageFormat::Oci,
            "docker-archive" => ImageFormat::DockerArchive,
            other => {
                return Err(bad(
                    "format",
                    format!("`{other}` is neither `oci` nor `docker-archive`"),
                ))
            }
        };
        let compression = match env.get("compression").map_or("gzip", String::as_str) {
            "gzip" => LayerCompression::Gzip,
            "zstd" => LayerCompression::Zstd,
            other => {
                return Err(bad(
                    "compression",
                    format!("`{other}` is neither `gzip` nor `zstd`"),
                ))
            }
        };
        let layers: Vec<PathBuf> = get("layers")?
            .split_whitespace()
            .map(PathBuf::from)
            .collect();
        if layers.is_empty() {
            return Err(bad("layers", "no layer is given".to_owned()));
        }
        let config: Value = match env.get("config") {
            None => json!({}),
            Some(text) => {
                serde_json::from_str(text).map_err(|e| bad("config", format!("not JSON: {e}")))?
            }
        };
        if !config.is_object() {
            return Err(bad("config", "not a JSON object".to_owned()));
        }
        let created = get("created")?.to_owned();
        if !is_rfc3339(&created) {
            return Err(bad(
                "created",
                format!("`{created}` is not an RFC 3339 time like 1970-01-01T00:00:01Z"),
            ));
        }
        let tag = get("tag")?.to_owned();
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !tag.starts_with(['.', '-']);
        if !tag_ok {
            return Err(bad("tag", format!("`{tag}` is not a valid image tag")));
        }
        let image_name = get("imageName")?.to_owned();
        let name_ok = !image_name.is_empty()
            && image_name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b));
        if !name_ok {
            return Err(bad(
                "imageName",
                format!("`{image_name}` is not a valid image name (lower case, digits, . _ - /)"),
            ));
        }
        Ok(ImageRequest {
            format,
            layers,
            image_name,
            tag,
            architecture: get("architecture")?.to_owned(),
            created,
            config,
            compression,
        })
    }
}

/// Whether `text` has the shape `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn is_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    let shape = digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && digits(5..7)
        && bytes.get(7) == Some(&b'-')
        && digits(8..10)
        && bytes.get(10) == Some(&b'T')
        && digits(11..13)
        && bytes.get(13) == Some(&b':')
        && digits(14..16)
        && bytes.get(16) == Some(&b':')
        && digits(17..19);
    if !shape {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return false;
        }
        rest = &fraction[end..];
    }
    rest == "Z"
        || (rest.len() == 6
            && rest.starts_with(['+', '-'])
            && rest.as_bytes()[3] == b':'
            && rest[1..3]
                .bytes()
                .chain(rest[4..6].bytes())
                .all(|b| b.is_ascii_digit()))
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The inner writer, the `sha256:…` digest and the size of what was written.
    fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex(&self.hasher.finalize()));
        (self.inner, digest, self.size)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 digest (`sha256:…`) of `bytes`.
fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// A tar header with the fixed fields of every entry.
fn header(entry_type: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(ENTRY_MTIME);
    header
}

/// Writes the tree under `root` (without `root` itself) into `tar`, names in byte order.
fn append_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    relative: &Path,
) -> Result<(), ImageError> {
    let dir = root.join(relative);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(PathIoError::at("listing", &dir))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(PathIoError::at("listing", &dir))?;
    entries.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for name in entries {
        let path = root.join(relative).join(&name);
        let inside = relative.join(&name);
        let metadata =
            std::fs::symlink_metadata(&path).map_err(PathIoError::at("reading", &path))?;
        let mode = metadata.permissions().mode() & 0o7777;
        let file_type = metadata.file_type();
        let is_whiteout = name
            .as_encoded_bytes()
            .starts_with(WHITEOUT_PREFIX.as_bytes());
        if is_whiteout && !(file_type.is_file() && metadata.len() == 0) {
            return Err(ImageError::BadWhiteout { path });
        }
        let append = if file_type.is_dir() {
            let mut header = header(tar::EntryType::Directory, mode, 0);
            tar.append_data(&mut header, &inside, io::empty())
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(&path).map_err(PathIoError::at("reading", &path))?;
            let mut header = header(tar::EntryType::Symlink, 0o777, 0);
            tar.append_link(&mut header, &inside, &target)
        } else if file_type.is_file() {
            let file = File::open(&path).map_err(PathIoError::at("opening", &path))?;
            // The size the header announces is the size read: a file that changed under us
            // would make the tar crate fail rather than write a wrong archive.
            let mut header = header(tar::EntryType::Regular, mode, metadata.size());
            tar.append_data(&mut header, &inside, file)
        } else {
            return Err(ImageError::UnsupportedFile { path });
        };
        append.map_err(PathIoError::at("archiving", &path))?;
        if file_type.is_dir() {
            append_tree(tar, root, &inside)?;
        }
    }
    Ok(())
}

/// Writes the tar of `layer` to `out`; returns `out` and the tar's digest (the layer's diff
/// id) and size.
fn write_layer_tar<W: Write>(layer: &Path, out: W) -> Result<(W, String, u64), ImageError> {
    let mut tar = tar::Builder::new(Hashing::new(out));
    tar.follow_symlinks(false);
    append_tree(&mut tar, layer, Path::new(""))?;
    let hashing = tar
        .into_inner()
        .map_err(PathIoError::at("archiving", layer))?;
    Ok(hashing.finish())
}

/// A blob written to `blobs/sha256/` of an image layout.
struct Blob {
    media_type: &'static str,
    digest: String,
    size: u64,
}

impl Blob {
    fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

/// The layout directory `out` being filled.
struct Layout {
    blobs: PathBuf,
}

impl Layout {
    fn create(out: &Path) -> Result<Layout, ImageError> {
        let blobs = out.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(PathIoError::at("creating", &blobs))?;
        Ok(Layout { blobs })
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.blobs.join(digest.trim_start_matches("sha256:"))
    }

    fn add_bytes(&self, media_type: &'static str, bytes: &[u8]) -> Result<Blob, ImageError> {
        let digest = digest_of(bytes);
        let path = self.blob_path(&digest);
        std::fs::write(&path, bytes).map_err(PathIoError::at("writing", &path))?;
        Ok(Blob {
            media_type,
            digest,
            size: bytes.len() as u64,
        })
    }

    /// Writes one compressed layer; returns its blob and its diff id.
    fn add_layer(
        &self,
        layer: &Path,
        compression: LayerCompression,
    ) -> Result<(Blob, String), ImageError> {
        let partial = self.blobs.join(".partial-layer");
        let file = File::create(&partial).map_err(PathIoError::at("creating", &partial))?;
        let compressed = Hashing::new(io::BufWriter::new(file));
        let (compressed, diff_id) = match compression {
            LayerCompression::Gzip => {
                // No file name, modification time 0, OS byte "unknown": no trace of this
                // machine or moment.
                let encoder = flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(compressed, flate2::Compression::default());
                let (encoder, diff_id, _) = write_layer_tar(layer, encoder)?;
                let compressed = encoder
                    .finish()
                    .map_err(PathIoError::at("compressing", layer))?;
                (compressed, diff_id)
            }
            LayerCompression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(compressed, 3)
                    .map_err(PathIoError::at("compressing", layer))?;
                // The content size in the frame header would depend on how the tar was
                // written in pieces; leave it out.
                encoder
                    .include_contentsize(false)
                    .map_err(PathIoError::at("compressing", layer))?;
                let (encoder, diff_id, _) = write_layer_tar(layer, encoder)?;
                let compressed = encoder
                    .finish()
                    .map_err(PathIoError::at("compressing", layer))?;
                (compressed, diff_id)
            }
        };
        let (mut writer, digest, size) = compressed.finish();
        writer
            .flush()
            .map_err(PathIoError::at("writing", &partial))?;
        drop(writer);
        let path = self.blob_path(&digest);
        std::fs::rename(&partial, &path).map_err(PathIoError::at("writing", &path))?;
        Ok((
            Blob {
                media_type: compression.media_type(),
                digest,
                size,
            },
            diff_id,
        ))
    }
}

/// The image config document.
fn image_config(request: &ImageRequest, diff_ids: &[String]) -> Value {
    let history: Vec<Value> = diff_ids
        .iter()
        .map(|_| json!({ "created": request.created, "created_by": "kiln builtin:oci" }))
        .collect();
    json!({
        "created": request.created,
        "architecture": request.architecture,
        "os": "linux",
        "config": request.config,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    })
}

fn to_bytes(value: &Value) -> Vec<u8> {
    // Serialising a `Value` cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// What was made: the manifest's digest (the image's identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReport {
    pub manifest_digest: String,
}

/// Runs `builtin:oci` for a derivation's environment into `out` (which must not exist yet).
pub fn build_image(
    env: &BTreeMap<String, String>,
    out: &Path,
    location: Option<&StoreLocation>,
) -> Result<ImageReport, ImageError> {
    let request = ImageRequest::from_env(env)?;
    let location = location.ok_or(ImageError::NoStoreLocation)?;
    // Bottom layer first, as in a manifest.
    let mut layers = Vec::new();
    for logical in request.layers.iter().rev() {
        let physical = source_in_store(logical, location).map_err(|source| ImageError::Layer {
            layer: logical.clone(),
            source,
        })?;
        let unresolved = location
            .physical
            .join(logical.strip_prefix(&location.logical).unwrap_or(logical));
        if !std::fs::symlink_metadata(&unresolved).is_ok_and(|m| m.is_dir()) {
            return Err(ImageError::NotADirectory(logical.clone()));
        }
        layers.push(physical);
    }
    match request.format {
        ImageFormat::Oci => oci_layout(&request, &layers, out),
        ImageFormat::DockerArchive => docker_archive(&request, &layers, out),
    }
}

fn oci_layout(
    request: &ImageRequest,
    layers: &[PathBuf],
    out: &Path,
) -> Result<ImageReport, ImageError> {
    let layout = Layout::create(out)?;
    let mut layer_blobs = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let (blob, diff_id) = layout.add_layer(layer, request.compression)?;
        layer_blobs.push(blob.descriptor());
        diff_ids.push(diff_id);
    }
    let config = layout.add_bytes(
        "application/vnd.oci.image.config.v1+json",
        &to_bytes(&image_config(request, &diff_ids)),
    )?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config.descriptor(),
        "layers": layer_blobs,
    });
    let manifest = layout.add_bytes(
        "application/vnd.oci.image.manifest.v1+json",
        &to_bytes(&manifest),
    )?;
    let mut descriptor = manifest.descriptor();
    descriptor["annotations"] = json!({
        "org.opencontainers.image.ref.name": request.tag,
        "io.containerd.image.name": format!("{}:{}", request.image_name, request.tag),
    });
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [descriptor],
    });
    for (name, bytes) in [
        (
            "oci-layout",
            to_bytes(&json!({ "imageLayoutVersion": "1.0.0" })),
        ),
        ("index.json", to_bytes(&index)),
    ] {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(PathIoError::at("writing", &path))?;
    }
    Ok(ImageReport {
        manifest_digest: manifest.digest,
    })
}

/// Appends a file of the docker archive (owned by 0:0, mode 0644, modification time 1).
fn append_file<W: Write, R: io::Read>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: R,
    out: &Path,
) -> Result<(), ImageError> {
    let mut header = header(tar::EntryType::Regular, 0o644, size);
    tar.append_data(&mut header, name, data)
        .map_err(PathIoError::at("writing", out))?;
    Ok(())
}

fn docker_archive(
    request: &ImageRequest,
    layers: &[PathBuf],
    out: &Path,
) -> Result<ImageReport, ImageError> {
    // The layer tars first (their digests name them in the archive), in a scratch directory.
    let scratch = tempfile::Builder::new()
        .prefix("kiln-image-")
        .tempdir()
        .map_err(PathIoError::at("creating a scratch directory for", out))?;
    let mut layer_files = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let path = scratch.path().join(format!("{index}.tar"));
        let file = File::create(&path).map_err(PathIoError::at("creating", &path))?;
        let (mut writer, diff_id, size) = write_layer_tar(layer, io::BufWriter::new(file))?;
        writer.flush().map_err(PathIoError::at("writing", &path))?;
        layer_files.push((path, diff_id, size));
    }
    let diff_ids: Vec<String> = layer_files.iter().map(|(_, d, _)| d.clone()).collect();
    let config = to_bytes(&image_config(request, &diff_ids));
    let config_digest = digest_of(&config);
    let config_name = format!("{}.json", config_digest.trim_start_matches("sha256:"));
    let layer_names: Vec<String> = diff_ids
        .iter()
        .map(|d| format!("{}/layer.tar", d.trim_start_matches("sha256:")))
        .collect();
    let reference = format!("{}:{}", request.image_name, request.tag);
    let manifest = to_bytes(&json!([{
        "Config": config_name,
        "RepoTags": [reference],
        "Layers": layer_names,
    }]));
    let file = File::create(out).map_err(PathIoError::at("creating", out))?;
    let mut tar = tar::Builder::new(io::BufWriter::new(file));
    for ((path, _, size), name) in layer_files.iter().zip(&layer_names) {
        let directory = name.trim_end_matches("/layer.tar");
        let mut header = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut header, format!("{directory}/"), io::empty())
            .map_err(PathIoError::at("writing", out))?;
        let layer = File::open(path).map_err(PathIoError::at("opening", path))?;
        append_file(&mut tar, name, *size, layer, out)?;
    }
    append_file(
        &mut tar,
        &config_name,
        config.len() as u64,
        &config[..],
        out,
    )?;
    append_file(
        &mut tar,
        "manifest.json",
        manifest.len() as u64,
        &manifest[..],
        out,
    )?;
    let mut writer = tar.into_inner().map_err(PathIoError::at("writing", out))?;
    writer.flush().map_err(PathIoError::at("writing", out))?;
    Ok(ImageReport {
        manifest_digest: digest_of(&manifest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_checked_for_their_rfc3339_shape() {
        for good in [
            "1970-01-01T00:00:01Z",
            "2024-07-15T12:30:00.123Z",
            "2024-07-15T12:30:00+02:00",
        ] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "1970-01-01",
            "1970-01-01 00:00:01Z",
            "1970-01-01T00:00:01",
            "x",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn attributes_are_checked() {
        let base = [
            ("format", "oci"),
            ("layers", "/kiln/store/a /kiln/store/b"),
            ("imageName", "example/app"),
            ("tag", "latest"),
            ("architecture", "amd64"),
            ("created", "1970-01-01T00:00:01Z"),
            ("config", r#"{"Cmd":["/bin/sh"]}"#),
        ];
        let request = ImageRequest::from_env(&env(&base)).expect("valid");
        assert_eq!(request.layers.len(), 2);
        assert_eq!(request.compression, LayerCompression::Gzip);
        for (name, value) in [
            ("format", "tarball"),
            ("tag", "-x"),
            ("imageName", "Upper"),
            ("config", "[1]"),
            ("layers", " "),
            ("compression", "xz"),
        ] {
            let mut pairs = env(&base);
            pairs.insert(name.to_owned(), value.to_owned());
            assert!(
                ImageRequest::from_env(&pairs).is_err(),
                "{name} = {value} accepted"
            );
        }
    }

    #[test]
    fn a_layer_tar_is_sorted_owned_by_root_and_keeps_whiteouts() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path();
        std::fs::create_dir(root.join("b")).expect("dir");
        std::fs::write(root.join("b/file"), "x").expect("file");
        std::fs::write(root.join("a"), "").expect("file");
        std::fs::write(root.join(".wh.gone"), "").expect("file");
        std::os::unix::fs::symlink("b/file", root.join("link")).expect("link");
        let (bytes, digest, size) = write_layer_tar(root, Vec::new()).expect("tar");
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(digest, digest_of(&bytes));
        let mut archive = tar::Archive::new(&bytes[..]);
        let entries: Vec<(String, u64, u64, u64)> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                (
                    e.path().expect("path").to_string_lossy().into_owned(),
                    h.uid().expect("uid"),
                    h.mtime().expect("mtime"),
                    h.size().expect("size"),
                )
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, [".wh.gone", "a", "b", "b/file", "link"]);
        assert!(entries.iter().all(|e| e.1 == 0 && e.2 == ENTRY_MTIME));
        // Written twice, the same bytes.
        assert_eq!(write_layer_tar(root, Vec::new()).expect("tar").0, bytes);
        std::fs::write(root.join(".wh.gone"), "not empty").expect("file");
        assert!(matches!(
            write_layer_tar(root, Vec::new()),
            Err(ImageError::BadWhiteout { .. })
        ));
    }
}
