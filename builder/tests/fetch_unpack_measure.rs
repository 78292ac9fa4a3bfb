//! A by-hand measurement, not part of the normal test run: fetch an archive with
//! `builtin:fetchurl`, then unpack it with `builtin:unpack`, as `kiln realise` does for a
//! container base tarball, printing the wall time of each step. Run it under `/usr/bin/time -v`
//! for the peak RSS (`KILN_MEASURE_XZ_THREADS` sets the xz decoder threads; default: one per
//! CPU):
//!
//! ```text
//! KILN_MEASURE_URL=http://127.0.0.1:8000/rootfs.tar.xz KILN_MEASURE_HASH=sha256-... \
//!   cargo test --release -p kiln-builder --test fetch_unpack_measure -- --ignored --nocapture
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use kiln_builder::builtin_builders::{fetchurl, unpack_archive, FetchOptions, UnpackOptions};

#[test]
#[ignore = "a measurement: needs KILN_MEASURE_URL and KILN_MEASURE_HASH"]
fn fetch_then_unpack() {
    let url = std::env::var("KILN_MEASURE_URL").expect("KILN_MEASURE_URL");
    let hash = std::env::var("KILN_MEASURE_HASH").expect("KILN_MEASURE_HASH");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let env: BTreeMap<String, String> = [("url", url), ("outputHash", hash)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let started = Instant::now();
    let fetched = fetchurl(&env, &archive, &FetchOptions::default()).unwrap();
    let fetch_time = started.elapsed();
    let peak_after_fetch = peak_rss();
    let unpack_started = Instant::now();
    let options = UnpackOptions {
        xz_threads: std::env::var("KILN_MEASURE_XZ_THREADS")
            .ok()
            .and_then(|threads| threads.parse().ok())
            .unwrap_or(0),
        ..UnpackOptions::default()
    };
    let report = unpack_archive(&archive, None, 0, &dir.path().join("out"), &options).unwrap();
    let unpack_time = unpack_started.elapsed();
    println!(
        "fetch: {} bytes in {:.2} s ({peak_after_fetch}); unpack: {} entries, {} bytes in {:.2} s ({}); total {:.2} s",
        fetched.bytes,
        fetch_time.as_secs_f64(),
        report.entries,
        report.bytes,
        unpack_time.as_secs_f64(),
        peak_rss(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
#[ignore = "a measurement: needs KILN_MEASURE_FILE"]
fn decompress_only() {
    let file = std::fs::File::open(std::env::var("KILN_MEASURE_FILE").unwrap()).unwrap();
    let threads = std::env::var("KILN_MEASURE_XZ_THREADS")
        .ok()
        .and_then(|threads| threads.parse().ok())
        .unwrap_or(2);
    let started = Instant::now();
    let (compression, mut reader) =
        kiln_builder::builtin_builders::unpack::compression::decompressing_reader(file, threads)
            .unwrap();
    let bytes = if std::env::var_os("KILN_MEASURE_TAR").is_some() {
        // Walk the tar entries too, reading every entry's data.
        let mut archive = tar::Archive::new(reader);
        let mut total = 0;
        for entry in archive.entries().unwrap() {
            total += std::io::copy(&mut entry.unwrap(), &mut std::io::sink()).unwrap();
        }
        total
    } else {
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap()
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak = status
        .lines()
        .find(|line| line.starts_with("VmHWM"))
        .unwrap();
    println!(
        "{compression}, {threads} threads: {bytes} bytes in {:.2} s; {peak}",
        started.elapsed().as_secs_f64()
    );
}

/// The `VmHWM` line of this process: its peak resident size so far.
fn peak_rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM"));
    line.unwrap_or("VmHWM: unknown")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
