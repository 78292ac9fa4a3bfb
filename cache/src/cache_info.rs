//! `nix-cache-info`, the file at a binary cache's root: the store directory its paths belong
//! to (`StoreDir`), whether clients may query it in bulk (`WantMassQuery`) and its priority
//! among caches (`Priority`, lower first).

/// What a cache's `nix-cache-info` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    /// The logical store directory of the cache's paths.
    pub store_dir: String,
    /// Whether the cache welcomes many queries at once.
    pub want_mass_query: bool,
    /// Lower is asked first; Nix's default is 50.
    pub priority: u32,
}

/// Nix's priority for a cache that names none.
pub const DEFAULT_PRIORITY: u32 = 50;

/// Why a `nix-cache-info` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheInfoError {
    #[error("'{0}' is not 'Key: value'")]
    NotKeyValue(String),
    #[error("the field '{field}' is invalid: '{value}'")]
    Invalid { field: &'static str, value: String },
    #[error("it names no StoreDir")]
    NoStoreDir,
}

impl CacheInfo {
    /// The cache-info kiln writes for a new cache of `store_dir`.
    pub fn new(store_dir: &str) -> CacheInfo {
        CacheInfo {
            store_dir: store_dir.to_owned(),
            want_mass_query: true,
            priority: 40,
        }
    }

    /// Parses the file; unknown fields are ignored, as Nix does.
    pub fn parse(text: &str) -> Result<CacheInfo, CacheInfoError> {
        let mut info = CacheInfo {
            store_dir: String::new(),
            want_mass_query: false,
            priority: DEFAULT_PRIORITY,
        };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (key, value) = line
                .split_once(':')
                .ok_or_else(|| CacheInfoError::NotKeyValue(line.to_owned()))?;
            let value = value.trim();
            match key {
                "StoreDir" => info.store_dir = value.to_owned(),
                "WantMassQuery" => info.want_mass_query = value == "1",
                "Priority" => {
                    info.priority = value.parse().map_err(|_| CacheInfoError::Invalid {
                        field: "Priority",
                        value: value.to_owned(),
                    })?
                }
                _ => {}
            }
        }
        if info.store_dir.is_empty() {
            return Err(CacheInfoError::NoStoreDir);
        }
        Ok(info)
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        format!(
            "StoreDir: {}\nWantMassQuery: {}\nPriority: {}\n",
            self.store_dir,
            u8::from(self.want_mass_query),
            self.priority
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_cache_infos_parse() {
        // Written by `nix copy --to file://…` (Nix 2.8): only the store directory.
        let file_cache = CacheInfo::parse("StoreDir: /tmp/oracle/store2\n").unwrap();
        assert_eq!(file_cache.store_dir, "/tmp/oracle/store2");
        assert_eq!(file_cache.priority, DEFAULT_PRIORITY);
        assert!(!file_cache.want_mass_query);
        let served =
            CacheInfo::parse("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n").unwrap();
        assert_eq!(served, CacheInfo::new("/nix/store"));
        assert_eq!(CacheInfo::parse(&served.to_text()).unwrap(), served);
    }

    #[test]
    fn bad_cache_infos_are_refused() {
        assert_eq!(
            CacheInfo::parse("Priority: 1\n"),
            Err(CacheInfoError::NoStoreDir)
        );
        assert!(CacheInfo::parse("StoreDir: /nix/store\nPriority: high\n").is_err());
        assert!(CacheInfo::parse("<html>").is_err());
    }
}
