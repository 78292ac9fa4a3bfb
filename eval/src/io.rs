//! File access of the evaluator (`import`, `readFile`, `readDir`, `pathExists`, `getEnv`,
//! `currentTime`), behind the `EvalIo` trait so tests can evaluate without the file system and
//! `--pure` can refuse impure reads.
use std::collections::BTreeMap;
use std::path::Path;

/// The type of a directory entry as `builtins.readDir` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    Unknown,
}

impl FileType {
    pub fn as_nix_str(self) -> &'static str {
        match self {
            FileType::Regular => "regular",
            FileType::Directory => "directory",
            FileType::Symlink => "symlink",
            FileType::Unknown => "unknown",
        }
    }
}

/// What the evaluator may ask of the outside world. Errors are messages phrased for the user.
pub trait EvalIo {
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, String>;
    /// The entries of a directory by name; names are bytes, as on the file system (they need
    /// not be UTF-8).
    fn read_dir(&self, path: &Path) -> Result<BTreeMap<Vec<u8>, FileType>, String>;
    /// `None` if nothing is there; follows symlinks.
    fn file_type(&self, path: &Path) -> Option<FileType>;
    /// `None` if nothing is there; does not follow a final symlink (`lstat`), so a symlink,
    /// even a dangling one, is `Symlink`. Defaults to `file_type` for file systems without
    /// symlinks.
    fn entry_type(&self, path: &Path) -> Option<FileType> {
        self.file_type(path)
    }
    /// An environment variable's value as bytes (which need not be UTF-8, as a Nix string).
    fn get_env(&self, name: &str) -> Option<Vec<u8>>;
    /// Seconds since the epoch.
    fn current_time(&self) -> i64;
}

/// The real file system and process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdIo;

fn classify(ft: std::fs::FileType) -> FileType {
    if ft.is_file() {
        FileType::Regular
    } else if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else {
        FileType::Unknown
    }
}

impl EvalIo for StdIo {
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, String> {
        if path.is_dir() {
            return Err("reading from file: Is a directory".to_string());
        }
        std::fs::read(path)
            .map_err(|e| format!("opening file '{}': {}", path.display(), io_reason(&e)))
    }

    fn read_dir(&self, path: &Path) -> Result<BTreeMap<Vec<u8>, FileType>, String> {
        use std::os::unix::ffi::OsStrExt;
        let entries = std::fs::read_dir(path)
            .map_err(|e| format!("opening directory '{}': {}", path.display(), io_reason(&e)))?;
        let mut out = BTreeMap::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| format!("reading directory '{}': {e}", path.display()))?;
            let kind = entry.file_type().map(classify).unwrap_or(FileType::Unknown);
            out.insert(entry.file_name().as_bytes().to_vec(), kind);
        }
        Ok(out)
    }

    fn file_type(&self, path: &Path) -> Option<FileType> {
        std::fs::metadata(path)
            .ok()
            .map(|m| classify(m.file_type()))
    }

    fn entry_type(&self, path: &Path) -> Option<FileType> {
        std::fs::symlink_metadata(path)
            .ok()
            .map(|m| classify(m.file_type()))
    }

    fn get_env(&self, name: &str) -> Option<Vec<u8>> {
        std::env::var_os(name).map(std::os::unix::ffi::OsStringExt::into_vec)
    }

    fn current_time(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

/// The reason part of an I/O error the way Nix words it ("No such file or directory").
pub fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = std::io::Error::from_raw_os_error(code).to_string();
            // Rust appends " (os error N)"; Nix shows strerror only.
            match text.rfind(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
        None => e.to_string(),
    }
}

/// An in-memory file tree for tests: paths map to file contents; directories are implied.
#[derive(Debug, Default, Clone)]
pub struct MemoryIo {
    pub files: BTreeMap<String, Vec<u8>>,
    pub env: BTreeMap<String, String>,
    pub time: i64,
}

impl EvalIo for MemoryIo {
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, String> {
        self.files
            .get(&path.display().to_string())
            .cloned()
            .ok_or_else(|| {
                format!(
                    "opening file '{}': No such file or directory",
                    path.display()
                )
            })
    }

    fn read_dir(&self, path: &Path) -> Result<BTreeMap<Vec<u8>, FileType>, String> {
        let prefix = format!("{}/", path.display().to_string().trim_end_matches('/'));
        let mut out = BTreeMap::new();
        for name in self.files.keys() {
            if let Some(rest) = name.strip_prefix(&prefix) {
                match rest.split_once('/') {
                    Some((dir, _)) => out.insert(dir.as_bytes().to_vec(), FileType::Directory),
                    None => out.insert(rest.as_bytes().to_vec(), FileType::Regular),
                };
            }
        }
        if out.is_empty() {
            return Err(format!(
                "opening directory '{}': No such file or directory",
                path.display()
            ));
        }
        Ok(out)
    }

    fn file_type(&self, path: &Path) -> Option<FileType> {
        let p = path.display().to_string();
        if self.files.contains_key(&p) {
            return Some(FileType::Regular);
        }
        let prefix = format!("{}/", p.trim_end_matches('/'));
        self.files
            .keys()
            .any(|k| k.starts_with(&prefix))
            .then_some(FileType::Directory)
    }

    fn get_env(&self, name: &str) -> Option<Vec<u8>> {
        self.env.get(name).map(|value| value.clone().into_bytes())
    }

    fn current_time(&self) -> i64 {
        self.time
    }
}
