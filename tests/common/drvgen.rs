//! A seeded generator of derivation programs, for the derivation-level differential test
//! against Nix 2.8 (`tests/drv_differential.rs`).
//!
//! A [`Program`] is a `let` of numbered items — derivations, `toFile` texts and sources (path
//! literals, `builtins.path`, `filterSource` over the files [`write_fixtures`] makes) — whose
//! body is the list of its derivations. Derivations draw their attributes from every kind of
//! value Nix coerces into a derivation (strings with control characters, carriage returns,
//! quotes and non-ASCII text, bytes that are not UTF-8 — characters cut by `substring`, a
//! binary file read with `readFile` — indented strings, numbers, booleans, null, nested lists, sets with
//! `outPath` or `__toString`, paths), reference earlier items in every way Nix allows (whole
//! derivations, chosen outputs, interpolation, `drvPath`, `unsafeDiscardOutputDependency`,
//! `unsafeDiscardStringContext`, `readFile` of texts, `toJSON`/`toXML` of values), and use the
//! special attributes (several outputs, fixed outputs in every algorithm, encoding and mode,
//! `passAsFile`, `__structuredAttrs`, `__ignoreNulls`, reference checks). The structure is kept
//! so a divergent program can be shrunk ([`Program::shrink_candidates`]).
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use kiln_store::hash::{Hash, HashAlgo, HashEncoding};

/// One `let` binding of a program.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: ItemKind,
    /// The earlier items this one refers to (by index).
    pub deps: BTreeSet<usize>,
}

#[derive(Debug, Clone)]
pub enum ItemKind {
    /// `derivation { … }`: (attribute name, Nix source of its value), and its output names.
    Derivation {
        attrs: Vec<(String, String)>,
        outputs: Vec<String>,
    },
    /// Any other expression (a text, a source).
    Other(String),
}

/// A generated program.
#[derive(Debug, Clone)]
pub struct Program {
    pub items: Vec<Item>,
}

/// Files the programs refer to, written next to them.
pub fn write_fixtures(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let write = |name: &str, text: &[u8]| {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    };
    write("hello.txt", b"hello\n");
    write("exe.sh", b"#!/bin/sh\necho hi\n");
    write("cr.txt", b"a\r\nb\r");
    // Every byte but NUL, which a Nix string cannot hold.
    write("binary.dat", &(1..=u8::MAX).collect::<Vec<u8>>());
    write("dir/a.txt", b"a\n");
    write("dir/sub/b", b"b\n");
    let executable = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(dir.join("exe.sh"), executable.clone()).unwrap();
    std::fs::set_permissions(dir.join("dir/sub/b"), executable).unwrap();
    let link = |target: &str, name: &str| {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_err() {
            std::os::unix::fs::symlink(target, path).unwrap();
        }
    };
    link("hello.txt", "link");
    link("../a.txt", "dir/sub/l");
}

/// A small deterministic generator state.
pub struct Gen {
    rng: fastrand::Rng,
}

const STRING_PIECES: &[&str] = &[
    "a",
    "b",
    "hello",
    " ",
    "x y",
    "\\\"",
    "\\\\",
    "\\n",
    "\\t",
    "\\r",
    "\\r\\n",
    "\\${",
    "$",
    "é",
    "€",
    "😀",
    "\u{1}",
    "\u{7f}",
    "=",
    "'",
    "''",
    "#",
    "-",
    "/",
    "0",
    "1.5",
    "\\x",
    "\u{8}",
    "\u{c}",
    // Bytes that are not UTF-8.
    "${builtins.substring 0 1 \"é\"}",
    "${builtins.substring 1 2 \"€\"}",
    "${builtins.readFile ./binary.dat}",
];

const SYSTEMS: &[&str] = &[
    "x86_64-linux",
    "aarch64-linux",
    "builtin",
    "x",
    "",
    "\\t",
    "a b",
    "é",
    "x\\ny",
    "\\r",
];

const FLOATS: &[&str] = &[
    "1.5",
    "0.1",
    "1.0e10",
    "2.5e-5",
    "123456.789",
    "1.0e-300",
    "0.0",
    "3.0",
    "1.7976931348623157e308",
];

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen {
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.u32(0..100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.usize(0..items.len())]
    }

    /// A valid store path name.
    fn store_name(&mut self) -> String {
        const FIRST: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-_?=";
        const REST: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789+-._?=";
        let len = self.rng.usize(1..12);
        let mut name = String::new();
        name.push(self.pick(FIRST) as char);
        for _ in 1..len {
            name.push(self.pick(REST) as char);
        }
        name
    }

    /// A `"…"` string literal (escapes, control characters, non-ASCII text).
    fn string_literal(&mut self) -> String {
        let mut text = String::from("\"");
        for _ in 0..self.rng.usize(0..5) {
            text.push_str(self.pick(STRING_PIECES));
        }
        text.push('"');
        text
    }

    /// An indented string, sometimes with raw carriage returns and indentation.
    fn indented_literal(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a", "\r", "\n", "  ", "\t", "b c", "''$", "'''", "\r\n", "é",
        ];
        let mut text = String::from("''");
        for _ in 0..self.rng.usize(0..6) {
            text.push_str(self.pick(PIECES));
        }
        text.push_str("''");
        text
    }

    /// A value without references to other items.
    fn plain_value(&mut self, depth: u32) -> String {
        match self.rng.u32(0..if depth > 1 { 7 } else { 10 }) {
            0 | 1 => self.string_literal(),
            2 => self.indented_literal(),
            3 => format!("{}", self.rng.i64(-1000..100_000)),
            4 => self.pick(FLOATS).to_string(),
            5 => self.pick(&["true", "false", "null"]).to_string(),
            6 => self
                .pick(&["./hello.txt", "./exe.sh", "./dir", "./link", "./cr.txt"])
                .to_string(),
            7 => {
                let items: Vec<String> = (0..self.rng.usize(0..4))
                    .map(|_| self.plain_value(depth + 1))
                    .collect();
                format!("[ {} ]", items.join(" "))
            }
            8 => format!("{{ outPath = {}; }}", self.string_literal()),
            _ => format!("{{ __toString = self: {}; }}", self.string_literal()),
        }
    }

    /// A reference to item `index` of kind `kind`, as a value.
    fn reference(&mut self, index: usize, item: &ItemKind) -> String {
        let name = format!("i{index}");
        match item {
            ItemKind::Derivation { outputs, .. } => {
                let output = outputs[self.rng.usize(0..outputs.len())].clone();
                match self.rng.u32(0..8) {
                    0 => name,
                    1 => format!("{name}.{output}"),
                    2 => format!("\"${{{name}}}\""),
                    3 => format!("\"pre-${{{name}.{output}}}/bin\""),
                    4 => format!("{name}.drvPath"),
                    5 => format!("(builtins.unsafeDiscardOutputDependency {name}.drvPath)"),
                    6 => format!("(builtins.unsafeDiscardStringContext {name}.outPath)"),
                    _ => format!("{name}.outPath"),
                }
            }
            ItemKind::Other(expr) => {
                let is_text = expr.starts_with("builtins.toFile");
                match self.rng.u32(0..4) {
                    0 => name,
                    1 => format!("\"${{{name}}}\""),
                    2 if is_text => format!("(builtins.readFile {name})"),
                    _ => format!("\"x${{{name}}}\""),
                }
            }
        }
    }

    /// A value that may refer to earlier items (recorded in `deps`).
    fn value(&mut self, items: &[Item], deps: &mut BTreeSet<usize>, depth: u32) -> String {
        if !items.is_empty() && self.chance(35) {
            let index = self.rng.usize(0..items.len());
            deps.insert(index);
            return self.reference(index, &items[index].kind);
        }
        if depth < 2 && self.chance(14) {
            let inner = self.value(items, deps, depth + 1);
            return match self.rng.u32(0..7) {
                0 => format!("(builtins.toJSON {inner})"),
                1 => format!("(builtins.toXML {inner})"),
                // Context moved from one string to another, or dropped.
                2 => format!(
                    "(builtins.appendContext \"ctx\" (builtins.getContext (toString {inner})))"
                ),
                3 => format!("(builtins.unsafeDiscardStringContext (toString {inner}))"),
                4 => format!(
                    "(if builtins.hasContext (toString {inner}) then \"has\" else \"none\")"
                ),
                5 => format!(
                    "(builtins.placeholder \"{}\")",
                    self.pick(&["out", "dev", "bin"])
                ),
                _ => format!("[ {inner} {} ]", self.plain_value(depth + 1)),
            };
        }
        self.plain_value(depth)
    }

    /// A hash of `algo` for `outputHash`, in a random encoding; `with_algo` says whether the
    /// text names its algorithm itself (SRI).
    fn output_hash(&mut self, algo: HashAlgo) -> (String, bool) {
        let bytes: Vec<u8> = (0..64).map(|_| self.rng.u8(..)).collect();
        let hash = Hash::from_digest(algo, &bytes[..algo.digest_len()]).unwrap();
        let encoding = self.pick(&[
            HashEncoding::Base16,
            HashEncoding::Nixbase32,
            HashEncoding::Base64,
            HashEncoding::Sri,
        ]);
        let with_algo = encoding == HashEncoding::Sri;
        (hash.encode(encoding, with_algo), with_algo)
    }

    fn derivation(&mut self, items: &[Item]) -> Item {
        let mut deps = BTreeSet::new();
        let mut attrs = vec![
            ("name".to_owned(), format!("\"{}\"", self.store_name())),
            ("system".to_owned(), format!("\"{}\"", self.pick(SYSTEMS))),
        ];
        let builder = match self.rng.u32(0..5) {
            0 => "./exe.sh".to_owned(),
            1 => "(builtins.path { path = ./exe.sh; })".to_owned(),
            2 if !items.is_empty() => self.value(items, &mut deps, 0),
            _ => "\"/bin/sh\"".to_owned(),
        };
        attrs.push(("builder".to_owned(), builder));
        let fixed = self.chance(20);
        let outputs: Vec<String> = if !fixed && self.chance(30) {
            let mut names = vec!["out".to_owned()];
            for extra in ["dev", "lib", "doc", "bin"] {
                if self.chance(40) {
                    names.push(extra.to_owned());
                }
            }
            if self.chance(50) {
                names.reverse();
            }
            let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
            attrs.push(("outputs".to_owned(), format!("[ {} ]", quoted.join(" "))));
            names
        } else {
            vec!["out".to_owned()]
        };
        if self.chance(70) {
            let args: Vec<String> = (0..self.rng.usize(0..4))
                .map(|_| self.value(items, &mut deps, 1))
                .collect();
            attrs.push(("args".to_owned(), format!("[ {} ]", args.join(" "))));
        }
        let structured = self.chance(15);
        for _ in 0..self.rng.usize(0..5) {
            let name = self
                .pick(&[
                    "a",
                    "b",
                    "env1",
                    "FOO",
                    "x-y",
                    "_z",
                    "src",
                    "buildInputs",
                    "weird name",
                    "half${builtins.substring 0 1 \"é\"}",
                ])
                .to_string();
            if attrs.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let value = if structured && self.chance(40) {
                format!(
                    "{{ k = {}; l = [ 1 2.5 null ]; }}",
                    self.value(items, &mut deps, 1)
                )
            } else {
                self.value(items, &mut deps, 0)
            };
            attrs.push((name, value));
        }
        if fixed {
            let algo = self.pick(&[
                HashAlgo::Md5,
                HashAlgo::Sha1,
                HashAlgo::Sha256,
                HashAlgo::Sha512,
            ]);
            let (hash, with_algo) = self.output_hash(algo);
            attrs.push(("outputHash".to_owned(), format!("\"{hash}\"")));
            if !with_algo || self.chance(30) {
                attrs.push(("outputHashAlgo".to_owned(), format!("\"{algo}\"")));
            }
            if self.chance(60) {
                let mode = self.pick(&["flat", "recursive"]).to_string();
                attrs.push(("outputHashMode".to_owned(), format!("\"{mode}\"")));
            }
        }
        if structured {
            attrs.push(("__structuredAttrs".to_owned(), "true".to_owned()));
        }
        if self.chance(10) {
            attrs.push(("__ignoreNulls".to_owned(), "true".to_owned()));
        }
        if self.chance(10) {
            let candidates: Vec<String> = attrs
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| !["name", "system", "builder"].contains(&n.as_str()))
                .collect();
            if let Some(name) = candidates.first() {
                attrs.push(("passAsFile".to_owned(), format!("[ \"{name}\" ]")));
            }
        }
        if self.chance(10) {
            let mut entries = vec!["\"out\"".to_owned()];
            if !items.is_empty() {
                let index = self.rng.usize(0..items.len());
                deps.insert(index);
                entries.push(format!("i{index}"));
            }
            let check = self
                .pick(&[
                    "allowedReferences",
                    "disallowedReferences",
                    "allowedRequisites",
                ])
                .to_string();
            attrs.push((check, format!("[ {} ]", entries.join(" "))));
        }
        Item {
            kind: ItemKind::Derivation { attrs, outputs },
            deps,
        }
    }

    fn text(&mut self, items: &[Item]) -> Item {
        let mut deps = BTreeSet::new();
        let mut body = self.string_literal();
        if !items.is_empty() && self.chance(50) {
            let index = self.rng.usize(0..items.len());
            let reference = match &items[index].kind {
                // Texts may name sources, texts and `.drv` files, never outputs (an error in
                // Nix, which the program then shares with kiln).
                ItemKind::Derivation { .. } if self.chance(80) => {
                    format!("(builtins.unsafeDiscardOutputDependency i{index}.drvPath)")
                }
                _ => format!("\"${{i{index}}}\""),
            };
            deps.insert(index);
            body = format!("({body} + {reference})");
        }
        Item {
            kind: ItemKind::Other(format!("builtins.toFile \"{}\" {body}", self.store_name())),
            deps,
        }
    }

    fn source(&mut self) -> Item {
        let name = self.store_name();
        let expr = match self.rng.u32(0..9) {
            0 => "./hello.txt".to_owned(),
            1 => "./dir".to_owned(),
            2 => "./link".to_owned(),
            3 => format!("builtins.path {{ path = ./dir; name = \"{name}\"; filter = p: t: t != \"symlink\"; }}"),
            4 => "builtins.path { path = ./exe.sh; recursive = false; }".to_owned(),
            5 => "builtins.path { path = ./link; recursive = false; }".to_owned(),
            6 => "builtins.filterSource (p: t: baseNameOf p != \"a.txt\") ./dir".to_owned(),
            7 => format!("builtins.path {{ path = ./cr.txt; name = \"{name}\"; }}"),
            _ => "./exe.sh".to_owned(),
        };
        Item {
            kind: ItemKind::Other(expr),
            deps: BTreeSet::new(),
        }
    }

    /// A program of 1 to 8 items, at least one of them a derivation.
    pub fn program(&mut self) -> Program {
        let mut items = Vec::new();
        let count = self.rng.usize(1..9);
        for index in 0..count {
            let item = match self.rng.u32(0..10) {
                _ if index + 1 == count => self.derivation(&items),
                0 | 1 => self.text(&items),
                2 => self.source(),
                _ => self.derivation(&items),
            };
            items.push(item);
        }
        Program { items }
    }
}

impl Program {
    /// The Nix source: a `let` of the items, the list of the derivations.
    pub fn render(&self) -> String {
        let mut out = String::from("let\n");
        let mut derivations = Vec::new();
        for (index, item) in self.items.iter().enumerate() {
            match &item.kind {
                ItemKind::Derivation { attrs, .. } => {
                    derivations.push(format!("i{index}"));
                    let _ = writeln!(out, "  i{index} = derivation {{");
                    for (name, value) in attrs {
                        let key = if name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        {
                            name.clone()
                        } else {
                            format!("\"{name}\"")
                        };
                        let _ = writeln!(out, "    {key} = {value};");
                    }
                    let _ = writeln!(out, "  }};");
                }
                ItemKind::Other(expr) => {
                    let _ = writeln!(out, "  i{index} = {expr};");
                }
            }
        }
        let _ = write!(out, "in\n[ {} ]\n", derivations.join(" "));
        out
    }

    /// Smaller programs to try when shrinking a divergence: each item removed together with
    /// the items that depend on it, then each attribute of a derivation removed (except
    /// `name`, `system` and `builder`).
    pub fn shrink_candidates(&self) -> Vec<Program> {
        let mut candidates = Vec::new();
        for removed in (0..self.items.len()).rev() {
            let mut gone = BTreeSet::from([removed]);
            for (index, item) in self.items.iter().enumerate().skip(removed + 1) {
                if item.deps.iter().any(|dep| gone.contains(dep)) {
                    gone.insert(index);
                }
            }
            if gone.len() == self.items.len() {
                continue;
            }
            candidates.push(self.without(&gone));
        }
        for (index, item) in self.items.iter().enumerate() {
            if let ItemKind::Derivation { attrs, outputs } = &item.kind {
                for (at, (name, _)) in attrs.iter().enumerate() {
                    if ["name", "system", "builder"].contains(&name.as_str()) {
                        continue;
                    }
                    let mut smaller = self.clone();
                    let mut attrs = attrs.clone();
                    attrs.remove(at);
                    let outputs = if name == "outputs" {
                        vec!["out".to_owned()]
                    } else {
                        outputs.clone()
                    };
                    smaller.items[index].kind = ItemKind::Derivation { attrs, outputs };
                    candidates.push(smaller);
                }
            }
        }
        candidates
    }

    /// The program without the items in `gone`, renumbered.
    fn without(&self, gone: &BTreeSet<usize>) -> Program {
        let kept: Vec<usize> = (0..self.items.len())
            .filter(|i| !gone.contains(i))
            .collect();
        let renumber = |text: &str| -> String {
            let mut text = text.to_owned();
            // Renamed items are marked `§N` until all are done, so none is renamed twice.
            for (new, old) in kept.iter().enumerate() {
                text = replace_identifier(&text, &format!("i{old}"), &format!("§{new}"));
            }
            text.replace('§', "i")
        };
        let items = kept
            .iter()
            .map(|&old| {
                let item = &self.items[old];
                let kind = match &item.kind {
                    ItemKind::Derivation { attrs, outputs } => ItemKind::Derivation {
                        attrs: attrs
                            .iter()
                            .map(|(n, v)| (n.clone(), renumber(v)))
                            .collect(),
                        outputs: outputs.clone(),
                    },
                    ItemKind::Other(expr) => ItemKind::Other(renumber(expr)),
                };
                let deps = item
                    .deps
                    .iter()
                    .filter_map(|dep| kept.iter().position(|k| k == dep))
                    .collect();
                Item { kind, deps }
            })
            .collect();
        Program { items }
    }
}

/// Replaces the identifier `from` (not part of a longer identifier) by `to`.
fn replace_identifier(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let before_ok = at == 0 || !is_identifier_byte(bytes[at - 1]);
        if before_ok && rest.starts_with(from) {
            let after = bytes.get(at + from.len()).copied();
            if !after.is_some_and(is_identifier_byte) {
                out.push_str(to);
                at += from.len();
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        at += c.len_utf8();
    }
    out
}

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'\'' || byte == b'-'
}
