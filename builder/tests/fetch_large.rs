//! A large download streams to disk with bounded memory. It runs alone in its own test binary so
//! that the process's peak resident size (`VmHWM`) measures this download only.

mod fetch_support;

use std::collections::BTreeMap;
use std::fs;

use fetch_support::{pattern_byte, Reply, TestServer};
use kiln_builder::builtin_builders::{fetchurl, FetchOptions};
use sha2::Digest;

fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn a_large_body_streams_with_bounded_memory() {
    const LEN: u64 = 128 * 1024 * 1024;
    let server = TestServer::start();
    server.route("/large.bin", vec![Reply::Generated { len: LEN }]);

    let mut hasher = sha2::Sha256::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut offset = 0;
    while offset < LEN {
        for (i, byte) in chunk.iter_mut().enumerate() {
            *byte = pattern_byte(offset + i as u64);
        }
        hasher.update(&chunk);
        offset += chunk.len() as u64;
    }
    let expected = format!(
        "sha256-{}",
        data_encoding::BASE64.encode(&hasher.finalize())
    );
    drop(chunk);

    let env: BTreeMap<String, String> =
        [("url", server.url("/large.bin")), ("outputHash", expected)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("large.bin");
    let before = peak_rss_kib();
    let outcome = fetchurl(&env, &out, &FetchOptions::default()).unwrap();
    let after = peak_rss_kib();
    assert_eq!(outcome.bytes, LEN);
    assert_eq!(fs::metadata(&out).unwrap().len(), LEN);
    let growth_mib = (after.saturating_sub(before)) / 1024;
    println!("peak RSS before {before} KiB, after {after} KiB");
    assert!(
        growth_mib < 48,
        "fetching {} MiB raised the peak RSS by {growth_mib} MiB",
        LEN >> 20
    );
}
