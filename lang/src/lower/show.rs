//! Printing expressions as Nix shows them in messages (the text of a failed `assert`).
use super::*;

/// Shows an expression the way Nix 2.8 does in "assertion '…' failed" messages (operators
/// parenthesised); constructs without a special form are shown as written.
pub fn show_expr(expr: &ast::Expr) -> String {
    match expr {
        ast::Expr::Paren(p) => p.expr().map(|e| show_expr(&e)).unwrap_or_default(),
        ast::Expr::BinOp(bin) => {
            let lhs = bin.lhs().map(|e| show_expr(&e)).unwrap_or_default();
            let rhs = bin.rhs().map(|e| show_expr(&e)).unwrap_or_default();
            let op = bin
                .syntax()
                .children_with_tokens()
                .filter_map(|c| c.into_token())
                .find(|t| ast::BinOpKind::from_kind(t.kind()).is_some())
                .map(|t| t.text().to_string())
                .unwrap_or_default();
            format!("({lhs} {op} {rhs})")
        }
        ast::Expr::UnaryOp(op) => {
            let inner = op.expr().map(|e| show_expr(&e)).unwrap_or_default();
            match op.operator() {
                Some(ast::UnaryOpKind::Invert) => format!("(! {inner})"),
                _ => format!("(__sub 0 {inner})"),
            }
        }
        ast::Expr::Select(select) => {
            let subject = select.expr().map(|e| show_expr(&e)).unwrap_or_default();
            let path = select
                .attrpath()
                .map(|p| p.syntax().text().to_string())
                .unwrap_or_default();
            match select.default_expr() {
                Some(d) => format!("({subject}).{path} or {}", show_expr(&d)),
                None => format!("({subject}).{path}"),
            }
        }
        ast::Expr::HasAttr(has) => {
            let subject = has.expr().map(|e| show_expr(&e)).unwrap_or_default();
            let path = has
                .attrpath()
                .map(|p| p.syntax().text().to_string())
                .unwrap_or_default();
            format!("(({subject}) ? {path})")
        }
        ast::Expr::List(list) => {
            let mut out = String::from("[ ");
            for item in list.items() {
                out.push('(');
                out.push_str(&show_expr(&item));
                out.push_str(") ");
            }
            out.push(']');
            out
        }
        ast::Expr::AttrSet(set) => {
            let mut out = String::new();
            if set.rec_token().is_some() {
                out.push_str("rec ");
            }
            out.push_str("{ ");
            for entry in set.entries() {
                match entry {
                    ast::Entry::AttrpathValue(b) => {
                        let path = b
                            .attrpath()
                            .map(|p| p.syntax().text().to_string())
                            .unwrap_or_default();
                        let value = b.value().map(|e| show_expr(&e)).unwrap_or_default();
                        out.push_str(&format!("{path} = {value}; "));
                    }
                    ast::Entry::Inherit(i) => {
                        out.push_str(&i.syntax().text().to_string());
                        out.push(' ');
                    }
                }
            }
            out.push('}');
            out
        }
        ast::Expr::Apply(apply) => {
            let f = apply.lambda().map(|e| show_expr(&e)).unwrap_or_default();
            let a = apply.argument().map(|e| show_expr(&e)).unwrap_or_default();
            format!("({f} {a})")
        }
        other => other.syntax().text().to_string(),
    }
}

/// Whether a float literal's value is what the C library's `strtod`, which Nix uses, accepts
/// without a range error: finite, and neither rounded to zero nor to a subnormal number from a
/// non-zero literal (`1.0e400`, `1.0e-400` and `2.0e-310` are "invalid float" in Nix).
pub(super) fn float_in_range(value: f64, literal: &str) -> bool {
    if !value.is_finite() {
        return false;
    }
    if value == 0.0 {
        let mantissa = literal.split(['e', 'E']).next().unwrap_or(literal);
        return !mantissa.bytes().any(|byte| matches!(byte, b'1'..=b'9'));
    }
    value.abs() >= f64::MIN_POSITIVE
}
