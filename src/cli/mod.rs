//! Command-line parsing and dispatch. Flags are parsed into plain structs (clap derive), each verb
//! lives in its own file, errors are printed once as an `anyhow` chain, and exit codes are chosen
//! here: 0 success, 1 failure, 2 bad usage (clap's own).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cipherlake::keyfile;
use cipherlake::lake::atomic::{Output, Privacy};
use cipherlake::lake::output::Format;
use cipherlake::paillier::PublicKey;
use clap::{Parser, Subcommand};

mod audit;
mod bench;
mod combine;
mod decrypt;
mod demo;
mod encrypt;
mod inspect;
mod keygen;
mod ledger;
mod owners;
mod partial;
mod policy;
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
    /// Make a data owner's signing key (OWNER.signing.json, mode 0600, and OWNER.owner.json).
    OwnerKey(owners::OwnerKeyArgs),
    /// Make the consortium roster (owners' signing keys + the Paillier key) and print its id.
    Roster(owners::RosterArgs),
    /// Check that lake files are signed by owners on the roster and unchanged since.
    Verify(owners::VerifyArgs),
    /// Check a hospital's hash-chained audit log.
    Audit(audit::Args),
    /// Check a hospital's release policy and say what it allows.
    Policy(policy::Args),
    /// Check the consortium's release ledger and list its releases.
    Ledger(ledger::Args),
    /// Make a requester's key (an age X25519 identity, mode 0600) and print its public half.
    RequesterKey(owners::RequesterKeyArgs),
}

/// Options every verb sees.
pub(crate) struct Global {
    pub quiet: bool,
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("cipherlake: error: {}", message(&err));
            ExitCode::from(1)
        }
    }
}

/// The error chain as one line, each cause once: a cause whose text its parent already quotes
/// (DataFusion and arrow errors often do) is not repeated. Flag hints go here, not in the library.
pub(crate) fn message(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|prev| prev.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    let mut msg = parts.join(": ");
    let exists = err.chain().any(|c| {
        matches!(
            c.downcast_ref::<cipherlake::Error>(),
            Some(cipherlake::Error::AlreadyExists { .. })
        )
    });
    if exists {
        msg.push_str(" (use --force to overwrite)");
    }
    msg
}

/// `--threads` above this many per core is refused: it only adds contention.
const MAX_THREADS_PER_CORE: usize = 4;

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(n) = cli.threads {
        anyhow::ensure!(n >= 1, "--threads must be at least 1");
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let max = MAX_THREADS_PER_CORE * cores;
        anyhow::ensure!(
            n <= max,
            "--threads {n} is more than {MAX_THREADS_PER_CORE} per core ({cores} cores here): use at most {max}"
        );
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
        Command::OwnerKey(args) => owners::owner_key(args, &global),
        Command::Roster(args) => owners::roster(args, &global),
        Command::Verify(args) => owners::verify(args, &global),
        Command::RequesterKey(args) => owners::requester_key(args, &global),
        Command::Audit(args) => audit::run(args, &global),
        Command::Policy(args) => policy::run(args, &global),
        Command::Ledger(args) => ledger::run(args, &global),
    }
}

/// Where a verb's table goes, begun before any work: `-` is standard output; the format is the
/// one given (which must agree with the output's extension), else the extension's, else a table
/// on standard output. `privacy` says whether the output may hold patient-level plaintext.
pub(crate) fn output_target(
    output: &str,
    format: Option<&str>,
    force: bool,
    privacy: Privacy,
) -> anyhow::Result<(Option<Output>, Format)> {
    let path = (output != "-").then(|| PathBuf::from(output));
    let given = format.map(str::parse::<Format>).transpose()?;
    let format = Format::for_output(path.as_deref(), given)?;
    let out = path.map(|p| Output::file(&p, force, privacy)).transpose()?;
    Ok((out, format))
}

/// The lowercase key id of a `--key-id` flag.
pub(crate) fn key_id_flag(flag: Option<&str>) -> anyhow::Result<Option<String>> {
    flag.map(keyfile::parse_key_id)
        .transpose()
        .context("--key-id")
}

/// Refuses the key of `path` (whose id is `key_id`) unless it is the one `--key-id` pins.
pub(crate) fn pin(key_id: &str, flag: Option<&str>, path: &Path) -> anyhow::Result<()> {
    Ok(keyfile::check_pinned(
        key_id,
        key_id_flag(flag)?.as_deref(),
        path,
    )?)
}

/// Loads a public key and checks it against its `--key-id`, if given.
pub(crate) fn load_public(path: &Path, flag: Option<&str>) -> anyhow::Result<PublicKey> {
    let pk = keyfile::load_public(path)?;
    pin(pk.key_id(), flag, path)?;
    Ok(pk)
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        let io = e.downcast_ref::<std::io::Error>().map(std::io::Error::kind);
        let lib = e
            .downcast_ref::<cipherlake::Error>()
            .and_then(cipherlake::Error::io_kind);
        io.or(lib) == Some(std::io::ErrorKind::BrokenPipe)
    })
}
