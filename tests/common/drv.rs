//! The derivation corpus (`tests/drv/`): cases (`<case>.nix`, optional `<case>.attr` holding
//! an `-A` attribute path), the two logical store directories they are checked with, and
//! the oracle's goldens under `golden/<store key>/`:
//! `<case>.drv-paths` (what `nix-instantiate` printed), `<case>/<hash>-<name>.drv` (every
//! `.drv` file written) and `<case>.store-objects` (base names of the other store objects
//! written: sources and `toFile` texts).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The logical store directories every case is checked with, and the folder names of their
/// goldens.
pub const STORE_DIRS: [(&str, &str); 2] =
    [("/nix/store", "nix-store"), ("/kiln/store", "kiln-store")];

/// One derivation case.
#[derive(Debug, Clone)]
pub struct DrvCase {
    pub name: String,
    pub file: PathBuf,
    /// The `-A` attribute path, when the case selects one.
    pub attr: Option<String>,
}

/// What instantiating a case wrote and printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instantiation {
    /// The printed paths, exactly.
    pub printed: String,
    /// Every `.drv` file, by base name.
    pub drv_files: BTreeMap<String, Vec<u8>>,
    /// Base names of the other store objects, sorted.
    pub other_objects: Vec<String>,
}

/// Every case in `corpus` (sorted) that passes the `KILN_DRV_FILTER` variable.
pub fn cases(corpus: &Path) -> Vec<DrvCase> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus)
        .unwrap_or_else(|e| panic!("listing {}: {e}", corpus.display()))
        .map(|entry| entry.expect("a readable corpus entry").path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "nix"))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|file| {
            let name = file.file_stem()?.to_string_lossy().into_owned();
            if !super::selected(&name, super::DRV_FILTER_VAR) {
                return None;
            }
            let attr_file = corpus.join(format!("{name}.attr"));
            let attr = attr_file.exists().then(|| {
                std::fs::read_to_string(&attr_file)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", attr_file.display()))
                    .trim()
                    .to_string()
            });
            Some(DrvCase { name, file, attr })
        })
        .collect()
}

/// The committed golden of `case` for the store directory with golden folder `key`.
pub fn golden(corpus: &Path, key: &str, case: &DrvCase) -> Instantiation {
    let dir = corpus.join("golden").join(key);
    let read_text = |path: PathBuf| {
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading golden {}: {e}", path.display()))
    };
    let printed = read_text(dir.join(format!("{}.drv-paths", case.name)));
    let other_objects = read_text(dir.join(format!("{}.store-objects", case.name)))
        .lines()
        .map(str::to_string)
        .collect();
    let drv_files = read_drv_files(&dir.join(&case.name));
    Instantiation {
        printed,
        drv_files,
        other_objects,
    }
}

/// The `.drv` files directly inside `dir`, by base name.
pub fn read_drv_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.expect("a readable store entry").path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".drv") {
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            files.insert(name, bytes);
        }
    }
    files
}

/// Base names of the entries of `dir` that are neither `.drv` files nor hidden, sorted.
pub fn other_objects(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.ends_with(".drv") && !name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Compares an instantiation with the golden one; every difference, or `None`.
/// `check_other_objects` also requires the sources and texts to be in the store.
pub fn compare(
    golden: &Instantiation,
    actual: &Instantiation,
    check_other_objects: bool,
) -> Option<String> {
    let mut problems = String::new();
    if golden.printed != actual.printed {
        problems.push_str("    printed paths differ:\n");
        problems.push_str(&super::diff(&golden.printed, &actual.printed));
    }
    for (name, bytes) in &golden.drv_files {
        match actual.drv_files.get(name) {
            None => problems.push_str(&format!("    missing {name}\n")),
            Some(actual_bytes) if actual_bytes != bytes => {
                problems.push_str(&format!("    {name} differs:\n"));
                problems.push_str(&super::diff(
                    &String::from_utf8_lossy(bytes),
                    &String::from_utf8_lossy(actual_bytes),
                ));
            }
            Some(_) => {}
        }
    }
    for name in actual.drv_files.keys() {
        if !golden.drv_files.contains_key(name) {
            problems.push_str(&format!(
                "    unexpected {name} (not written by the oracle):\n{}\n",
                String::from_utf8_lossy(&actual.drv_files[name])
            ));
        }
    }
    if check_other_objects {
        for name in &golden.other_objects {
            if !actual.other_objects.contains(name) {
                problems.push_str(&format!("    store object {name} was not added\n"));
            }
        }
    }
    (!problems.is_empty()).then_some(problems)
}
