//! `kiln.oci` and `kiln.dockerArchive` checked with the container tools of Debian: `skopeo
//! inspect` and `skopeo copy … docker-archive:` accept the image, `umoci unpack --rootless`
//! gives back a tree equal to the root it was made from (names, modes, contents, symbolic
//! links), the same expression built in two stores gives the same bytes (manifest digest
//! included), and a two-layer image's whiteouts delete files and hide a directory of the layer
//! below when unpacked. Needs busybox, user namespaces, skopeo and umoci (under CI=true their
//! absence fails the tests).
mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::sandbox::sandbox_ready;

/// A busybox root (built in the sandbox) and images of it.
const IMAGES: &str = r#"
let
  kiln = import <kiln> { };
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path {
    name = "busybox";
    path = binDir;
    filter = path: type: baseNameOf path == "busybox";
  };
  root = derivation {
    name = "busybox-root";
    system = builtins.currentSystem;
    builder = "${busybox}/busybox";
    args = [ "sh" "-c" ''
      set -e
      bb=${busybox}/busybox
      $bb mkdir -p $out/bin $out/etc $out/root $out/usr/share/doc
      $bb cp $bb $out/bin/busybox
      for applet in sh ls cat; do $bb ln -s busybox $out/bin/$applet; done
      $bb ln -s ../../bin/busybox $out/usr/share/doc/relative-link
      echo 'ID=kiln-busybox' > $out/etc/os-release
      echo motd > $out/etc/motd
      echo 'export PS1=root' > $out/root/.profile
      echo keep > $out/root/.keep-me-not
      $bb chmod 0700 $out/root
      $bb chmod 0755 $out/bin/busybox
    '' ];
  };
  config = {
    Cmd = [ "/bin/sh" ];
    Env = [ "PATH=/bin" ];
    WorkingDir = "/root";
    Labels = { "org.example.made-by" = "kiln"; };
  };
  # Deletes /etc/motd, hides /root's old contents, adds files.
  top = kiln.layer {
    name = "top";
    files = {
      "etc/.wh.motd" = "";
      "etc/added" = "by the top layer\n";
      "root/.wh..wh..opq" = "";
      "root/new" = "only this\n";
    };
  };
in {
  inherit root top;
  image = kiln.oci { name = "kiln/busybox"; tag = "1.0"; rootfs = root; inherit config; };
  zstd = kiln.oci { name = "kiln/busybox"; rootfs = root; compression = "zstd"; };
  layered = kiln.oci { name = "kiln/layered"; rootfs = [ top root ]; };
  archive = kiln.dockerArchive { name = "kiln/busybox"; tag = "1.0"; rootfs = root; inherit config; };
}
"#;

fn tool_ready(name: &str) -> bool {
    let found = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true and {name} is not installed (apt-get install {name})");
        }
        eprintln!("skipping: {name} is not installed");
    }
    found
}

fn ready() -> bool {
    sandbox_ready() && tool_ready("skopeo") && tool_ready("umoci")
}

struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let work = Work {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(work.path().join("images.nix"), IMAGES).unwrap();
        work
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Realises `attr` into the store `store`; returns the output's path.
    fn realise(&self, store: &str, attr: &str) -> PathBuf {
        let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("--store")
            .arg(self.path().join(store))
            .args(["realise", "--no-out-link", "-A", attr, "images.nix"])
            .current_dir(self.path())
            .env_remove("KILN_STORE_DIR")
            .output()
            .unwrap();
        PathBuf::from(ok(&output, "kiln realise").trim())
    }
}

fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    ok(&output, &format!("{program} {args:?}"))
}

/// What a tree holds: each path with its kind, permission bits and contents (or link target).
fn tree(root: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, found: &mut BTreeMap<String, (char, u32, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let metadata = std::fs::symlink_metadata(&path).unwrap();
            let mode = metadata.permissions().mode() & 0o7777;
            if metadata.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                found.insert(name, ('l', 0, target.into_os_string().into_encoded_bytes()));
            } else if metadata.is_dir() {
                found.insert(name, ('d', mode, Vec::new()));
                walk(root, &path, found);
            } else {
                found.insert(name, ('f', mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(root, root, &mut found);
    found
}

fn unpack(image: &Path, tag: &str, into: &Path) -> PathBuf {
    run(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:{tag}", image.display()),
            into.to_str().unwrap(),
        ],
    );
    into.join("rootfs")
}

#[test]
fn skopeo_accepts_the_image_and_umoci_unpacks_the_root_it_was_made_from() {
    if !ready() {
        return;
    }
    let work = Work::new();
    let root = work.realise("store", "root");
    let image = work.realise("store", "image");
    let reference = format!("oci:{}", image.display());
    let inspected: serde_json::Value =
        serde_json::from_str(&run("skopeo", &["inspect", &reference])).unwrap();
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(inspected["Created"], "1970-01-01T00:00:01Z");
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(inspected["Env"][0], "PATH=/bin");
    assert_eq!(inspected["Labels"]["org.example.made-by"], "kiln");
    let config: serde_json::Value = serde_json::from_str(&run(
        "skopeo",
        &["inspect", "--config", &format!("{reference}:1.0")],
    ))
    .unwrap();
    assert_eq!(config["config"]["Cmd"][0], "/bin/sh");
    assert_eq!(config["config"]["WorkingDir"], "/root");

    let archive = work.path().join("copied.tar");
    run(
        "skopeo",
        &[
            "copy",
            &reference,
            &format!("docker-archive:{}:kiln/busybox:1.0", archive.display()),
        ],
    );
    let copied: serde_json::Value = serde_json::from_str(&run(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", archive.display())],
    ))
    .unwrap();
    assert_eq!(copied["Layers"].as_array().unwrap().len(), 1);

    let unpacked = unpack(&image, "1.0", &work.path().join("unpacked"));
    let (expected, got) = (tree(&root), tree(&unpacked));
    assert!(expected.contains_key("usr/share/doc/relative-link"));
    assert_eq!(expected["root"].1, 0o700);
    assert_eq!(got, expected, "the unpacked image differs from the root");
}

#[test]
fn the_same_expression_gives_the_same_image_in_another_store() {
    if !ready() {
        return;
    }
    let work = Work::new();
    let first = work.realise("store-a", "image");
    let second = work.realise("store-b", "image");
    let (first_tree, second_tree) = (tree(&first), tree(&second));
    assert_eq!(first_tree, second_tree, "the two builds differ");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let inspected: serde_json::Value = serde_json::from_str(&run(
        "skopeo",
        &["inspect", &format!("oci:{}", second.display())],
    ))
    .unwrap();
    assert_eq!(inspected["Digest"], digest);
    // And a rebuild in the same store compares equal (`--check` compares NAR hashes).
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--store")
        .arg(work.path().join("store-a"))
        .args(["realise", "--check", "-A", "image", "images.nix"])
        .current_dir(work.path())
        .env_remove("KILN_STORE_DIR")
        .output()
        .unwrap();
    ok(&output, "kiln realise --check");
    // The docker archive too.
    let first = std::fs::read(work.realise("store-a", "archive")).unwrap();
    let second = std::fs::read(work.realise("store-b", "archive")).unwrap();
    assert!(first == second, "the two docker archives differ");
}

#[test]
fn a_two_layer_image_applies_its_whiteouts_when_unpacked() {
    if !ready() {
        return;
    }
    let work = Work::new();
    let image = work.realise("store", "layered");
    let inspected: serde_json::Value = serde_json::from_str(&run(
        "skopeo",
        &["inspect", &format!("oci:{}", image.display())],
    ))
    .unwrap();
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);
    let rootfs = unpack(&image, "latest", &work.path().join("unpacked"));
    assert!(!rootfs.join("etc/motd").exists(), "the whiteout deleted it");
    assert!(!rootfs.join("etc/.wh.motd").exists());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/os-release")).unwrap(),
        "ID=kiln-busybox\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/added")).unwrap(),
        "by the top layer\n"
    );
    let in_root: Vec<String> = std::fs::read_dir(rootfs.join("root"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        in_root,
        ["new"],
        "the opaque directory hides the layer below"
    );
    assert!(rootfs.join("bin/busybox").is_file());
}

#[test]
fn a_docker_archive_names_its_tag_and_skopeo_reads_it() {
    if !ready() {
        return;
    }
    let work = Work::new();
    let archive = work.realise("store", "archive");
    let inspected: serde_json::Value = serde_json::from_str(&run(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", archive.display())],
    ))
    .unwrap();
    assert_eq!(inspected["Env"][0], "PATH=/bin");
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    let mut manifest = None;
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap() == Path::new("manifest.json") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            manifest = Some(text);
        }
    }
    let manifest: serde_json::Value = serde_json::from_str(&manifest.unwrap()).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], "kiln/busybox:1.0");
    // Copied to an OCI layout and unpacked: the root again.
    let layout = work.path().join("layout");
    run(
        "skopeo",
        &[
            "copy",
            &format!("docker-archive:{}", archive.display()),
            &format!("oci:{}:copied", layout.display()),
        ],
    );
    let rootfs = unpack(&layout, "copied", &work.path().join("unpacked"));
    let root = work.realise("store", "root");
    assert_eq!(tree(&rootfs), tree(&root));
}

#[test]
fn zstd_layers_are_accepted() {
    if !ready() {
        return;
    }
    let work = Work::new();
    let image = work.realise("store", "zstd");
    let reference = format!("oci:{}", image.display());
    let raw: serde_json::Value =
        serde_json::from_str(&run("skopeo", &["inspect", "--raw", &reference])).unwrap();
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    // skopeo decompresses the layer: the tar it gets is the one the config names (its diff
    // id), the same tar as in the gzip image.
    let copied = work.path().join("decompressed");
    run(
        "skopeo",
        &[
            "copy",
            "--dest-decompress",
            &reference,
            &format!("dir:{}", copied.display()),
        ],
    );
    let config: serde_json::Value =
        serde_json::from_str(&run("skopeo", &["inspect", "--config", &reference])).unwrap();
    let diff_id = config["rootfs"]["diff_ids"][0].as_str().unwrap();
    let tar = copied.join(diff_id.trim_start_matches("sha256:"));
    assert!(
        std::fs::metadata(&tar).unwrap().len() > 1_000_000,
        "no decompressed layer named by its diff id"
    );
    let gzip_image = work.realise("store", "image");
    let gzip_config: serde_json::Value = serde_json::from_str(&run(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci:{}", gzip_image.display()),
        ],
    ))
    .unwrap();
    assert_eq!(gzip_config["rootfs"]["diff_ids"][0], diff_id);
}
