//! NAR reading into a fresh directory: any bytes are restored or refused, nothing is written
//! outside the destination; what was restored dumps back to the bytes it was read from (a
//! NAR is canonical; the stream may go on after it).
#![no_main]
use kiln_store::nar;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let dest = dir.path().join("out");
    if nar::restore(data, &dest).is_err() {
        return;
    }
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the temporary directory")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert_eq!(
        outside,
        ["out"],
        "nothing is written beside the destination"
    );
    let mut dumped = Vec::new();
    nar::dump_path(&dest, &mut dumped).expect("a restored tree dumps");
    // A NAR stream may go on after the archive (the reader stops at its end).
    assert!(
        data.starts_with(&dumped),
        "restore → dump gives the same NAR"
    );
});
