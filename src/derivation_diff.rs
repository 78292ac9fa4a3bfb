//! Why two derivations differ (`kiln diff`), as nix-diff explains it, but shorter: both
//! derivation graphs are walked in step from the two roots; identical subtrees (the same
//! `.drv` path) are pruned, input derivations and sources are paired by name, and only the
//! smallest differences are reported — output names, system, builder, arguments, environment
//! variables (long values as a word-level diff), sources (a line diff for text files) — each
//! with the chain of input names that led there. Store paths that differ only because an input
//! differs (an input's output paths, the derivation's own output paths) are written as
//! `<name:output>` and `<out>` before values are compared, so a change deep in the graph is
//! reported once, where it happens, not in every derivation above it.
use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use kiln_builder::plan::{output_paths, read_derivation};
use kiln_local_store::LocalStore;
use kiln_store::derivation::Derivation;
use kiln_store::store_path::StorePath;
use serde::Serialize;
use similar::{ChangeTag, TextDiff};

/// A value longer than this, or with a newline, is shown as a word diff.
const LONG_VALUE: usize = 72;
/// How many unchanged words are kept on each side of a change in a word diff.
const WORD_CONTEXT: usize = 3;
/// The largest source file whose contents are compared line by line.
const TEXT_DIFF_LIMIT: u64 = 1 << 20;

/// One difference between the two graphs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    /// The names of the derivations from the roots down to the one that differs (the root's
    /// name first).
    pub via: Vec<String>,
    /// What differs.
    #[serde(flatten)]
    pub kind: DifferenceKind,
}

/// What differs in one derivation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum DifferenceKind {
    /// Output names only one side has.
    Outputs {
        only_a: Vec<String>,
        only_b: Vec<String>,
    },
    /// The `system`.
    System { a: String, b: String },
    /// The builder.
    Builder { a: String, b: String },
    /// The arguments; `words` is the word diff when only one long argument differs.
    Args {
        a: Vec<String>,
        b: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        words: Vec<String>,
    },
    /// An environment variable: `None` where a side does not set it; `words` is the word diff
    /// of long values (`-`/`+` changed words, `…` for skipped unchanged ones).
    Env {
        name: String,
        a: Option<String>,
        b: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        words: Vec<String>,
    },
    /// Input derivations only one side has (by name).
    InputDerivations {
        only_a: Vec<String>,
        only_b: Vec<String>,
    },
    /// The same input derivation used with other outputs.
    InputOutputs {
        input: String,
        a: Vec<String>,
        b: Vec<String>,
    },
    /// Sources only one side has (by name).
    Sources {
        only_a: Vec<String>,
        only_b: Vec<String>,
    },
    /// A source of the same name with other contents; `lines` is a line diff for text files.
    Source {
        name: String,
        a: String,
        b: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        lines: Vec<String>,
    },
}

/// Compares the derivations `a` and `b` of `store` and their inputs.
pub fn diff(store: &LocalStore, a: &StorePath, b: &StorePath) -> anyhow::Result<Vec<Difference>> {
    let mut walk = Walk {
        store,
        seen: BTreeSet::new(),
        found: Vec::new(),
    };
    walk.pair(a, b, &mut Vec::new())?;
    Ok(walk.found)
}

struct Walk<'a> {
    store: &'a LocalStore,
    seen: BTreeSet<(StorePath, StorePath)>,
    found: Vec<Difference>,
}

/// A derivation and what its paths are called when values are compared.
struct Side {
    drv: Derivation,
    /// Output paths of the derivation and of its inputs → their stable names.
    names: BTreeMap<String, String>,
}

impl Walk<'_> {
    fn load(&self, path: &StorePath) -> anyhow::Result<Side> {
        let dir = self.store.store_dir();
        let drv = read_derivation(self.store, path)
            .with_context(|| format!("cannot read '{}'", dir.print(path)))?;
        let mut names = BTreeMap::new();
        for (output, output_path) in output_paths(self.store, path, &drv)? {
            let name = if output == "out" {
                "<out>".to_owned()
            } else {
                format!("<{output}>")
            };
            names.insert(dir.print(&output_path), name);
        }
        for input in drv.input_drvs.keys() {
            let input_drv = read_derivation(self.store, input)
                .with_context(|| format!("cannot read '{}'", dir.print(input)))?;
            for (output, output_path) in output_paths(self.store, input, &input_drv)? {
                names.insert(
                    dir.print(&output_path),
                    format!("<{}:{output}>", drv_name(input)),
                );
            }
        }
        for source in &drv.input_srcs {
            names.insert(dir.print(source), format!("<{}>", source.name()));
        }
        Ok(Side { drv, names })
    }

    fn report(&mut self, via: &[String], kind: DifferenceKind) {
        self.found.push(Difference {
            via: via.to_vec(),
            kind,
        });
    }

    fn pair(&mut self, a: &StorePath, b: &StorePath, via: &mut Vec<String>) -> anyhow::Result<()> {
        if a == b || !self.seen.insert((a.clone(), b.clone())) {
            return Ok(());
        }
        let (left, right) = (self.load(a)?, self.load(b)?);
        via.push(drv_name(a));
        let (da, db) = (&left.drv, &right.drv);

        let (only_a, only_b) = split(da.outputs.keys(), db.outputs.keys());
        if !only_a.is_empty() || !only_b.is_empty() {
            self.report(via, DifferenceKind::Outputs { only_a, only_b });
        }
        if da.platform != db.platform {
            self.report(
                via,
                DifferenceKind::System {
                    a: da.platform.clone(),
                    b: db.platform.clone(),
                },
            );
        }
        let (builder_a, builder_b) = (
            normalise(&da.builder, &left.names),
            normalise(&db.builder, &right.names),
        );
        if builder_a != builder_b {
            self.report(
                via,
                DifferenceKind::Builder {
                    a: builder_a,
                    b: builder_b,
                },
            );
        }
        let args_a: Vec<String> = da.args.iter().map(|x| normalise(x, &left.names)).collect();
        let args_b: Vec<String> = db.args.iter().map(|x| normalise(x, &right.names)).collect();
        if args_a != args_b {
            let changed: Vec<(&String, &String)> =
                args_a.iter().zip(&args_b).filter(|(a, b)| a != b).collect();
            let words = match changed.as_slice() {
                [(a, b)] if args_a.len() == args_b.len() && (is_long(a) || is_long(b)) => {
                    word_diff(a, b)
                }
                _ => Vec::new(),
            };
            self.report(
                via,
                DifferenceKind::Args {
                    a: args_a,
                    b: args_b,
                    words,
                },
            );
        }
        let names: BTreeSet<&String> = da.env.keys().chain(db.env.keys()).collect();
        for name in names {
            let a = da.env.get(name).map(|v| normalise(v, &left.names));
            let b = db.env.get(name).map(|v| normalise(v, &right.names));
            if a == b {
                continue;
            }
            let words = match (&a, &b) {
                (Some(a), Some(b)) if is_long(a) || is_long(b) => word_diff(a, b),
                _ => Vec::new(),
            };
            self.report(
                via,
                DifferenceKind::Env {
                    name: name.clone(),
                    a,
                    b,
                    words,
                },
            );
        }
        self.sources(da, db, via)?;

        let inputs_a = by_name(da.input_drvs.keys());
        let inputs_b = by_name(db.input_drvs.keys());
        let (only_a, only_b) = split(inputs_a.keys(), inputs_b.keys());
        if !only_a.is_empty() || !only_b.is_empty() {
            self.report(via, DifferenceKind::InputDerivations { only_a, only_b });
        }
        for (name, input_a) in &inputs_a {
            let Some(input_b) = inputs_b.get(name) else {
                continue;
            };
            let (used_a, used_b) = (&da.input_drvs[*input_a], &db.input_drvs[*input_b]);
            if used_a != used_b {
                self.report(
                    via,
                    DifferenceKind::InputOutputs {
                        input: name.clone(),
                        a: used_a.iter().cloned().collect(),
                        b: used_b.iter().cloned().collect(),
                    },
                );
            }
            self.pair(input_a, input_b, via)?;
        }
        via.pop();
        Ok(())
    }

    fn sources(&mut self, a: &Derivation, b: &Derivation, via: &[String]) -> anyhow::Result<()> {
        let sources_a = by_name(a.input_srcs.iter());
        let sources_b = by_name(b.input_srcs.iter());
        let (only_a, only_b) = split(sources_a.keys(), sources_b.keys());
        if !only_a.is_empty() || !only_b.is_empty() {
            self.report(via, DifferenceKind::Sources { only_a, only_b });
        }
        let dir = self.store.store_dir();
        for (name, source_a) in &sources_a {
            let Some(source_b) = sources_b.get(name) else {
                continue;
            };
            if source_a == source_b {
                continue;
            }
            let lines = match (self.text_of(source_a), self.text_of(source_b)) {
                (Some(text_a), Some(text_b)) => line_diff(&text_a, &text_b),
                _ => Vec::new(),
            };
            self.report(
                via,
                DifferenceKind::Source {
                    name: name.clone(),
                    a: dir.print(source_a),
                    b: dir.print(source_b),
                    lines,
                },
            );
        }
        Ok(())
    }

    /// The contents of a source that is a small UTF-8 text file.
    fn text_of(&self, path: &StorePath) -> Option<String> {
        let physical = self.store.physical_path(path);
        let metadata = std::fs::symlink_metadata(&physical).ok()?;
        if !metadata.is_file() || metadata.len() > TEXT_DIFF_LIMIT {
            return None;
        }
        String::from_utf8(std::fs::read(&physical).ok()?).ok()
    }
}

/// A derivation's name: its `.drv` base name without the hash and the `.drv`.
fn drv_name(path: &StorePath) -> String {
    path.name().trim_end_matches(".drv").to_owned()
}

/// Paths keyed by their names (`.drv` stripped); of several with one name, the first.
fn by_name<'a>(paths: impl Iterator<Item = &'a StorePath>) -> BTreeMap<String, &'a StorePath> {
    let mut named = BTreeMap::new();
    for path in paths {
        named.entry(drv_name(path)).or_insert(path);
    }
    named
}

/// What only the first and only the second list hold.
fn split<'a>(
    a: impl Iterator<Item = &'a String>,
    b: impl Iterator<Item = &'a String>,
) -> (Vec<String>, Vec<String>) {
    let (a, b): (BTreeSet<&String>, BTreeSet<&String>) = (a.collect(), b.collect());
    (
        a.difference(&b).map(|s| (*s).clone()).collect(),
        b.difference(&a).map(|s| (*s).clone()).collect(),
    )
}

/// `value` with each known store path written as its stable name.
fn normalise(value: &str, names: &BTreeMap<String, String>) -> String {
    let mut text = value.to_owned();
    // Longer paths first, so a path is never replaced inside a longer one.
    let mut known: Vec<(&String, &String)> = names.iter().collect();
    known.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    for (path, name) in known {
        if text.contains(path.as_str()) {
            text = text.replace(path.as_str(), name);
        }
    }
    text
}

fn is_long(value: &str) -> bool {
    value.len() > LONG_VALUE || value.contains('\n')
}

/// The changed words of `a` → `b` (`-word`, `+word`), with a few unchanged words around each
/// change and `…` for the rest.
fn word_diff(a: &str, b: &str) -> Vec<String> {
    let diff = TextDiff::from_words(a, b);
    let changes: Vec<(ChangeTag, String)> = diff
        .iter_all_changes()
        .filter(|c| !c.value().trim().is_empty())
        .map(|c| (c.tag(), c.value().trim().to_owned()))
        .collect();
    let near_change = |index: usize| {
        let low = index.saturating_sub(WORD_CONTEXT);
        let high = (index + WORD_CONTEXT).min(changes.len().saturating_sub(1));
        changes[low..=high]
            .iter()
            .any(|(tag, _)| *tag != ChangeTag::Equal)
    };
    let mut words = Vec::new();
    let mut skipped = false;
    for (index, (tag, word)) in changes.iter().enumerate() {
        match tag {
            ChangeTag::Delete => words.push(format!("-{word}")),
            ChangeTag::Insert => words.push(format!("+{word}")),
            ChangeTag::Equal if near_change(index) => {
                skipped = false;
                words.push(word.clone());
            }
            ChangeTag::Equal => {
                if !skipped {
                    words.push("…".to_owned());
                    skipped = true;
                }
            }
        }
    }
    words
}

/// A unified-style line diff of two texts (`-`, `+` and ` ` lines around each change).
fn line_diff(a: &str, b: &str) -> Vec<String> {
    let diff = TextDiff::from_lines(a, b);
    let mut lines = Vec::new();
    for group in diff.grouped_ops(2) {
        if !lines.is_empty() {
            lines.push("…".to_owned());
        }
        for op in group {
            for change in diff.iter_changes(&op) {
                let sign = match change.tag() {
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                    ChangeTag::Equal => ' ',
                };
                lines.push(format!("{sign}{}", change.value().trim_end_matches('\n')));
            }
        }
    }
    lines
}

/// The differences as text, one block per difference.
pub fn render(differences: &[Difference]) -> String {
    let mut text = String::new();
    for difference in differences {
        let at = difference.via.join(" → ");
        let line = match &difference.kind {
            DifferenceKind::Outputs { only_a, only_b } => {
                format!("outputs differ:{}", sides(only_a, only_b))
            }
            DifferenceKind::System { a, b } => format!("system: - {a} + {b}"),
            DifferenceKind::Builder { a, b } => format!("builder:\n    - {a}\n    + {b}"),
            DifferenceKind::Args { words, .. } if !words.is_empty() => {
                format!("arguments:\n    {}", words.join(" "))
            }
            DifferenceKind::Args { a, b, .. } => format!(
                "arguments:\n    - {}\n    + {}",
                shell_words(a),
                shell_words(b)
            ),
            DifferenceKind::Env { name, a, b, words } => {
                let mut line = format!("environment variable '{name}'");
                if !words.is_empty() {
                    line.push_str(":\n    ");
                    line.push_str(&words.join(" "));
                } else {
                    for (sign, value) in [('-', a), ('+', b)] {
                        match value {
                            Some(value) => line.push_str(&format!("\n    {sign} {value}")),
                            None => line.push_str(&format!("\n    {sign} (not set)")),
                        }
                    }
                }
                line
            }
            DifferenceKind::InputDerivations { only_a, only_b } => {
                format!("input derivations differ:{}", sides(only_a, only_b))
            }
            DifferenceKind::InputOutputs { input, a, b } => format!(
                "outputs used of input '{input}': - {} + {}",
                a.join(","),
                b.join(",")
            ),
            DifferenceKind::Sources { only_a, only_b } => {
                format!("sources differ:{}", sides(only_a, only_b))
            }
            DifferenceKind::Source { name, a, b, lines } => {
                let mut line = format!("source '{name}':\n    - {a}\n    + {b}");
                for diff_line in lines {
                    line.push_str(&format!("\n    {diff_line}"));
                }
                line
            }
        };
        text.push_str(&format!("{at}: {line}\n"));
    }
    text
}

fn sides(only_a: &[String], only_b: &[String]) -> String {
    let mut text = String::new();
    for name in only_a {
        text.push_str(&format!("\n    - {name}"));
    }
    for name in only_b {
        text.push_str(&format!("\n    + {name}"));
    }
    text
}

/// Arguments as one line, each quoted when it has spaces.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|arg| {
            if arg.contains(char::is_whitespace) || arg.is_empty() {
                format!("{arg:?}")
            } else {
                arg.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_become_word_diffs_with_some_context() {
        let a = "one two three four five six seven eight nine ten eleven twelve";
        let b = "one two three four five six SEVEN eight nine ten eleven twelve";
        assert_eq!(
            word_diff(a, b),
            ["…", "four", "five", "six", "-seven", "+SEVEN", "eight", "nine", "ten", "…"]
        );
    }

    #[test]
    fn known_paths_are_named_longest_first() {
        let names = BTreeMap::from([
            ("/kiln/store/aaa-x".to_owned(), "<x:out>".to_owned()),
            ("/kiln/store/aaa-x-dev".to_owned(), "<x:dev>".to_owned()),
        ]);
        assert_eq!(
            normalise("/kiln/store/aaa-x-dev/lib:/kiln/store/aaa-x/bin", &names),
            "<x:dev>/lib:<x:out>/bin"
        );
    }
}
