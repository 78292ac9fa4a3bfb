//! End-to-end tests of the evaluator against values and messages taken from Nix 2.8
//! (`nix-instantiate --eval --strict`).
use super::*;
use kiln_store::store_path::StorePath;
use store_access::{AddPathError, PathFilter, PathToAdd, StoreAccessError, StoreText};

/// A store that only computes stand-in paths (no hashing): enough for evaluation tests that
/// interpolate paths.
struct FakeStore(kiln_store::store_path::StoreDir);

fn stand_in(hash_digit: char, name: &str) -> Result<StorePath, StoreAccessError> {
    let base_name = format!("{}-{name}", hash_digit.to_string().repeat(32));
    StorePath::from_base_name(&base_name).map_err(StoreAccessError::caused_by)
}

impl EvalStore for FakeStore {
    fn store_dir(&self) -> &kiln_store::store_path::StoreDir {
        &self.0
    }
    fn add_text(&self, text: StoreText<'_>) -> Result<StorePath, StoreAccessError> {
        stand_in('0', text.name)
    }
    fn add_path(
        &self,
        request: PathToAdd<'_>,
        _: Option<PathFilter<'_>>,
    ) -> Result<StorePath, AddPathError> {
        Ok(stand_in('1', request.name)?)
    }
}

fn evaluator() -> Evaluator {
    let mut opts = EvalOptions::new(Rc::new(FakeStore(kiln_store::store_path::StoreDir::new(
        "/nix/store",
    ))));
    let mut io = MemoryIo::default();
    io.files
        .insert("/src/lib.nix".into(), b"{ x = 1; f = a: a + 1; }".to_vec());
    io.files
        .insert("/src/dir/default.nix".into(), b"42".to_vec());
    io.files.insert(
        "/src/scoped.nix".into(),
        b"[ injected (builtins.isInt injected) ]".to_vec(),
    );
    io.env.insert("HOME".into(), "/home/u".into());
    opts.io = Rc::new(io);
    opts.current_system = "x86_64-linux".into();
    Evaluator::new(opts)
}

/// Evaluates strictly and prints like `nix-instantiate --eval --strict`, or renders the error.
fn run(src: &'static str) -> String {
    with_eval_stack(move || {
        let ev = evaluator();
        match ev
            .eval_string(src, Path::new("/src"))
            .and_then(|v| ev.print_value(&v, true))
        {
            Ok(s) => String::from_utf8_lossy(&s).into_owned(),
            Err(e) => format!("error: {}", e.message()),
        }
    })
}

#[test]
fn basics() {
    assert_eq!(run("1 + 2 * 3"), "7");
    assert_eq!(
        run("let f = n: if n < 2 then n else f (n - 1) + f (n - 2); in f 15"),
        "610"
    );
    assert_eq!(run("rec { a = 1; b = a + 1; }"), "{ a = 1; b = 2; }");
    assert_eq!(run("{ a.b = 1; a.c = 2; }.a"), "{ b = 1; c = 2; }");
    assert_eq!(
        run("let x = 1; in with { x = 2; y = 3; }; [ x y ]"),
        "[ 1 3 ]"
    );
    assert_eq!(
        run("({ a, b ? a + 1, ... }@args: [ a b args.c ]) { a = 1; c = 5; }"),
        "[ 1 2 5 ]"
    );
    assert_eq!(run("\"a${toString 1}b\""), "\"a1b\"");
    assert_eq!(run("[ (1 / 2) (1.0 / 4) (7 / -2) ]"), "[ 0 0.25 -3 ]");
    assert_eq!(
        run("{ \"a b\" = 1; c = 2; \"\" = 3; \"if\" = 4; }"),
        "{ \"\" = 3; \"a b\" = 1; c = 2; \"if\" = 4; }"
    );
    assert_eq!(
        run("let e = {}; l = []; in [e e l l]"),
        "[ { } { } [ ] [ ] ]"
    );
    assert_eq!(
        run("let a = { x = 1; }; in [a a]"),
        "[ { x = 1; } «repeated» ]"
    );
    assert_eq!(
        run("{ a = { b = 1; }; a.c = 2; }"),
        "{ a = { b = 1; c = 2; }; }"
    );
    assert_eq!(
        run("toString [1 [2 3] null true false \"a\"]"),
        "\"1 2 3  1  a\""
    );
    assert_eq!(run("toString 1.5"), "\"1.500000\"");
    assert_eq!(
        run("builtins.functionArgs ({a, b ? 1}: a)"),
        "{ a = false; b = true; }"
    );
    assert_eq!(run("{ a = 1; } ? a"), "true");
    assert_eq!(run("{ a = 1; }.b or 5"), "5");
    assert_eq!(run("let s = { __functor = self: x: x + 1; }; in s 1"), "2");
    assert_eq!(
        run("let f = x: x; in [ (f == f) ([f] == [f]) ]"),
        "[ false true ]"
    );
    assert_eq!(
        run("[ ([] < [1]) (\"a\" < \"b\") (1 < 1.5) ]"),
        "[ true true true ]"
    );
    assert_eq!(run("-(1)"), "-1");
    with_eval_stack(|| {
        let ev = evaluator();
        let f = ev.eval_string("a: b: a - b", Path::new("/")).unwrap();
        let r = ev
            .call_n(&f, &[Value::Int(5), Value::Int(3)], Default::default())
            .unwrap();
        assert!(matches!(r, Value::Int(2)));
        let g = ev.eval_string("builtins.sub", Path::new("/")).unwrap();
        let r = ev
            .call_n(&g, &[Value::Int(5), Value::Int(3)], Default::default())
            .unwrap();
        assert!(matches!(r, Value::Int(2)));
    });
}

#[test]
fn imports_and_paths() {
    assert_eq!(run("(import ./lib.nix).x"), "1");
    assert_eq!(run("(import /src/lib.nix).f 2"), "3");
    assert_eq!(run("import ./dir"), "42");
    assert_eq!(run("./a/../b"), "/src/b");
    assert_eq!(
        run("\"${./lib.nix}\""),
        "\"/nix/store/11111111111111111111111111111111-lib.nix\""
    );
    assert_eq!(run("./lib.nix + \"x\""), "/src/lib.nixx");
    assert_eq!(
        run("[ (dirOf ./lib.nix) (dirOf \"a\") (dirOf \"/a/b/\") (baseNameOf \"/a/b/\") ]"),
        "[ /src \".\" \"/a/b\" \"b\" ]"
    );
    assert_eq!(
        run("builtins.readDir ./."),
        "{ dir = \"directory\"; \"lib.nix\" = \"regular\"; \"scoped.nix\" = \"regular\"; }"
    );
    assert_eq!(run("builtins.pathExists ./nope"), "false");
    assert_eq!(
        run("scopedImport { injected = 41; } ./scoped.nix"),
        "[ 41 true ]"
    );
    assert_eq!(
        run("builtins.unsafeGetAttrPos \"b\" { a = 1;\n  b = 2; }"),
        "{ column = 3; file = \"«string»\"; line = 2; }"
    );
}

#[test]
fn errors_have_nix_messages() {
    assert_eq!(run("1 + \"a\""), "error: cannot add a string to an integer");
    assert_eq!(
        run("\"a\" + 1"),
        "error: cannot coerce an integer to a string"
    );
    assert_eq!(run("{}.x"), "error: attribute 'x' missing");
    assert_eq!(
        run("let x = x; in x"),
        "error: infinite recursion encountered"
    );
    assert_eq!(
        run("(x: x) 1 2"),
        "error: attempt to call something which is not a function but an integer"
    );
    assert_eq!(
        run("if 1 then 1 else 2"),
        "error: value is an integer while a Boolean was expected"
    );
    assert_eq!(
        run("1 - \"a\""),
        "error: value is a string while an integer was expected"
    );
    assert_eq!(run("1 / 0"), "error: division by zero");
    assert_eq!(
        run("assert 1 == 2; 1"),
        "error: assertion '(1 == 2)' failed"
    );
    assert_eq!(
        run("({a, b}: a) {a=1;}"),
        "error: anonymous function at (string):1:2 called without required argument 'b'"
    );
    assert_eq!(
        run("({a}: a) {a=1; c=1;}"),
        "error: anonymous function at (string):1:2 called with unexpected argument 'c'"
    );
    assert_eq!(
        run("abort \"y\""),
        "error: evaluation aborted with the following error message: 'y'"
    );
    assert_eq!(
        run("9223372036854775807 + 1"),
        "error: integer overflow in adding 9223372036854775807 + 1"
    );
    assert_eq!(
        run("1 < \"a\""),
        "error: cannot compare an integer with a string"
    );
    assert_eq!(
        run("let f = x: f x + 1; in f 1"),
        "error: stack overflow (possible infinite recursion)"
    );
}

#[test]
fn try_eval_catches_only_throw_and_assert() {
    assert_eq!(
        run("builtins.tryEval (throw \"x\")"),
        "{ success = false; value = false; }"
    );
    assert_eq!(
        run("builtins.tryEval (assert false; 1)"),
        "{ success = false; value = false; }"
    );
    assert_eq!(run("builtins.tryEval 1"), "{ success = true; value = 1; }");
    assert_eq!(
        run("builtins.tryEval (1 + \"a\")"),
        "error: cannot add a string to an integer"
    );
}

/// Cheap integer lambdas that `map`, `genList`, `sort` and `foldl'` compute without thunks or
/// frames give Nix's values; everything else keeps the ordinary path.
#[test]
fn speculated_integer_lambdas_match_nix() {
    assert_eq!(
        run("let k = 10; in [ (builtins.sort (a: b: a > b) [3 1 2]) \
             (builtins.foldl' (a: b: a + b * k) 0 [1 2 3]) (builtins.genList (i: i * k) 3) \
             (map (x: x) [1.5 true null]) (map (x: x == 2) [1 2]) ]"),
        "[ [ 3 2 1 ] 60 [ 0 10 20 ] [ 1.5 true null ] [ false true ] ]"
    );
    // Non-integer operands fall back to a real call (and its error).
    assert_eq!(
        run("builtins.sort (a: b: a < b) [ 1 \"x\" ]"),
        "error: cannot compare a string with an integer"
    );
}

/// Selections in lazy positions share values already evaluated and stay suspended otherwise;
/// lookups in small sets (by symbol) and big ones (by name) agree. Expectations from Nix 2.8.
#[test]
fn evaluated_selections_and_lookups_match_nix() {
    assert_eq!(
        run("let x = { a = 1; }; y = [ x.b x.a ]; in builtins.elemAt y 1"),
        "1"
    );
    assert_eq!(
        run("let x = { a = 1; }; l = builtins.seq x [ x.c ]; in builtins.length l"),
        "1"
    );
    assert_eq!(
        run("let x = { a = 1; }; in builtins.seq x [ x.c ]"),
        "error: attribute 'c' missing"
    );
    assert_eq!(
        run("let x = { a = { b = 2; }; }; in builtins.seq x.a.b [ x.a.b (x.a.c or 3) x.a ]"),
        "[ 2 3 { b = 2; } ]"
    );
    assert_eq!(
        run("let s = builtins.listToAttrs (builtins.genList (i: { name = \"n${toString i}\"; value = i; }) 20); in [ s.n13 (s ? n20) ({ a = 1; } ? b) ({ a = 1; b = 2; }.b) ]"),
        "[ 13 false false 2 ]"
    );
}

#[test]
fn laziness() {
    assert_eq!(run("let x = throw \"no\"; in 1"), "1");
    assert_eq!(run("[ (throw \"no\") ]"), "error: no");
    assert_eq!(run("(x: 1) (throw \"no\")"), "1");
    assert_eq!(run("{ a = throw \"no\"; }.b or 2"), "2");
    with_eval_stack(|| {
        let ev = evaluator();
        let v = ev
            .eval_string(
                "{ a = 1 + 1; b = [ (1 + 1) ]; c = { x = 1; }; }",
                Path::new("/"),
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(ev.print_value(&v, false).unwrap()).unwrap(),
            "{ a = <CODE>; b = <CODE>; c = <CODE>; }"
        );
        let v = ev
            .eval_string("rec { a = 1; b = a; c = [a]; }", Path::new("/"))
            .unwrap();
        assert_eq!(
            String::from_utf8(ev.print_value(&v, false).unwrap()).unwrap(),
            "{ a = 1; b = 1; c = <CODE>; }"
        );
    });
}

/// Values taken from Nix 2.8 (`nix-instantiate --eval`, strict where `run` is used).
#[test]
fn unbound_frame_slots_behave_as_bound_ones() {
    assert_eq!(
        run("let f = x: x; in [ ([ f ] == [ f ]) (f 2) ]"),
        "[ true 2 ]"
    );
    assert_eq!(
        run("let f = n: if n == 0 then 0 else g (n - 1); g = n: f n; in f 5"),
        "0"
    );
    assert_eq!(
        run("let b = x: x; a = b; in [ ([ a ] == [ b ]) (a 1) ]"),
        "[ true 1 ]"
    );
    assert_eq!(
        run("rec { f = x: x + 1; g = f 1; }"),
        "{ f = <LAMBDA>; g = 2; }"
    );
    assert_eq!(run("let a = 1 + 1; b = [ a ]; in b"), "[ 2 ]");
    // Slots past the ones that can stay unbound, and aliases across that boundary.
    let many: String = (0..70).map(|i| format!("a{i} = x: x + {i}; ")).collect();
    let src: &'static str = Box::leak(
        format!(
            "let {many} b = a69; c = a1; d = [ (a65 1) ]; in [ (b 1) (c 1) d ([ b ] == [ a69 ]) ]"
        )
        .into_boxed_str(),
    );
    assert_eq!(run(src), "[ 70 2 [ 66 ] true ]");
    with_eval_stack(|| {
        let ev = evaluator();
        let show = |src: &str| {
            let v = ev.eval_string(src, Path::new("/")).unwrap();
            String::from_utf8(ev.print_value(&v, false).unwrap()).unwrap()
        };
        assert_eq!(show("let f = x: x; in { a = f; }"), "{ a = <CODE>; }");
        assert_eq!(
            show("let f = x: x; y = f 1; in builtins.seq y { a = f; }"),
            "{ a = <LAMBDA>; }"
        );
        assert_eq!(
            show("rec { f = x: x; g = f; }"),
            "{ f = <CODE>; g = <CODE>; }"
        );
    });
}

/// A `let` binding functions, or with a binding never read, is freed once nothing outside it
/// refers to it (its own thunks and functions do not keep it alive).
#[test]
fn let_frames_do_not_keep_themselves_alive() {
    with_eval_stack(|| {
        let ev = evaluator();
        let v = ev
            .eval_string(
                "let f = x: x; g = y: f y; unread = 1 + 1; in g",
                Path::new("/"),
            )
            .unwrap();
        let Value::Lambda(g) = &v else {
            panic!("a function")
        };
        let frame = Rc::downgrade(&g.env.0);
        assert_eq!(
            ev.call(&v, Value::Int(3), Span::default())
                .unwrap()
                .type_of(),
            "int"
        );
        assert!(frame.upgrade().is_some(), "alive while `g` is");
        drop(v);
        assert!(frame.upgrade().is_none(), "freed with `g`");
        // Unused defaults of a call's formals.
        let v = ev
            .eval_string(
                "({ a, b ? c, c ? a + 1, d ? x: b }: y: a) { a = 1; }",
                Path::new("/"),
            )
            .unwrap();
        let Value::Lambda(f) = &v else {
            panic!("a function")
        };
        let frame = Rc::downgrade(&f.env.0);
        drop(v);
        assert!(frame.upgrade().is_none(), "freed with the function");
    });
    // A `let` whose bindings refer to it from a set, a list and a thunk handed to a function
    // that dropped it: freed when its body returns, with the call frame it encloses (which
    // holds the argument).
    with_eval_stack(|| {
        let ev = evaluator();
        let g = ev
            .eval_string(
                "let ignore = p: q: q; in x: let a = x + 1; c = [ a ]; d = { inherit a c; }; \
                 h = [ x ]; in ignore h (d.a + 1)",
                Path::new("/"),
            )
            .unwrap();
        let argument = Thunk::done(Value::Int(1));
        let result = ev
            .call(&g, Value::Thunk(argument.clone()), Span::default())
            .unwrap();
        assert!(matches!(result, Value::Int(3)));
        assert_eq!(Rc::strong_count(&argument.0), 1, "the frames are freed");
        // Kept while the result refers to it.
        let g = ev
            .eval_string(
                "x: let a = x + 1; c = [ a ]; d = { inherit a c; }; in d",
                Path::new("/"),
            )
            .unwrap();
        let result = ev
            .call(&g, Value::Thunk(argument.clone()), Span::default())
            .unwrap();
        assert_eq!(Rc::strong_count(&argument.0), 2, "held by the frames");
        assert_eq!(
            ev.print_value(&result, true).unwrap(),
            b"{ a = 2; c = [ 2 ]; }"
        );
        drop(result);
        assert_eq!(Rc::strong_count(&argument.0), 1, "freed with the result");
    });
    assert_eq!(
        run("({ a ? b, b ? c + 1, c ? 1, d ? x: a + x }: [ a b (d 1) ]) { }"),
        "[ 2 2 3 ]"
    );
}

#[test]
fn json_and_api() {
    with_eval_stack(|| {
        let ev = evaluator();
        let v = ev
            .eval_string(
                "{ x = [ 1.5 \"é\" ]; d = { __toString = s: \"hi\"; }; o = { outPath = \"/x\"; }; }",
                Path::new("/"),
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(ev.to_json(&v).unwrap()).unwrap(),
            r#"{"d":"hi","o":"/x","x":[1.5,"é"]}"#
        );
        let f = ev
            .eval_string("{ a, b ? 2 }: a + b", Path::new("/"))
            .unwrap();
        let r = ev
            .auto_call(f, &[("a".into(), AutoArg::Expr("40".into()))])
            .unwrap();
        assert_eq!(
            String::from_utf8(ev.print_value(&r, true).unwrap()).unwrap(),
            "42"
        );
        let v = ev
            .eval_string("{ a.b = [ 1 { c = 5; } ]; }", Path::new("/"))
            .unwrap();
        let r = ev.select_attr_path(v, "a.b.1.c").unwrap();
        assert_eq!(
            String::from_utf8(ev.print_value(&r, true).unwrap()).unwrap(),
            "5"
        );
    });
    assert_eq!(
        parse_search_path("nixpkgs=/a/b:/c:x=https://h/t.tar.gz"),
        vec![
            SearchPathEntry {
                prefix: Some("nixpkgs".into()),
                path: "/a/b".into()
            },
            SearchPathEntry {
                prefix: None,
                path: "/c".into()
            },
            SearchPathEntry {
                prefix: Some("x".into()),
                path: "https://h/t.tar.gz".into()
            },
        ]
    );
}

/// Evaluates strictly and renders the error as the CLI shows it.
fn rendered_error(src: &'static str) -> String {
    with_eval_stack(move || {
        let ev = evaluator();
        match ev
            .eval_string(src, Path::new("/src"))
            .and_then(|v| ev.print_value(&v, true))
        {
            Ok(s) => panic!("expected an error, got {}", String::from_utf8_lossy(&s)),
            Err(e) => ev.render_error(&e),
        }
    })
}

#[test]
fn diagnostic_syntax_error() {
    insta::assert_snapshot!(rendered_error("let\n  a = 1;\n  b = (2 +;\nin a"));
}

#[test]
fn diagnostic_undefined_variable() {
    insta::assert_snapshot!(rendered_error("let\n  value = 1;\nin\n  valeu + 1"));
}

#[test]
fn diagnostic_type_error() {
    insta::assert_snapshot!(rendered_error("let\n  n = 1;\nin\n  if n then 1 else 2"));
}

#[test]
fn diagnostic_missing_attribute() {
    insta::assert_snapshot!(rendered_error(
        "let\n  set = { x = 1; y = 2; };\n  r = { z = set.xx + 1; };\nin\n  r.z"
    ));
}

#[test]
fn diagnostic_infinite_recursion() {
    insta::assert_snapshot!(rendered_error("let\n  a = { b = a.b; };\nin\n  a.b"));
}

/// Traces and warnings reach the options' sink, in order, rendered as Nix 2.8 prints them
/// (the empty hash is Nix's all-zero one).
#[test]
fn traces_and_warnings_go_to_the_message_sink() {
    struct Collected(std::sync::Arc<std::sync::Mutex<Vec<EvalMessage>>>);
    impl EvalMessages for Collected {
        fn report(&self, message: EvalMessage) {
            self.0.lock().unwrap().push(message);
        }
    }
    let collected = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let for_evaluator = collected.clone();
    let value = with_eval_stack(move || {
        let mut opts = EvalOptions::new(Rc::new(FakeStore(kiln_store::store_path::StoreDir::new(
            "/nix/store",
        ))));
        opts.messages = Rc::new(Collected(for_evaluator));
        let ev = Evaluator::new(opts);
        let value = ev
            .eval_string(
                r#"builtins.trace { a = 1; } (builtins.warn "careful\nnow" (builtins.fetchurl { url = "http://127.0.0.1:1/x"; sha256 = ""; }))"#,
                Path::new("/"),
            )
            .and_then(|v| ev.force(&v, kiln_lang::Span::default()).map(|_| ()));
        value.map_err(|e| e.message().to_owned())
    });
    // The fetch fails (no fetcher), after its empty-hash warning.
    assert!(value.is_err());
    let rendered: Vec<String> = collected
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.render())
        .collect();
    assert_eq!(
        rendered,
        [
            "trace: { a = 1; }",
            "evaluation warning: careful\n                    now",
            "warning: found empty hash, assuming 'sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='",
        ]
    );
}

/// `readDir` keeps entry names as bytes: a name that is not UTF-8 is three bytes long here, as
/// in Nix 2.8 (`[ [ 3 "regular" ] [ 3 "directory" ] ]`), not a replacement character.
#[test]
fn read_dir_names_are_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(std::ffi::OsStr::from_bytes(b"a\xffb")), "").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let source = format!(
        "let d = builtins.readDir {}; in map (n: [ (builtins.stringLength n) d.${{n}} ]) (builtins.attrNames d)",
        dir.path().display()
    );
    let printed = with_eval_stack(move || {
        let ev = Evaluator::new(EvalOptions::new(Rc::new(FakeStore(
            kiln_store::store_path::StoreDir::new("/nix/store"),
        ))));
        ev.eval_string(&source, Path::new("/"))
            .and_then(|v| ev.print_value(&v, true))
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .map_err(|e| e.message().to_owned())
    });
    assert_eq!(printed.unwrap(), r#"[ [ 3 "regular" ] [ 3 "directory" ] ]"#);
}

/// The interrupt hook stops an evaluation with its reason, here after 1,000 calls.
#[test]
fn the_interrupt_hook_stops_evaluation() {
    let message = with_eval_stack(|| {
        let mut opts = EvalOptions::new(Rc::new(FakeStore(kiln_store::store_path::StoreDir::new(
            "/nix/store",
        ))));
        let calls = std::cell::Cell::new(0u32);
        opts.interrupt = Some(Rc::new(move || {
            calls.set(calls.get() + 1);
            (calls.get() > 1000).then(|| "budget of 1000 calls used up".to_owned())
        }));
        let ev = Evaluator::new(opts);
        let short = ev
            .eval_string(
                "let f = n: if n == 0 then 0 else f (n - 1); in f 100",
                Path::new("/"),
            )
            .and_then(|v| ev.print_value(&v, true));
        assert_eq!(short.unwrap(), b"0");
        ev.eval_string(
            "let fib = n: if n < 2 then n else fib (n - 1) + fib (n - 2); in fib 30",
            Path::new("/"),
        )
        .and_then(|v| ev.print_value(&v, true))
        .map(|_| ())
        .unwrap_err()
        .message()
        .to_owned()
    });
    assert_eq!(message, "budget of 1000 calls used up");
}

/// Found by the `eval` fuzz target: an infinite list written as JSON on a thread of ordinary
/// size (not `with_eval_stack`) is Nix's stack overflow error. The stack guard reads the real
/// stack pointer, so it holds under a sanitizer's fake stack too.
#[test]
fn an_infinite_list_through_to_json_on_a_small_stack_is_an_error() {
    let message = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(|| {
            let ev = Evaluator::new(EvalOptions::new(Rc::new(FakeStore(
                kiln_store::store_path::StoreDir::new("/nix/store"),
            ))));
            let value = ev
                .eval_string("let x = [ x ]; in x", Path::new("/"))
                .unwrap();
            ev.to_json(&value).unwrap_err().message().to_owned()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(message, "stack overflow (possible infinite recursion)");
}

/// An evaluator's global `builtins` set (which contains itself) is freed with the evaluator.
#[test]
fn the_global_set_goes_with_its_evaluator() {
    let freed = with_eval_stack(|| {
        let ev = Evaluator::new(EvalOptions::new(Rc::new(FakeStore(
            kiln_store::store_path::StoreDir::new("/nix/store"),
        ))));
        let value = ev
            .eval_string("builtins.builtins.builtins", Path::new("/"))
            .unwrap();
        let Value::Attrs(set) = value else {
            panic!("builtins is a set");
        };
        let weak = Rc::downgrade(&set);
        drop(set);
        drop(ev);
        weak.upgrade().is_none()
    });
    assert!(freed);
}
