//! The ATerm text of `.drv` files:
//! `Derive([outputs],[inputDrvs],[inputSrcs],"platform","builder",[args],[env])`, written
//! exactly as Nix writes it (escapes `"` `\` newline, carriage return and tab; every other
//! byte verbatim, UTF-8 or not — except the platform, which Nix writes without escapes) and
//! parsed back. The builder, arguments and environment are bytes; names, paths, hashes and
//! the platform are text.
use std::collections::{BTreeMap, BTreeSet};

use super::{Derivation, DerivationError, DerivationOutput, FixedOutputHash, FloatingOutput};
use crate::hash::Hash;
use crate::store_path::{ContentAddressMethod, StoreDir};

/// Appends `text` as a quoted, escaped ATerm string; bytes other than the five escaped ones
/// are copied as they are, whether or not they are UTF-8.
fn write_string(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (index, &byte) in text.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => continue,
        };
        out.extend_from_slice(&text[start..index]);
        out.extend_from_slice(escape);
        start = index + 1;
    }
    out.extend_from_slice(&text[start..]);
    out.push(b'"');
}

/// Appends `[item,item,…]` with each item written by `write_item`.
fn write_list<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write_item: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_item(out, item);
    }
    out.push(b']');
}

/// Writes the ATerm of `drv`. With `input_drvs_by_hash`, the input derivations are replaced
/// by those (hash modulo → outputs) entries; with `mask_outputs`, output paths and the
/// environment variables named after outputs are written as empty strings. Both are for
/// `hashDerivationModulo`.
pub(super) fn write(
    drv: &Derivation,
    dir: &StoreDir,
    input_drvs_by_hash: Option<&BTreeMap<String, BTreeSet<String>>>,
    mask_outputs: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"Derive(");
    write_list(&mut out, &drv.outputs, |out, (name, output)| {
        out.push(b'(');
        write_string(out, name.as_bytes());
        out.push(b',');
        match (&output.path, mask_outputs) {
            (Some(path), false) => write_string(out, dir.print(path).as_bytes()),
            _ => out.extend_from_slice(b"\"\""),
        }
        out.push(b',');
        match (&output.fixed, &output.floating) {
            (Some(fixed), _) => {
                write_string(out, fixed.method_algo().as_bytes());
                out.push(b',');
                write_string(out, fixed.hash.to_hex().as_bytes());
            }
            (None, Some(floating)) => {
                write_string(out, floating.method_algo().as_bytes());
                out.extend_from_slice(b",\"\"");
            }
            (None, None) => out.extend_from_slice(b"\"\",\"\""),
        }
        out.push(b')');
    });
    out.push(b',');
    let write_input = |out: &mut Vec<u8>, (key, outputs): (String, &BTreeSet<String>)| {
        out.push(b'(');
        write_string(out, key.as_bytes());
        out.push(b',');
        write_list(out, outputs, |out, name| write_string(out, name.as_bytes()));
        out.push(b')');
    };
    match input_drvs_by_hash {
        Some(by_hash) => write_list(
            &mut out,
            by_hash.iter().map(|(k, v)| (k.clone(), v)),
            write_input,
        ),
        None => write_list(
            &mut out,
            drv.input_drvs.iter().map(|(k, v)| (dir.print(k), v)),
            write_input,
        ),
    }
    out.push(b',');
    write_list(&mut out, &drv.input_srcs, |out, path| {
        write_string(out, dir.print(path).as_bytes())
    });
    out.push(b',');
    // Nix writes the platform quoted but unescaped (`printUnquotedString`): a tab or newline
    // in `system` goes into the `.drv` raw, and so into its hash.
    out.push(b'"');
    out.extend_from_slice(drv.platform.as_bytes());
    out.push(b'"');
    out.push(b',');
    write_string(&mut out, &drv.builder);
    out.push(b',');
    write_list(&mut out, &drv.args, |out, arg| write_string(out, arg));
    out.push(b',');
    write_list(&mut out, &drv.env, |out, (key, value)| {
        out.push(b'(');
        write_string(out, key);
        out.push(b',');
        if mask_outputs && drv.is_output_name(key) {
            out.extend_from_slice(b"\"\"");
        } else {
            write_string(out, value);
        }
        out.push(b')');
    });
    out.push(b')');
    out
}

/// A cursor over the ATerm bytes.
struct Parser<'a> {
    name: &'a str,
    text: &'a [u8],
    offset: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, message: impl Into<String>) -> DerivationError {
        DerivationError::Parse {
            name: self.name.to_owned(),
            offset: self.offset,
            message: message.into(),
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), DerivationError> {
        if self.text[self.offset..].starts_with(token.as_bytes()) {
            self.offset += token.len();
            Ok(())
        } else {
            Err(self.error(format!("expected '{token}'")))
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.offset).copied()
    }

    /// A quoted string's bytes, unescaped: `\n`, `\r` and `\t` stand for their control
    /// characters, a backslash before any other byte for that byte (as Nix reads them).
    fn bytes(&mut self) -> Result<Vec<u8>, DerivationError> {
        self.expect("\"")?;
        let mut out = Vec::new();
        let mut start = self.offset;
        loop {
            match self.text.get(self.offset) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    out.extend_from_slice(&self.text[start..self.offset]);
                    self.offset += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.extend_from_slice(&self.text[start..self.offset]);
                    let escaped = *self
                        .text
                        .get(self.offset + 1)
                        .ok_or_else(|| self.error("unterminated string"))?;
                    out.push(match escaped {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        other => other,
                    });
                    self.offset += 2;
                    start = self.offset;
                }
                Some(_) => self.offset += 1,
            }
        }
    }

    /// A quoted string that must be UTF-8 text (names, paths, hashes, the platform).
    fn string(&mut self) -> Result<String, DerivationError> {
        let at = self.offset;
        let bytes = self.bytes()?;
        String::from_utf8(bytes).map_err(|_| DerivationError::Parse {
            name: self.name.to_owned(),
            offset: at,
            message: "expected a UTF-8 string".to_owned(),
        })
    }

    /// Parses `[item,…]`.
    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, DerivationError>,
    ) -> Result<Vec<T>, DerivationError> {
        self.expect("[")?;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.offset += 1;
            return Ok(items);
        }
        loop {
            items.push(item(self)?);
            match self.peek() {
                Some(b',') => self.offset += 1,
                Some(b']') => {
                    self.offset += 1;
                    return Ok(items);
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }
}

/// Parses a `.drv` file's text.
pub(super) fn parse(
    dir: &StoreDir,
    name: &str,
    text: &[u8],
) -> Result<Derivation, DerivationError> {
    let mut p = Parser {
        name,
        text,
        offset: 0,
    };
    p.expect("Derive(")?;
    let outputs = p.list(|p| {
        p.expect("(")?;
        let output_name = p.string()?;
        p.expect(",")?;
        let path = p.string()?;
        p.expect(",")?;
        let hash_algo = p.string()?;
        p.expect(",")?;
        let hash = p.string()?;
        p.expect(")")?;
        Ok((output_name, path, hash_algo, hash))
    })?;
    let mut drv = Derivation {
        name: name.to_owned(),
        ..Derivation::default()
    };
    for (output_name, path, hash_algo, hash) in outputs {
        let path = if path.is_empty() {
            None
        } else {
            Some(dir.parse(&path)?)
        };
        let mut output = DerivationOutput {
            path,
            ..DerivationOutput::default()
        };
        if !hash_algo.is_empty() {
            let (method, algo) = ContentAddressMethod::parse_method_algo(&hash_algo)?;
            if hash.is_empty() {
                output.floating = Some(FloatingOutput { method, algo });
            } else {
                output.fixed = Some(FixedOutputHash {
                    method,
                    hash: Hash::parse_bare(&hash, algo)?,
                });
            }
        }
        drv.outputs.insert(output_name, output);
    }
    p.expect(",")?;
    let input_drvs = p.list(|p| {
        p.expect("(")?;
        let path = p.string()?;
        p.expect(",")?;
        let outputs = p.list(|p| p.string())?;
        p.expect(")")?;
        Ok((path, outputs))
    })?;
    for (path, outputs) in input_drvs {
        drv.input_drvs
            .entry(dir.parse(&path)?)
            .or_default()
            .extend(outputs);
    }
    p.expect(",")?;
    for path in p.list(|p| p.string())? {
        drv.input_srcs.insert(dir.parse(&path)?);
    }
    p.expect(",")?;
    drv.platform = p.string()?;
    p.expect(",")?;
    drv.builder = p.bytes()?;
    p.expect(",")?;
    drv.args = p.list(|p| p.bytes())?;
    p.expect(",")?;
    let env = p.list(|p| {
        p.expect("(")?;
        let key = p.bytes()?;
        p.expect(",")?;
        let value = p.bytes()?;
        p.expect(")")?;
        Ok((key, value))
    })?;
    drv.env = env.into_iter().collect();
    p.expect(")")?;
    if p.offset != text.len() {
        return Err(p.error("trailing characters after the derivation"));
    }
    Ok(drv)
}
