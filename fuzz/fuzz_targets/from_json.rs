//! `builtins.fromJSON` on any bytes: a value or an error, never a panic; and `toJSON` after
//! `fromJSON` settles after one round: the text written for what the first round wrote is
//! written again unchanged. (Not after the first: as in Nix 2.8, the float `-0.0` is written
//! `-0`, which reads back as the integer 0.)
#![no_main]
use libfuzzer_sys::fuzz_target;

mod eval_budget;

#[global_allocator]
static ALLOCATOR: eval_budget::CountingAllocator = eval_budget::CountingAllocator;

/// One, two and three rounds of `toJSON (fromJSON …)` over the input.
const ROUND: &str = "builtins.toJSON (builtins.fromJSON (builtins.readFile /input))";
const TWO_ROUNDS: &str = "builtins.toJSON (builtins.fromJSON (builtins.toJSON (builtins.fromJSON (builtins.readFile /input))))";
const THREE_ROUNDS: &str = "builtins.toJSON (builtins.fromJSON (builtins.toJSON (builtins.fromJSON (builtins.toJSON (builtins.fromJSON (builtins.readFile /input))))))";

fn text(ev: &kiln_eval::Evaluator, source: &str) -> Option<Vec<u8>> {
    match eval_budget::evaluate(ev, source).ok()? {
        kiln_eval::Value::String(s) => Some(s.as_bytes().to_vec()),
        _ => panic!("toJSON gives a string"),
    }
}

fn main_check(data: &[u8]) {
    let ev = eval_budget::evaluator(&[("/input", data.to_vec())]);
    if text(&ev, ROUND).is_none() {
        return;
    }
    let twice = text(&ev, TWO_ROUNDS).expect("what toJSON wrote parses");
    let thrice = text(&ev, THREE_ROUNDS).expect("what toJSON wrote parses");
    assert_eq!(
        twice, thrice,
        "toJSON after fromJSON settles after one round"
    );
}

fuzz_target!(|data: &[u8]| main_check(data));
