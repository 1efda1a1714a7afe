//! `cipherlake encrypt`: a data owner publishes a CSV/Parquet extract with sensitive columns
//! Paillier-encrypted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use cipherlake::lake::encrypt::input_bytes;
use cipherlake::lake::signed::FileSigner;
use cipherlake::lake::{encrypt_path, EncryptOptions, EncryptSpec};
use cipherlake::release::signature::Signer;
use cipherlake::release::OwnerKey;

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
    /// The data owner's signing key (OWNER.signing.json): each output file is signed beside it
    /// (FILE.parquet.sig.json), so that hospitals can tell the owner's rows from anyone else's.
    #[arg(long, value_name = "FILE")]
    sign: Option<PathBuf>,
    /// Rows per batch.
    #[arg(long, default_value_t = 8192, value_name = "ROWS")]
    batch_size: usize,
}

pub(crate) fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let columns = parse_columns(&args.encrypt)?;
    let pk = super::load_public(&args.key, args.key_id.as_deref())?;
    let signer = match &args.sign {
        Some(path) => {
            Some(Arc::new(Signer::new(OwnerKey::load(path)?, pk.key_id())) as Arc<dyn FileSigner>)
        }
        None => None,
    };
    let total = input_bytes(&args.input)?;
    let pb = progress::bytes_bar(total, "encrypting", global.quiet);
    let pb2 = pb.clone();
    let opts = EncryptOptions {
        columns,
        batch_size: args.batch_size,
        progress: Some(Arc::new(move |n| pb2.inc(n))),
        overwrite: args.force,
        signer,
    };
    let started = Instant::now();
    let result = encrypt_path(&pk, &args.input, &args.output, &opts);
    pb.finish_and_clear();
    let stats = result.map_err(hint)?;
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

/// `--encrypt COL[:SCALE][,COL[:SCALE]…]`.
pub(crate) fn parse_columns(s: &str) -> anyhow::Result<Vec<EncryptSpec>> {
    let mut out: Vec<EncryptSpec> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (column, scale) = match item.rsplit_once(':') {
            Some((c, sc)) => {
                let scale = sc.parse::<u32>().map_err(|_| {
                    anyhow::anyhow!("--encrypt {item}: scale `{sc}` is not a whole number")
                })?;
                (c.to_owned(), Some(scale))
            }
            None => (item.to_owned(), None),
        };
        anyhow::ensure!(
            !out.iter().any(|e| e.column == column),
            "--encrypt names column `{column}` twice"
        );
        out.push(EncryptSpec { column, scale });
    }
    anyhow::ensure!(!out.is_empty(), "--encrypt names no column");
    Ok(out)
}

/// The flag that fixes a column needing a scale, added to the library's error.
pub(crate) fn hint(e: cipherlake::Error) -> anyhow::Error {
    match &e {
        cipherlake::Error::NeedsScale { column, .. } => {
            let hint = format!("encrypt it with a scale, e.g. --encrypt {column}:2");
            anyhow::Error::from(e).context(hint)
        }
        _ => e.into(),
    }
}
