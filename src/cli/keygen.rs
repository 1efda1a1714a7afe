//! `cipherlake keygen`: a single-key Paillier key pair, or the dealer ceremony of a threshold key.
//! Every file of the set is staged under a temporary name before the (slow) generation starts, so
//! an unwritable `--out` is found first, and the set replaces an old one whole or not at all.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use cipherlake::keyfile;
use cipherlake::lake::atomic::FileSet;
use cipherlake::paillier::{threshold, PrivateKey, PublicKey, OFFERED_BITS};

use super::{progress, Global};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Modulus size in bits: 2048, 3072 (recommended for data kept for years) or 4096.
    #[arg(long, default_value_t = 2048)]
    bits: u32,
    /// Folder for public.json and private.json (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Overwrite existing key files.
    #[arg(long)]
    force: bool,
    /// A threshold key for these parties (comma-separated names): one share-NAME.json each,
    /// no private.json.
    #[arg(long, value_name = "A,B,C", requires = "threshold")]
    parties: Option<String>,
    /// How many parties must cooperate to decrypt (with --parties).
    #[arg(long, value_name = "K", requires = "parties")]
    threshold: Option<usize>,
}

pub(crate) fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    // Refuse a bad size before any file is staged.
    if !OFFERED_BITS.contains(&args.bits) {
        return Err(PrivateKey::generate(args.bits).err().map_or_else(
            || anyhow::anyhow!("key size {} is not allowed", args.bits),
            anyhow::Error::from,
        ));
    }
    let names = match (&args.parties, args.threshold) {
        (Some(parties), Some(_)) => Some(party_names(parties)?),
        _ => None,
    };
    let files = keyfile::key_set_paths(&args.out, names.as_deref());
    let mut set = FileSet::begin(&files, args.force)
        .with_context(|| format!("cannot write the key files into {}", args.out.display()))?;
    let started = Instant::now();
    let pk = match (&names, args.threshold) {
        (Some(names), Some(needed)) => {
            let pb = progress::spinner(
                &format!(
                    "dealing a {}-bit {needed}-of-{} key (safe primes, self-test)",
                    args.bits,
                    names.len()
                ),
                global.quiet,
            );
            let dealt = threshold::deal(args.bits, names, needed);
            pb.finish_and_clear();
            let dealt = dealt?;
            keyfile::write_dealt(&mut set, &dealt)?;
            dealt.public
        }
        _ => {
            let pb = progress::spinner(
                &format!("generating a {}-bit key (safe primes)", args.bits),
                global.quiet,
            );
            let key = PrivateKey::generate(args.bits);
            pb.finish_and_clear();
            let key = key?;
            keyfile::write_pair(&mut set, &key)?;
            key.public_key().clone()
        }
    };
    set.commit()?;
    print_summary(&pk, &files);
    if !global.quiet {
        eprintln!(
            "generated in {:.1} s{}",
            started.elapsed().as_secs_f64(),
            if names.is_some() {
                "; the dealer kept no secret"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn party_names(parties: &str) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = parties
        .split(',')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    for p in &names {
        anyhow::ensure!(
            threshold::valid_party_name(p),
            "party name `{p}` is not allowed: use letters, digits, '-', '_' or '.'"
        );
    }
    Ok(names)
}

/// What the ceremony made, with the key id every hospital records and later pins (`--key-id`).
fn print_summary(pk: &PublicKey, files: &[(PathBuf, cipherlake::lake::atomic::Privacy)]) {
    println!("key_id     {}", pk.key_id());
    println!("bits       {}", pk.bits());
    if let Some(th) = pk.threshold() {
        println!(
            "threshold  {} of {}: {}",
            th.needed,
            th.parties.len(),
            th.parties.join(", ")
        );
    }
    println!("public     {}", files[0].0.display());
    match pk.threshold() {
        Some(th) => {
            for (p, (path, _)) in th.parties.iter().zip(&files[1..]) {
                println!(
                    "share      {} → give to {p} only (mode 0600)",
                    path.display()
                );
            }
        }
        None => println!(
            "private    {} (mode 0600: keep it secret)",
            files[1].0.display()
        ),
    }
    println!(
        "Every hospital records the key id above (the fingerprint of every public parameter) and passes it as --key-id; a public.json whose id differs is refused."
    );
}
