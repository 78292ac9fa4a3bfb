//! `builtins.fromJSON` on any bytes: a value or an error, never a panic; and what it parses,
//! written back with `toJSON` and parsed again, writes the same text (printing is stable).
#![no_main]
use libfuzzer_sys::fuzz_target;

mod eval_budget;

#[global_allocator]
static ALLOCATOR: eval_budget::CountingAllocator = eval_budget::CountingAllocator;

fuzz_target!(|data: &[u8]| {
    let ev = eval_budget::evaluator(&[("/input", data.to_vec())]);
    let parsed = "builtins.fromJSON (builtins.readFile /input)";
    let Ok(value) = eval_budget::evaluate(&ev, parsed) else {
        return;
    };
    let Ok(once) = ev.to_json(&value) else {
        return;
    };
    let again = eval_budget::evaluate(
        &ev,
        "builtins.toJSON (builtins.fromJSON (builtins.toJSON (builtins.fromJSON (builtins.readFile /input))))",
    )
    .expect("what toJSON wrote parses");
    let kiln_eval::Value::String(again) = again else {
        panic!("toJSON gives a string");
    };
    assert_eq!(once, again.as_bytes(), "toJSON after fromJSON is stable");
});
