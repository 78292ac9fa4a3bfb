//! The deep-structure corpus: 100,000 levels of lists, sets, operators and recursion through
//! the parser, the lowering and every builtin that walks a value recursively (printing,
//! `toJSON`, `fromJSON`, `toXML`, `deepSeq`, equality, comparison, `toString`, structured
//! attributes). Each gives a value or an error with a message — never a crash (a signal, a
//! stack overflow abort). Where Nix 2.8 gives a value, kiln gives the same one (checked with
//! `nix-instantiate --eval --strict`); Nix 2.8 refuses some of these ("memory exhausted" in its
//! parser past about 5,000 levels of list, "stack overflow" in `toJSON`, `toXML` and
//! `fromJSON`), where kiln either refuses as well (the parser's nesting limit) or computes the
//! value, whose size the test checks.
use std::process::{Command, Stdio};

const DEPTH: usize = 100_000;

enum Expect {
    /// The printed value (`kiln eval --strict`).
    Value(String),
    /// An error whose message contains this.
    Error(&'static str),
}

fn kiln_eval(source: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deep.nix");
    std::fs::write(&file, source).unwrap();
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["--store"])
        .arg(dir.path().join("store"))
        .args(["eval", "--strict"])
        .arg(&file)
        .env_remove("KILN_PATH")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `let` bindings shared by the runtime-built cases: `l`, a list nested DEPTH deep, and `s`,
/// a set nested DEPTH deep (`{ a = { a = … {} … }; }`).
fn with_deep_values(body: &str) -> String {
    format!(
        "let n = {DEPTH}; l = builtins.foldl' (acc: i: [acc]) [] (builtins.genList (x: x) n); \
         s = builtins.foldl' (acc: i: {{ a = acc; }}) {{}} (builtins.genList (x: x) n); in {body}"
    )
}

fn cases() -> Vec<(&'static str, String, Expect)> {
    use Expect::{Error, Value};
    let joined = |term: &str, op: &str| vec![term; DEPTH].join(op);
    let nested_json_text = "builtins.concatStringsSep \"\" (builtins.genList (_: \"[\") n ++ builtins.genList (_: \"]\") n)";
    vec![
        // The parser and the lowering.
        ("list literal", format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH)), Error("expression nested too deeply")),
        ("parentheses", format!("{}1{}", "(".repeat(DEPTH), ")".repeat(DEPTH)), Error("expression nested too deeply")),
        ("negations", format!("{}true", "!".repeat(DEPTH)), Error("expression nested too deeply")),
        ("minus signs", format!("{}1", "-".repeat(DEPTH)), Error("expression nested too deeply")),
        ("lets", format!("{}0", (0..DEPTH).map(|i| format!("let a{i} = {i}; in ")).collect::<String>()), Error("expression nested too deeply")),
        ("lambdas", format!("{}1", (0..DEPTH).map(|i| format!("x{i}: ")).collect::<String>()), Error("expression nested too deeply")),
        ("interpolations", format!("\"{}x{}\"", "${\"".repeat(DEPTH), "\"}".repeat(DEPTH)), Error("expression nested too deeply")),
        ("conditionals", format!("{}1{}", "if true then ".repeat(DEPTH), " else 0".repeat(DEPTH)), Error("expression nested too deeply")),
        ("a chain of +", joined("1", " + "), Value(DEPTH.to_string())),
        ("a chain of &&", joined("true", " && "), Value("true".into())),
        ("a chain of applications", format!("{}1", "(x: x) ".repeat(DEPTH)), Value("1".into())),
        ("a chain of //", joined("{ }", " // "), Value("{ }".into())),
        // Values built at run time, through each recursing builtin.
        ("printing a deep list", with_deep_values("l"), Value(format!("{}[ ]{}", "[ ".repeat(DEPTH), " ]".repeat(DEPTH)))),
        ("deepSeq of a list", with_deep_values("builtins.deepSeq l 1"), Value("1".into())),
        ("deepSeq of a set", with_deep_values("builtins.deepSeq s 1"), Value("1".into())),
        ("tryEval of deepSeq", with_deep_values("(builtins.tryEval (builtins.deepSeq l true)).success"), Value("true".into())),
        ("equal lists", with_deep_values("l == l"), Value("true".into())),
        ("equal sets", with_deep_values("s == s"), Value("true".into())),
        ("comparing lists", with_deep_values("l < l"), Value("false".into())),
        ("toString of a list", with_deep_values("builtins.toString l"), Value("\"\"".into())),
        ("toJSON of a list", with_deep_values("builtins.stringLength (builtins.toJSON l)"), Value((2 * DEPTH + 2).to_string())),
        ("toJSON of a set", with_deep_values("builtins.stringLength (builtins.toJSON s)"), Value((6 * DEPTH + 2).to_string())),
        ("fromJSON of toJSON", with_deep_values("builtins.fromJSON (builtins.toJSON s) == s"), Value("true".into())),
        ("fromJSON of nested arrays", with_deep_values(&format!("builtins.toJSON (builtins.fromJSON ({nested_json_text})) == {nested_json_text}")), Value("true".into())),
        ("toXML of a set", with_deep_values("builtins.toXML s"), Error("the XML document would be larger than 1024 MiB")),
        ("structured attributes", with_deep_values("builtins.stringLength (derivation { name = \"x\"; system = \"x\"; builder = \"x\"; __structuredAttrs = true; a = s; }).drvPath"), Value("50".into())),
        ("fromTOML of nested arrays", format!("builtins.fromTOML \"a = {}{}\"", "[".repeat(DEPTH), "]".repeat(DEPTH)), Error("while parsing a TOML string")),
        // Values that contain themselves (found by the `eval` fuzz target): Nix 2.8 recurses
        // until its stack overflows; kiln gives the same error, at once for toXML.
        ("toXML of a set that contains itself", "builtins.toXML builtins".into(), Error("stack overflow (possible infinite recursion)")),
        ("toJSON of a list that contains itself", "let x = [ x ]; in builtins.toJSON x".into(), Error("stack overflow (possible infinite recursion)")),
        // Recursion in Nix code.
        ("unbounded recursion", "let f = n: 1 + f (n + 1); in f 0".into(), Error("stack overflow")),
    ]
}

#[test]
fn deep_structures_give_values_or_errors_never_a_crash() {
    let mut failures = Vec::new();
    for (name, source, expect) in cases() {
        let started = std::time::Instant::now();
        let output = kiln_eval(&source);
        eprintln!("{name}: {:.1} s", started.elapsed().as_secs_f64());
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let head = |text: &str| text.chars().take(300).collect::<String>();
        match (output.status.code(), &expect) {
            (None, _) => failures.push(format!("{name}: killed by a signal: {}", head(&stderr))),
            (Some(0), Expect::Value(value)) if stdout == *value => {}
            (Some(1), Expect::Error(message)) if stderr.contains(message) => {}
            (code, _) => failures.push(format!(
                "{name}: exit {code:?}, stdout {:?}, stderr {:?}",
                head(&stdout),
                head(&stderr)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
