//! A small command-line front end to the build sandbox, used by the sandbox tests to run a
//! build from another process (as an unprivileged user, or to kill the caller mid-build).
//!
//! Usage: `kiln-sandbox-probe --store-dir DIR --build-dir DIR [--input HOST=LOGICAL]...
//! [--output HOST=LOGICAL]... [--env NAME=VALUE]... [--network] [--timeout-ms N]
//! [--nixbld] -- BUILDER [ARG...]`. The builder's output goes to stdout; the outcome is
//! printed on stderr as `outcome: <debug>`; the exit code is 0 when the builder succeeded.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use kiln_builder::sandbox::{IdMapPolicy, LogSink, Sandbox, SandboxSpec, StoreMount};

fn split_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .ok_or_else(|| format!("expected A=B, got {text:?}"))
}

fn parse(args: Vec<String>) -> Result<SandboxSpec, String> {
    let mut store_dir = None;
    let mut build_dir = None;
    let mut spec_parts = SandboxSpec::new("/", "/", "/");
    let mut rest = args.into_iter();
    let mut command = Vec::new();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--store-dir" => store_dir = Some(PathBuf::from(value()?)),
            "--build-dir" => build_dir = Some(PathBuf::from(value()?)),
            "--input" => {
                let (host, logical) = split_pair(&value()?)?;
                spec_parts.inputs.push(StoreMount::new(host, logical));
            }
            "--output" => {
                let (host, logical) = split_pair(&value()?)?;
                spec_parts.outputs.push(StoreMount::new(host, logical));
            }
            "--env" => {
                let (name, val) = split_pair(&value()?)?;
                spec_parts.env.insert(name.into(), val.into());
            }
            "--network" => spec_parts.network = true,
            "--nixbld" => spec_parts.id_map = IdMapPolicy::Nixbld,
            "--timeout-ms" => {
                let ms = value()?.parse().map_err(|e| format!("--timeout-ms: {e}"))?;
                spec_parts.timeout = Some(Duration::from_millis(ms));
            }
            "--" => {
                command.extend(rest.by_ref());
                break;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let mut command = command.into_iter();
    let builder = command.next().ok_or("missing builder after --")?;
    let mut spec = SandboxSpec::new(
        store_dir.ok_or("missing --store-dir")?,
        build_dir.ok_or("missing --build-dir")?,
        builder,
    );
    spec.args = command.map(Into::into).collect();
    spec.inputs = spec_parts.inputs;
    spec.outputs = spec_parts.outputs;
    spec.env = spec_parts.env;
    spec.network = spec_parts.network;
    spec.id_map = spec_parts.id_map;
    spec.timeout = spec_parts.timeout;
    spec.log = LogSink::Writer(Box::new(std::io::stdout()));
    Ok(spec)
}

fn main() -> ExitCode {
    let spec = match parse(std::env::args().skip(1).collect()) {
        Ok(spec) => spec,
        Err(message) => {
            eprintln!("kiln-sandbox-probe: {message}");
            return ExitCode::from(2);
        }
    };
    let result = Sandbox::new(spec).and_then(|sandbox| {
        eprintln!("mapping: {:?}", sandbox.id_mapping());
        sandbox.run()
    });
    match result {
        Ok(outcome) => {
            eprintln!("outcome: {outcome:?}");
            if outcome.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(err) => {
            eprintln!("kiln-sandbox-probe: {err}");
            ExitCode::from(3)
        }
    }
}
