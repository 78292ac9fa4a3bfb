//! `kiln remote-worker --executor URL`: a bot for a REAPI server's Remote Workers API (the
//! worker side of `realise --remote`; see kiln-remote's `worker`), and `kiln
//! remote-run-action MANIFEST`, what the actions it runs execute (kiln-remote's `runner`).
use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use kiln_remote::connection::BearerToken;
use kiln_remote::worker::{run_worker, WorkerSettings};

use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct RemoteWorkerArgs {
    /// The REAPI server whose Bots service hands out the work (`grpc://HOST:PORT`).
    #[arg(long, value_name = "URL")]
    pub executor: String,
    /// The REAPI instance name.
    #[arg(long, default_value = "")]
    pub instance_name: String,
    /// The bot's id (default: the host name and process id).
    #[arg(long)]
    pub bot_id: Option<String>,
    /// The Nix system this bot builds for (default: this machine's).
    #[arg(long)]
    pub system: Option<String>,
    /// Where actions are laid out, and the blob cache (`DIR/cas`) and worker store
    /// (`DIR/store`) are kept across actions and restarts (default: a folder in the
    /// temporary directory).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Run up to N actions at once.
    #[arg(short = 'j', long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// The bound of the worker's input blob cache (`DIR/cas`), least recently used evicted:
    /// bytes, or with a K, M, G or T suffix (powers of 1024).
    #[arg(long, value_name = "SIZE", default_value = "10G", value_parser = parse_size)]
    pub cache_size: u64,
    /// A file holding the bearer token sent with every call.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

pub fn run(_global: &GlobalOptions, args: RemoteWorkerArgs) -> Result<(), Failure> {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "kiln".to_owned());
    let token = match &args.token_file {
        Some(file) => {
            BearerToken::from_file(file).map_err(|error| Failure::Error(anyhow!(error)))?
        }
        None => BearerToken::default(),
    };
    let settings = WorkerSettings {
        url: args.executor,
        instance_name: args.instance_name,
        bot_id: args
            .bot_id
            .unwrap_or_else(|| format!("{host}-{}", std::process::id())),
        system: args.system.unwrap_or_else(kiln_builder::build::host_system),
        work_dir: args
            .work_dir
            .unwrap_or_else(|| std::env::temp_dir().join("kiln-remote-worker")),
        token,
        jobs: args.jobs,
        cache_bytes: args.cache_size,
    };
    run_worker(&settings).map_err(|error| Failure::Error(anyhow!(error)))
}

/// A size in bytes: digits, optionally followed by K, M, G or T (powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.to_ascii_uppercase().chars().last() {
        Some('K') => (&text[..text.len() - 1], 10),
        Some('M') => (&text[..text.len() - 1], 20),
        Some('G') => (&text[..text.len() - 1], 30),
        Some('T') => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    let number: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a size (such as 512M or 10G)"))?;
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[derive(Args, Debug)]
pub struct RemoteRunActionArgs {
    /// The action's manifest (in its input root).
    #[arg(value_name = "MANIFEST")]
    pub manifest: PathBuf,
}

pub fn run_action(_global: &GlobalOptions, args: RemoteRunActionArgs) -> Result<(), Failure> {
    kiln_remote::runner::run_action(&args.manifest)
        .map_err(|message| Failure::Error(anyhow!(message)))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("10g"), Ok(10 << 30));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
