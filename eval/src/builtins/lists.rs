//! List builtins: `map`, `filter`, `foldl'`, `genList`, `length`, `elemAt`, `head`, `tail`,
//! `elem`, `concatLists`, `concatMap`, `all`, `any`, `sort`, `partition`, `groupBy` and
//! `genericClosure`, with Nix 2.8's laziness (element results of `map` and `genList` stay
//! suspended) and its order of argument forcing, which decides the error a bad call reports.
use super::{arg, Builtin};
use crate::error::{EvalError, EvalResult};
use crate::eval::Evaluator;
use crate::value::{Attrs, LazyCall, Value};
use kiln_lang::{Span, Symbol};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "map",
        arity: 2,
        top_level: true,
        doc: "Apply a function to every element of a list (lazily).",
        func: map,
    },
    Builtin {
        name: "filter",
        arity: 2,
        top_level: false,
        doc: "The elements of a list for which a predicate holds.",
        func: filter,
    },
    Builtin {
        name: "foldl'",
        arity: 3,
        top_level: false,
        doc: "Left fold with a strict accumulator.",
        func: foldl_strict,
    },
    Builtin {
        name: "genList",
        arity: 2,
        top_level: false,
        doc: "A list of the given length whose elements are f 0, f 1, ….",
        func: gen_list,
    },
    Builtin {
        name: "length",
        arity: 1,
        top_level: false,
        doc: "The number of elements of a list.",
        func: length,
    },
    Builtin {
        name: "elemAt",
        arity: 2,
        top_level: false,
        doc: "The element of a list at an index (from 0).",
        func: elem_at,
    },
    Builtin {
        name: "head",
        arity: 1,
        top_level: false,
        doc: "The first element of a list.",
        func: head,
    },
    Builtin {
        name: "tail",
        arity: 1,
        top_level: false,
        doc: "A list without its first element.",
        func: tail,
    },
    Builtin {
        name: "elem",
        arity: 2,
        top_level: false,
        doc: "Whether a value is an element of a list.",
        func: elem,
    },
    Builtin {
        name: "concatLists",
        arity: 1,
        top_level: false,
        doc: "Concatenate a list of lists.",
        func: concat_lists,
    },
    Builtin {
        name: "concatMap",
        arity: 2,
        top_level: false,
        doc: "Map a function returning lists and concatenate the results.",
        func: concat_map,
    },
    Builtin {
        name: "all",
        arity: 2,
        top_level: false,
        doc: "Whether a predicate holds for every element of a list.",
        func: all,
    },
    Builtin {
        name: "any",
        arity: 2,
        top_level: false,
        doc: "Whether a predicate holds for some element of a list.",
        func: any,
    },
    Builtin {
        name: "sort",
        arity: 2,
        top_level: false,
        doc: "Stable sort of a list with a less-than comparator.",
        func: sort,
    },
    Builtin {
        name: "partition",
        arity: 2,
        top_level: false,
        doc: "Split a list into { right, wrong } by a predicate.",
        func: partition,
    },
    Builtin {
        name: "groupBy",
        arity: 2,
        top_level: false,
        doc: "Group the elements of a list into a set of lists by a key function.",
        func: group_by,
    },
    Builtin {
        name: "genericClosure",
        arity: 1,
        top_level: false,
        doc: "The closure of a start set under an operator, by the elements' `key`.",
        func: generic_closure,
    },
];

fn map(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let list = ev.force_list(arg(args, 1), span)?;
    let call = Rc::new(LazyCall {
        function: arg(args, 0).clone(),
        span,
    });
    let items = list
        .iter()
        .map(|item| crate::eval::apply_lazily(&call, item.clone()))
        .collect();
    Ok(Value::list(items))
}

/// Calls a predicate and forces its result to a Boolean.
fn test(ev: &Evaluator, predicate: &Value, item: &Value, span: Span) -> EvalResult<bool> {
    let result = ev.call(predicate, item.clone(), span)?;
    ev.force_bool(&result, span)
}

fn filter(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let predicate = ev.force_function(arg(args, 0), span)?;
    let list = ev.force_list(arg(args, 1), span)?;
    let mut kept = Vec::with_capacity(list.len());
    for item in list.iter() {
        if test(ev, &predicate, item, span)? {
            kept.push(item.clone());
        }
    }
    if kept.len() == list.len() {
        // Everything passed: share the input list as Nix does.
        return Ok(Value::List(list));
    }
    Ok(Value::list(kept))
}

fn foldl_strict(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let function = ev.force_function(arg(args, 0), span)?;
    let list = ev.force_list(arg(args, 2), span)?;
    // As Nix, the initial accumulator is only forced when it is the result (empty list).
    let mut accumulator = arg(args, 1).clone();
    if list.is_empty() {
        return ev.force(&accumulator, span);
    }
    for item in list.iter() {
        accumulator = ev.call_n(&function, &[accumulator, item.clone()], span)?;
        accumulator = ev.force(&accumulator, span)?;
    }
    Ok(accumulator)
}

fn gen_list(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let len = ev.force_int(arg(args, 1), span)?;
    if len < 0 {
        return Err(EvalError::eval(format!("cannot create list of size {len}")).at(span));
    }
    let call = Rc::new(LazyCall {
        function: arg(args, 0).clone(),
        span,
    });
    let items = (0..len)
        .map(|i| crate::eval::apply_lazily(&call, Value::Int(i)))
        .collect();
    Ok(Value::list(items))
}

fn length(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let list = ev.force_list(arg(args, 0), span)?;
    Ok(Value::Int(list.len() as i64))
}

fn index_error(index: i64, span: Span) -> EvalError {
    EvalError::eval(format!("list index {index} is out of bounds")).at(span)
}

/// The element at `index`, forced (Nix forces what `elemAt` and `head` return).
fn element(ev: &Evaluator, list: &[Value], index: i64, span: Span) -> EvalResult<Value> {
    let item = usize::try_from(index)
        .ok()
        .and_then(|i| list.get(i))
        .ok_or_else(|| index_error(index, span))?;
    ev.force(item, span)
}

fn elem_at(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let list = ev.force_list(arg(args, 0), span)?;
    // Nix 2.8 keeps the index in a C `int`: truncate the same way.
    let index = ev.force_int(arg(args, 1), span)? as i32;
    element(ev, &list, index.into(), span)
}

fn head(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let list = ev.force_list(arg(args, 0), span)?;
    element(ev, &list, 0, span)
}

fn tail(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let list = ev.force_list(arg(args, 0), span)?;
    if list.is_empty() {
        return Err(EvalError::eval("'tail' called on an empty list").at(span));
    }
    Ok(Value::list(list[1..].to_vec()))
}

fn elem(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let needle = arg(args, 0);
    let list = ev.force_list(arg(args, 1), span)?;
    for item in list.iter() {
        if ev.equal(needle, item, span)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

/// Concatenates lists already forced, sharing the only non-empty one when there is just one.
fn concatenate(lists: Vec<Rc<Vec<Value>>>) -> Value {
    let mut non_empty = lists.iter().filter(|l| !l.is_empty());
    if let (Some(only), None) = (non_empty.next(), non_empty.next()) {
        return Value::List(only.clone());
    }
    let total = lists.iter().map(|l| l.len()).sum();
    let mut items = Vec::with_capacity(total);
    for list in &lists {
        items.extend_from_slice(list);
    }
    Value::list(items)
}

fn concat_lists(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let outer = ev.force_list(arg(args, 0), span)?;
    let lists = outer
        .iter()
        .map(|inner| ev.force_list(inner, span))
        .collect::<EvalResult<Vec<_>>>()?;
    Ok(concatenate(lists))
}

fn concat_map(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let function = ev.force_function(arg(args, 0), span)?;
    let list = ev.force_list(arg(args, 1), span)?;
    let mut lists = Vec::with_capacity(list.len());
    for item in list.iter() {
        let result = ev.call(&function, item.clone(), span)?;
        lists.push(ev.force_list(&result, span)?);
    }
    Ok(concatenate(lists))
}

fn quantify(ev: &Evaluator, args: &[Value], span: Span, wanted: bool) -> EvalResult<Value> {
    let predicate = ev.force_function(arg(args, 0), span)?;
    let list = ev.force_list(arg(args, 1), span)?;
    for item in list.iter() {
        if test(ev, &predicate, item, span)? == wanted {
            return Ok(Value::Bool(wanted));
        }
    }
    Ok(Value::Bool(!wanted))
}

fn all(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    quantify(ev, args, span, false)
}

fn any(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    quantify(ev, args, span, true)
}

/// A stable merge sort whose comparison may fail; O(n log n) comparisons. `less(a, b)` says
/// whether `a` must come before `b`; equal elements keep their order.
pub(crate) fn merge_sort<T: Clone>(
    items: &mut Vec<T>,
    less: &mut impl FnMut(&T, &T) -> EvalResult<bool>,
) -> EvalResult<()> {
    let len = items.len();
    if len < 2 {
        return Ok(());
    }
    // Short runs are sorted by insertion first (stable: shift only past strictly greater ones).
    const RUN: usize = 16;
    for start in (0..len).step_by(RUN) {
        let end = (start + RUN).min(len);
        for i in start + 1..end {
            let mut j = i;
            while j > start && less(&items[j], &items[j - 1])? {
                items.swap(j, j - 1);
                j -= 1;
            }
        }
    }
    let mut source = std::mem::take(items);
    let mut target: Vec<T> = Vec::with_capacity(len);
    let mut width = RUN;
    while width < len {
        target.clear();
        for start in (0..len).step_by(2 * width) {
            let middle = (start + width).min(len);
            let end = (start + 2 * width).min(len);
            let (mut i, mut j) = (start, middle);
            while i < middle && j < end {
                // Take from the right run only when it is strictly less: stability.
                if less(&source[j], &source[i])? {
                    target.push(source[j].clone());
                    j += 1;
                } else {
                    target.push(source[i].clone());
                    i += 1;
                }
            }
            target.extend_from_slice(&source[i..middle]);
            target.extend_from_slice(&source[j..end]);
        }
        std::mem::swap(&mut source, &mut target);
        width *= 2;
    }
    *items = source;
    Ok(())
}

fn sort(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let comparator = ev.force_function(arg(args, 0), span)?;
    let list = ev.force_list(arg(args, 1), span)?;
    let mut items = list
        .iter()
        .map(|item| ev.force(item, span))
        .collect::<EvalResult<Vec<_>>>()?;
    if matches!(comparator, Value::PrimOp(b) if b.name == "lessThan") {
        // As Nix: the primop comparator is applied directly.
        merge_sort(&mut items, &mut |a, b| ev.less_than(a, b, span))?;
    } else {
        merge_sort(&mut items, &mut |a, b| {
            let result = ev.call_n(&comparator, &[a.clone(), b.clone()], span)?;
            ev.force_bool(&result, span)
        })?;
    }
    Ok(Value::list(items))
}

fn partition(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let predicate = ev.force_function(arg(args, 0), span)?;
    let list = ev.force_list(arg(args, 1), span)?;
    let mut right = Vec::new();
    let mut wrong = Vec::new();
    for item in list.iter() {
        let item = ev.force(item, span)?;
        if test(ev, &predicate, &item, span)? {
            right.push(item);
        } else {
            wrong.push(item);
        }
    }
    Ok(Value::attrs(Attrs::from_sorted(vec![
        (sym!("right"), Value::list(right)),
        (sym!("wrong"), Value::list(wrong)),
    ])))
}

fn group_by(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let function = ev.force_function(arg(args, 0), span)?;
    let list = ev.force_list(arg(args, 1), span)?;
    let mut groups: HashMap<Symbol, Vec<Value>> = HashMap::new();
    for item in list.iter() {
        let key = ev.call(&function, item.clone(), span)?;
        let key = super::strings::force_attr_name(ev, &key, span)?;
        groups.entry(key).or_default().push(item.clone());
    }
    let entries = groups
        .into_iter()
        .map(|(name, items)| (name, Value::list(items)))
        .collect();
    Ok(Value::attrs(Attrs::from_unsorted(entries)))
}

/// A required attribute of a builtin's set argument, with Nix's message when it is missing.
pub(crate) fn required_attr(
    attrs: &Attrs,
    name: Symbol,
    builtin: &str,
    span: Span,
) -> EvalResult<Value> {
    attrs.get(name).cloned().ok_or_else(|| {
        EvalError::eval(format!(
            "attribute '{name}' missing for call to '{builtin}'"
        ))
        .at(span)
    })
}

/// The keys `genericClosure` has seen. Integer and string keys (the common case) live in hash
/// sets; any other mix falls back to a vector kept sorted by Nix's `<`, which also raises Nix's
/// "cannot compare" errors for keys of incomparable types.
enum SeenKeys {
    Empty,
    Ints(HashSet<i64>),
    Strings(HashSet<Box<[u8]>>),
    Sorted(Vec<Value>),
}

impl SeenKeys {
    /// Adds `key`; whether it was new.
    fn insert(&mut self, ev: &Evaluator, key: Value, span: Span) -> EvalResult<bool> {
        match (&mut *self, &key) {
            (SeenKeys::Empty, Value::Int(i)) => *self = SeenKeys::Ints(HashSet::from([*i])),
            (SeenKeys::Empty, Value::String(s)) => {
                *self = SeenKeys::Strings(HashSet::from([Box::from(s.as_bytes())]))
            }
            (SeenKeys::Empty, _) => *self = SeenKeys::Sorted(vec![key]),
            (SeenKeys::Ints(set), Value::Int(i)) => return Ok(set.insert(*i)),
            (SeenKeys::Strings(set), Value::String(s)) => {
                return Ok(set.insert(Box::from(s.as_bytes())))
            }
            (SeenKeys::Ints(set), _) => {
                let mut sorted: Vec<i64> = set.iter().copied().collect();
                sorted.sort_unstable();
                *self = SeenKeys::Sorted(sorted.into_iter().map(Value::Int).collect());
                return self.insert(ev, key, span);
            }
            (SeenKeys::Strings(set), _) => {
                let mut sorted: Vec<&[u8]> = set.iter().map(|s| &**s).collect();
                sorted.sort_unstable();
                let sorted = sorted.into_iter().map(Value::string).collect();
                *self = SeenKeys::Sorted(sorted);
                return self.insert(ev, key, span);
            }
            (SeenKeys::Sorted(keys), _) => {
                // Binary search with Nix's `<`; the new key goes first, as in Nix's set
                // insertion (it shows in the message of incomparable keys).
                let (mut low, mut high) = (0, keys.len());
                while low < high {
                    let mid = (low + high) / 2;
                    if ev.less_than(&key, &keys[mid], span)? {
                        high = mid;
                    } else if ev.less_than(&keys[mid], &key, span)? {
                        low = mid + 1;
                    } else {
                        return Ok(false);
                    }
                }
                keys.insert(low, key);
            }
        }
        Ok(true)
    }
}

fn generic_closure(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let input = ev.force_attrs(arg(args, 0), span)?;
    let start_set = required_attr(&input, sym!("startSet"), "genericClosure", span)?;
    let start_set = ev.force_list(&start_set, span)?;
    let operator = required_attr(&input, sym!("operator"), "genericClosure", span)?;
    let mut work: VecDeque<Value> = start_set.iter().cloned().collect();
    let mut seen = SeenKeys::Empty;
    let mut result = Vec::new();
    while let Some(item) = work.pop_front() {
        let attrs = ev.force_attrs(&item, span)?;
        let key = attrs
            .get(sym!("key"))
            .ok_or_else(|| EvalError::eval("attribute 'key' required").at(span))?;
        let key = ev.force(key, span)?;
        if !seen.insert(ev, key, span)? {
            continue;
        }
        let successors = ev.call(&operator, item.clone(), span)?;
        let successors = ev.force_list(&successors, span)?;
        work.extend(successors.iter().cloned());
        result.push(item);
    }
    Ok(Value::list(result))
}

/// Test helper for the builtin families: evaluates `src` strictly and prints it like
/// `nix-instantiate --eval --strict`, or `error: <message>`.
#[cfg(test)]
pub(crate) fn run_nix(src: &str) -> String {
    let src = src.to_owned();
    crate::with_eval_stack(move || {
        let store = crate::store_access::ComputingStore::new(
            kiln_store::store_path::StoreDir::new("/nix/store"),
        );
        let opts = crate::EvalOptions::new(Rc::new(store));
        let ev = Evaluator::new(opts);
        match ev
            .eval_string(&src, std::path::Path::new("/src"))
            .and_then(|v| ev.print_value(&v, true))
        {
            Ok(s) => String::from_utf8_lossy(&s).into_owned(),
            Err(e) => format!("error: {}", e.message()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_sort_is_stable_and_sorts() {
        let mut items: Vec<(i64, usize)> =
            (0..1000).map(|i| ((i * 7919) % 13, i as usize)).collect();
        merge_sort(&mut items, &mut |a, b| Ok(a.0 < b.0)).unwrap();
        for pair in items.windows(2) {
            assert!(pair[0].0 < pair[1].0 || (pair[0].0 == pair[1].0 && pair[0].1 < pair[1].1));
        }
        assert_eq!(items.len(), 1000);
    }

    /// Expectations from nix-instantiate 2.8.
    #[test]
    fn list_builtins_match_nix() {
        let cases = [
            (
                "builtins.sort 1 []",
                "error: value is an integer while a function was expected",
            ),
            ("builtins.sort builtins.lessThan [3 1 2]", "[ 1 2 3 ]"),
            ("builtins.sort (a: b: a < b) [5 3 9 1 3]", "[ 1 3 3 5 9 ]"),
            ("builtins.genList 1 0", "[ ]"),
            (
                "builtins.filter 1 2",
                "error: value is an integer while a function was expected",
            ),
            (
                "builtins.map 1 2",
                "error: value is an integer while a list was expected",
            ),
            (
                "builtins.elemAt [1] 9223372036854775807",
                "error: list index -1 is out of bounds",
            ),
            ("builtins.tail []", "error: 'tail' called on an empty list"),
            ("builtins.genList (x: x * 2) 3", "[ 0 2 4 ]"),
            ("builtins.length (map (x: throw \"lazy\") [1 2])", "2"),
            ("builtins.foldl' (a: b: a + b) 0 [1 2 3]", "6"),
            ("builtins.concatMap (x: [x x]) [1 2]", "[ 1 1 2 2 ]"),
            (
                "builtins.partition (x: x > 1) [1 2 3]",
                "{ right = [ 2 3 ]; wrong = [ 1 ]; }",
            ),
            (
                "builtins.groupBy (x: if x > 1 then \"big\" else \"small\") [1 2 3]",
                "{ big = [ 2 3 ]; small = [ 1 ]; }",
            ),
            (
                "builtins.genericClosure {startSet = [{key=1;} {key=\"a\";}]; operator = x: [];}",
                "error: cannot compare a string with an integer",
            ),
            (
                "builtins.genericClosure {startSet = [{}]; operator = x: [];}",
                "error: attribute 'key' required",
            ),
            (
                "map (x: x.key) (builtins.genericClosure { startSet = [{key=1;}]; \
                 operator = x: if x.key < 4 then [{key = x.key + 1;} {key = 1;}] else []; })",
                "[ 1 2 3 4 ]",
            ),
            ("builtins.all (x: x > 0) []", "true"),
            ("builtins.any (x: x > 2) [1 2 3]", "true"),
            ("builtins.elem 2 [1 2]", "true"),
            (
                "map (x: x.key) (builtins.genericClosure { startSet = [{key=\"b\";} {key=\"a\";}]; \
                 operator = x: [{key = \"a\";}]; })",
                "[ \"b\" \"a\" ]",
            ),
            (
                "map (x: x.key) (builtins.genericClosure { startSet = [{key=1;} {key=1.0;} {key=[1];}]; \
                 operator = x: [{key = [1];}]; })",
                "error: cannot compare a list with an integer",
            ),
            (
                "map (x: x.key) (builtins.genericClosure { startSet = [{key=2;} {key=1.0;} {key=1;} {key=1.5;}]; \
                 operator = x: []; })",
                "[ 2 1 1.5 ]",
            ),
            ("builtins.elem 1 [1 (throw \"x\")]", "true"),
            (
                "(builtins.partition (x: true) [(throw \"x\")]).wrong",
                "error: x",
            ),
            (
                "builtins.length (builtins.filter (x: true) [(throw \"x\")])",
                "1",
            ),
            (
                "builtins.length (builtins.sort (a: b: true) [(throw \"x\")])",
                "error: x",
            ),
            ("builtins.length (builtins.tail [(throw \"x\") 1])", "1"),
            (
                "builtins.attrNames (builtins.groupBy (x: \"a\") [(throw \"x\")])",
                "[ \"a\" ]",
            ),
        ];
        for (src, want) in cases {
            assert_eq!(run_nix(src), want, "{src}");
        }
    }

    #[test]
    fn merge_sort_passes_errors_on() {
        let mut items: Vec<i64> = (0..100).rev().collect();
        let err = merge_sort(&mut items, &mut |a, _| {
            if *a == 50 {
                Err(EvalError::eval("boom"))
            } else {
                Ok(false)
            }
        });
        assert!(err.is_err());
    }
}
