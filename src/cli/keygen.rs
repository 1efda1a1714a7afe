//! `cipherlake keygen`: a single-key Paillier key pair.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use cipherlake::paillier::{keyfile, threshold, PrivateKey};

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
    if let (Some(parties), Some(needed)) = (&args.parties, args.threshold) {
        return run_threshold(&args, parties, needed, global);
    }
    let public_path = args.out.join("public.json");
    let private_path = args.out.join("private.json");
    if !args.force {
        for p in [&public_path, &private_path] {
            anyhow::ensure!(
                !p.exists(),
                "{} already exists (use --force to overwrite)",
                p.display()
            );
        }
    }
    // Refuse a bad size before any folder is created.
    if !cipherlake::paillier::OFFERED_BITS.contains(&args.bits) {
        return Err(PrivateKey::generate(args.bits).err().map_or_else(
            || anyhow::anyhow!("key size {} is not allowed", args.bits),
            anyhow::Error::from,
        ));
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let started = Instant::now();
    let pb = progress::spinner(
        &format!("generating a {}-bit key (safe primes)", args.bits),
        global.quiet,
    );
    let key = PrivateKey::generate(args.bits);
    pb.finish_and_clear();
    let key = key?;
    keyfile::write_private(&key, &private_path, args.force)?;
    keyfile::write_public(key.public_key(), &public_path, args.force)?;
    let pk = key.public_key();
    println!("key_id  {}", pk.key_id());
    println!("bits    {}", pk.bits());
    println!("public  {}", public_path.display());
    println!(
        "private {} (mode 0600: keep it secret)",
        private_path.display()
    );
    if !global.quiet {
        eprintln!("generated in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// The dealer ceremony: public.json with the parties and verification keys, one share per party,
/// a self-test, and nothing secret kept.
fn run_threshold(args: &Args, parties: &str, needed: usize, global: &Global) -> anyhow::Result<()> {
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
    let public_path = args.out.join("public.json");
    let share_paths: Vec<_> = names
        .iter()
        .map(|p| args.out.join(format!("share-{p}.json")))
        .collect();
    if !args.force {
        for p in std::iter::once(&public_path).chain(&share_paths) {
            anyhow::ensure!(
                !p.exists(),
                "{} already exists (use --force to overwrite)",
                p.display()
            );
        }
    }
    let started = Instant::now();
    let pb = progress::spinner(
        &format!(
            "dealing a {}-bit {needed}-of-{} key (safe primes, self-test)",
            args.bits,
            names.len()
        ),
        global.quiet,
    );
    let dealt = threshold::deal(args.bits, &names, needed);
    pb.finish_and_clear();
    let dealt = dealt?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for (share, path) in dealt.shares.iter().zip(&share_paths) {
        keyfile::write_share(share, path, args.force)?;
    }
    keyfile::write_threshold_public(&dealt.public, &dealt.threshold, &public_path, args.force)?;
    println!("key_id     {}", dealt.public.key_id());
    println!("bits       {}", dealt.public.bits());
    println!(
        "threshold  {needed} of {}: {}",
        names.len(),
        names.join(", ")
    );
    println!("public     {}", public_path.display());
    for (p, path) in names.iter().zip(&share_paths) {
        println!(
            "share      {} → give to {p} only (mode 0600)",
            path.display()
        );
    }
    if !global.quiet {
        eprintln!(
            "dealt and self-tested in {:.1} s; the dealer kept no secret",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
