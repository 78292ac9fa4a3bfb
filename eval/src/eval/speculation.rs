//! Integer speculation, the evaluator's one deliberate shortcut: an integer operation on
//! already-evaluated values that cannot fail (`n - 1`) is computed at once instead of
//! suspended, and so are `map`/`genList` elements and `sort`/`foldl'` steps whose function is
//! such an operation on its parameters. The result is the same; only non-strict printing
//! shows a value where Nix would show `<CODE>`.
use super::*;

impl Evaluator {
    /// The integer value of a literal or of a variable that is already evaluated, if any.
    #[inline]
    pub(super) fn known_int(&self, expr: &ExprRef, env: &Env) -> Option<i64> {
        match &expr.kind {
            ExprKind::Int(i) => Some(*i),
            ExprKind::Local { depth, slot, .. } => evaluated_int(env.get(*depth, *slot)),
            _ => None,
        }
    }

    /// An integer operation whose operands are already known and which cannot fail is
    /// computed right away instead of suspended: the result is the same (evaluation is pure)
    /// and no thunk is allocated (`f (n - 1)`).
    #[inline]
    pub(super) fn speculate_int_op(
        &self,
        op: BinaryOp,
        lhs: &ExprRef,
        rhs: &ExprRef,
        env: &Env,
    ) -> Option<Value> {
        if !is_speculable_int_op(op) {
            return None;
        }
        // Constant expressions stay suspended so that non-strict printing shows them as
        // `<CODE>` like Nix; only variable operands are worth speculating on.
        if matches!(lhs.kind, ExprKind::Int(_)) && matches!(rhs.kind, ExprKind::Int(_)) {
            return None;
        }
        let x = self.known_int(lhs, env)?;
        let y = self.known_int(rhs, env)?;
        int_op_without_failure(op, x, y)
    }
}

/// Whether `op` on two integers can be computed eagerly (see `int_op_without_failure`).
#[inline]
pub(super) fn is_speculable_int_op(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Less
            | BinaryOp::LessOrEq
            | BinaryOp::More
            | BinaryOp::MoreOrEq
            | BinaryOp::Equal
            | BinaryOp::NotEqual
    )
}

/// `x op y` for an operator accepted by `is_speculable_int_op`, or `None` when it would
/// overflow (then the operation stays suspended and reports its error when forced).
#[inline]
pub(super) fn int_op_without_failure(op: BinaryOp, x: i64, y: i64) -> Option<Value> {
    Some(match op {
        BinaryOp::Add => Value::Int(x.checked_add(y)?),
        BinaryOp::Sub => Value::Int(x.checked_sub(y)?),
        BinaryOp::Mul => Value::Int(x.checked_mul(y)?),
        BinaryOp::Less => Value::Bool(x < y),
        BinaryOp::LessOrEq => Value::Bool(x <= y),
        BinaryOp::More => Value::Bool(x > y),
        BinaryOp::MoreOrEq => Value::Bool(x >= y),
        BinaryOp::Equal => Value::Bool(x == y),
        BinaryOp::NotEqual => Value::Bool(x != y),
        _ => return None,
    })
}

/// The lazy value of `function argument` (elements of `map` and `genList`). When the function
/// is a one-parameter lambda whose body is its parameter or an integer operation on its
/// parameter and already known integers, and the argument is an evaluated scalar, the result
/// is computed at once: the same value, without a thunk (`genList (i: i) n`,
/// `map (x: x * 3) ints`). Anything else becomes an application thunk.
pub fn apply_lazily(call: &Rc<LazyCall>, argument: Value) -> Value {
    if let Some(value) = speculate_application(&call.function, &argument) {
        return value;
    }
    Value::Thunk(Thunk::apply(call.clone(), argument))
}

#[inline]
pub(super) fn speculate_application(function: &Value, argument: &Value) -> Option<Value> {
    let Value::Lambda(closure) = function else {
        return None;
    };
    if !matches!(closure.lambda.param, Param::Ident(_)) {
        return None;
    }
    // Only scalars: returning a shared set, list, function or thunk could make Nix's
    // pointer-equality shortcut see an identity that Nix's fresh thunk would not have.
    if !matches!(
        argument,
        Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::Null
    ) {
        return None;
    }
    match &closure.lambda.body.kind {
        ExprKind::Local {
            depth: 0, slot: 0, ..
        } => Some(argument.clone()),
        ExprKind::Binary { op, lhs, rhs } if is_speculable_int_op(*op) => {
            let x = known_int_in_call(lhs, argument, &closure.env)?;
            let y = known_int_in_call(rhs, argument, &closure.env)?;
            // As in `speculate_int_op`, constant expressions stay suspended.
            if matches!(lhs.kind, ExprKind::Int(_)) && matches!(rhs.kind, ExprKind::Int(_)) {
                return None;
            }
            int_op_without_failure(*op, x, y)
        }
        _ => None,
    }
}

/// `(a: b: body) first second` computed without frames when `body` is an integer operation
/// (as in `speculate_int_op`) on the parameters, literals and already known integers of the
/// closure's environment `env`: comparators of `sort`, steps of `foldl'`.
#[inline]
pub(super) fn speculate_binary_call(
    inner: &ir::Lambda,
    first: &Value,
    second: &Value,
    env: &Env,
) -> Option<Value> {
    if !matches!(inner.param, Param::Ident(_)) {
        return None;
    }
    let ExprKind::Binary { op, lhs, rhs } = &inner.body.kind else {
        return None;
    };
    if !is_speculable_int_op(*op)
        || (matches!(lhs.kind, ExprKind::Int(_)) && matches!(rhs.kind, ExprKind::Int(_)))
    {
        return None;
    }
    let operand = |expr: &ExprRef| -> Option<i64> {
        let value = match &expr.kind {
            ExprKind::Int(i) => return Some(*i),
            ExprKind::Local {
                depth: 0, slot: 0, ..
            } => second.clone(),
            ExprKind::Local {
                depth: 1, slot: 0, ..
            } => first.clone(),
            ExprKind::Local { depth, slot, .. } if *depth >= 2 => env.get(depth - 2, *slot),
            _ => return None,
        };
        evaluated_int(value)
    };
    int_op_without_failure(*op, operand(lhs)?, operand(rhs)?)
}

/// The integer a value is or has been evaluated to, if any.
#[inline]
pub(super) fn evaluated_int(value: Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(i),
        Value::Thunk(t) => match t.value() {
            Some(Value::Int(i)) => Some(i),
            _ => None,
        },
        _ => None,
    }
}

/// The integer an operand of a one-parameter lambda's body denotes when the lambda is called
/// with `argument` in `env` (the closure's environment), if it is known without evaluation.
#[inline]
pub(super) fn known_int_in_call(expr: &ExprRef, argument: &Value, env: &Env) -> Option<i64> {
    let value = match &expr.kind {
        ExprKind::Int(i) => return Some(*i),
        ExprKind::Local {
            depth: 0, slot: 0, ..
        } => argument.clone(),
        ExprKind::Local { depth, slot, .. } if *depth > 0 => env.get(depth - 1, *slot),
        _ => return None,
    };
    evaluated_int(value)
}
