//! `builtins.fromTOML` on any bytes: a value (which prints as JSON) or an error, never a
//! panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod eval_budget;

#[global_allocator]
static ALLOCATOR: eval_budget::CountingAllocator = eval_budget::CountingAllocator;

fuzz_target!(|data: &[u8]| {
    let ev = eval_budget::evaluator(&[("/input", data.to_vec())]);
    if let Ok(value) = eval_budget::evaluate(&ev, "builtins.fromTOML (builtins.readFile /input)") {
        let _ = ev.print_value(&value, true);
        let _ = ev.to_json(&value);
    }
});
