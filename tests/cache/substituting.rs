//! Substitution in realise: a graph in a cache runs no builder, inputs fetched and the dry run, --substituters over HTTP, corrupted NARs and untrusted narinfos fall back to building, closures Nix pushed, and --push-to with verify --sigs.
use super::*;

/// Builds [`TWO_LEVEL`] in a fresh store and pushes the output's closure to `url` signed with
/// a new key; returns the store, the output and the public key.
fn build_and_push(url: &str, compression: &str) -> (Kiln, String, String) {
    let builder = Kiln::new();
    let (secret, public) = builder.generate_key("team-cache-1");
    let (output, _) = builder.realise_two_level(&format!("secret-key-files = [{secret:?}]\n"));
    assert_eq!(builder.builds_run(), 2);
    ok(&builder.kiln(&["copy", "--to", url, "--compression", compression, &output]));
    (builder, output, public)
}

fn substituting_config(url: &str, public: &str) -> String {
    format!("substituters = [{url:?}]\ntrusted-public-keys = [{public:?}]\nstalled-download-timeout = 5\n")
}

#[test]
fn a_realise_whose_graph_is_in_a_cache_runs_no_builder() {
    if !sandbox_ready() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", cache.path().display());
    let (builder, output, public) = build_and_push(&url, "xz");
    let expected = builder.closure_info(&output);
    assert_eq!(expected.len(), 3, "{expected:?}");

    let user = Kiln::new();
    std::fs::write(user.work().join("two.nix"), TWO_LEVEL).unwrap();
    std::fs::write(
        user.work().join("config.toml"),
        substituting_config(&url, &public),
    )
    .unwrap();
    let dry = user.kiln(&["realise", "--dry-run", "two.nix"]);
    ok(&dry);
    let listed = String::from_utf8_lossy(&dry.stderr);
    // The text and busybox are in the store once evaluated: only the output is fetched.
    assert!(listed.contains("1 path will be fetched ("), "{listed}");
    assert!(listed.contains("-top\n"), "{listed}");
    assert!(!listed.contains("will be built"), "{listed}");

    let (substituted, run) = user.realise_two_level(&substituting_config(&url, &public));
    let report = String::from_utf8_lossy(&run.stderr);
    assert_eq!(substituted, output);
    assert_eq!(user.builds_run(), 0, "no builder ran: {report}");
    assert!(report.contains(&format!("from '{url}'")), "{report}");
    assert_eq!(user.closure_info(&output), expected);
    // The build-time input was neither built nor fetched.
    let stage_outputs: Vec<_> = std::fs::read_dir(user.root().join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with("-stage"))
        .collect();
    assert!(stage_outputs.is_empty(), "{stage_outputs:?}");
    ok(&user.kiln(&["verify", "--check-contents"]));
    let sigs = ok(&user.kiln(&["path-info", "--json", &output]));
    assert!(
        sigs.contains("team-cache-1:"),
        "signatures are registered: {sigs}"
    );
    // --no-substitute builds instead.
    let offline = Kiln::new();
    std::fs::write(offline.work().join("two.nix"), TWO_LEVEL).unwrap();
    std::fs::write(
        offline.work().join("config.toml"),
        substituting_config(&url, &public),
    )
    .unwrap();
    ok(&offline.kiln(&["realise", "--no-out-link", "--no-substitute", "two.nix"]));
    assert_eq!(offline.builds_run(), 2);
}

#[test]
fn inputs_of_a_build_are_fetched_and_the_dry_run_says_so() {
    if !sandbox_ready() {
        return;
    }
    // A cache holding only the build-time input (`stage`), not the top output.
    let first = tempfile::tempdir().unwrap();
    let (builder, _, public) = build_and_push(&format!("file://{}", first.path().display()), "xz");
    let stage = std::fs::read_dir(builder.root().join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|name| name.ends_with("-stage"))
        .expect("the stage output");
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", cache.path().display());
    ok(&builder.kiln(&["copy", "--to", &url, &format!("{NIX_STORE}/{stage}")]));

    let user = Kiln::new();
    std::fs::write(user.work().join("two.nix"), TWO_LEVEL).unwrap();
    std::fs::write(
        user.work().join("config.toml"),
        substituting_config(&url, &public),
    )
    .unwrap();
    let dry = user.kiln(&["realise", "--dry-run", "two.nix"]);
    let listed = ok_stderr(&dry);
    assert!(
        listed.contains("1 path will be fetched (") && listed.contains(&format!("{stage}\n")),
        "{listed}"
    );
    assert!(
        listed.contains("1 derivation will be built:") && listed.contains("-top.drv\n"),
        "{listed}"
    );
    assert_eq!(user.builds_run(), 0, "a dry run builds nothing");
    let (_, run) = user.realise_two_level(&substituting_config(&url, &public));
    assert_eq!(
        user.builds_run(),
        1,
        "only the top is built: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(user.root().join("store").join(&stage).exists());
}

/// Standard error of a command that succeeded.
fn ok_stderr(output: &Output) -> String {
    ok(output);
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn substitution_over_http_with_the_substituters_flag() {
    if !sandbox_ready() {
        return;
    }
    let server = TestServer::start();
    let (builder, output, public) = build_and_push(&server.url(), "zstd");
    let user = Kiln::new();
    std::fs::write(user.work().join("two.nix"), TWO_LEVEL).unwrap();
    std::fs::write(
        user.work().join("config.toml"),
        format!("trusted-public-keys = [{public:?}]\n"),
    )
    .unwrap();
    let run = user.kiln(&[
        "realise",
        "--no-out-link",
        "--substituters",
        &server.url(),
        "two.nix",
    ]);
    ok(&run);
    assert_eq!(
        user.builds_run(),
        0,
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(user.closure_info(&output), builder.closure_info(&output));
    let gets = server.gets();
    assert!(gets.iter().any(|g| g.starts_with("GET nar/")), "{gets:?}");
    // `kiln copy --from` fetches a closure too.
    let copier = Kiln::new();
    std::fs::write(
        copier.work().join("config.toml"),
        format!("trusted-public-keys = [{public:?}]\n"),
    )
    .unwrap();
    ok(&copier.kiln(&["copy", "--from", &server.url(), &output]));
    assert_eq!(copier.closure_info(&output), builder.closure_info(&output));
}

#[test]
fn corrupted_nars_fall_back_to_building() {
    if !sandbox_ready() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", cache.path().display());
    let (builder, output, public) = build_and_push(&url, "none");
    for nar in walk(&cache.path().join("nar")) {
        let mut bytes = std::fs::read(&nar).unwrap();
        let middle = bytes.len() - 20;
        bytes[middle] ^= 0x55;
        std::fs::write(&nar, bytes).unwrap();
    }
    let user = Kiln::new();
    let (rebuilt, run) = user.realise_two_level(&substituting_config(&url, &public));
    let report = String::from_utf8_lossy(&run.stderr);
    assert_eq!(rebuilt, output);
    assert!(report.contains("warning: cannot substitute"), "{report}");
    assert!(report.contains(&url), "{report}");
    assert_eq!(user.builds_run(), 2, "{report}");
    assert_eq!(user.closure_info(&output), builder.closure_info(&output));
    ok(&user.kiln(&["verify", "--check-contents"]));
}

#[test]
fn unsigned_or_untrusted_narinfos_are_not_used_unless_signatures_are_off() {
    if !sandbox_ready() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", cache.path().display());
    let builder = Kiln::new();
    let (output, _) = builder.realise_two_level("");
    ok(&builder.kiln(&["copy", "--to", &url, &output]));
    let (_, stranger) = builder.generate_key("stranger-1");
    let user = Kiln::new();
    let (_, run) = user.realise_two_level(&substituting_config(&url, &stranger));
    let report = String::from_utf8_lossy(&run.stderr);
    assert!(report.contains("is unsigned"), "{report}");
    assert_eq!(user.builds_run(), 2, "{report}");

    let trusting = Kiln::new();
    std::fs::write(trusting.work().join("two.nix"), TWO_LEVEL).unwrap();
    std::fs::write(
        trusting.work().join("config.toml"),
        substituting_config(&url, &stranger),
    )
    .unwrap();
    ok(&trusting.kiln(&[
        "--option",
        "require-sigs",
        "false",
        "realise",
        "--no-out-link",
        "two.nix",
    ]));
    assert_eq!(trusting.builds_run(), 0);
    assert_eq!(
        trusting.closure_info(&output),
        builder.closure_info(&output)
    );
}

#[test]
fn kiln_substitutes_a_closure_that_nix_put_in_a_cache() {
    if !ready("kiln_substitutes_a_closure_that_nix_put_in_a_cache") {
        return;
    }
    // kiln builds and hands the closure to Nix ...
    let kiln_cache = tempfile::tempdir().unwrap();
    let kiln_url = format!("file://{}", kiln_cache.path().display());
    let (_, output, kiln_public) = build_and_push(&kiln_url, "xz");
    let nix = Nix::new();
    ok(&nix.run(
        "nix",
        &[
            "copy",
            "--from",
            &kiln_url,
            "--trusted-public-keys",
            &kiln_public,
            &output,
        ],
    ));
    // ... Nix signs it with its own key and writes its own cache ...
    let keys = tempfile::tempdir().unwrap();
    let (secret, public) = (keys.path().join("nix.sec"), keys.path().join("nix.pub"));
    ok(&nix.run(
        "nix-store",
        &[
            "--generate-binary-cache-key",
            "nix-made-1",
            secret.to_str().unwrap(),
            public.to_str().unwrap(),
        ],
    ));
    let public = std::fs::read_to_string(&public).unwrap();
    ok(&nix.run(
        "nix",
        &[
            "store",
            "sign",
            "-r",
            "--key-file",
            secret.to_str().unwrap(),
            &output,
        ],
    ));
    let nix_cache = tempfile::tempdir().unwrap();
    let nix_url = format!("file://{}", nix_cache.path().display());
    ok(&nix.run("nix", &["copy", "--to", &nix_url, &output]));
    let nix_info = path_info_map(&ok(&nix.run("nix", &["path-info", "--json", "-r", &output])));
    // ... which kiln substitutes from, building nothing, with the same paths, hashes, references.
    let user = Kiln::new();
    let (substituted, run) = user.realise_two_level(&substituting_config(&nix_url, public.trim()));
    assert_eq!(substituted, output);
    assert_eq!(
        user.builds_run(),
        0,
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(user.closure_info(&output), nix_info);
    // `kiln copy --from` too, with the key given by --option.
    let copier = Kiln::new();
    ok(&copier.kiln(&[
        "--option",
        "trusted-public-keys",
        public.trim(),
        "copy",
        "--from",
        &nix_url,
        &output,
    ]));
    assert_eq!(copier.closure_info(&output), nix_info);
}

#[test]
fn push_to_uploads_what_realise_builds_and_verify_sigs_reports_untrusted_paths() {
    if !sandbox_ready() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", cache.path().display());
    let ci = Kiln::new();
    let (secret, public) = ci.generate_key("ci-1");
    std::fs::write(ci.work().join("two.nix"), TWO_LEVEL).unwrap();
    std::fs::write(
        ci.work().join("config.toml"),
        format!("secret-key-files = [{secret:?}]\ntrusted-public-keys = [{public:?}]\n"),
    )
    .unwrap();
    let run = ci.kiln(&["realise", "--no-out-link", "--push-to", &url, "two.nix"]);
    let printed = ok(&run);
    let report = String::from_utf8_lossy(&run.stderr);
    // Both outputs built, with the closure of each: stage, top, the text and busybox.
    assert!(report.contains("pushed 4 paths"), "{report}");
    let narinfos = walk(cache.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "narinfo"))
        .count();
    assert_eq!(narinfos, 4);
    let output = format!(
        "{NIX_STORE}/{}",
        Path::new(printed.trim())
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
    );

    // The builder's own store holds the outputs unsigned: verify --sigs names them.
    let unsigned = failed(&ci.kiln(&["verify", "--sigs"]));
    assert!(
        unsigned.contains("-top' has no signature by a trusted key"),
        "{unsigned}"
    );
    assert!(
        unsigned.contains("-stage' has no signature by a trusted key"),
        "{unsigned}"
    );
    ok(&ci.kiln(&["sign", "--key-file", &secret, &output]));
    let unsigned = failed(&ci.kiln(&["verify", "--sigs"]));
    assert!(!unsigned.contains("-top'"), "{unsigned}");
    assert!(unsigned.contains("-stage'"), "{unsigned}");

    // A store that substituted from the cache holds signed paths only.
    let user = Kiln::new();
    user.realise_two_level(&substituting_config(&url, &public));
    assert_eq!(user.builds_run(), 0);
    ok(&user.kiln(&["verify", "--sigs"]));
    // With no trusted key, the substituted output is untrusted.
    std::fs::write(user.work().join("config.toml"), "").unwrap();
    let untrusted = failed(&user.kiln(&["verify", "--sigs"]));
    assert!(untrusted.contains("-top' has no signature"), "{untrusted}");
}
