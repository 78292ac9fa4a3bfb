//! Building hand-made `.drv` files with the plan and the scheduler (`scheduling`), builtin
//! unpacking in plans (`unpacking`) and what hostile builds leave behind (`hostile_outputs`). Needs busybox and user namespaces: under CI=true
//! their absence fails the tests, elsewhere the tests print why they skip.
#[path = "../fetch_support/mod.rs"]
mod fetch_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_builder::build::{host_system, BuildSettings};
use kiln_builder::builtin_builders::{BuiltinOptions, FetchOptions, FetchProgress};
use kiln_builder::log::BuildLog;
use kiln_builder::plan::{BuildPlan, BuildReason, BuildTarget};
use kiln_builder::report::{BuildError, BuildEvents, BuildOutcome, NoEvents};
use kiln_builder::scheduler::{run_plan, BuildStatus, ScheduleOptions, ScheduleReport};
use kiln_local_store::store_files::{add_text, commit_copy, stage_copy};
use kiln_local_store::LocalStore;
use kiln_store::derivation::{Derivation, DerivationOutput, DrvHashCache, FixedOutputHash};
use kiln_store::hash::Hash;
use kiln_store::store_path::{ContentAddressMethod, StoreDir, StorePath};

const BUSYBOX: &str = "/bin/busybox";

/// Whether the machine can run sandboxed busybox builds; panics under CI=true if not.
fn environment_ready() -> bool {
    let missing = if !Path::new(BUSYBOX).exists() {
        Some("busybox is not installed at /bin/busybox")
    } else if !std::process::Command::new("unshare")
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

struct TestStore {
    _root: tempfile::TempDir,
    store: LocalStore,
    dir: StoreDir,
    busybox: StorePath,
    hashes: DrvHashCache,
    drvs: BTreeMap<StorePath, Derivation>,
}

impl TestStore {
    fn new() -> TestStore {
        let root = tempfile::tempdir().unwrap();
        let dir = StoreDir::new("/kiln/store");
        let store = LocalStore::open(root.path().join("kiln"), dir.clone()).unwrap();
        // busybox picks its applet from argv[0], which must be `busybox` to take the applet
        // from argv[1]: import a directory holding `busybox`, as examples/busybox does.
        let bin = root.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
        let staged = stage_copy(
            &store,
            "busybox",
            &bin,
            ContentAddressMethod::Recursive,
            None,
        )
        .unwrap();
        let busybox = dir
            .make_fixed_output_path(
                ContentAddressMethod::Recursive,
                &staged.content_hash,
                "busybox",
                &BTreeSet::new(),
                false,
            )
            .unwrap();
        commit_copy(&store, staged, &busybox, ContentAddressMethod::Recursive).unwrap();
        TestStore {
            _root: root,
            store,
            dir,
            busybox,
            hashes: DrvHashCache::new(),
            drvs: BTreeMap::new(),
        }
    }

    /// Writes a busybox-sh derivation running `script`, using the `out` outputs of `inputs`
    /// (available to the script as `$input0`, `$input1`, ...).
    fn derivation(
        &mut self,
        name: &str,
        script: &str,
        inputs: &[&StorePath],
        fixed: Option<FixedOutputHash>,
        extra_env: &[(&str, &str)],
    ) -> StorePath {
        let mut drv = Derivation {
            name: name.to_owned(),
            platform: host_system(),
            builder: self.builder().into_bytes(),
            args: vec![b"sh".to_vec(), b"-c".to_vec(), script.as_bytes().to_vec()],
            ..Derivation::default()
        };
        drv.outputs.insert(
            "out".to_owned(),
            DerivationOutput {
                fixed,
                ..DerivationOutput::default()
            },
        );
        drv.input_srcs.insert(self.busybox.clone());
        for (index, input) in inputs.iter().enumerate() {
            drv.input_drvs
                .insert((*input).clone(), BTreeSet::from(["out".to_owned()]));
            let out = self.drvs[*input].outputs["out"].path.clone().unwrap();
            drv.set_env_var(&format!("input{index}"), self.dir.print(&out));
        }
        for (key, value) in [
            ("name", name),
            ("system", &host_system()),
            ("builder", &self.builder()),
        ] {
            drv.set_env_var(key, value.as_bytes());
        }
        for (key, value) in extra_env {
            drv.set_env_var(key, value.as_bytes());
        }
        self.write(drv)
    }

    /// Fills in the output paths of `drv` and writes it to the store.
    fn write(&mut self, mut drv: Derivation) -> StorePath {
        let (dir, drvs, hashes) = (&self.dir, &self.drvs, &mut self.hashes);
        drv.fill_output_paths(dir, &mut |input| {
            hashes
                .hash_of_path(dir, input, &mut |path| Ok(drvs[path].clone()))
                .ok()
        })
        .unwrap();
        let aterm = drv.to_aterm(&self.dir);
        let drv_path = drv.drv_path(&self.dir, &aterm).unwrap();
        let outputs = drv
            .outputs
            .iter()
            .map(|(name, output)| (name.clone(), output.path.clone().unwrap()))
            .collect();
        add_text(&self.store, &drv_path, &aterm, &drv.references(), outputs).unwrap();
        self.drvs.insert(drv_path.clone(), drv);
        drv_path
    }

    fn builder(&self) -> String {
        format!("{}/busybox", self.dir.print(&self.busybox))
    }

    fn out(&self, drv: &StorePath) -> StorePath {
        self.drvs[drv].outputs["out"].path.clone().unwrap()
    }

    fn plan(&self, targets: &[&StorePath], check: bool) -> BuildPlan {
        let targets: Vec<BuildTarget> = targets
            .iter()
            .map(|drv| BuildTarget::all_outputs((*drv).clone()))
            .collect();
        BuildPlan::load(&self.store, &targets, check).unwrap()
    }

    fn run(&self, plan: &BuildPlan, jobs: usize, check: bool) -> ScheduleReport {
        self.run_with(
            plan,
            ScheduleOptions {
                jobs,
                keep_going: false,
                check,
                settings: Default::default(),
            },
        )
    }

    fn run_with(&self, plan: &BuildPlan, options: ScheduleOptions) -> ScheduleReport {
        let events: Arc<dyn BuildEvents> = Arc::new(NoEvents);
        run_plan(&self.store, plan, &options, &events)
    }
}

fn failure(report: &ScheduleReport) -> &BuildError {
    report
        .statuses
        .iter()
        .find_map(|status| match status {
            BuildStatus::Failed(error) => Some(error),
            _ => None,
        })
        .expect("a failed build")
}

mod hostile_outputs;
mod scheduling;
mod unpacking;
