//! `kiln key generate NAME` and `kiln key public`: Nix-format signing keys (`NAME:base64`) for
//! binary caches. `generate` prints the secret key, or with `--out FILE` writes it to FILE
//! (mode 0600) and its public half to `FILE.pub`; `public` prints the public half of a secret
//! key read from a file or standard input.
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kiln_cache::signing::SecretKey;

use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub action: KeyAction,
}

#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// Make a new key pair named NAME (by convention the cache's host name and a number,
    /// `cache.example.org-1`); print the secret key, or write it with `--out`.
    Generate {
        /// The key's name, recorded in every signature it makes.
        name: String,
        /// Write the secret key to FILE (mode 0600) and the public key to FILE.pub.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the public key of a secret key read from FILE, or from standard input.
    Public {
        #[arg(value_name = "FILE")]
        secret_key_file: Option<PathBuf>,
    },
}

fn write_new(file: &std::path::Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut handle = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(file)
        .with_context(|| format!("cannot create '{}'", file.display()))?;
    handle
        .write_all(text.as_bytes())
        .with_context(|| format!("cannot write '{}'", file.display()))
}

pub fn run(_global: &GlobalOptions, args: KeyArgs) -> Result<(), Failure> {
    match args.action {
        KeyAction::Generate { name, out } => {
            if name.is_empty() || name.contains(':') || name.contains(char::is_whitespace) {
                return Err(anyhow::anyhow!(
                    "a key name must be non-empty, without ':' or spaces: '{name}'"
                )
                .into());
            }
            let key = SecretKey::generate(&name);
            match out {
                None => println!("{}", key.to_text()),
                Some(file) => {
                    let mut public_file = file.clone().into_os_string();
                    public_file.push(".pub");
                    let public_file = PathBuf::from(public_file);
                    write_new(&file, &key.to_text(), 0o600)?;
                    write_new(&public_file, &key.public_key().to_text(), 0o644)?;
                    eprintln!(
                        "wrote the secret key to {} and the public key to {}",
                        file.display(),
                        public_file.display()
                    );
                }
            }
        }
        KeyAction::Public { secret_key_file } => {
            let key = match secret_key_file {
                Some(file) => crate::config::read_secret_key(&file)?,
                None => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("cannot read the secret key from standard input")?;
                    SecretKey::parse(&text).context("invalid secret key on standard input")?
                }
            };
            println!("{}", key.public_key().to_text());
        }
    }
    Ok(())
}
