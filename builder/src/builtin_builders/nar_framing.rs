//! The NAR framing around a single regular file, so that a `recursive` fixed-output fetch can be
//! hashed while the file streams in: the NAR of one file is a fixed prefix (which carries the
//! executable flag and the size), the contents, padding and a fixed suffix.

use kiln_store::hash::Hasher;

/// Feeds `hasher` the NAR framing that precedes a single regular file's contents
/// (`nix-archive-1 ( type regular [executable ""] contents <size>`).
pub fn nar_file_prefix(hasher: &mut Hasher, executable: bool, size: u64) {
    for token in ["nix-archive-1", "(", "type", "regular"] {
        nar_string(hasher, token.as_bytes());
    }
    if executable {
        nar_string(hasher, b"executable");
        nar_string(hasher, b"");
    }
    nar_string(hasher, b"contents");
    hasher.update(&size.to_le_bytes());
}

/// Feeds `hasher` the NAR framing that follows a single regular file's `size` content bytes.
pub fn nar_file_suffix(hasher: &mut Hasher, size: u64) {
    hasher.update(&[0u8; 8][..nar_padding(size)]);
    nar_string(hasher, b")");
}

fn nar_string(hasher: &mut Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
    hasher.update(&[0u8; 8][..nar_padding(bytes.len() as u64)]);
}

fn nar_padding(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_store::hash::HashAlgo;

    #[test]
    fn framing_matches_the_store_nar_and_nix_hash_path() {
        // `nix hash path --base32` (Nix 2.8) of a file holding "hello\n", plain and executable.
        for (executable, expected) in [
            (
                false,
                "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw",
            ),
            (true, "1yhh619m3cy1mird7f0l7zsmiv9rayqn075zinda2g7rscwn0hv5"),
        ] {
            let mut framed = Hasher::new(HashAlgo::Sha256);
            nar_file_prefix(&mut framed, executable, 6);
            framed.update(b"hello\n");
            nar_file_suffix(&mut framed, 6);
            let framed = framed.finish();
            assert_eq!(framed.to_nixbase32(), expected);

            let mut nar = Vec::new();
            kiln_store::nar::dump_bytes(b"hello\n", executable, &mut nar).unwrap();
            assert_eq!(framed, kiln_store::hash::Hash::sha256(&nar));
        }
    }
}
