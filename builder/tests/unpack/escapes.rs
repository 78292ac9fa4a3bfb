//! Hostile archives and sources: `..` and absolute names, writes through symlinks, hardlinks to outside paths, and sources outside the store, each refused naming the entry.
use super::*;

#[test]
fn a_source_outside_the_store_is_refused_naming_it() {
    let scratch = Scratch::new();
    let (_, options) = scratch.store_archive(&sample_tree());
    // A private host file: unpacking it would publish it in the store.
    let secret = scratch.archive(&sample_tree());
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = scratch.path("out");
    for src in [
        secret.to_str().unwrap().to_owned(),
        "/kiln/store/../../etc/passwd".to_owned(),
        "/kiln/store/not-a-store-path".to_owned(),
    ] {
        let error = unpack(&env(&[("src", &src)]), &out, &options).unwrap_err();
        assert!(
            matches!(error, UnpackError::SourceOutsideStore { .. }),
            "{src}: {error}"
        );
        assert!(error.to_string().contains(&src), "{error}");
        assert!(!out.exists());
    }
    // A store path that is a symbolic link to the host file.
    let link = "0c3zf58y2nqcg0bs3hvc8lrbjk8nc3b3-link";
    std::os::unix::fs::symlink(&secret, scratch.path("store").join(link)).unwrap();
    let src = format!("/kiln/store/{link}");
    let error = unpack(&env(&[("src", &src)]), &out, &options).unwrap_err();
    assert!(
        matches!(error, UnpackError::SourceEscapesStore { .. }),
        "{error}"
    );
    assert!(!out.exists());
    // Without the store's location nothing can be checked: refused too.
    let error = unpack(&env(&[("src", &src)]), &out, &UnpackOptions::default()).unwrap_err();
    assert!(matches!(error, UnpackError::NoStoreLocation(_)), "{error}");
}

/// Unpacks a hostile archive and checks the error names the entry and nothing outside changed.
fn assert_refused(archive: Vec<u8>, entry: &str) -> UnpackError {
    let scratch = Scratch::new();
    let src = scratch.archive(&archive);
    let error = unpack_archive(
        &src,
        None,
        0,
        &scratch.path("out"),
        &UnpackOptions::default(),
    )
    .expect_err("a hostile archive must be refused");
    let message = error.to_string();
    assert!(
        message.contains(&format!("`{entry}`")),
        "the error should name `{entry}`: {message}"
    );
    scratch.assert_outside_untouched();
    error
}

#[test]
fn dot_dot_names_are_refused() {
    let error = assert_refused(
        Archive::new()
            .file("fine", 0o644, b"ok")
            .file("../outside/evil", 0o644, b"evil")
            .finish(),
        "../outside/evil",
    );
    assert!(matches!(error, UnpackError::UnsafeEntry { .. }));
    assert_refused(
        Archive::new()
            .file("a/../../outside/evil", 0o644, b"evil")
            .finish(),
        "a/../../outside/evil",
    );
}

#[test]
fn absolute_names_are_refused() {
    let scratch = Scratch::new();
    let target = scratch.path("outside/evil");
    let name = target.to_str().unwrap();
    let error = assert_refused(Archive::new().file(name, 0o644, b"evil").finish(), name);
    assert!(matches!(error, UnpackError::UnsafeEntry { .. }));
    assert!(!target.exists());
}

#[test]
fn writes_through_a_symlink_are_refused() {
    let scratch = Scratch::new();
    let outside = scratch.path("outside");
    let outside = outside.to_str().unwrap();
    // The link points at a real directory outside (absolute), or reaches it relatively.
    for target in [outside, "../outside"] {
        let error = assert_refused(
            Archive::new()
                .symlink("link", target)
                .file("link/evil", 0o644, b"evil")
                .finish(),
            "link/evil",
        );
        assert!(error.to_string().contains("symbolic link"), "{error}");
    }
    // A directory replaced by a symlink later in the same archive.
    assert_refused(
        Archive::new()
            .dir("a/", 0o755)
            .symlink("a", "../outside")
            .file("a/evil", 0o644, b"evil")
            .finish(),
        "a/evil",
    );
    // A file entry whose name is an existing symlink replaces the link, never writes through.
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .symlink("secret", "../outside/secret")
            .file("secret", 0o644, b"replaced")
            .finish(),
    );
    let out = scratch.path("out");
    unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(out.join("secret")).unwrap(), b"replaced");
    scratch.assert_outside_untouched();
}

#[test]
fn hardlinks_to_outside_paths_are_refused() {
    let scratch = Scratch::new();
    let secret = scratch.path("outside/secret");
    for target in ["../outside/secret", secret.to_str().unwrap()] {
        let error = assert_refused(Archive::new().hardlink("h", target).finish(), "h");
        assert!(matches!(error, UnpackError::UnsafeEntry { .. }), "{error}");
    }
    // Through a symlink inside the archive.
    assert_refused(
        Archive::new()
            .symlink("d", "../outside")
            .hardlink("h", "d/secret")
            .finish(),
        "h",
    );
    // A hardlink to an in-archive symlink links the symlink itself, never its target.
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .symlink("s", "../outside/secret")
            .hardlink("h", "s")
            .finish(),
    );
    let out = scratch.path("out");
    unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    assert!(fs::symlink_metadata(out.join("h"))
        .unwrap()
        .file_type()
        .is_symlink());
    scratch.assert_outside_untouched();
}
