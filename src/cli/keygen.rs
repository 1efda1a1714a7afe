//! `cipherlake keygen`: a single-key Paillier key pair.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use cipherlake::paillier::{keyfile, PrivateKey};

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
}

pub(crate) fn run(args: Args, global: &Global) -> anyhow::Result<()> {
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
