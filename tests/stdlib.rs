//! The standard library as users reach it through `<kiln>`: the pinned CentOS Stream 9
//! bootstrap for both architectures, `-I kiln=PATH` overriding the embedded copy, the `arm64`
//! hint, and the derivation shapes of `fetchurl`, `unpack`, `layer`, `runInRoot` and the RPM
//! helpers (checked with `kiln show-derivation`).
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const X86_64_URL: &str = "https://cloud.centos.org/centos/9-stream/x86_64/images/CentOS-Stream-Container-Base-9-20240715.0.x86_64.tar.xz";
const X86_64_SHA256: &str = "c2a4f505ffa543fa46f9a077d201d54d8d94f431079b5e776c15cb200c03bb73";
const AARCH64_URL: &str = "https://cloud.centos.org/centos/9-stream/aarch64/images/CentOS-Stream-Container-Base-9-20240715.0.aarch64.tar.xz";
const AARCH64_SHA256: &str = "af064c53839e2b54c7a42f7c6d1f4c4ed597e4ba6981ea90a1e6914278dfe855";

fn kiln(store: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .env_remove("KILN_PATH")
        .env_remove("KILN_STORE_DIR")
        .arg("--store")
        .arg(store);
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the kiln binary runs")
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "kiln failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Instantiates `expr` and returns the derivation path it prints.
fn instantiate(store: &Path, expr: &str) -> String {
    succeeded(&run(kiln(store).args(["instantiate", "-E", expr])))
}

/// `show-derivation --recursive` of a derivation: every derivation of its closure by path.
fn closure(store: &Path, drv: &str) -> serde_json::Map<String, Value> {
    let shown = succeeded(&run(kiln(store).args(["show-derivation", "-r", drv])));
    match serde_json::from_str(&shown).expect("show-derivation prints JSON") {
        Value::Object(map) => map,
        other => panic!("show-derivation printed {other}"),
    }
}

fn only_with_builder<'a>(
    derivations: &'a serde_json::Map<String, Value>,
    builder: &str,
) -> &'a Value {
    let found: Vec<_> = derivations
        .values()
        .filter(|drv| drv["builder"] == builder)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {builder} derivation in {derivations:#?}"
    );
    found[0]
}

fn check_centos_stream9(arch: &str, url: &str, sha256: &str) {
    let store = tempfile::tempdir().unwrap();
    let drv = instantiate(
        store.path(),
        &format!("(import <kiln> {{}}).bootstrap.centosStream9 {{ arch = \"{arch}\"; }}"),
    );
    assert!(
        drv.ends_with(&format!("-centos-stream-9-{arch}.drv")),
        "{drv}"
    );
    let derivations = closure(store.path(), &drv);
    assert_eq!(
        derivations.len(),
        3,
        "fetch, unpack, fix-up: {derivations:#?}"
    );

    let fetch = only_with_builder(&derivations, "builtin:fetchurl");
    assert_eq!(fetch["env"]["url"], url);
    assert_eq!(fetch["env"]["outputHash"], sha256);
    assert_eq!(fetch["env"]["outputHashAlgo"], "sha256");
    assert_eq!(fetch["env"]["system"], format!("{arch}-linux"));
    let fetched_path = fetch["outputs"]["out"]["path"].as_str().unwrap();
    assert!(fetched_path.ends_with(url.rsplit('/').next().unwrap()));

    let unpack = only_with_builder(&derivations, "builtin:unpack");
    assert_eq!(unpack["env"]["member"], "layer.tar");
    assert_eq!(unpack["env"]["src"], fetched_path);
    // The unpacked base and the root are content-addressed: no path before they are built.
    assert_eq!(unpack["outputs"]["out"]["hashAlgo"], "r:sha256");
    assert!(unpack["outputs"]["out"].get("path").is_none());

    let fix_up = &derivations[&drv];
    assert_eq!(fix_up["outputs"]["out"]["hashAlgo"], "r:sha256");
    assert_eq!(fix_up["builder"], "/bin/sh");
    assert_eq!(fix_up["args"][0], "-c");
    let script = fix_up["args"][1].as_str().unwrap();
    assert!(
        script.contains("rm -rf \"$out\"/etc/yum.repos.d/*"),
        "{script}"
    );
    assert!(script.contains("/etc/resolv.conf"), "{script}");
    assert!(script.contains("/var/cache/dnf"), "{script}");
    assert!(script.contains("/var/lib/dnf"), "{script}");
    // The fix-up runs inside the unpacked base: a placeholder for its path until the base
    // is built, and the base among its inputs.
    let rootfs = fix_up["env"]["rootfs"].as_str().unwrap();
    assert!(
        rootfs.starts_with('/') && !rootfs.contains("/store/"),
        "{rootfs}"
    );
    let unpack_drv = derivations
        .iter()
        .find(|(_, d)| d["builder"] == "builtin:unpack")
        .map(|(path, _)| path.clone())
        .unwrap();
    assert_eq!(fix_up["inputDrvs"][&unpack_drv], serde_json::json!(["out"]));
    assert!(fix_up["env"].get("__network").is_none());
}

#[test]
fn centos_stream9_x86_64_is_pinned() {
    check_centos_stream9("x86_64", X86_64_URL, X86_64_SHA256);
}

#[test]
fn centos_stream9_aarch64_is_pinned() {
    check_centos_stream9("aarch64", AARCH64_URL, AARCH64_SHA256);
}

#[test]
fn arm64_is_refused_with_a_hint() {
    let store = tempfile::tempdir().unwrap();
    let output = run(kiln(store.path()).args([
        "instantiate",
        "-E",
        "(import <kiln> {}).bootstrap.centosStream9 { arch = \"arm64\"; }",
    ]));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("use `aarch64`"), "{stderr}");
}

#[test]
fn include_option_overrides_the_embedded_library() {
    let store = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    std::fs::write(
        other.path().join("default.nix"),
        "{ ... }: { who = \"override\"; }",
    )
    .unwrap();
    let expr = "(import <kiln> {}).who or \"embedded\"";
    let embedded = run(kiln(store.path()).args(["eval", "-E", expr]));
    assert_eq!(succeeded(&embedded), "\"embedded\"");
    let include = format!("kiln={}", other.path().display());
    let overridden = run(kiln(store.path()).args(["-I", &include, "eval", "-E", expr]));
    assert_eq!(succeeded(&overridden), "\"override\"");
    let from_env = run(kiln(store.path())
        .env("KILN_PATH", &include)
        .args(["eval", "-E", expr]));
    assert_eq!(succeeded(&from_env), "\"override\"");
}

#[test]
fn the_embedded_library_is_written_under_the_store_root() {
    let store = tempfile::tempdir().unwrap();
    succeeded(&run(kiln(store.path()).args([
        "eval",
        "-E",
        "import <kiln>",
    ])));
    let dir = kiln::stdlib::directory_under(store.path());
    assert!(dir.join("default.nix").is_file(), "{}", dir.display());
    let shown = succeeded(&run(kiln(store.path()).args(["eval", "-E", "<kiln>"])));
    assert_eq!(shown, dir.display().to_string());
}

#[test]
fn fetchurl_shapes() {
    let store = tempfile::tempdir().unwrap();
    let drv = instantiate(
        store.path(),
        r##"(import <kiln> { system = "x86_64-linux"; }).fetchurl {
             urls = [ "http://a.example/f.tar" "http://b.example/f.tar" ];
             hash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
           }"##,
    );
    let derivations = closure(store.path(), &drv);
    let fetch = &derivations[&drv];
    assert_eq!(fetch["builder"], "builtin:fetchurl");
    assert_eq!(fetch["env"]["url"], "http://a.example/f.tar");
    assert_eq!(fetch["env"]["urls"], "http://b.example/f.tar");
    assert_eq!(fetch["env"]["name"], "f.tar");
    assert_eq!(fetch["env"]["outputHashMode"], "flat");
    assert_eq!(fetch["outputs"]["out"]["hashAlgo"], "sha256");
    assert!(fetch["env"].get("executable").is_none());

    let executable = instantiate(
        store.path(),
        r##"(import <kiln> {}).fetchurl {
             url = "http://a.example/tool"; name = "tool"; executable = true;
             sha256 = "0000000000000000000000000000000000000000000000000000";
           }"##,
    );
    let shown = closure(store.path(), &executable);
    assert_eq!(shown[&executable]["env"]["executable"], "1");
    assert_eq!(shown[&executable]["env"]["outputHashMode"], "recursive");
    assert_eq!(shown[&executable]["outputs"]["out"]["hashAlgo"], "r:sha256");

    let unpinned = run(kiln(store.path()).args([
        "instantiate",
        "-E",
        "(import <kiln> {}).fetchurl { url = \"http://a.example/x\"; }",
    ]));
    assert_eq!(unpinned.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unpinned.stderr).contains("needs a `sha256` or `hash`"));
}

#[test]
fn unpack_layer_and_run_in_root_shapes() {
    let store = tempfile::tempdir().unwrap();
    let drv = instantiate(
        store.path(),
        r##"let k = import <kiln> { system = "x86_64-linux"; };
               files = k.layer { name = "etc-files"; files = {
                 "etc/os-release" = "NAME=test\n";
                 "bin/hello" = { text = "#!/bin/sh\necho hi\n"; executable = true; };
               }; };
               root = k.unpack { src = k.writeText "root.tar.xz" "not really"; stripComponents = 1; };
           in k.runInRoot {
             name = "step"; rootfs = [ files root ]; script = "echo hi > $out";
             env.GREETING = "hello"; network = true;
           }"##,
    );
    let derivations = closure(store.path(), &drv);
    let step = &derivations[&drv];
    assert_eq!(step["builder"], "/bin/sh");
    assert_eq!(step["args"], serde_json::json!(["-c", "echo hi > $out"]));
    assert_eq!(step["env"]["__network"], "1");
    assert_eq!(step["env"]["GREETING"], "hello");
    let rootfs: Vec<&str> = step["env"]["rootfs"].as_str().unwrap().split(' ').collect();
    assert_eq!(rootfs.len(), 2);
    assert!(
        rootfs[0].ends_with("-etc-files"),
        "the layer is on top: {rootfs:?}"
    );
    assert!(
        rootfs[1].ends_with("-root"),
        "unpack names its output after src: {rootfs:?}"
    );

    let unpacks: Vec<_> = derivations
        .values()
        .filter(|d| d["builder"] == "builtin:unpack")
        .collect();
    assert_eq!(unpacks.len(), 2);
    let layer = unpacks
        .iter()
        .find(|d| d["env"]["name"] == "etc-files")
        .unwrap();
    let archive = layer["env"]["src"].as_str().unwrap();
    assert!(archive.ends_with("-etc-files.tar"), "{archive}");
    assert_eq!(layer["inputSrcs"], serde_json::json!([archive]));
    let root = unpacks.iter().find(|d| d["env"]["name"] == "root").unwrap();
    assert_eq!(root["env"]["stripComponents"], "1");
    assert!(root["env"].get("member").is_none());
}

/// The tar archive `layer` writes (NUL-free, see stdlib/layer.nix) must read back as the
/// given files with the given modes, and `kiln realise` must unpack it into that directory.
#[test]
fn layer_archive_lists_the_files_and_realises() {
    let store = tempfile::tempdir().unwrap();
    let long_name = format!("deep/{}/file.txt", "d".repeat(80));
    let expr = format!(
        r##"(import <kiln> {{}}).layer {{ name = "l"; files = {{
             "etc/os-release" = "NAME=test\n";
             "bin/hello" = {{ text = "#!/bin/sh\necho hi\n"; executable = true; }};
             "{long_name}" = "long";
           }}; }}"##
    );
    let drv = instantiate(store.path(), &expr);
    let derivations = closure(store.path(), &drv);
    let logical = derivations[&drv]["env"]["src"].as_str().unwrap().to_owned();
    let name = logical.rsplit('/').next().unwrap();
    let archive = std::fs::read(store.path().join("store").join(name)).unwrap();
    assert!(!archive.contains(&0), "no NUL byte");
    let mut entries = Vec::new();
    for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap();
        let parts: Vec<String> = path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let mode = entry.header().mode().unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
        entries.push((parts.join("/"), mode, text));
    }
    let deep = format!("deep/{}", "d".repeat(80));
    let expected = vec![
        ("bin".to_owned(), 0o755, String::new()),
        ("deep".to_owned(), 0o755, String::new()),
        (deep, 0o755, String::new()),
        ("etc".to_owned(), 0o755, String::new()),
        (
            "bin/hello".to_owned(),
            0o755,
            "#!/bin/sh\necho hi\n".to_owned(),
        ),
        (long_name.clone(), 0o644, "long".to_owned()),
        ("etc/os-release".to_owned(), 0o644, "NAME=test\n".to_owned()),
    ];
    assert_eq!(entries, expected);

    let built = succeeded(&run(kiln(store.path()).args([
        "realise",
        "--no-out-link",
        "-E",
        &expr,
    ])));
    let out = Path::new(built.lines().last().unwrap());
    let hello = out.join("bin/hello");
    assert_eq!(
        std::fs::read_to_string(&hello).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&hello).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::read_to_string(out.join("etc/os-release")).unwrap(),
        "NAME=test\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join(&long_name)).unwrap(),
        "long"
    );

    let too_long = format!(
        "(import <kiln> {{}}).layer {{ name = \"l\"; files.\"{}\" = \"x\"; }}",
        "a".repeat(100)
    );
    let refused = run(kiln(store.path()).args(["instantiate", "-E", &too_long]));
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("longer than 99 bytes"));
}

#[test]
fn alma9_pins_every_rpm_and_refuses_a_stale_lock() {
    let store = tempfile::tempdir().unwrap();
    let lock = r##"{ arch = "x86_64"; release = "9.4"; request = [ "bash" "coreutils" ];
        repositories = [ ];
        packages = [
          { name = "bash"; epoch = "0"; version = "5.1.8"; release = "9.el9"; arch = "x86_64";
            url = "https://vault.almalinux.org/9.4/BaseOS/x86_64/os/Packages/bash-5.1.8-9.el9.x86_64.rpm";
            sha256 = "1111111111111111111111111111111111111111111111111111111111111111"; }
          { name = "coreutils"; epoch = "0"; version = "8.32"; release = "35.el9"; arch = "x86_64";
            url = "https://vault.almalinux.org/9.4/BaseOS/x86_64/os/Packages/coreutils-8.32-35.el9.x86_64.rpm";
            sha256 = "2222222222222222222222222222222222222222222222222222222222222222"; }
        ]; }"##;
    let drv = instantiate(
        store.path(),
        &format!(
            "(import <kiln> {{}}).bootstrap.alma9 {{ arch = \"x86_64\"; packages = [ \"coreutils\" \"bash\" ]; lock = {lock}; }}"
        ),
    );
    assert!(drv.ends_with("-almalinux-9.4-x86_64.drv"), "{drv}");
    let derivations = closure(store.path(), &drv);
    let install = &derivations[&drv];
    let rpms: Vec<&str> = install["env"]["rpms"]
        .as_str()
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(rpms.len(), 2);
    assert!(
        rpms[0].ends_with("-bash-5.1.8-9.el9.x86_64.rpm"),
        "{rpms:?}"
    );
    let fetches: Vec<_> = derivations
        .values()
        .filter(|d| d["builder"] == "builtin:fetchurl")
        .map(|d| d["env"]["outputHash"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fetches.len(), 3, "two RPMs and the container base");
    assert!(install["args"][1]
        .as_str()
        .unwrap()
        .contains("--disablerepo='*'"));
    assert!(
        install["env"].get("__network").is_none(),
        "installing is offline"
    );

    let stale = run(kiln(store.path()).args([
        "instantiate",
        "-E",
        &format!(
            "(import <kiln> {{}}).bootstrap.alma9 {{ arch = \"x86_64\"; packages = [ \"bash\" ]; lock = {lock}; }}"
        ),
    ]));
    assert_eq!(stale.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&stale.stderr);
    assert!(
        stderr.contains("lock is stale") && stderr.contains("kiln lock"),
        "{stderr}"
    );
}

#[test]
fn rpm_repositories_are_pinned_to_the_vault() {
    let store = tempfile::tempdir().unwrap();
    let shown = succeeded(&run(kiln(store.path()).args([
        "eval",
        "--json",
        "--strict",
        "-E",
        "map (r: r.baseurl) ((import <kiln> {}).rpm.repositories { arch = \"aarch64\"; })",
    ])));
    assert_eq!(
        shown,
        r##"["https://vault.almalinux.org/9.4/BaseOS/aarch64/os/","https://vault.almalinux.org/9.4/AppStream/aarch64/os/"]"##
    );
}

/// A `docker save` tarball whose layer holds what real container bases ship besides files:
/// `/dev/console` and `/dev/null` (character devices) and a fifo.
fn base_with_device_nodes() -> Vec<u8> {
    let mut layer = tar::Builder::new(Vec::new());
    let mut add = |name: &str, entry_type: tar::EntryType, major: u32, minor: u32, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(entry_type);
        header.set_size(data.len() as u64);
        header.set_mode(if entry_type.is_dir() { 0o755 } else { 0o600 });
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        header.set_cksum();
        layer.append_data(&mut header, name, data).unwrap();
    };
    add("dev/", tar::EntryType::Directory, 0, 0, b"");
    add("dev/console", tar::EntryType::Char, 5, 1, b"");
    add("dev/null", tar::EntryType::Char, 1, 3, b"");
    add("run/initctl", tar::EntryType::Fifo, 0, 0, b"");
    add(
        "etc/os-release",
        tar::EntryType::Regular,
        0,
        0,
        b"ID=centos\n",
    );
    let layer = layer.into_inner().unwrap();
    let mut outer = tar::Builder::new(Vec::new());
    let mut add_file = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        outer.append_data(&mut header, name, data).unwrap();
    };
    add_file("abcd/layer.tar", &layer);
    add_file(
        "manifest.json",
        br#"[{"Config":"c.json","RepoTags":["b:1"],"Layers":["abcd/layer.tar"]}]"#,
    );
    outer.into_inner().unwrap()
}

/// Item of the CentOS bootstrap: a base whose layer holds device nodes unpacks (they are
/// skipped with warnings naming them) and registers.
#[test]
fn a_base_layer_with_device_nodes_unpacks_and_registers() {
    let store = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base.tar");
    std::fs::write(&base, base_with_device_nodes()).unwrap();
    let expr = format!(
        r#"(import <kiln> {{}}).unpack {{ src = {}; member = "layer.tar"; name = "base"; }}"#,
        base.display()
    );
    let output = run(kiln(store.path()).args(["realise", "--no-out-link", "-E", &expr]));
    let built = succeeded(&output);
    let out = Path::new(built.lines().last().unwrap());
    assert_eq!(
        std::fs::read_to_string(out.join("etc/os-release")).unwrap(),
        "ID=centos\n"
    );
    let log = succeeded(&run(kiln(store.path()).args(["log", out.to_str().unwrap()])));
    for node in ["dev/console", "dev/null", "run/initctl"] {
        assert!(
            std::fs::symlink_metadata(out.join(node)).is_err(),
            "{node} reached the store"
        );
        assert!(log.contains(&format!("warning: {node}")), "{log}");
    }
    succeeded(&run(kiln(store.path()).args(["verify", "--check-contents"])));
}
