//! Nix's base-32 encoding ("nixbase32"): the alphabet without `e`, `o`, `u`, `t`, written from
//! the last 5-bit group to the first. It names every store path and is one of the printed forms
//! of hashes.

/// The 32 digits, in value order.
const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// The value of each ASCII byte as a digit, or 0xFF when it is not a digit.
const DIGIT_VALUES: [u8; 256] = {
    let mut table = [0xFFu8; 256];
    let mut index = 0;
    while index < ALPHABET.len() {
        table[ALPHABET[index] as usize] = index as u8;
        index += 1;
    }
    table
};

/// Why a nixbase32 string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Nixbase32Error {
    #[error("invalid character '{0}' in nixbase32 string")]
    InvalidCharacter(char),
    #[error("nixbase32 string of length {actual} cannot hold {expected} bytes")]
    WrongLength { expected: usize, actual: usize },
    #[error("nixbase32 string has bits set beyond the end of the decoded bytes")]
    TrailingBits,
}

/// The number of characters that encode `byte_count` bytes.
pub const fn encoded_len(byte_count: usize) -> usize {
    if byte_count == 0 {
        0
    } else {
        (byte_count * 8 - 1) / 5 + 1
    }
}

/// The number of bytes encoded by `char_count` characters, if that length is the exact encoding
/// of some byte count.
pub fn decoded_len(char_count: usize) -> Option<usize> {
    let bytes = char_count * 5 / 8;
    (encoded_len(bytes) == char_count).then_some(bytes)
}

/// Encodes bytes as nixbase32.
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for group in (0..len).rev() {
        let bit = group * 5;
        let byte_index = bit / 8;
        let shift = bit % 8;
        let low = u16::from(bytes[byte_index]) >> shift;
        let high = bytes
            .get(byte_index + 1)
            .map_or(0, |next| u16::from(*next) << (8 - shift));
        out.push(ALPHABET[usize::from((low | high) & 0x1f)] as char);
    }
    out
}

/// Decodes a nixbase32 string into exactly the number of bytes its length implies.
pub fn decode(text: &str) -> Result<Vec<u8>, Nixbase32Error> {
    let byte_count = decoded_len(text.len()).ok_or(Nixbase32Error::WrongLength {
        expected: text.len() * 5 / 8,
        actual: text.len(),
    })?;
    let mut out = vec![0u8; byte_count];
    for (group, character) in text.bytes().rev().enumerate() {
        let digit = DIGIT_VALUES[usize::from(character)];
        if digit == 0xFF {
            return Err(Nixbase32Error::InvalidCharacter(char::from(character)));
        }
        let bit = group * 5;
        let byte_index = bit / 8;
        let shift = bit % 8;
        out[byte_index] |= digit << shift;
        let carry = u16::from(digit) >> (8 - shift);
        if byte_index + 1 < byte_count {
            out[byte_index + 1] |= carry as u8;
        } else if carry != 0 {
            return Err(Nixbase32Error::TrailingBits);
        }
    }
    Ok(out)
}

/// Whether `character` is a nixbase32 digit.
pub fn is_digit(character: u8) -> bool {
    DIGIT_VALUES[usize::from(character)] != 0xFF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_match_nix() {
        assert_eq!(encoded_len(16), 26);
        assert_eq!(encoded_len(20), 32);
        assert_eq!(encoded_len(32), 52);
        assert_eq!(encoded_len(64), 103);
        assert_eq!(decoded_len(52), Some(32));
        assert_eq!(decoded_len(51), None);
    }

    #[test]
    fn round_trips_and_golden() {
        // `nix hash to-base32 --type sha256` of sha256("hello") (oracle).
        let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let bytes = data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap();
        let text = encode(&bytes);
        assert_eq!(text, "094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic");
        assert_eq!(decode(&text).unwrap(), bytes);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            decode("094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwie"),
            Err(Nixbase32Error::InvalidCharacter('e'))
        );
        assert!(matches!(
            decode("abc"),
            Err(Nixbase32Error::WrongLength { .. })
        ));
        // The top bits of the first character overflow 32 bytes.
        assert_eq!(
            decode("z94qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic"),
            Err(Nixbase32Error::TrailingBits)
        );
    }
}
