//! `builtin:unpack` of any bytes as an archive (compressed or not) into a fresh output: it
//! unpacks or fails with an error, and never writes outside the output.
#![no_main]
use kiln_builder::builtin_builders::unpack::{unpack_archive, UnpackOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let archive = dir.path().join("archive");
    let out = dir.path().join("out");
    if std::fs::write(&archive, data).is_err() {
        return;
    }
    let options = UnpackOptions {
        max_unpacked_size: Some(64 << 20),
        ..UnpackOptions::default()
    };
    let _ = unpack_archive(&archive, None, 0, &out, &options);
    let mut beside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the temporary directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    beside.sort();
    assert!(
        beside == ["archive"] || beside == ["archive", "out"],
        "nothing is written beside the output: {beside:?}"
    );
});
