//! Binary operators: arithmetic with overflow errors, comparison, Boolean operators with
//! short-circuiting, `++`, `//`, and `+` over strings and paths with their contexts.
use super::*;

impl Evaluator {
    pub(super) fn eval_binary(
        &self,
        op: BinaryOp,
        lhs: &ExprRef,
        rhs: &ExprRef,
        env: &Env,
        span: Span,
    ) -> EvalResult<Value> {
        match op {
            BinaryOp::And => {
                if !self.eval_bool(lhs, env, span)? {
                    return Ok(Value::Bool(false));
                }
                Ok(Value::Bool(self.eval_bool(rhs, env, span)?))
            }
            BinaryOp::Or => {
                if self.eval_bool(lhs, env, span)? {
                    return Ok(Value::Bool(true));
                }
                Ok(Value::Bool(self.eval_bool(rhs, env, span)?))
            }
            BinaryOp::Implication => {
                if !self.eval_bool(lhs, env, span)? {
                    return Ok(Value::Bool(true));
                }
                Ok(Value::Bool(self.eval_bool(rhs, env, span)?))
            }
            _ => {
                let a = self.eval_operand(lhs, env)?;
                let b = self.eval_operand(rhs, env)?;
                if let (Value::Int(x), Value::Int(y)) = (&a, &b) {
                    let (x, y) = (*x, *y);
                    match op {
                        BinaryOp::Add => {
                            return x
                                .checked_add(y)
                                .map(Value::Int)
                                .ok_or_else(|| overflow("adding", x, y, span))
                        }
                        BinaryOp::Sub => {
                            return x
                                .checked_sub(y)
                                .map(Value::Int)
                                .ok_or_else(|| overflow("subtracting", x, y, span))
                        }
                        BinaryOp::Mul => {
                            return x
                                .checked_mul(y)
                                .map(Value::Int)
                                .ok_or_else(|| overflow("multiplying", x, y, span))
                        }
                        BinaryOp::Less => return Ok(Value::Bool(x < y)),
                        BinaryOp::LessOrEq => return Ok(Value::Bool(x <= y)),
                        BinaryOp::More => return Ok(Value::Bool(x > y)),
                        BinaryOp::MoreOrEq => return Ok(Value::Bool(x >= y)),
                        BinaryOp::Equal => return Ok(Value::Bool(x == y)),
                        BinaryOp::NotEqual => return Ok(Value::Bool(x != y)),
                        _ => {}
                    }
                }
                self.binary_values(op, a, b, span)
            }
        }
    }

    pub(super) fn eval_bool(&self, expr: &ExprRef, env: &Env, span: Span) -> EvalResult<bool> {
        match self.eval_operand(expr, env)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::type_mismatch("a Boolean", &other).at(span)),
        }
    }

    /// Applies a strict binary operator to two forced values.
    pub fn binary_values(&self, op: BinaryOp, a: Value, b: Value, span: Span) -> EvalResult<Value> {
        match op {
            BinaryOp::Add => self.add(a, b, span),
            BinaryOp::Sub => arith(a, b, span, "subtracting", i64::checked_sub, |x, y| x - y),
            BinaryOp::Mul => arith(a, b, span, "multiplying", i64::checked_mul, |x, y| x * y),
            BinaryOp::Div => {
                let zero = match &b {
                    Value::Int(0) => true,
                    Value::Float(f) => *f == 0.0,
                    _ => false,
                };
                if zero && matches!(a, Value::Int(_) | Value::Float(_)) {
                    return Err(EvalError::eval("division by zero").at(span));
                }
                arith(a, b, span, "dividing", i64::checked_div, |x, y| x / y)
            }
            BinaryOp::Equal => Ok(Value::Bool(self.equal(&a, &b, span)?)),
            BinaryOp::NotEqual => Ok(Value::Bool(!self.equal(&a, &b, span)?)),
            BinaryOp::Less => Ok(Value::Bool(self.less_than(&a, &b, span)?)),
            BinaryOp::More => Ok(Value::Bool(self.less_than(&b, &a, span)?)),
            BinaryOp::LessOrEq => Ok(Value::Bool(!self.less_than(&b, &a, span)?)),
            BinaryOp::MoreOrEq => Ok(Value::Bool(!self.less_than(&a, &b, span)?)),
            BinaryOp::Concat => {
                let x = self.force_list(&a, span)?;
                let y = self.force_list(&b, span)?;
                if x.is_empty() {
                    return Ok(Value::List(y));
                }
                if y.is_empty() {
                    return Ok(Value::List(x));
                }
                let mut items = Vec::with_capacity(x.len() + y.len());
                items.extend(x.iter().cloned());
                items.extend(y.iter().cloned());
                Ok(Value::list(items))
            }
            BinaryOp::Update => {
                let x = self.force_attrs(&a, span)?;
                let y = self.force_attrs(&b, span)?;
                if y.is_empty() {
                    return Ok(Value::Attrs(x));
                }
                if x.is_empty() {
                    return Ok(Value::Attrs(y));
                }
                Ok(Value::attrs(Attrs::update(&x, &y)))
            }
            BinaryOp::And | BinaryOp::Or | BinaryOp::Implication => {
                let x = self.force_bool(&a, span)?;
                let y = self.force_bool(&b, span)?;
                Ok(Value::Bool(match op {
                    BinaryOp::And => x && y,
                    BinaryOp::Or => x || y,
                    _ => !x || y,
                }))
            }
        }
    }

    #[inline(never)]
    pub(super) fn add(&self, a: Value, b: Value, span: Span) -> EvalResult<Value> {
        match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => x
                .checked_add(*y)
                .map(Value::Int)
                .ok_or_else(|| overflow("adding", *x, *y, span)),
            (Value::Float(x), Value::Float(y)) => Ok(Value::Float(x + y)),
            (Value::Int(x), Value::Float(y)) => Ok(Value::Float(*x as f64 + y)),
            (Value::Float(x), Value::Int(y)) => Ok(Value::Float(x + *y as f64)),
            (Value::Path(p), _) => {
                let s = self.coerce_to_string(
                    &b,
                    span,
                    CoerceMode {
                        more: false,
                        copy_to_store: false,
                    },
                )?;
                if s.has_context() {
                    return Err(EvalError::eval(
                        "a string that refers to a store path cannot be appended to a path",
                    )
                    .at(span));
                }
                let joined = format!("{p}{s}");
                Ok(Value::path(kiln_lang::lower::canonical_path(&joined)))
            }
            (Value::String(x), _) => {
                let y = self.coerce_to_string(&b, span, CoerceMode::INTERPOLATION)?;
                let mut text = Vec::with_capacity(x.len() + y.len());
                text.extend_from_slice(x.as_bytes());
                text.extend_from_slice(y.as_bytes());
                let context = if y.has_context() {
                    let mut c = x.context().clone();
                    c.extend(y.context().iter().cloned());
                    c
                } else {
                    x.context().clone()
                };
                Ok(Value::String(NixString::with_context(text, context)))
            }
            (Value::Attrs(_), _) => {
                // A set with __toString/outPath concatenates like a string.
                let x = self.coerce_to_string(&a, span, CoerceMode::INTERPOLATION)?;
                self.add(Value::String(x), b, span)
            }
            (Value::Int(_) | Value::Float(_), _) => Err(EvalError::new(
                ErrorKind::Type,
                format!(
                    "cannot add {} to {}",
                    b.type_description(),
                    a.type_description()
                ),
            )
            .at(span)),
            _ => Err(EvalError::eval(format!(
                "cannot coerce {} to a string",
                a.type_description()
            ))
            .at(span)),
        }
    }
}

pub(super) fn overflow(verb: &str, x: i64, y: i64, span: Span) -> EvalError {
    if verb == "dividing" {
        return EvalError::eval("overflow in integer division").at(span);
    }
    let op = match verb {
        "adding" => "+",
        "subtracting" => "-",
        "multiplying" => "*",
        _ => "/",
    };
    EvalError::eval(format!("integer overflow in {verb} {x} {op} {y}")).at(span)
}

pub(super) fn arith(
    a: Value,
    b: Value,
    span: Span,
    verb: &str,
    int_op: fn(i64, i64) -> Option<i64>,
    float_op: fn(f64, f64) -> f64,
) -> EvalResult<Value> {
    match (&a, &b) {
        (Value::Int(x), Value::Int(y)) => int_op(*x, *y)
            .map(Value::Int)
            .ok_or_else(|| overflow(verb, *x, *y, span)),
        (Value::Float(x), Value::Float(y)) => Ok(Value::Float(float_op(*x, *y))),
        (Value::Int(x), Value::Float(y)) => Ok(Value::Float(float_op(*x as f64, *y))),
        (Value::Float(x), Value::Int(y)) => Ok(Value::Float(float_op(*x, *y as f64))),
        (Value::Int(_) | Value::Float(_), other) | (other, _) => {
            Err(EvalError::type_mismatch("an integer", other).at(span))
        }
    }
}
