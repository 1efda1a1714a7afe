//! `cipherlake encrypt`: a data owner publishes a CSV/Parquet extract with sensitive columns
//! Paillier-encrypted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use cipherlake::lake::encrypt::input_bytes;
use cipherlake::lake::{encrypt_path, EncryptOptions, EncryptSpec};

use super::{progress, Global};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Public key file (public.json).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The key id the key ceremony printed: a public.json with any other id is refused.
    #[arg(long, value_name = "HEX")]
    key_id: Option<String>,
    /// A .csv (with a header row) or .parquet file, or a folder of them.
    #[arg(long, value_name = "PATH")]
    input: PathBuf,
    /// Columns to encrypt, with a decimal scale where needed: `cost:2,length_of_stay,diabetic`.
    #[arg(long, value_name = "COL[:SCALE],…")]
    encrypt: String,
    /// Output .parquet file (or folder, for a folder input).
    #[arg(long, value_name = "PATH")]
    output: PathBuf,
    /// Overwrite an existing output.
    #[arg(long)]
    force: bool,
    /// Rows per batch.
    #[arg(long, default_value_t = 8192, value_name = "ROWS")]
    batch_size: usize,
}

pub(crate) fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let columns = EncryptSpec::parse_list(&args.encrypt)?;
    let pk = super::load_public(&args.key, args.key_id.as_deref())?;
    let total = input_bytes(&args.input)?;
    let pb = progress::bytes_bar(total, "encrypting", global.quiet);
    let pb2 = pb.clone();
    let opts = EncryptOptions {
        columns,
        batch_size: args.batch_size,
        progress: Some(Arc::new(move |n| pb2.inc(n))),
        overwrite: args.force,
    };
    let started = Instant::now();
    let result = encrypt_path(&pk, &args.input, &args.output, &opts);
    pb.finish_and_clear();
    let stats = result?;
    let secs = started.elapsed().as_secs_f64();
    if !global.quiet {
        eprintln!(
            "encrypted {} values in {} rows from {} file(s) in {:.2} s: {:.0} rows/s, {:.0} values/s → {} (key {})",
            stats.values,
            stats.rows,
            stats.files,
            secs,
            stats.rows as f64 / secs,
            stats.values as f64 / secs,
            args.output.display(),
            pk.key_id()
        );
    }
    Ok(())
}
