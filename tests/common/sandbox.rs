//! Whether this machine can run sandboxed busybox builds (the tests of `realise` and `lock`).
use std::path::Path;
use std::process::Command;

/// The builder of the sandboxed test builds.
pub const BUSYBOX: &str = "/bin/busybox";

/// Whether busybox and user namespaces are available. Under `CI=true` their absence fails the
/// test (panics); elsewhere it prints why the test skips and returns false.
pub fn sandbox_ready() -> bool {
    let missing = if !Path::new(BUSYBOX).exists() {
        Some("busybox is not installed at /bin/busybox")
    } else if !Command::new("unshare")
        .args(["-Ur", "true"])
        .status()
        .is_ok_and(|status| status.success())
    {
        Some("user namespaces are not available")
    } else {
        None
    };
    match missing {
        None => true,
        Some(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and {reason}")
        }
        Some(reason) => {
            eprintln!("skipping: {reason}");
            false
        }
    }
}
