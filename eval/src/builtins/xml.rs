//! Values as the XML Nix 2.8 writes (`<expr>` root, two-space indentation, derivations as
//! `<derivation drvPath=… outPath=…>` with repeats collapsed, functions as their patterns):
//! `builtins.toXML` (strict, no positions) and `kiln eval --xml` (lazy unless `--strict`,
//! attribute and function positions unless `--no-location`, as `nix-instantiate --eval --xml`).
//! The document is bytes: a string value's bytes are written as they are, UTF-8 or not.
use super::{arg, Builtin};
use crate::error::{ErrorKind, EvalError, EvalResult};
use crate::eval::Evaluator;
use crate::print::format_float;
use crate::value::{Attrs, Context, NixString, Value};
use kiln_lang::ir::Param;
use kiln_lang::Span;
use std::collections::BTreeSet;
use std::rc::Rc;

pub const BUILTINS: &[Builtin] = &[Builtin {
    name: "toXML",
    arity: 1,
    top_level: false,
    doc: "The value as XML, in Nix's format.",
    func: to_xml,
}];

fn to_xml(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let (text, context) = xml_document(ev, arg(args, 0), span, true, false)?;
    Ok(Value::String(NixString::with_context(text, context)))
}

fn xml_document(
    ev: &Evaluator,
    value: &Value,
    span: Span,
    strict: bool,
    location: bool,
) -> EvalResult<(Vec<u8>, Context)> {
    let mut writer = XmlWriter {
        out: b"<?xml version='1.0' encoding='utf-8'?>\n<expr>\n".to_vec(),
        context: Context::new(),
        derivations_seen: BTreeSet::new(),
        strict,
        location,
        being_written: Default::default(),
    };
    // The top-level value is always evaluated (`nix-instantiate` forces it).
    let top = ev.force(value, span)?;
    writer.forced_value(ev, &top, span, 1)?;
    writer.out.extend_from_slice(b"</expr>\n");
    Ok((writer.out, writer.context))
}

impl Evaluator {
    /// The value as `nix-instantiate --eval --xml [--strict] [--no-location]` prints it.
    pub fn print_xml(&self, value: &Value, strict: bool, location: bool) -> EvalResult<Vec<u8>> {
        Ok(xml_document(self, value, Span::default(), strict, location)?.0)
    }
}

/// XML attribute escaping as Nix's `XMLWriter`: `<`, `>`, `&`, `"` and line feeds; a carriage
/// return is written as it is.
fn escape(text: &[u8], out: &mut Vec<u8>) {
    for &b in text {
        match b {
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\n' => out.extend_from_slice(b"&#xA;"),
            b => out.push(b),
        }
    }
}

/// The largest document `toXML` writes. Each line is indented by its depth, so a deeply
/// nested value gives a document quadratic in its depth (100,000 nested sets: 10 GB); past
/// this size the document is an error rather than a process the system kills for its memory.
const MAX_DOCUMENT_BYTES: usize = 1 << 30;

struct XmlWriter {
    out: Vec<u8>,
    context: Context,
    derivations_seen: BTreeSet<String>,
    /// Force what is printed (else unevaluated parts are `<unevaluated />`).
    strict: bool,
    /// Give attributes and functions `column`/`line`/`path` of their definition.
    location: bool,
    /// The sets and lists being written (addresses): one that contains itself would be
    /// written without end — Nix recurses until its stack overflows; kiln says so at once.
    being_written: crate::eval::SeenSet,
}

impl XmlWriter {
    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.extend_from_slice(b"  ");
        }
    }

    /// `<name key="value" …` (the element left open for its end).
    fn start(&mut self, depth: usize, name: &str, attrs: &[(&str, &[u8])]) {
        self.indent(depth);
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        for (key, value) in attrs {
            self.out.push(b' ');
            self.out.extend_from_slice(key.as_bytes());
            self.out.extend_from_slice(b"=\"");
            escape(value, &mut self.out);
            self.out.push(b'"');
        }
    }

    fn empty(&mut self, depth: usize, name: &str, attrs: &[(&str, String)]) {
        let attrs: Vec<(&str, &[u8])> = attrs.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        self.start(depth, name, &attrs);
        self.out.extend_from_slice(b" />\n");
    }

    /// `<string value="…" />` with the string's bytes.
    fn string(&mut self, depth: usize, value: &[u8]) {
        self.start(depth, "string", &[("value", value)]);
        self.out.extend_from_slice(b" />\n");
    }

    fn open(&mut self, depth: usize, name: &str, attrs: &[(&str, String)]) {
        let attrs: Vec<(&str, &[u8])> = attrs.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        self.start(depth, name, &attrs);
        self.out.extend_from_slice(b">\n");
    }

    fn close(&mut self, depth: usize, name: &str) {
        self.indent(depth);
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b">\n");
    }

    fn string_attr(
        &mut self,
        ev: &Evaluator,
        v: Option<&Value>,
        span: Span,
    ) -> EvalResult<Option<String>> {
        match v {
            Some(v) => {
                let s = ev.force_string(v, span)?;
                self.context.extend(s.context().iter().cloned());
                Ok(Some(s.to_str_lossy().into_owned()))
            }
            None => Ok(None),
        }
    }

    fn value(&mut self, ev: &Evaluator, value: &Value, span: Span, depth: usize) -> EvalResult<()> {
        let v = if self.strict {
            ev.force(value, span)?
        } else {
            match value {
                Value::Thunk(thunk) => match thunk.value() {
                    Some(v) => v,
                    None => {
                        self.empty(depth, "unevaluated", &[]);
                        return Ok(());
                    }
                },
                Value::Lambda(closure) if closure.unforced.get() => {
                    self.empty(depth, "unevaluated", &[]);
                    return Ok(());
                }
                v => v.clone(),
            }
        };
        self.forced_value(ev, &v, span, depth)
    }

    /// Marks a set or list (by address) as being written; one that is written already
    /// contains itself.
    fn enter(&mut self, address: usize, span: Span) -> EvalResult<()> {
        if self.being_written.insert(address) {
            return Ok(());
        }
        Err(EvalError::new(
            ErrorKind::StackOverflow,
            "stack overflow (possible infinite recursion)",
        )
        .at(span))
    }

    /// Writes a value that is already evaluated.
    fn forced_value(
        &mut self,
        ev: &Evaluator,
        v: &Value,
        span: Span,
        depth: usize,
    ) -> EvalResult<()> {
        ev.check_stack(span)?;
        if self.out.len() > MAX_DOCUMENT_BYTES {
            return Err(EvalError::eval(format!(
                "the XML document would be larger than {} MiB (a value nested {depth} deep)",
                MAX_DOCUMENT_BYTES >> 20
            ))
            .at(span));
        }
        match v {
            Value::Null => self.empty(depth, "null", &[]),
            Value::Bool(b) => self.empty(depth, "bool", &[("value", b.to_string())]),
            Value::Int(i) => self.empty(depth, "int", &[("value", i.to_string())]),
            Value::Float(f) => self.empty(depth, "float", &[("value", format_float(*f))]),
            Value::String(s) => {
                self.context.extend(s.context().iter().cloned());
                self.string(depth, s.as_bytes())
            }
            Value::Path(p) => self.empty(depth, "path", &[("value", p.to_string())]),
            Value::List(items) => {
                let address = Rc::as_ptr(items) as *const u8 as usize;
                self.enter(address, span)?;
                self.open(depth, "list", &[]);
                for item in items.iter() {
                    self.value(ev, item, span, depth + 1)?;
                }
                self.close(depth, "list");
                self.being_written.remove(&address);
            }
            Value::Attrs(attrs) => {
                if ev.is_derivation(attrs, span)? {
                    let mut element_attrs = Vec::new();
                    let drv_path = self.string_attr(ev, attrs.get(sym!("drvPath")), span)?;
                    if let Some(p) = &drv_path {
                        element_attrs.push(("drvPath", p.clone()));
                    }
                    if let Some(p) = self.string_attr(ev, attrs.get(sym!("outPath")), span)? {
                        element_attrs.push(("outPath", p));
                    }
                    self.open(depth, "derivation", &element_attrs);
                    let first_time = match drv_path {
                        Some(p) => self.derivations_seen.insert(p),
                        None => true,
                    };
                    if first_time {
                        self.attrs(ev, attrs, span, depth + 1)?;
                    } else {
                        self.empty(depth + 1, "repeated", &[]);
                    }
                    self.close(depth, "derivation");
                } else {
                    let address = Rc::as_ptr(attrs) as usize;
                    self.enter(address, span)?;
                    self.open(depth, "attrs", &[]);
                    self.attrs(ev, attrs, span, depth + 1)?;
                    self.close(depth, "attrs");
                    self.being_written.remove(&address);
                }
            }
            Value::Lambda(closure) => {
                let position = self.position(ev, closure.lambda.span);
                self.open(depth, "function", &position);
                match &closure.lambda.param {
                    Param::Ident(name) => {
                        self.empty(depth + 1, "varpat", &[("name", name.as_str().to_string())])
                    }
                    Param::Pattern {
                        formals,
                        ellipsis,
                        bind,
                    } => {
                        let mut element_attrs = Vec::new();
                        if *ellipsis {
                            element_attrs.push(("ellipsis", "1".to_string()));
                        }
                        if let Some(bind) = bind {
                            element_attrs.push(("name", bind.as_str().to_string()));
                        }
                        self.open(depth + 1, "attrspat", &element_attrs);
                        let mut names: Vec<&str> =
                            formals.iter().map(|f| f.name.as_str()).collect();
                        names.sort_unstable();
                        for name in names {
                            self.empty(depth + 2, "attr", &[("name", name.to_string())]);
                        }
                        self.close(depth + 1, "attrspat");
                    }
                }
                self.close(depth, "function");
            }
            Value::PrimOp(_) | Value::PrimOpApp(_) | Value::Thunk(_) => {
                self.empty(depth, "unevaluated", &[])
            }
        }
        Ok(())
    }

    fn attrs(&mut self, ev: &Evaluator, attrs: &Attrs, span: Span, depth: usize) -> EvalResult<()> {
        for (name, item) in attrs.iter() {
            let position = match attrs.position_of(name) {
                Some(at) => self.position(ev, at),
                None => Vec::new(),
            };
            let mut element_attrs: Vec<(&str, &[u8])> = position
                .iter()
                .map(|(key, value)| (*key, value.as_bytes()))
                .collect();
            // Nix writes XML attributes in name order: column, line, name, path.
            element_attrs.insert(element_attrs.len().min(2), ("name", name.as_bytes()));
            self.start(depth, "attr", &element_attrs);
            self.out.extend_from_slice(b">\n");
            self.value(ev, item, span, depth + 1)?;
            self.close(depth, "attr");
        }
        Ok(())
    }

    /// `column`, `line` and `path` of a definition (when locations are asked for).
    fn position(&self, ev: &Evaluator, at: Span) -> Vec<(&'static str, String)> {
        if !self.location {
            return Vec::new();
        }
        let Some((path, line, column)) = ev.describe_position(at) else {
            return Vec::new();
        };
        vec![
            ("column", column.to_string()),
            ("line", line.to_string()),
            ("path", path),
        ]
    }
}
