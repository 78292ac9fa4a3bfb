//! The standard environment Nix 2.8 gives a builder (`LocalDerivationGoal::initEnv` and
//! `initTmpDir`): the derivation's own variables plus `PATH=/path-not-set`,
//! `HOME=/homeless-shelter`, `NIX_STORE`, `NIX_BUILD_CORES`, `NIX_BUILD_TOP`, `TMPDIR`,
//! `TEMPDIR`, `TMP`, `TEMP`, `PWD` (all the build directory, `/build` in a sandbox),
//! `NIX_OUTPUT_CHECKED=1` for fixed-output derivations, `NIX_LOG_FD=2` and
//! `TERM=xterm-256color`. The sandbox itself passes exactly the map it is given; callers build
//! that map with [`nix_build_env`]. `passAsFile` and `impureEnvVars` are the caller's business.

use std::collections::BTreeMap;

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
    drv_env: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, String>,
    params: &NixEnvParams<'_>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_owned(), "/path-not-set".to_owned());
    env.insert("HOME".to_owned(), HOMELESS_SHELTER.to_owned());
    env.insert("NIX_STORE".to_owned(), params.store_dir.to_owned());
    env.insert("NIX_BUILD_CORES".to_owned(), params.build_cores.to_string());
    for (name, value) in drv_env {
        env.insert(name.clone(), value.clone());
    }
    for (name, path) in outputs {
        env.insert(name.clone(), path.clone());
    }
    for name in ["NIX_BUILD_TOP", "TMPDIR", "TEMPDIR", "TMP", "TEMP", "PWD"] {
        env.insert(name.to_owned(), SANDBOX_BUILD_DIR.to_owned());
    }
    if params.fixed_output {
        env.insert("NIX_OUTPUT_CHECKED".to_owned(), "1".to_owned());
    }
    env.insert("NIX_LOG_FD".to_owned(), "2".to_owned());
    env.insert("TERM".to_owned(), "xterm-256color".to_owned());
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn derivation_overrides_path_but_not_build_dir_variables() {
        let drv_env = map(&[
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
        assert_eq!(env["PATH"], "/kiln/store/abc-tools/bin");
        assert_eq!(env["TMPDIR"], "/build");
        assert_eq!(env["HOME"], "/homeless-shelter");
        assert_eq!(env["NIX_STORE"], "/kiln/store");
        assert_eq!(env["NIX_BUILD_CORES"], "4");
        assert_eq!(env["NIX_LOG_FD"], "2");
        assert_eq!(env["TERM"], "xterm-256color");
        assert_eq!(env["PWD"], "/build");
        assert!(!env.contains_key("NIX_OUTPUT_CHECKED"));
        let names: Vec<&str> = env.keys().map(String::as_str).collect();
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
        assert_eq!(env["NIX_OUTPUT_CHECKED"], "1");
        assert_eq!(env["dev"], "/nix/store/d-x-dev");
        assert_eq!(env["out"], "/nix/store/o-x");
        assert_eq!(env["PATH"], "/path-not-set");
    }
}
