//! Runs `kiln instantiate` on every case of the derivation corpus (`tests/drv/`) with the
//! logical store directories `/nix/store` and `/kiln/store`, each into a fresh store root,
//! and compares with the oracle's goldens: the printed `.drv` paths, every `.drv` file byte
//! for byte (no more, no fewer), and the presence of the sources and `toFile` texts the
//! oracle added. Reports every mismatch at once. `KILN_DRV_FILTER=a,b` selects cases.
mod common;

use common::drv::{
    cases, compare, golden, other_objects, read_drv_files, Instantiation, STORE_DIRS,
};
use common::{corpus_dir, kiln, Report};

#[test]
fn derivation_corpus_matches_oracle_goldens() {
    let corpus = corpus_dir("drv");
    let mut report = Report::new();
    for case in cases(&corpus) {
        for (store_dir, key) in STORE_DIRS {
            report.checked();
            let label = format!("{} ({store_dir})", case.name);
            let expected = golden(&corpus, key, &case);
            let root = tempfile::tempdir().expect("a temporary store root");
            let mut command = kiln();
            command
                .current_dir(&corpus)
                .args(["--store-dir", store_dir, "--store"])
                .arg(root.path())
                .arg("instantiate");
            if let Some(attr) = &case.attr {
                command.args(["-A", attr]);
            }
            command.arg(&case.file);
            common::corpus_env(&mut command);
            let run = common::run_with_timeout(&mut command)
                .unwrap_or_else(|e| panic!("{label}: cannot run kiln: {e}"));
            if run.code != Some(0) {
                report.fail(
                    &label,
                    format!(
                        "    expected success, got {}; stderr:\n{}\n",
                        run.describe_end(),
                        run.stderr.trim_end()
                    ),
                );
                continue;
            }
            let store = root.path().join("store");
            let actual = Instantiation {
                printed: run.stdout_text(),
                drv_files: read_drv_files(&store),
                other_objects: other_objects(&store),
            };
            if let Some(problems) = compare(&expected, &actual, true) {
                report.fail(&label, problems);
            }
        }
    }
    report.finish("drv");
}
