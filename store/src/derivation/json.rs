//! The JSON `nix show-derivation` prints, written as Nix 2.8 writes it: strings are bytes and
//! go out as they are, UTF-8 or not; only `"`, `\`, newline, carriage return and tab get short
//! escapes, the other control characters below 0x20 `\u00XX`; objects and arrays are indented
//! by two spaces, empty ones written `{}` and `[]`.

/// A JSON document whose strings (and object keys) are byte strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Json {
    String(Vec<u8>),
    Array(Vec<Json>),
    /// Members in the order they are written.
    Object(Vec<(Vec<u8>, Json)>),
}

impl Json {
    /// A string member from text.
    pub fn text(text: impl Into<String>) -> Json {
        Json::String(text.into().into_bytes())
    }

    /// The document, indented as `nix show-derivation` prints it (no final newline).
    pub fn to_pretty(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_pretty(&mut out, 0);
        out
    }

    fn write_pretty(&self, out: &mut Vec<u8>, depth: usize) {
        match self {
            Json::String(bytes) => write_string(out, bytes),
            Json::Array(items) if items.is_empty() => out.extend_from_slice(b"[]"),
            Json::Object(members) if members.is_empty() => out.extend_from_slice(b"{}"),
            Json::Array(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    new_line(out, depth + 1);
                    item.write_pretty(out, depth + 1);
                }
                new_line(out, depth);
                out.push(b']');
            }
            Json::Object(members) => {
                out.push(b'{');
                for (index, (key, value)) in members.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    new_line(out, depth + 1);
                    write_string(out, key);
                    out.extend_from_slice(b": ");
                    value.write_pretty(out, depth + 1);
                }
                new_line(out, depth);
                out.push(b'}');
            }
        }
    }
}

fn new_line(out: &mut Vec<u8>, depth: usize) {
    out.push(b'\n');
    out.resize(out.len() + 2 * depth, b' ');
}

/// Appends `bytes` as a quoted JSON string, escaped as Nix 2.8's `toJSON` escapes it.
fn write_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..index]);
        if short.is_empty() {
            out.extend_from_slice(format!("\\u{byte:04x}").as_bytes());
        } else {
            out.extend_from_slice(short);
        }
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_keep_their_bytes_and_escape_control_characters_as_nix_does() {
        let json = Json::String(b"a\"\\\n\r\t\x08\x0c\x1f\x7f\xff\xc3".to_vec());
        assert_eq!(
            json.to_pretty(),
            b"\"a\\\"\\\\\\n\\r\\t\\u0008\\u000c\\u001f\x7f\xff\xc3\"".to_vec()
        );
    }

    #[test]
    fn nesting_is_indented_by_two_spaces_and_empty_containers_stay_on_one_line() {
        let json = Json::Object(vec![
            (
                b"a".to_vec(),
                Json::Array(vec![Json::text("x"), Json::text("y")]),
            ),
            (b"b".to_vec(), Json::Array(vec![])),
            (b"c".to_vec(), Json::Object(vec![])),
        ]);
        assert_eq!(
            String::from_utf8(json.to_pretty()).unwrap(),
            "{\n  \"a\": [\n    \"x\",\n    \"y\"\n  ],\n  \"b\": [],\n  \"c\": {}\n}"
        );
    }
}
