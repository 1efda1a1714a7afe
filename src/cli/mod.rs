//! Command-line parsing and dispatch. Flags are parsed into plain structs (clap derive), each verb
//! lives in its own file, errors are printed once as an `anyhow` chain, and exit codes are chosen
//! here: 0 success, 1 failure, 2 bad usage (clap's own).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod combine;
mod decrypt;
mod demo;
mod encrypt;
mod inspect;
mod keygen;
mod partial;
mod progress;
mod query;

/// Privacy-preserving analytics over Paillier-encrypted Parquet lakes.
#[derive(Parser)]
#[command(name = "cipherlake", version, about, long_about = None)]
struct Cli {
    /// Worker threads for encryption, decryption and key generation (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    /// No progress bars or summaries on standard error.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole flow on a local lake: hospitals, key ceremony, encryption, SQL, joint decryption.
    Demo(demo::Args),
    /// Generate a Paillier key pair (public.json, private.json with mode 0600).
    Keygen(keygen::Args),
    /// Encrypt columns of a CSV/Parquet file or folder into Parquet for the lake.
    Encrypt(encrypt::Args),
    /// Decrypt the encrypted columns of a lake file or query result with the private key.
    Decrypt(decrypt::Args),
    /// Run SQL over encrypted tables (public keys only); encrypted aggregates stay encrypted.
    Query(query::Args),
    /// Measure encryption and encrypted SUM throughput (figures for the README).
    Bench(bench::Args),
    /// One party: check a query result against the policy and write partial decryptions with proofs.
    PartialDecrypt(partial::Args),
    /// Verify the parties' partial decryptions and write the plaintext result.
    Combine(combine::Args),
    /// Describe a key file or a Parquet file (rows, encrypted columns, key ids).
    Inspect(inspect::Args),
}

/// Options every verb sees.
pub(crate) struct Global {
    pub quiet: bool,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("cipherlake: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(n) = cli.threads {
        anyhow::ensure!(n >= 1, "--threads must be at least 1");
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| anyhow::anyhow!("cannot start {n} worker threads: {e}"))?;
    }
    let global = Global { quiet: cli.quiet };
    match cli.command {
        Command::Demo(args) => demo::run(args, &global),
        Command::Keygen(args) => keygen::run(args, &global),
        Command::Encrypt(args) => encrypt::run(args, &global),
        Command::Decrypt(args) => decrypt::run(args, &global),
        Command::Query(args) => query::run(args, &global),
        Command::PartialDecrypt(args) => partial::run(args, &global),
        Command::Combine(args) => combine::run(args, &global),
        Command::Inspect(args) => inspect::run(args, &global),
        Command::Bench(args) => bench::run(args, &global),
    }
}

/// Where a verb's table goes: `-` is standard output; the format is the one given, else the
/// output's extension, else a table on standard output.
pub(crate) fn output_target(
    output: &str,
    format: Option<&str>,
) -> anyhow::Result<(Option<std::path::PathBuf>, cipherlake::lake::output::Format)> {
    use cipherlake::lake::output::Format;
    let path = (output != "-").then(|| std::path::PathBuf::from(output));
    let format = match format {
        Some(f) => f.parse::<Format>()?,
        None => Format::for_output(path.as_deref()),
    };
    Ok((path, format))
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
