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
    /// Where actions are laid out (default: a folder in the temporary directory).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Run up to N actions at once.
    #[arg(short = 'j', long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,
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
    };
    run_worker(&settings).map_err(|error| Failure::Error(anyhow!(error)))
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
