//! Caches kiln writes, read by Nix 2.8: file:// and HTTP, each compression, signatures and keys made by either tool, and a cache of another store directory refused.
use super::*;

/// Pushes the closure with a key Nix generated, then lets Nix copy it back with signature
/// checking on: refused without the key, accepted with it, same paths, hashes, references.
fn nix_accepts_a_cache_kiln_pushed(url: &str, cache_dir: &Path, compression: &str) {
    let kiln = Kiln::new();
    let nix = Nix::new();
    let output = kiln.build_closure();
    let keys = kiln.work();
    ok(&nix.run(
        "nix-store",
        &[
            "--generate-binary-cache-key",
            "test-cache-1",
            keys.join("secret").to_str().unwrap(),
            keys.join("public").to_str().unwrap(),
        ],
    ));
    let public = std::fs::read_to_string(keys.join("public")).unwrap();
    std::fs::write(
        kiln.work().join("config.toml"),
        format!(
            "secret-key-files = [{:?}]\n",
            keys.join("secret").to_str().unwrap()
        ),
    )
    .unwrap();
    // The zstd runs push the expression (realised first: nothing to build, it is valid), the
    // others the store path.
    let installable = if compression == "zstd" {
        "closure.nix"
    } else {
        &output
    };
    let pushed = kiln.kiln(&[
        "copy",
        "--to",
        url,
        "--compression",
        compression,
        installable,
    ]);
    ok(&pushed);
    let report = String::from_utf8_lossy(&pushed.stderr);
    assert!(report.contains("copied 3 paths"), "{report}");
    let extension = match compression {
        "xz" => ".nar.xz",
        "zstd" => ".nar.zst",
        _ => ".nar",
    };
    let nars: Vec<String> = std::fs::read_dir(cache_dir.join("nar"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(nars.len(), 3, "{nars:?}");
    assert!(nars.iter().all(|n| n.ends_with(extension)), "{nars:?}");
    let leftovers: Vec<_> = walk(cache_dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A second push, of the expression's outputs, finds everything there.
    let again = kiln.kiln(&["copy", "--to", url, "-j", "4", "closure.nix"]);
    ok(&again);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("copied 0 paths")
            && String::from_utf8_lossy(&again.stderr).contains("3 were there already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Nix lists the signatures ...
    let sigs = ok(&nix.run(
        "nix",
        &["path-info", "--store", url, "--sigs", "-r", &output],
    ));
    assert_eq!(sigs.lines().count(), 3, "{sigs}");
    assert!(
        sigs.lines().all(|line| line.contains("test-cache-1:")),
        "{sigs}"
    );
    // ... refuses the paths without the key (signature checking is on) ...
    let refused = failed(&nix.run("nix", &["copy", "--from", url, &output]));
    assert!(refused.contains("lacks a valid signature"), "{refused}");
    // ... and copies them with it.
    ok(&nix.run(
        "nix",
        &[
            "copy",
            "--from",
            url,
            "--trusted-public-keys",
            public.trim(),
            &output,
        ],
    ));
    let nix_info = path_info_map(&ok(&nix.run("nix", &["path-info", "--json", "-r", &output])));
    assert_eq!(nix_info, kiln.closure_info(&output));
    ok(&nix.run("nix-store", &["--verify", "--check-contents"]));
}

#[test]
fn nix_accepts_a_signed_file_cache_that_kiln_pushed() {
    if !ready("nix_accepts_a_signed_file_cache_that_kiln_pushed") {
        return;
    }
    for compression in ["xz", "zstd", "none"] {
        let cache = tempfile::tempdir().unwrap();
        let url = format!("file://{}", cache.path().display());
        nix_accepts_a_cache_kiln_pushed(&url, cache.path(), compression);
        let info = std::fs::read_to_string(cache.path().join("nix-cache-info")).unwrap();
        assert!(info.contains("StoreDir: /nix/store\n"), "{info}");
    }
}

#[test]
fn nix_accepts_a_cache_kiln_pushed_over_http() {
    if !ready("nix_accepts_a_cache_kiln_pushed_over_http") {
        return;
    }
    let server = TestServer::start();
    nix_accepts_a_cache_kiln_pushed(&server.url(), server.root(), "zstd");
    assert!(
        server.puts() >= 7,
        "NARs, narinfos and nix-cache-info are PUT"
    );
}

#[test]
fn keys_signatures_and_the_key_verbs_agree_with_nix() {
    if !ready("keys_signatures_and_the_key_verbs_agree_with_nix") {
        return;
    }
    let kiln = Kiln::new();
    let nix = Nix::new();
    let output = kiln.build_closure();
    // A key pair made by kiln ...
    ok(&kiln.kiln(&["key", "generate", "kiln-made-1", "-o", "kiln.sec"]));
    let secret = std::fs::read_to_string(kiln.work().join("kiln.sec")).unwrap();
    let public = std::fs::read_to_string(kiln.work().join("kiln.sec.pub")).unwrap();
    assert!(secret.starts_with("kiln-made-1:") && public.starts_with("kiln-made-1:"));
    let mut from_stdin = kiln.command(&["key", "public"]);
    from_stdin.stdin(std::fs::File::open(kiln.work().join("kiln.sec")).unwrap());
    assert_eq!(ok(&from_stdin.output().unwrap()).trim(), public.trim());
    let printed = ok(&kiln.kiln(&["key", "generate", "printed-1"]));
    assert!(printed.starts_with("printed-1:"), "{printed}");
    failed(&kiln.kiln(&["key", "generate", "bad:name"]));
    // ... signs paths with `kiln sign` (no secret-key-files), and Nix trusts the result.
    let signed = kiln.kiln(&["sign", "-r", "--key-file", "kiln.sec", &output]);
    ok(&signed);
    assert!(String::from_utf8_lossy(&signed.stderr).contains("added 3 signatures"));
    let again = kiln.kiln(&["sign", "-r", "--key-file", "kiln.sec", &output]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("added 0 signatures"));
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", cache.path().display());
    ok(&kiln.kiln(&["copy", "--to", &url, &output]));
    ok(&nix.run(
        "nix",
        &[
            "copy",
            "--from",
            &url,
            "--trusted-public-keys",
            public.trim(),
            &output,
        ],
    ));
    // Nix's own signature of the same path, with the same key, is the one kiln made.
    let nix_sig = ok(&nix.run("nix", &["path-info", "--sigs", &output]));
    let narinfo_name = format!(
        "{}.narinfo",
        &output[NIX_STORE.len() + 1..NIX_STORE.len() + 33]
    );
    let narinfo = std::fs::read_to_string(cache.path().join(narinfo_name)).unwrap();
    let kiln_sig = narinfo
        .lines()
        .find_map(|l| l.strip_prefix("Sig: "))
        .unwrap()
        .to_owned();
    assert!(nix_sig.contains(&kiln_sig), "{nix_sig}\n{narinfo}");
    ok(&nix.run(
        "nix",
        &[
            "store",
            "sign",
            "--key-file",
            kiln.work().join("kiln.sec").to_str().unwrap(),
            &output,
        ],
    ));
    let resigned = ok(&nix.run("nix", &["path-info", "--sigs", &output]));
    assert_eq!(resigned.matches("kiln-made-1:").count(), 1, "{resigned}");
}

#[test]
fn a_cache_of_another_store_dir_is_refused_naming_both() {
    if !sandbox_ready() {
        return;
    }
    let kiln = Kiln::new();
    let output = kiln.build_closure();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(
        cache.path().join("nix-cache-info"),
        "StoreDir: /kiln/store\n",
    )
    .unwrap();
    let url = format!("file://{}", cache.path().display());
    let refused = failed(&kiln.kiln(&["copy", "--to", &url, &output]));
    assert!(
        refused.contains("'/kiln/store'") && refused.contains("'/nix/store'"),
        "{refused}"
    );
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
}
