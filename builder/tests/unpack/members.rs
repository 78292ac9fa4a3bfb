//! Archives inside archives: a `docker save` tarball's layer through `member`, the suggestion when it is missing, and how a member name is matched.
use super::*;

fn docker_save(layer: &[u8]) -> Vec<u8> {
    Archive::new()
        .dir("0123abcd/", 0o755)
        .file("0123abcd/VERSION", 0o644, b"1.0")
        .file("0123abcd/json", 0o644, b"{}")
        .file("0123abcd/layer.tar", 0o644, layer)
        .file(
            "manifest.json",
            0o644,
            br#"[{"Config":"cfg.json","RepoTags":["base:9"],"Layers":["0123abcd/layer.tar"]}]"#,
        )
        .finish()
}

#[test]
fn a_docker_save_layer_is_unpacked_through_member() {
    let layer = Archive::new()
        .dir("./", 0o555)
        .dir("./etc/", 0o755)
        .file("./etc/os-release", 0o644, b"ID=centos\n")
        .dir("./tmp/", 0o1777)
        .finish();
    for (layer_compression, outer_compression) in [
        (Compression::None, Compression::Xz),
        (Compression::Gzip, Compression::None),
    ] {
        let scratch = Scratch::new();
        let outer = compress(
            &docker_save(&compress(&layer, layer_compression)),
            outer_compression,
        );
        scratch.archive(&outer);
        // The derivation names the logical store path; the unpack reads the physical one.
        let (src, options) = scratch.store_archive(&outer);
        let out = scratch.path("out");
        let report = unpack(
            &env(&[("src", &src), ("member", "./0123abcd/layer.tar")]),
            &out,
            &options,
        )
        .unwrap();
        assert_eq!(report.compression, layer_compression);
        assert_eq!(
            fs::read(out.join("etc/os-release")).unwrap(),
            b"ID=centos\n"
        );
        assert_eq!(mode(&out.join("tmp")), 0o1755);
        assert_eq!(mode(&out), 0o555);
        assert!(!out.join("manifest.json").exists());
        fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        scratch.assert_outside_untouched();
    }
}

#[test]
fn a_docker_save_tarball_without_member_suggests_the_layer() {
    let scratch = Scratch::new();
    let layer = Archive::new().file("etc/os-release", 0o644, b"x").finish();
    let (src, unpack_options) = scratch.store_archive(&docker_save(&layer));
    let error = run_builtin(
        "builtin:unpack",
        &env(&[("src", &src)]),
        &scratch.path("out"),
        &BuiltinOptions {
            unpack: unpack_options,
            ..BuiltinOptions::default()
        },
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("docker save") && message.contains(r#"member = "0123abcd/layer.tar""#),
        "{message}"
    );
}

#[test]
fn a_missing_member_lists_the_archives_inside() {
    let scratch = Scratch::new();
    let layer = Archive::new().file("etc/os-release", 0o644, b"x").finish();
    let src = scratch.archive(&docker_save(&layer));
    let error = unpack_archive(
        &src,
        Some("other.tar"),
        0,
        &scratch.path("out"),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&error, UnpackError::MemberNotFound { candidates, .. } if candidates == &["0123abcd/layer.tar"]),
        "{error}"
    );
    assert!(error.to_string().contains("0123abcd/layer.tar"));
}

/// A layer holding one file, `/which`, with the given contents.
fn marked_layer(mark: &[u8]) -> Vec<u8> {
    Archive::new().file("which", 0o644, mark).finish()
}

#[test]
fn a_member_name_finds_the_one_entry_ending_in_it() {
    // The real CentOS Stream tarball's layout: `<sha256-hex>/layer.tar` and `manifest.json`,
    // with the layer not at the top.
    let scratch = Scratch::new();
    let src = scratch.archive(&compress(
        &docker_save(&marked_layer(b"layer")),
        Compression::Xz,
    ));
    let out = scratch.path("out");
    unpack_archive(&src, Some("layer.tar"), 0, &out, &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(out.join("which")).unwrap(), b"layer");
    // A name that merely ends in the same letters is not a match.
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .file("otherlayer.tar", 0o644, &marked_layer(b"no"))
            .finish(),
    );
    let error = unpack_archive(
        &src,
        Some("layer.tar"),
        0,
        &scratch.path("out"),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(error, UnpackError::MemberNotFound { .. }),
        "{error}"
    );
}

#[test]
fn several_entries_ending_in_the_member_name_are_ambiguous() {
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .file("aaaa/layer.tar", 0o644, &marked_layer(b"a"))
            .file("bbbb/layer.tar", 0o644, &marked_layer(b"b"))
            .finish(),
    );
    let error = unpack_archive(
        &src,
        Some("layer.tar"),
        0,
        &scratch.path("out"),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&error, UnpackError::MemberAmbiguous { matches, .. } if matches == &["aaaa/layer.tar", "bbbb/layer.tar"]),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("aaaa/layer.tar, bbbb/layer.tar"),
        "{message}"
    );
}

#[test]
fn an_exact_member_name_wins_over_suffix_matches_before_or_after_it() {
    for exact_first in [true, false] {
        let scratch = Scratch::new();
        let mut archive = Archive::new();
        if exact_first {
            archive.file("layer.tar", 0o644, &marked_layer(b"exact"));
        }
        archive
            .file("aaaa/layer.tar", 0o644, &marked_layer(b"a"))
            .file("bbbb/layer.tar", 0o644, &marked_layer(b"b"));
        if !exact_first {
            archive.file("./layer.tar", 0o644, &marked_layer(b"exact"));
        }
        let src = scratch.archive(&archive.finish());
        let out = scratch.path("out");
        unpack_archive(&src, Some("layer.tar"), 0, &out, &UnpackOptions::default()).unwrap();
        assert_eq!(fs::read(out.join("which")).unwrap(), b"exact");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 1);
    }
}
