//! `builtins.toXML`: values as the XML Nix 2.8 writes (`<expr>` root, two-space indentation,
//! derivations as `<derivation drvPath=… outPath=…>` with repeats collapsed, functions as
//! their patterns).
use super::{arg, Builtin};
use crate::error::EvalResult;
use crate::eval::{sym, Evaluator};
use crate::print::format_float;
use crate::value::{Context, NixString, Value};
use kiln_lang::ir::Param;
use kiln_lang::Span;
use std::collections::BTreeSet;

pub const BUILTINS: &[Builtin] = &[Builtin {
    name: "toXML",
    arity: 1,
    top_level: false,
    doc: "The value as XML, in Nix's format.",
    func: to_xml,
}];

fn to_xml(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let mut writer = XmlWriter {
        out: String::from("<?xml version='1.0' encoding='utf-8'?>\n<expr>\n"),
        context: Context::new(),
        derivations_seen: BTreeSet::new(),
    };
    writer.value(ev, arg(args, 0), span, 1)?;
    writer.out.push_str("</expr>\n");
    Ok(Value::String(NixString::with_context(
        writer.out,
        writer.context,
    )))
}

/// XML attribute escaping as Nix's `XMLWriter`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

struct XmlWriter {
    out: String,
    context: Context,
    derivations_seen: BTreeSet<String>,
}

impl XmlWriter {
    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
    }

    fn empty(&mut self, depth: usize, name: &str, attrs: &[(&str, String)]) {
        self.indent(depth);
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push_str(&format!(" {key}=\"{}\"", escape(value)));
        }
        self.out.push_str(" />\n");
    }

    fn open(&mut self, depth: usize, name: &str, attrs: &[(&str, String)]) {
        self.indent(depth);
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push_str(&format!(" {key}=\"{}\"", escape(value)));
        }
        self.out.push_str(">\n");
    }

    fn close(&mut self, depth: usize, name: &str) {
        self.indent(depth);
        self.out.push_str(&format!("</{name}>\n"));
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
                Ok(Some(s.as_str().to_string()))
            }
            None => Ok(None),
        }
    }

    fn value(&mut self, ev: &Evaluator, value: &Value, span: Span, depth: usize) -> EvalResult<()> {
        ev.check_stack(span)?;
        let v = ev.force(value, span)?;
        match &v {
            Value::Null => self.empty(depth, "null", &[]),
            Value::Bool(b) => self.empty(depth, "bool", &[("value", b.to_string())]),
            Value::Int(i) => self.empty(depth, "int", &[("value", i.to_string())]),
            Value::Float(f) => self.empty(depth, "float", &[("value", format_float(*f))]),
            Value::String(s) => {
                self.context.extend(s.context().iter().cloned());
                self.empty(depth, "string", &[("value", s.as_str().to_string())])
            }
            Value::Path(p) => self.empty(depth, "path", &[("value", p.to_string())]),
            Value::List(items) => {
                self.open(depth, "list", &[]);
                for item in items.iter() {
                    self.value(ev, item, span, depth + 1)?;
                }
                self.close(depth, "list");
            }
            Value::Attrs(attrs) => {
                if ev.is_derivation(attrs, span)? {
                    let mut element_attrs = Vec::new();
                    let drv_path = self.string_attr(ev, attrs.get(sym("drvPath")), span)?;
                    if let Some(p) = &drv_path {
                        element_attrs.push(("drvPath", p.clone()));
                    }
                    if let Some(p) = self.string_attr(ev, attrs.get(sym("outPath")), span)? {
                        element_attrs.push(("outPath", p));
                    }
                    self.open(depth, "derivation", &element_attrs);
                    let first_time = match drv_path {
                        Some(p) => self.derivations_seen.insert(p),
                        None => true,
                    };
                    if first_time {
                        self.attrs(ev, attrs.iter(), span, depth + 1)?;
                    } else {
                        self.empty(depth + 1, "repeated", &[]);
                    }
                    self.close(depth, "derivation");
                } else {
                    self.open(depth, "attrs", &[]);
                    self.attrs(ev, attrs.iter(), span, depth + 1)?;
                    self.close(depth, "attrs");
                }
            }
            Value::Lambda(closure) => {
                self.open(depth, "function", &[]);
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

    fn attrs<'a>(
        &mut self,
        ev: &Evaluator,
        entries: impl Iterator<Item = (kiln_lang::Symbol, &'a Value)>,
        span: Span,
        depth: usize,
    ) -> EvalResult<()> {
        for (name, item) in entries {
            self.open(depth, "attr", &[("name", name.as_str().to_string())]);
            self.value(ev, item, span, depth + 1)?;
            self.close(depth, "attr");
        }
        Ok(())
    }
}
