//! Recognising an archive's compression by its magic bytes and wrapping the byte stream in the
//! matching streaming decoder: gzip (flate2), xz (liblzma, multi-threaded where the stream is
//! made of independent blocks), zstd, bzip2, or none. Concatenated streams (as `pigz`, `pixz`,
//! `cat a.xz b.xz` produce) are read to the end.

use std::fmt;
use std::io::{self, BufRead, BufReader, Cursor, Read};

use liblzma::stream::{MtStreamBuilder, Stream};

/// A compression format, as recognised from the first bytes of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
    Bzip2,
}

impl Compression {
    /// Recognises the format from (up to) the first six bytes.
    pub fn from_magic(prefix: &[u8]) -> Self {
        if prefix.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if prefix.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Self::Xz
        } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else if prefix.starts_with(b"BZh") {
            Self::Bzip2
        } else {
            Self::None
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "uncompressed",
            Self::Gzip => "gzip",
            Self::Xz => "xz",
            Self::Zstd => "zstd",
            Self::Bzip2 => "bzip2",
        })
    }
}

const BUFFER_SIZE: usize = 1 << 20;

/// Reads the first bytes of `reader`, recognises the compression and returns a reader of the
/// decompressed bytes. `xz_threads` is the number of decoder threads for xz.
pub fn decompressing_reader<'a, R: Read + 'a>(
    mut reader: R,
    xz_threads: u32,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut prefix = Vec::with_capacity(6);
    (&mut reader).take(6).read_to_end(&mut prefix)?;
    let compression = Compression::from_magic(&prefix);
    let whole = BufReader::with_capacity(BUFFER_SIZE, Cursor::new(prefix).chain(reader));
    let decoded: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(whole)),
        Compression::Xz => Box::new(ConcatenatedXz::new(whole, xz_threads)?),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(whole)?;
            // Archives made with `--long` need windows beyond the default limit.
            decoder.window_log_max(31)?;
            Box::new(decoder)
        }
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(whole)),
    };
    Ok((compression, decoded))
}

/// The memory liblzma's threaded decoder may use for its threads' buffers. Each thread holds
/// a whole compressed and decompressed block (with `xz -6 -T0`, 24 MiB each plus an 8 MiB
/// dictionary), so an unbounded decoder on a big archive made with the default preset used
/// ~150 MB; with this bound such an archive is decoded by one worker thread (still beside the
/// thread writing the files) in ~85 MB, and archives with smaller blocks get more threads.
/// Measured on a 214 MiB `tar.xz` (`xz -6 -T2`) on two shared cores: ~14 s against ~18 s for
/// `curl | tar -xJ`, where two unbounded threads took ~15 s in ~150 MB.
const XZ_THREADING_MEMORY: u64 = 64 << 20;

/// An xz reader that decodes every concatenated stream, each with liblzma's multi-threaded
/// decoder (which itself falls back to one thread for single-block streams).
struct ConcatenatedXz<R: BufRead> {
    decoder: Option<liblzma::bufread::XzDecoder<R>>,
    threads: u32,
}

impl<R: BufRead> ConcatenatedXz<R> {
    fn new(input: R, threads: u32) -> io::Result<Self> {
        Ok(Self {
            decoder: Some(Self::decoder(input, threads)?),
            threads,
        })
    }

    fn decoder(input: R, threads: u32) -> io::Result<liblzma::bufread::XzDecoder<R>> {
        let stream = if threads <= 1 {
            // liblzma's single-threaded decoder needs far less memory than the threaded one.
            Stream::new_stream_decoder(u64::MAX, 0)
        } else {
            MtStreamBuilder::new()
                .threads(threads)
                // Use threads while their blocks fit in this much memory, else fewer (down to
                // one); never refuse a stream.
                .memlimit_threading(XZ_THREADING_MEMORY)
                .memlimit_stop(u64::MAX)
                .decoder()
        }
        .map_err(io::Error::other)?;
        Ok(liblzma::bufread::XzDecoder::new_stream(input, stream))
    }
}

impl<R: BufRead> Read for ConcatenatedXz<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(0);
            };
            let read = decoder.read(buf)?;
            if read > 0 || buf.is_empty() {
                return Ok(read);
            }
            // One stream ended: skip stream padding (zero bytes) and start on the next stream,
            // if there is one.
            let Some(finished) = self.decoder.take() else {
                return Ok(0);
            };
            let mut input = finished.into_inner();
            loop {
                let available = input.fill_buf()?;
                if available.is_empty() {
                    return Ok(0);
                }
                let zeros = available.iter().take_while(|byte| **byte == 0).count();
                if zeros == 0 {
                    break;
                }
                input.consume(zeros);
            }
            self.decoder = Some(Self::decoder(input, self.threads)?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(compressed: Vec<u8>, expected: Compression, plain: &[u8]) {
        // One thread takes liblzma's single-threaded decoder, more its threaded one.
        for threads in [1, 2] {
            let (compression, mut reader) =
                decompressing_reader(Cursor::new(compressed.clone()), threads).unwrap();
            assert_eq!(compression, expected);
            let mut decoded = Vec::new();
            reader.read_to_end(&mut decoded).unwrap();
            assert_eq!(decoded, plain, "{expected} with {threads} threads");
        }
    }

    #[test]
    fn every_format_is_recognised_and_concatenated_streams_are_read_whole() {
        let plain: Vec<u8> = (0..200_000u32).flat_map(|n| n.to_le_bytes()).collect();
        let (first, second) = plain.split_at(300_000);
        let xz = |part: &[u8]| {
            let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
            encoder.write_all(part).unwrap();
            encoder.finish().unwrap()
        };
        let mut two_xz = xz(first);
        two_xz.extend([0u8; 8]);
        two_xz.extend(xz(second));
        roundtrip(two_xz, Compression::Xz, &plain);

        let gz = |part: &[u8]| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(part).unwrap();
            encoder.finish().unwrap()
        };
        let mut two_gz = gz(first);
        two_gz.extend(gz(second));
        roundtrip(two_gz, Compression::Gzip, &plain);

        roundtrip(
            zstd::encode_all(&plain[..], 3).unwrap(),
            Compression::Zstd,
            &plain,
        );

        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&plain).unwrap();
        roundtrip(bz.finish().unwrap(), Compression::Bzip2, &plain);

        roundtrip(plain.clone(), Compression::None, &plain);
        roundtrip(b"abc".to_vec(), Compression::None, b"abc");
    }

    #[test]
    fn corrupt_xz_is_an_error() {
        let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
        encoder.write_all(&[7u8; 100_000]).unwrap();
        let mut data = encoder.finish().unwrap();
        let middle = data.len() / 2;
        data[middle] ^= 0xff;
        let (_, mut reader) = decompressing_reader(Cursor::new(data), 2).unwrap();
        assert!(reader.read_to_end(&mut Vec::new()).is_err());
    }
}
