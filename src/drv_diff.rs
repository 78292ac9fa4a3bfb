//! Why two derivations differ, as nix-diff explains it but shorter: both derivation graphs are
//! walked in step from the two roots, identical subtrees (same `.drv` path) are pruned, and
//! what remains is the smallest set of differences — outputs, platform, builder, arguments,
//! environment variables, input sources and input derivations that exist on one side only —
//! each with the chain of input derivations that leads to it. Input derivations with the same
//! name on both sides but different paths are recursed into instead of being reported.
//!
//! Store paths inside strings differ whenever an input differs; so that a difference is shown
//! where it starts, strings are compared with store path hashes and placeholders masked, and a
//! string that differs only there is left to the input that causes it. Long strings (scripts)
//! are shown as a word-level diff of their changed lines; text sources as a line diff.
//!
//! The builder, arguments and environment are bytes: they are compared as bytes and shown as
//! text, with bytes that are not UTF-8 as U+FFFD.
use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use kiln_local_store::LocalStore;
use kiln_store::derivation::{Derivation, DerivationOutput};
use kiln_store::store_path::StorePath;
use regex::bytes::Regex;
use serde_json::{json, Value};
use similar::{ChangeTag, TextDiff};

/// One difference, found under `chain` (derivation names from the roots down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub chain: Vec<String>,
    pub kind: DifferenceKind,
}

/// What differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DifferenceKind {
    /// Output names present on one side only.
    OutputNames {
        only_first: Vec<String>,
        only_second: Vec<String>,
    },
    /// The same output, addressed differently (input-addressed, fixed hash, floating).
    OutputKind {
        output: String,
        first: String,
        second: String,
    },
    Platform {
        first: String,
        second: String,
    },
    Builder {
        first: String,
        second: String,
    },
    Args {
        first: Vec<String>,
        second: Vec<String>,
    },
    /// An environment variable (`None`: absent on that side).
    Env {
        name: String,
        first: Option<String>,
        second: Option<String>,
    },
    /// An input source, matched by name (`None`: absent on that side); `text_diff` for text
    /// files present on both sides.
    Source {
        name: String,
        first: Option<String>,
        second: Option<String>,
        text_diff: Option<String>,
    },
    /// An input derivation present on one side only, or used for other outputs.
    InputDerivation {
        name: String,
        first: Option<(String, Vec<String>)>,
        second: Option<(String, Vec<String>)>,
    },
}

/// The differences between the derivations `first` and `second` (none: the same derivation).
pub fn diff(
    store: &LocalStore,
    first: &StorePath,
    second: &StorePath,
) -> anyhow::Result<Vec<Difference>> {
    let mut walk = Walk {
        store,
        masks: Masks::new(store)?,
        visited: BTreeSet::new(),
        found: Vec::new(),
    };
    walk.pair(first, second, &[])?;
    Ok(walk.found)
}

/// Patterns that hide what differs only because an input differs.
struct Masks {
    store_path: Regex,
    placeholder: Regex,
}

impl Masks {
    fn new(store: &LocalStore) -> anyhow::Result<Masks> {
        let dir = regex::escape(store.store_dir().as_str());
        Ok(Masks {
            store_path: Regex::new(&format!("{dir}/[0-9a-df-np-sv-z]{{32}}-"))?,
            placeholder: Regex::new("/[0-9a-df-np-sv-z]{52}")?,
        })
    }

    fn apply(&self, text: &[u8]) -> Vec<u8> {
        let masked = self.store_path.replace_all(text, &b"<store path>-"[..]);
        self.placeholder
            .replace_all(&masked, &b"<placeholder>"[..])
            .into_owned()
    }
}

struct Walk<'a> {
    store: &'a LocalStore,
    masks: Masks,
    visited: BTreeSet<(StorePath, StorePath)>,
    found: Vec<Difference>,
}

fn read(store: &LocalStore, path: &StorePath) -> anyhow::Result<Derivation> {
    kiln_builder::plan::read_derivation(store, path)
        .with_context(|| format!("cannot read {}", store.store_dir().print(path)))
}

/// Bytes of a derivation's builder, argument or environment, as text to show.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A store path's name (after the hash).
fn name_of(path: &StorePath) -> String {
    path.name().to_owned()
}

fn output_kind(output: &DerivationOutput) -> String {
    match (&output.fixed, &output.floating, &output.path) {
        (Some(fixed), _, _) => format!(
            "fixed {}:{}",
            fixed.method_algo(),
            fixed.hash.to_nixbase32()
        ),
        (None, Some(floating), _) => format!("floating {}", floating.method_algo()),
        (None, None, Some(_)) => "input-addressed".to_owned(),
        (None, None, None) => "deferred".to_owned(),
    }
}

/// Paths grouped by name, in path order.
/// The paths of two derivations' inputs paired by name (the part after the hash), in name
/// order; paths of the same name pair up in path order, one side `None` where the other
/// has more.
fn paired_by_name<'p>(
    first: impl Iterator<Item = &'p StorePath>,
    second: impl Iterator<Item = &'p StorePath>,
) -> Vec<(String, Option<&'p StorePath>, Option<&'p StorePath>)> {
    let mut grouped: BTreeMap<String, (Vec<&StorePath>, Vec<&StorePath>)> = BTreeMap::new();
    for path in first {
        grouped.entry(name_of(path)).or_default().0.push(path);
    }
    for path in second {
        grouped.entry(name_of(path)).or_default().1.push(path);
    }
    let mut pairs = Vec::new();
    for (name, (left, right)) in grouped {
        for index in 0..left.len().max(right.len()) {
            pairs.push((
                name.clone(),
                left.get(index).copied(),
                right.get(index).copied(),
            ));
        }
    }
    pairs
}

impl Walk<'_> {
    fn report(&mut self, chain: &[String], kind: DifferenceKind) {
        self.found.push(Difference {
            chain: chain.to_vec(),
            kind,
        });
    }

    fn differs(&self, first: &[u8], second: &[u8]) -> bool {
        first != second && self.masks.apply(first) != self.masks.apply(second)
    }

    fn pair(
        &mut self,
        first_path: &StorePath,
        second_path: &StorePath,
        parents: &[String],
    ) -> anyhow::Result<()> {
        if first_path == second_path
            || !self
                .visited
                .insert((first_path.clone(), second_path.clone()))
        {
            return Ok(());
        }
        let first = read(self.store, first_path)?;
        let second = read(self.store, second_path)?;
        let mut chain = parents.to_vec();
        chain.push(first.name.clone());
        self.compare_outputs(&first, &second, &chain);
        if first.platform != second.platform {
            self.report(
                &chain,
                DifferenceKind::Platform {
                    first: first.platform.clone(),
                    second: second.platform.clone(),
                },
            );
        }
        if self.differs(&first.builder, &second.builder) {
            self.report(
                &chain,
                DifferenceKind::Builder {
                    first: shown(&first.builder),
                    second: shown(&second.builder),
                },
            );
        }
        let masked = |args: &[Vec<u8>]| -> Vec<Vec<u8>> {
            args.iter().map(|a| self.masks.apply(a)).collect()
        };
        if masked(&first.args) != masked(&second.args) {
            self.report(
                &chain,
                DifferenceKind::Args {
                    first: first.args.iter().map(|arg| shown(arg)).collect(),
                    second: second.args.iter().map(|arg| shown(arg)).collect(),
                },
            );
        }
        let names: BTreeSet<&Vec<u8>> = first.env.keys().chain(second.env.keys()).collect();
        for name in names {
            // An output's variable holds its path: it differs when anything does (and an output
            // on one side only is reported with the outputs).
            if first.is_output_name(name) || second.is_output_name(name) {
                continue;
            }
            let (a, b) = (first.env.get(name), second.env.get(name));
            let changed = match (a, b) {
                (Some(a), Some(b)) => self.differs(a, b),
                _ => true,
            };
            if changed {
                self.report(
                    &chain,
                    DifferenceKind::Env {
                        name: shown(name),
                        first: a.map(|value| shown(value)),
                        second: b.map(|value| shown(value)),
                    },
                );
            }
        }
        self.compare_sources(&first, &second, &chain)?;
        self.compare_inputs(&first, &second, &chain)
    }

    fn compare_outputs(&mut self, first: &Derivation, second: &Derivation, chain: &[String]) {
        let only = |a: &Derivation, b: &Derivation| -> Vec<String> {
            a.outputs
                .keys()
                .filter(|name| !b.outputs.contains_key(*name))
                .cloned()
                .collect()
        };
        let (only_first, only_second) = (only(first, second), only(second, first));
        if !only_first.is_empty() || !only_second.is_empty() {
            self.report(
                chain,
                DifferenceKind::OutputNames {
                    only_first,
                    only_second,
                },
            );
        }
        for (name, output) in &first.outputs {
            if let Some(other) = second.outputs.get(name) {
                let (a, b) = (output_kind(output), output_kind(other));
                if a != b {
                    self.report(
                        chain,
                        DifferenceKind::OutputKind {
                            output: name.clone(),
                            first: a,
                            second: b,
                        },
                    );
                }
            }
        }
    }

    fn compare_sources(
        &mut self,
        first: &Derivation,
        second: &Derivation,
        chain: &[String],
    ) -> anyhow::Result<()> {
        let dir = self.store.store_dir().clone();
        for (name, l, r) in paired_by_name(first.input_srcs.iter(), second.input_srcs.iter()) {
            if l == r {
                continue;
            }
            let text_diff = match (l, r) {
                (Some(l), Some(r)) => self.text_diff(l, r),
                _ => None,
            };
            self.report(
                chain,
                DifferenceKind::Source {
                    name,
                    first: l.map(|p| dir.print(p)),
                    second: r.map(|p| dir.print(p)),
                    text_diff,
                },
            );
        }
        Ok(())
    }

    /// A line diff of two text files (`None` unless both are UTF-8 regular files).
    fn text_diff(&self, first: &StorePath, second: &StorePath) -> Option<String> {
        let read_text = |path: &StorePath| -> Option<String> {
            let physical = self.store.physical_path(path);
            let metadata = std::fs::symlink_metadata(&physical).ok()?;
            if !metadata.is_file() || metadata.len() > 1024 * 1024 {
                return None;
            }
            String::from_utf8(std::fs::read(&physical).ok()?).ok()
        };
        let (a, b) = (read_text(first)?, read_text(second)?);
        let mut out = String::new();
        for change in TextDiff::from_lines(&a, &b).iter_all_changes() {
            let sign = match change.tag() {
                ChangeTag::Equal => continue,
                ChangeTag::Delete => '-',
                ChangeTag::Insert => '+',
            };
            out.push(sign);
            out.push_str(change.value().trim_end_matches('\n'));
            out.push('\n');
        }
        Some(out)
    }

    fn compare_inputs(
        &mut self,
        first: &Derivation,
        second: &Derivation,
        chain: &[String],
    ) -> anyhow::Result<()> {
        let dir = self.store.store_dir().clone();
        let outputs = |drv: &Derivation, path: &StorePath| -> Vec<String> {
            drv.input_drvs
                .get(path)
                .map(|set| set.iter().cloned().collect())
                .unwrap_or_default()
        };
        for (name, l, r) in paired_by_name(first.input_drvs.keys(), second.input_drvs.keys()) {
            let name = name.trim_end_matches(".drv").to_owned();
            match (l, r) {
                (Some(l), Some(r)) => {
                    let (used_l, used_r) = (outputs(first, l), outputs(second, r));
                    if used_l != used_r {
                        self.report(
                            chain,
                            DifferenceKind::InputDerivation {
                                name,
                                first: Some((dir.print(l), used_l)),
                                second: Some((dir.print(r), used_r)),
                            },
                        );
                    }
                    self.pair(l, r, chain)?;
                }
                (l, r) => self.report(
                    chain,
                    DifferenceKind::InputDerivation {
                        name,
                        first: l.map(|p| (dir.print(p), outputs(first, p))),
                        second: r.map(|p| (dir.print(p), outputs(second, p))),
                    },
                ),
            }
        }
        Ok(())
    }
}

/// Whether a string is shown as a word diff rather than whole.
fn is_long(text: &str) -> bool {
    text.contains('\n') || text.len() > 72
}

/// The changed lines of a word-level diff: `[-removed-]{+added+}` inline.
fn word_diff(first: &str, second: &str) -> String {
    // Runs of changes with the same tag are joined: `[-a b-]` rather than `[-a-][- -][-b-]`.
    let mut runs: Vec<(ChangeTag, String)> = Vec::new();
    for change in TextDiff::from_words(first, second).iter_all_changes() {
        match runs.last_mut() {
            Some((tag, text)) if *tag == change.tag() => text.push_str(change.value()),
            _ => runs.push((change.tag(), change.value().to_owned())),
        }
    }
    let mut inline = String::new();
    for (tag, text) in runs {
        let (open, close) = match tag {
            ChangeTag::Equal => ("", ""),
            ChangeTag::Delete => ("[-", "-]"),
            ChangeTag::Insert => ("{+", "+}"),
        };
        inline.push_str(open);
        inline.push_str(&text);
        inline.push_str(close);
    }
    let mut out = String::new();
    for line in inline.lines() {
        if line.contains("[-") || line.contains("{+") || line.contains("-]") || line.contains("+}")
        {
            out.push_str("    ");
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

fn quoted(value: &Option<String>) -> String {
    match value {
        Some(value) => format!("{value:?}"),
        None => "(absent)".to_owned(),
    }
}

fn changed_value(out: &mut String, first: &Option<String>, second: &Option<String>) {
    match (first, second) {
        (Some(a), Some(b)) if is_long(a) || is_long(b) => out.push_str(&word_diff(a, b)),
        _ => {
            out.push_str(&format!("    - {}\n", quoted(first)));
            out.push_str(&format!("    + {}\n", quoted(second)));
        }
    }
}

/// The differences as text, one heading line per difference (`chain: what`) and the details
/// indented below it.
pub fn render_text(differences: &[Difference]) -> String {
    let mut out = String::new();
    for difference in differences {
        let chain = difference.chain.join(" → ");
        match &difference.kind {
            DifferenceKind::OutputNames {
                only_first,
                only_second,
            } => {
                out.push_str(&format!("{chain}: outputs differ\n"));
                for name in only_first {
                    out.push_str(&format!("    - {name}\n"));
                }
                for name in only_second {
                    out.push_str(&format!("    + {name}\n"));
                }
            }
            DifferenceKind::OutputKind {
                output,
                first,
                second,
            } => {
                out.push_str(&format!(
                    "{chain}: output `{output}` is addressed differently\n"
                ));
                out.push_str(&format!("    - {first}\n    + {second}\n"));
            }
            DifferenceKind::Platform { first, second } => {
                out.push_str(&format!("{chain}: system differs\n"));
                changed_value(&mut out, &Some(first.clone()), &Some(second.clone()));
            }
            DifferenceKind::Builder { first, second } => {
                out.push_str(&format!("{chain}: builder differs\n"));
                changed_value(&mut out, &Some(first.clone()), &Some(second.clone()));
            }
            DifferenceKind::Args { first, second } => {
                out.push_str(&format!("{chain}: arguments differ\n"));
                changed_value(&mut out, &Some(first.join("\n")), &Some(second.join("\n")));
            }
            DifferenceKind::Env {
                name,
                first,
                second,
            } => {
                out.push_str(&format!("{chain}: environment variable `{name}` differs\n"));
                changed_value(&mut out, first, second);
            }
            DifferenceKind::Source {
                name,
                first,
                second,
                text_diff,
            } => {
                out.push_str(&format!("{chain}: input source `{name}` differs\n"));
                out.push_str(&format!("    - {}\n", quoted(first)));
                out.push_str(&format!("    + {}\n", quoted(second)));
                if let Some(text) = text_diff {
                    for line in text.lines() {
                        out.push_str(&format!("    {line}\n"));
                    }
                }
            }
            DifferenceKind::InputDerivation {
                name,
                first,
                second,
            } => {
                out.push_str(&format!("{chain}: input derivation `{name}` differs\n"));
                let side = |value: &Option<(String, Vec<String>)>| match value {
                    Some((path, outputs)) => format!("{path} ({})", outputs.join(", ")),
                    None => "(absent)".to_owned(),
                };
                out.push_str(&format!("    - {}\n    + {}\n", side(first), side(second)));
            }
        }
    }
    out
}

/// The differences as JSON: `{ identical, differences: [{ chain, kind, … }] }`.
pub fn render_json(first: &str, second: &str, differences: &[Difference]) -> Value {
    let items: Vec<Value> = differences
        .iter()
        .map(|difference| {
            let mut item = match &difference.kind {
                DifferenceKind::OutputNames {
                    only_first,
                    only_second,
                } => json!({ "kind": "outputs", "onlyFirst": only_first, "onlySecond": only_second }),
                DifferenceKind::OutputKind {
                    output,
                    first,
                    second,
                } => json!({ "kind": "outputKind", "output": output, "first": first, "second": second }),
                DifferenceKind::Platform { first, second } => {
                    json!({ "kind": "system", "first": first, "second": second })
                }
                DifferenceKind::Builder { first, second } => {
                    json!({ "kind": "builder", "first": first, "second": second })
                }
                DifferenceKind::Args { first, second } => {
                    json!({ "kind": "args", "first": first, "second": second })
                }
                DifferenceKind::Env {
                    name,
                    first,
                    second,
                } => json!({ "kind": "env", "name": name, "first": first, "second": second }),
                DifferenceKind::Source {
                    name,
                    first,
                    second,
                    text_diff,
                } => json!({
                    "kind": "source", "name": name, "first": first, "second": second,
                    "textDiff": text_diff,
                }),
                DifferenceKind::InputDerivation {
                    name,
                    first,
                    second,
                } => {
                    let side = |value: &Option<(String, Vec<String>)>| match value {
                        Some((path, outputs)) => json!({ "path": path, "outputs": outputs }),
                        None => Value::Null,
                    };
                    json!({
                        "kind": "inputDerivation", "name": name,
                        "first": side(first), "second": side(second),
                    })
                }
            };
            item["chain"] = json!(difference.chain);
            item
        })
        .collect();
    json!({
        "first": first,
        "second": second,
        "identical": differences.is_empty(),
        "differences": items,
    })
}
