//! `builtin:unpack` in plans: feeding a sandboxed build, special files dropped from layers, host files outside the store refused.
use super::*;

/// Adds a file to the store as a flat fixed-output source.
fn add_file(t: &TestStore, name: &str, contents: &[u8]) -> StorePath {
    let file = t._root.path().join(name);
    std::fs::write(&file, contents).unwrap();
    let staged = stage_copy(&t.store, name, &file, ContentAddressMethod::Flat, None).unwrap();
    let path = t
        .dir
        .make_fixed_output_path(
            ContentAddressMethod::Flat,
            &staged.content_hash,
            name,
            &BTreeSet::new(),
            false,
        )
        .unwrap();
    commit_copy(&t.store, staged, &path, ContentAddressMethod::Flat).unwrap();
    path
}

#[test]
fn builtin_unpack_runs_in_process_and_feeds_a_sandboxed_build() {
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    archive
        .append_data(&mut header, "top/hello.txt", &b"hello\n"[..])
        .unwrap();
    let tarball = add_file(&t, "hello.tar", &archive.into_inner().unwrap());

    let mut unpack = Derivation {
        name: "hello-src".to_owned(),
        platform: "builtin".to_owned(),
        builder: "builtin:unpack".into(),
        ..Derivation::default()
    };
    unpack.outputs.insert(
        "out".to_owned(),
        DerivationOutput {
            path: None,
            fixed: None,
            floating: None,
        },
    );
    unpack.input_srcs.insert(tarball.clone());
    for (key, value) in [
        ("name", "hello-src".to_owned()),
        ("system", "builtin".to_owned()),
        ("builder", "builtin:unpack".to_owned()),
        ("src", t.dir.print(&tarball)),
        ("stripComponents", "1".to_owned()),
    ] {
        unpack.set_env_var(key, value);
    }
    let unpack = t.write(unpack);
    let user = t.derivation(
        "user",
        "read line < $input0/hello.txt; echo \"got $line\" > $out",
        &[&unpack],
        None,
        &[],
    );
    let report = t.run(&t.plan(&[&user], false), 2, false);
    assert!(report.success(), "{report:?}");
    let out = t.store.physical_path(&t.out(&user));
    assert_eq!(std::fs::read_to_string(out).unwrap(), "got hello\n");
    let unpacked = t.store.query_path_info(&t.out(&unpack)).unwrap().unwrap();
    assert_eq!(unpacked.deriver.as_ref(), Some(&unpack));
}

/// Writes a `builtin:unpack` derivation of `src` (with `tarball` as its input source, if any).
fn unpack_derivation(
    t: &mut TestStore,
    name: &str,
    src: &str,
    tarball: Option<&StorePath>,
) -> StorePath {
    let mut unpack = Derivation {
        name: name.to_owned(),
        platform: "builtin".to_owned(),
        builder: "builtin:unpack".into(),
        ..Derivation::default()
    };
    unpack.outputs.insert(
        "out".to_owned(),
        DerivationOutput {
            path: None,
            fixed: None,
            floating: None,
        },
    );
    unpack.input_srcs.extend(tarball.cloned());
    for (key, value) in [
        ("name", name),
        ("system", "builtin"),
        ("builder", "builtin:unpack"),
        ("src", src),
    ] {
        unpack.set_env_var(key, value.as_bytes());
    }
    t.write(unpack)
}

#[test]
fn an_unpacked_layer_with_device_nodes_and_a_fifo_registers_without_them() {
    let mut t = TestStore::new();
    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |name: &str, entry_type: tar::EntryType, data: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_entry_type(entry_type);
        header.set_device_major(5).unwrap();
        header.set_device_minor(1).unwrap();
        header.set_cksum();
        archive.append_data(&mut header, name, data).unwrap();
    };
    add("dev/console", tar::EntryType::Char, b"", 0o600);
    add("dev/null", tar::EntryType::Char, b"", 0o666);
    add("dev/loop0", tar::EntryType::Block, b"", 0o660);
    add("run/initctl", tar::EntryType::Fifo, b"", 0o600);
    add(
        "etc/os-release",
        tar::EntryType::Regular,
        b"ID=centos\n",
        0o644,
    );
    let tarball = add_file(&t, "layer.tar", &archive.into_inner().unwrap());
    let src = t.dir.print(&tarball);
    let drv = unpack_derivation(&mut t, "layer", &src, Some(&tarball));
    let report = t.run(&t.plan(&[&drv], false), 1, false);
    assert!(report.success(), "{report:?}");
    let out = t.store.physical_path(&t.out(&drv));
    assert_eq!(
        std::fs::read(out.join("etc/os-release")).unwrap(),
        b"ID=centos\n"
    );
    let log = BuildLog::of(&t.store.log_dir(), &drv)
        .latest_attempt()
        .unwrap()
        .unwrap();
    for name in ["dev/console", "dev/null", "dev/loop0", "run/initctl"] {
        assert!(std::fs::symlink_metadata(out.join(name)).is_err(), "{name}");
        assert!(log.contains(&format!("warning: {name}")), "{log}");
    }
    assert!(t.store.verify(true).unwrap().is_ok());
}

#[test]
fn unpacking_a_host_file_outside_the_store_is_refused() {
    let mut t = TestStore::new();
    let secret = t._root.path().join("secret.tar");
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(7);
    header.set_mode(0o600);
    header.set_cksum();
    archive
        .append_data(&mut header, "shadow", &b"secret\n"[..])
        .unwrap();
    std::fs::write(&secret, archive.into_inner().unwrap()).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let src = secret.to_str().unwrap().to_owned();
    let drv = unpack_derivation(&mut t, "steal", &src, None);
    let report = t.run(&t.plan(&[&drv], false), 1, false);
    let message = failure(&report).to_string();
    assert!(message.contains(&src), "{message}");
    assert!(!t.store.is_valid(&t.out(&drv)).unwrap());
    assert!(!t.store.physical_path(&t.out(&drv)).exists());
}
