//! The standard environment Nix 2.8 gives a builder (`LocalDerivationGoal::initEnv` and
//! `initTmpDir`): the derivation's own variables plus `PATH=/path-not-set`,
//! `HOME=/homeless-shelter`, `NIX_STORE`, `NIX_BUILD_CORES`, `NIX_BUILD_TOP`, `TMPDIR`,
//! `TEMPDIR`, `TMP`, `TEMP`, `PWD` (all the build directory, `/build` in a sandbox),
//! `NIX_OUTPUT_CHECKED=1` for fixed-output derivations, `NIX_LOG_FD=2` and
//! `TERM=xterm-256color`. The sandbox itself passes exactly the map it is given; callers build
//! that map with [`nix_build_env`]. `passAsFile` and `impureEnvVars` are the caller's business.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// Where the build directory appears inside the sandbox (Nix's `sandbox-build-dir`).
pub const SANDBOX_BUILD_DIR: &str = "/build";

/// Nix's fake home directory, which must not exist.
pub const HOMELESS_SHELTER: &str = "/homeless-shelter";

/// What [`nix_build_env`] needs besides the derivation's environment.
#[derive(Debug, Clone)]
pub struct NixEnvParams<'a> {
    /// The logical store directory (`NIX_STORE`).
    pub store_dir: &'a str,
    /// `NIX_BUILD_CORES` (Nix's `cores` setting; 0 means "all").
    pub build_cores: u32,
    /// Whether the derivation is fixed-output (sets `NIX_OUTPUT_CHECKED=1`).
    pub fixed_output: bool,
}

/// Builds the environment of a sandboxed builder the way Nix 2.8 does: the fixed variables in
/// Nix's order of precedence, the derivation's environment (which may override `PATH` and
/// `HOME`), each output name bound to its logical path, then the build-directory variables,
/// `NIX_LOG_FD` and `TERM`, which the derivation cannot override.
pub fn nix_build_env(
    drv_env: &BTreeMap<Vec<u8>, Vec<u8>>,
    outputs: &BTreeMap<String, String>,
    params: &NixEnvParams<'_>,
) -> BTreeMap<OsString, OsString> {
    let mut env = BTreeMap::new();
    let mut set = |name: &str, value: &str| {
        env.insert(OsString::from(name), OsString::from(value));
    };
    set("PATH", "/path-not-set");
    set("HOME", HOMELESS_SHELTER);
    set("NIX_STORE", params.store_dir);
    set("NIX_BUILD_CORES", &params.build_cores.to_string());
    for (name, value) in drv_env {
        // The derivation's bytes, UTF-8 or not, are the builder's as they are.
        env.insert(
            OsString::from_vec(name.clone()),
            OsString::from_vec(value.clone()),
        );
    }
    let mut set = |name: &str, value: &str| {
        env.insert(OsString::from(name), OsString::from(value));
    };
    for (name, path) in outputs {
        set(name, path);
    }
    for name in ["NIX_BUILD_TOP", "TMPDIR", "TEMPDIR", "TMP", "TEMP", "PWD"] {
        set(name, SANDBOX_BUILD_DIR);
    }
    if params.fixed_output {
        set("NIX_OUTPUT_CHECKED", "1");
    }
    set("NIX_LOG_FD", "2");
    set("TERM", "xterm-256color");
    env
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn bytes_map(pairs: &[(&str, &str)]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn get<'a>(env: &'a BTreeMap<OsString, OsString>, name: &str) -> &'a OsString {
        &env[std::ffi::OsStr::new(name)]
    }

    #[test]
    fn derivation_overrides_path_but_not_build_dir_variables() {
        let drv_env = bytes_map(&[
            ("PATH", "/kiln/store/abc-tools/bin"),
            ("TMPDIR", "/elsewhere"),
            ("name", "hello"),
            ("out", "/kiln/store/xyz-hello"),
        ]);
        let outputs = map(&[("out", "/kiln/store/xyz-hello")]);
        let params = NixEnvParams {
            store_dir: "/kiln/store",
            build_cores: 4,
            fixed_output: false,
        };
        let env = nix_build_env(&drv_env, &outputs, &params);
        assert_eq!(get(&env, "PATH"), "/kiln/store/abc-tools/bin");
        assert_eq!(get(&env, "TMPDIR"), "/build");
        assert_eq!(get(&env, "HOME"), "/homeless-shelter");
        assert_eq!(get(&env, "NIX_STORE"), "/kiln/store");
        assert_eq!(get(&env, "NIX_BUILD_CORES"), "4");
        assert_eq!(get(&env, "NIX_LOG_FD"), "2");
        assert_eq!(get(&env, "TERM"), "xterm-256color");
        assert_eq!(get(&env, "PWD"), "/build");
        assert!(!env.contains_key(std::ffi::OsStr::new("NIX_OUTPUT_CHECKED")));
        let names: Vec<&str> = env.keys().filter_map(|name| name.to_str()).collect();
        assert_eq!(
            names,
            [
                "HOME",
                "NIX_BUILD_CORES",
                "NIX_BUILD_TOP",
                "NIX_LOG_FD",
                "NIX_STORE",
                "PATH",
                "PWD",
                "TEMP",
                "TEMPDIR",
                "TERM",
                "TMP",
                "TMPDIR",
                "name",
                "out"
            ]
        );
    }

    #[test]
    fn fixed_output_is_marked_checked_and_outputs_are_bound() {
        let params = NixEnvParams {
            store_dir: "/nix/store",
            build_cores: 1,
            fixed_output: true,
        };
        let outputs = map(&[("dev", "/nix/store/d-x-dev"), ("out", "/nix/store/o-x")]);
        let env = nix_build_env(&BTreeMap::new(), &outputs, &params);
        assert_eq!(get(&env, "NIX_OUTPUT_CHECKED"), "1");
        assert_eq!(get(&env, "dev"), "/nix/store/d-x-dev");
        assert_eq!(get(&env, "out"), "/nix/store/o-x");
        assert_eq!(get(&env, "PATH"), "/path-not-set");
    }

    #[test]
    fn bytes_that_are_not_utf8_pass_unchanged() {
        let drv_env = BTreeMap::from([(b"n\xc3".to_vec(), b"\xff\x01v\xe2\x82".to_vec())]);
        let params = NixEnvParams {
            store_dir: "/nix/store",
            build_cores: 1,
            fixed_output: false,
        };
        let env = nix_build_env(&drv_env, &BTreeMap::new(), &params);
        let value = &env[std::ffi::OsStr::from_bytes(b"n\xc3")];
        assert_eq!(value.as_bytes(), b"\xff\x01v\xe2\x82");
    }
}
