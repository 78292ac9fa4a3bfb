//! The compressions a binary cache's NAR files use (`Compression:` in a narinfo): xz, zstd,
//! bzip2 or none, each as a streaming decoder over a reader and a streaming encoder over a
//! writer, with the file extension Nix gives the NAR (`.nar.xz`, `.nar.zst`, `.nar.bz2`, `.nar`).
use std::io::{self, BufReader, Read, Write};

/// A NAR file's compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Xz,
    Zstd,
    Bzip2,
}

/// liblzma's preset for xz, as Nix's default (6).
const XZ_PRESET: u32 = 6;
/// zstd's default level, as Nix's default.
const ZSTD_LEVEL: i32 = 3;
/// The largest zstd window accepted: 2^27 bytes, zstd's own default limit.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

impl Compression {
    /// The compression a narinfo's `Compression:` names (`none`, `xz`, `zstd`, `bzip2`).
    pub fn from_name(name: &str) -> Option<Compression> {
        Some(match name {
            "none" | "" => Compression::None,
            "xz" => Compression::Xz,
            "zstd" => Compression::Zstd,
            "bzip2" => Compression::Bzip2,
            _ => return None,
        })
    }

    /// The name written in a narinfo.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
        }
    }

    /// The file extension after `.nar`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Bzip2 => ".bz2",
        }
    }

    /// A reader of the decompressed bytes of `input`.
    pub fn decoder<'a, R: Read + Send + 'a>(
        self,
        input: R,
    ) -> io::Result<Box<dyn Read + Send + 'a>> {
        let buffered = BufReader::with_capacity(1 << 16, input);
        Ok(match self {
            Compression::None => Box::new(buffered),
            // One thread, in a few MiB (the dictionary): substitution decompresses on a thread
            // of its own already, and liblzma's threaded decoder holds whole blocks in memory.
            Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(buffered)),
            Compression::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(buffered)?;
                // Bounds the decoder's window (memory) at 128 MiB whatever the cache sends.
                decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Box::new(decoder)
            }
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(buffered)),
        })
    }

    /// A writer compressing into `output` on `threads` threads (xz and zstd; at least one);
    /// [`Encoder::finish`] ends the stream.
    pub fn encoder<W: Write>(self, output: W, threads: u32) -> io::Result<Encoder<W>> {
        let threads = threads.max(1);
        Ok(match self {
            Compression::None => Encoder::None(output),
            Compression::Xz => {
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .threads(threads)
                    .preset(XZ_PRESET)
                    .check(liblzma::stream::Check::Crc64)
                    .encoder()
                    .map_err(io::Error::other)?;
                Encoder::Xz(liblzma::write::XzEncoder::new_stream(output, stream))
            }
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(output, ZSTD_LEVEL)?;
                encoder.multithread(threads)?;
                Encoder::Zstd(encoder)
            }
            Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                output,
                bzip2::Compression::default(),
            )),
        })
    }
}

impl std::str::FromStr for Compression {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Compression::from_name(text)
            .ok_or_else(|| format!("unknown compression '{text}' (xz, zstd, bzip2 or none)"))
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A compressing writer.
pub enum Encoder<W: Write> {
    None(W),
    Xz(liblzma::write::XzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Bzip2(bzip2::write::BzEncoder<W>),
}

impl<W: Write> Encoder<W> {
    /// Ends the compressed stream and hands back the writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(mut output) => output.flush().map(|()| output),
            Encoder::Xz(encoder) => encoder.finish(),
            Encoder::Zstd(encoder) => encoder.finish(),
            Encoder::Bzip2(encoder) => encoder.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(output) => output.write(buf),
            Encoder::Xz(encoder) => encoder.write(buf),
            Encoder::Zstd(encoder) => encoder.write(buf),
            Encoder::Bzip2(encoder) => encoder.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(output) => output.flush(),
            Encoder::Xz(encoder) => encoder.flush(),
            Encoder::Zstd(encoder) => encoder.flush(),
            Encoder::Bzip2(encoder) => encoder.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compression_round_trips() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for compression in [
            Compression::None,
            Compression::Xz,
            Compression::Zstd,
            Compression::Bzip2,
        ] {
            let mut encoder = compression.encoder(Vec::new(), 2).unwrap();
            encoder.write_all(&data).unwrap();
            let compressed = encoder.finish().unwrap();
            if compression != Compression::None {
                assert!(compressed.len() < data.len() / 4, "{compression}");
            }
            let mut decoded = Vec::new();
            compression
                .decoder(compressed.as_slice())
                .unwrap()
                .read_to_end(&mut decoded)
                .unwrap();
            assert_eq!(decoded, data, "{compression}");
            assert_eq!(
                Compression::from_name(compression.name()),
                Some(compression)
            );
        }
        assert_eq!(Compression::from_name("gzip"), None);
    }
}
