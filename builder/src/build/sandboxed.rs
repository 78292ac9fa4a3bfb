//! Running a builder in the Linux sandbox for one build: its build directory (a fresh
//! `build/` under the store root, removed afterwards), the sandbox's specification (the
//! environment, `passAsFile`, the input closure, `rootfs` layers checked to be real
//! directories of the closure, the network only where allowed), and the run itself.
use super::*;

/// A fresh directory for one build, under the store root (see [`crate::build_dirs`]), with
/// `build/` inside it; removed on drop.
pub(super) struct BuildDir {
    /// Owns the directory: locked while the build runs, removed on drop.
    _scratch: ScratchDir,
    top: PathBuf,
}

impl BuildDir {
    pub(super) fn create(store: &LocalStore, name: &str) -> Result<BuildDir, BuildError> {
        let scratch =
            ScratchDir::create(store.root(), &format!("kiln-build-{name}")).map_err(|source| {
                BuildError::BuildDir {
                    path: crate::build_dirs::builds_dir(store.root()),
                    source,
                }
            })?;
        let top = scratch.path().to_owned();
        fs::create_dir(top.join("build")).map_err(|source| BuildError::BuildDir {
            path: top.clone(),
            source,
        })?;
        Ok(BuildDir {
            _scratch: scratch,
            top,
        })
    }
}

pub(super) fn run_sandboxed(
    cx: BuildContext<'_>,
    build: &PlannedBuild,
    writer: &LogWriter,
    slots: &[OutputSlot],
    closure: &BTreeSet<StorePath>,
    network: bool,
) -> Result<Option<(u32, u32)>, BuildError> {
    let BuildContext {
        store,
        settings,
        events,
        ..
    } = cx;
    let dir = store.store_dir();
    let drv = &build.drv;
    let build_dir = BuildDir::create(store, build.name())?;
    let sandbox_build_dir = build_dir.top.join("build");
    let dir_error = |source| BuildError::BuildDir {
        path: build_dir.top.clone(),
        source,
    };

    let mut drv_env = drv.env.clone();
    pass_as_file(&mut drv_env, &sandbox_build_dir).map_err(dir_error)?;
    let output_env: BTreeMap<String, String> = slots
        .iter()
        .map(|slot| (slot.name.clone(), dir.print(&slot.path)))
        .collect();
    let env = nix_build_env(
        &drv_env,
        &output_env,
        &NixEnvParams {
            store_dir: dir.as_str(),
            build_cores: settings.build_cores,
            fixed_output: drv.is_fixed_output(),
        },
    );

    // The builder and its arguments are the derivation's bytes, UTF-8 or not.
    let mut spec = SandboxSpec::new(
        dir.as_str(),
        &sandbox_build_dir,
        OsString::from_vec(drv.builder.clone()),
    );
    spec.args = drv.args.iter().cloned().map(OsString::from_vec).collect();
    spec.env = env;
    if network {
        spec.env.extend(
            settings
                .network_env
                .iter()
                .map(|(name, value)| (OsString::from(name), OsString::from(value))),
        );
    }
    spec.network = network;
    spec.inputs = closure
        .iter()
        .map(|path| StoreMount::new(store.physical_path(path), dir.print(path)))
        .collect();
    spec.outputs = slots
        .iter()
        .map(|slot| StoreMount::new(&slot.host_path, dir.print(&slot.path)))
        .collect();
    // Store paths: text that is not UTF-8 names none, lossy or not.
    let rootfs = drv.env_var("rootfs").map(String::from_utf8_lossy);
    if let Some(rootfs) = rootfs.filter(|v| !v.trim().is_empty()) {
        let mut lower_layers = Vec::new();
        for entry in rootfs.split_whitespace() {
            let path = dir
                .parse(entry)
                .map_err(|_| BuildError::BadRootfs(entry.to_owned()))?;
            lower_layers.push(checked_rootfs_layer(store, closure, entry, &path)?);
        }
        let (upper, work) = (build_dir.top.join("upper"), build_dir.top.join("work"));
        // overlayfs looks up `upper` and `work` as the sandbox's init, which runs under the
        // build's unprivileged ids when kiln is root: it must be able to pass through (not
        // list) their parent.
        fs::set_permissions(&build_dir.top, fs::Permissions::from_mode(0o711))
            .map_err(dir_error)?;
        fs::create_dir(&upper)
            .and_then(|()| fs::create_dir(&work))
            .map_err(dir_error)?;
        spec.root = RootFs::Overlay {
            lower_layers,
            upper,
            work,
        };
    }
    spec.id_map = settings.id_map.clone();
    spec.timeout = settings.timeout;
    spec.max_silent_time = settings.max_silent_time;
    spec.limits = settings.limits;
    spec.log = LogSink::Writer(Box::new(writer.clone()));

    let sandbox = Sandbox::new(spec)?;
    // The host ids the build's files may have (its own unprivileged range when kiln is root).
    let build_ids = sandbox.id_mapping().host_range();
    let outcome = sandbox.run()?;
    if let Some(reason) = &outcome.limits_not_applied {
        let warning = format!("this build ran without its memory and process limits: {reason}");
        writer.note(&format!("kiln: warning: {warning}"));
        LIMITS_WARNING.call_once(|| events.warning(&warning));
    }
    if outcome.success() {
        return Ok(build_ids);
    }
    let how = if outcome.timed_out {
        format!(
            "timed out after {} s",
            settings.timeout.unwrap_or_default().as_secs()
        )
    } else if outcome.silent_timed_out {
        format!(
            "printed nothing for {} s and was killed",
            settings.max_silent_time.unwrap_or_default().as_secs()
        )
    } else {
        match outcome.status {
            Some(BuilderStatus::Exited(code)) => format!("failed with exit code {code}"),
            Some(BuilderStatus::Signaled(signal)) => format!("was killed by signal {signal}"),
            None => "was killed".to_owned(),
        }
    };
    let how = match settings.limits.memory_bytes {
        Some(bytes) if outcome.memory_limit_hit => format!(
            "{how}; the kernel killed a process of the build at its memory limit of {bytes} bytes (max-build-memory)"
        ),
        _ => how,
    };
    Err(BuildError::BuilderFailed { how })
}

/// The physical path of one `rootfs` layer, after checking that the derivation may use it:
/// it is in the input closure (a layer named only by a string without context is not), and
/// it is a real directory (never a symlink, which overlayfs would follow to the host).
pub(super) fn checked_rootfs_layer(
    store: &LocalStore,
    closure: &BTreeSet<StorePath>,
    entry: &str,
    path: &StorePath,
) -> Result<PathBuf, BuildError> {
    let refused = |reason: &str| BuildError::RootfsRefused {
        layer: entry.to_owned(),
        reason: reason.to_owned(),
    };
    if !closure.contains(path) {
        return Err(refused("it is not in the derivation's input closure"));
    }
    let physical = store.physical_path(path);
    match fs::symlink_metadata(&physical) {
        Ok(metadata) if metadata.is_dir() => Ok(physical),
        Ok(metadata) if metadata.file_type().is_symlink() => {
            Err(refused("it is a symbolic link, not a directory"))
        }
        Ok(_) => Err(refused("it is not a directory")),
        Err(_) => Err(refused("it does not exist")),
    }
}

/// Nix's `passAsFile`: each named attribute is written to `/build/.attr-<hash>` and replaced
/// by `<name>Path` naming that file.
pub(super) fn pass_as_file(
    env: &mut BTreeMap<Vec<u8>, Vec<u8>>,
    build_dir: &Path,
) -> std::io::Result<()> {
    let Some(names) = env.get(b"passAsFile".as_slice()).cloned() else {
        return Ok(());
    };
    // Nix splits the list on spaces, tabs and line ends; a name is bytes, as the variable's.
    for name in names
        .split(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
        .filter(|name| !name.is_empty())
    {
        let value = env.remove(name).unwrap_or_default();
        let digest = Hash::sha256(name);
        let file_name = format!(".attr-{}", nixbase32::encode(digest.as_bytes()));
        fs::write(build_dir.join(&file_name), value)?;
        let mut path_name = name.to_vec();
        path_name.extend_from_slice(b"Path");
        env.insert(
            path_name,
            format!("{SANDBOX_BUILD_DIR}/{file_name}").into_bytes(),
        );
    }
    Ok(())
}
