//! The Nix parser (rnix) and kiln's lowering to the IR: any bytes give an IR or a syntax
//! error, never a panic.
#![no_main]
use std::path::Path;
use std::rc::Rc;

use kiln_lang::{parse_and_lower, Globals, LowerContext, SourceMap};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut sources = SourceMap::new();
    let file = sources.add("(fuzz)".into(), None, Rc::from(text));
    let globals = Globals::new();
    let cx = LowerContext {
        file,
        display_name: "(fuzz)",
        base_dir: Path::new("/"),
        home_dir: None,
        globals: &globals,
        outer_names: &[],
    };
    let _ = parse_and_lower(text, &cx);
});
