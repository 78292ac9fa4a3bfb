//! The ATerm text of `.drv` files:
//! `Derive([outputs],[inputDrvs],[inputSrcs],"platform","builder",[args],[env])`, written
//! exactly as Nix writes it (escapes `"` `\` newline, carriage return and tab; everything else
//! verbatim — except the platform, which Nix writes without escapes) and parsed back.
use std::collections::{BTreeMap, BTreeSet};

use super::{Derivation, DerivationError, DerivationOutput, FixedOutputHash, FloatingOutput};
use crate::hash::Hash;
use crate::store_path::{ContentAddressMethod, StoreDir};

/// Appends `text` as a quoted, escaped ATerm string.
fn write_string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            _ => continue,
        };
        out.push_str(&text[start..index]);
        out.push_str(escape);
        start = index + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// Appends `[item,item,…]` with each item written by `write_item`.
fn write_list<T>(
    out: &mut String,
    items: impl IntoIterator<Item = T>,
    mut write_item: impl FnMut(&mut String, T),
) {
    out.push('[');
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_item(out, item);
    }
    out.push(']');
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
) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("Derive(");
    write_list(&mut out, &drv.outputs, |out, (name, output)| {
        out.push('(');
        write_string(out, name);
        out.push(',');
        match (&output.path, mask_outputs) {
            (Some(path), false) => write_string(out, &dir.print(path)),
            _ => out.push_str("\"\""),
        }
        out.push(',');
        match (&output.fixed, &output.floating) {
            (Some(fixed), _) => {
                write_string(out, &fixed.method_algo());
                out.push(',');
                write_string(out, &fixed.hash.to_hex());
            }
            (None, Some(floating)) => {
                write_string(out, &floating.method_algo());
                out.push_str(",\"\"");
            }
            (None, None) => out.push_str("\"\",\"\""),
        }
        out.push(')');
    });
    out.push(',');
    let write_input = |out: &mut String, (key, outputs): (String, &BTreeSet<String>)| {
        out.push('(');
        write_string(out, &key);
        out.push(',');
        write_list(out, outputs, |out, name| write_string(out, name));
        out.push(')');
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
    out.push(',');
    write_list(&mut out, &drv.input_srcs, |out, path| {
        write_string(out, &dir.print(path))
    });
    out.push(',');
    // Nix writes the platform quoted but unescaped (`printUnquotedString`): a tab or newline
    // in `system` goes into the `.drv` raw, and so into its hash.
    out.push('"');
    out.push_str(&drv.platform);
    out.push('"');
    out.push(',');
    write_string(&mut out, &drv.builder);
    out.push(',');
    write_list(&mut out, &drv.args, |out, arg| write_string(out, arg));
    out.push(',');
    write_list(&mut out, &drv.env, |out, (key, value)| {
        out.push('(');
        write_string(out, key);
        out.push(',');
        if mask_outputs && drv.outputs.contains_key(key) {
            out.push_str("\"\"");
        } else {
            write_string(out, value);
        }
        out.push(')');
    });
    out.push(')');
    out
}

/// A cursor over the ATerm text.
struct Parser<'a> {
    name: &'a str,
    text: &'a str,
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
        if self.text[self.offset..].starts_with(token) {
            self.offset += token.len();
            Ok(())
        } else {
            Err(self.error(format!("expected '{token}'")))
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.offset).copied()
    }

    fn string(&mut self) -> Result<String, DerivationError> {
        self.expect("\"")?;
        let mut out = String::new();
        let bytes = self.text.as_bytes();
        let mut start = self.offset;
        loop {
            match bytes.get(self.offset) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    out.push_str(&self.text[start..self.offset]);
                    self.offset += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(&self.text[start..self.offset]);
                    let escaped = *bytes
                        .get(self.offset + 1)
                        .ok_or_else(|| self.error("unterminated string"))?;
                    match escaped {
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        _ => {
                            // Nix keeps the escaped character itself; it may start a multi-byte
                            // UTF-8 sequence, which the next chunk copies on.
                            if escaped.is_ascii() {
                                out.push(char::from(escaped));
                            } else {
                                self.offset += 1;
                                start = self.offset;
                                continue;
                            }
                        }
                    }
                    self.offset += 2;
                    start = self.offset;
                }
                Some(_) => self.offset += 1,
            }
        }
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
pub(super) fn parse(dir: &StoreDir, name: &str, text: &str) -> Result<Derivation, DerivationError> {
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
    drv.builder = p.string()?;
    p.expect(",")?;
    drv.args = p.list(|p| p.string())?;
    p.expect(",")?;
    let env = p.list(|p| {
        p.expect("(")?;
        let key = p.string()?;
        p.expect(",")?;
        let value = p.string()?;
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
