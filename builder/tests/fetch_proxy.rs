//! `builtin:fetchurl` honours `http_proxy` and `no_proxy`. The variables are read when the HTTP
//! client is built, so this test lives alone in its own test binary (its own process), where
//! setting them cannot disturb other tests.

mod fetch_support;

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use fetch_support::{Reply, TestServer};
use kiln_builder::builtin_builders::{fetchurl, FetchOptions};

const HELLO_SRI: &str = "sha256-WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM=";

#[test]
fn proxy_variables_are_honoured() {
    // A host name that cannot resolve: only a proxy can answer for it.
    let proxied_url = "http://kiln-origin.invalid/file.txt";
    let proxy = TestServer::start();
    proxy.route("/file.txt", vec![Reply::ok(b"hello\n")]);
    let origin = TestServer::start();
    origin.route("/direct.txt", vec![Reply::ok(b"hello\n")]);

    for name in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "https_proxy",
        "all_proxy",
    ] {
        std::env::remove_var(name);
    }
    std::env::set_var("http_proxy", format!("http://{}", proxy.addr()));
    std::env::set_var("no_proxy", "127.0.0.1");

    let options = FetchOptions {
        attempts_per_url: 1,
        initial_backoff: Duration::from_millis(10),
        ..FetchOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let env = |url: &str| -> BTreeMap<String, String> {
        [("url", url), ("outputHash", HELLO_SRI)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };

    let through_proxy = dir.path().join("proxied");
    fetchurl(&env(proxied_url), &through_proxy, &options).unwrap();
    assert_eq!(fs::read(&through_proxy).unwrap(), b"hello\n");
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1);
    // A proxy receives the absolute URL as the request target.
    assert_eq!(requests[0].target, proxied_url);
    assert!(requests[0]
        .header("user-agent")
        .is_some_and(|agent| agent.starts_with("kiln/")));

    // 127.0.0.1 is in no_proxy: fetched directly, the proxy sees nothing more.
    let direct = dir.path().join("direct");
    fetchurl(&env(&origin.url("/direct.txt")), &direct, &options).unwrap();
    assert_eq!(origin.hits("/direct.txt"), 1);
    assert_eq!(proxy.requests().len(), 1);
}
