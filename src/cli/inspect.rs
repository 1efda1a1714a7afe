//! `cipherlake inspect`: what a file is (key files for now), printed as text or JSON.

use std::path::PathBuf;

use cipherlake::paillier::keyfile::{self, KeyFile};
use cipherlake::paillier::PublicKey;
use serde_json::json;

use super::Global;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The file to describe: public.json or private.json.
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub(crate) fn run(args: Args, _global: &Global) -> anyhow::Result<()> {
    let (kind, pk): (&str, PublicKey) = match keyfile::load(&args.file)? {
        KeyFile::Public(pk) => ("public key", pk),
        KeyFile::Private(sk) => ("private key", sk.public_key().clone()),
    };
    let info = json!({
        "file": args.file.display().to_string(),
        "kind": kind,
        "key_id": pk.key_id(),
        "bits": pk.bits(),
        "fast_encryption": pk.hs().is_some(),
        "ciphertext_bytes": pk.ciphertext_width(),
    });
    match args.format {
        Format::Json => println!("{info}"),
        Format::Text => {
            println!("file              {}", args.file.display());
            println!("kind              {kind}");
            println!("key_id            {}", pk.key_id());
            println!("bits              {}", pk.bits());
            println!(
                "fast encryption   {}",
                if pk.hs().is_some() {
                    "yes (DJN base hs)"
                } else {
                    "no (r^n)"
                }
            );
            println!("ciphertext bytes  {}", pk.ciphertext_width());
        }
    }
    Ok(())
}
