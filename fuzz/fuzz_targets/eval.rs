//! The evaluator on any program, under a budget (see `eval_budget`): the value, printed
//! strictly, as JSON and as XML, or an error — never a panic, a hang or unbounded memory.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod eval_budget;

#[global_allocator]
static ALLOCATOR: eval_budget::CountingAllocator = eval_budget::CountingAllocator;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    if !eval_budget::has_only_small_numbers(source) {
        return;
    }
    let ev = eval_budget::evaluator(&[("/file.nix", b"{ a = 1; b = [ 2 ]; }".to_vec())]);
    let Ok(value) = eval_budget::evaluate(&ev, source) else {
        return;
    };
    let _ = ev.print_value(&value, true);
    let _ = ev.to_json(&value);
    let _ = ev.print_xml(&value, true, true);
});
