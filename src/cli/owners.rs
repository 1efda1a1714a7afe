//! Data owners and the roster: `owner-key` (a signing key for one owner), `roster` (the
//! consortium's list of owners, bound to the Paillier key, printed with its id to pin), and
//! `verify` (every file of a lake folder signed by an owner on the roster, unchanged).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cipherlake::lake::atomic::{FileSet, Privacy};
use cipherlake::lake::io::list_inputs;
use cipherlake::release::requester::RequesterKey;
use cipherlake::release::signature::verify_file;
use cipherlake::release::{OwnerKey, OwnerPublic, Roster};

use super::Global;

#[derive(clap::Args)]
pub(crate) struct OwnerKeyArgs {
    /// The owner id (a hospital's name: letters, digits, '.', '_', '-').
    #[arg(long, value_name = "ID")]
    owner: String,
    /// Folder for OWNER.signing.json (secret, 0600) and OWNER.owner.json (public).
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

pub(crate) fn owner_key(args: OwnerKeyArgs, global: &Global) -> anyhow::Result<()> {
    let key = OwnerKey::generate(&args.owner)?;
    let (secret, public) = write_owner_key(&key, &args.output, args.force)?;
    if !global.quiet {
        eprintln!(
            "signing key of `{}` → {} (keep it: mode 0600); public key → {} (send it to whoever makes the roster)",
            key.owner(),
            secret.display(),
            public.display()
        );
    }
    println!("{}", key.public().key_b64());
    Ok(())
}

/// Writes `key`'s two files into `dir` (the signing key 0600), both or neither; returns their
/// paths (secret, public).
pub(crate) fn write_owner_key(
    key: &OwnerKey,
    dir: &Path,
    force: bool,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (secret, public) = key.file_names(dir);
    let (secret_text, public_text) = key.to_files()?;
    let mut set = FileSet::begin(
        &[
            (secret.clone(), Privacy::Secret),
            (public.clone(), Privacy::Shared),
        ],
        force,
    )?;
    set.write(0, secret_text.as_bytes())?;
    set.write(1, public_text.as_bytes())?;
    set.commit()?;
    Ok((secret, public))
}

#[derive(clap::Args)]
pub(crate) struct RequesterKeyArgs {
    /// Who the key is for (a name the hospitals know; written in the file's comment).
    #[arg(long, value_name = "NAME", default_value = "analyst")]
    name: String,
    /// The identity file to write (secret, 0600; age's format).
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

pub(crate) fn requester_key(args: RequesterKeyArgs, global: &Global) -> anyhow::Result<()> {
    let key = RequesterKey::generate();
    let mut set = FileSet::begin(&[(args.output.clone(), Privacy::Secret)], args.force)?;
    set.write(0, key.to_file(&args.name).as_bytes())?;
    set.commit()?;
    if !global.quiet {
        eprintln!(
            "requester key of `{}` → {} (keep it: mode 0600; combine --identity opens the partials sealed to it); public key below (query --requester-key)",
            args.name,
            args.output.display()
        );
    }
    println!("{}", key.recipient());
    Ok(())
}

#[derive(clap::Args)]
pub(crate) struct RosterArgs {
    /// The consortium's Paillier public key (public.json).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The key id the key ceremony printed.
    #[arg(long, value_name = "HEX")]
    key_id: Option<String>,
    /// An owner's public key file (OWNER.owner.json); repeat for each owner.
    #[arg(long = "owner", value_name = "FILE", required = true)]
    owners: Vec<PathBuf>,
    /// The roster file to write.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

pub(crate) fn roster(args: RosterArgs, global: &Global) -> anyhow::Result<()> {
    let pk = super::load_public(&args.key, args.key_id.as_deref())?;
    let owners = args
        .owners
        .iter()
        .map(|p| OwnerPublic::load(p))
        .collect::<cipherlake::Result<Vec<_>>>()?;
    let roster = Roster::new(pk.key_id(), owners)?;
    let mut set = FileSet::begin(&[(args.output.clone(), Privacy::Shared)], args.force)?;
    set.write(0, roster.to_json()?.as_bytes())?;
    set.commit()?;
    if !global.quiet {
        let names: Vec<&str> = roster.owners().map(|o| o.owner.as_str()).collect();
        eprintln!(
            "roster of {} owner(s) ({}) for key {} → {}; every hospital records the roster id:",
            names.len(),
            names.join(", "),
            roster.key_id(),
            args.output.display()
        );
    }
    println!("{}", roster.id());
    Ok(())
}

/// `--roster FILE [--roster-id HEX]`, for the verbs that handle decryption requests.
#[derive(clap::Args)]
pub(crate) struct RosterFlags {
    /// The roster the lake files are signed under (with --request).
    #[arg(long, value_name = "FILE")]
    pub(crate) roster: Option<PathBuf>,
    /// The roster id the consortium agreed: any other roster is refused.
    #[arg(long, value_name = "HEX")]
    pub(crate) roster_id: Option<String>,
}

impl RosterFlags {
    /// The roster, checked against its pin, if `--roster` was given.
    pub(crate) fn load(&self) -> anyhow::Result<Option<Roster>> {
        Ok(self
            .roster
            .as_deref()
            .map(|p| Roster::load(p, self.roster_id.as_deref()))
            .transpose()?)
    }
}

#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    /// The roster file.
    #[arg(long, value_name = "FILE")]
    roster: PathBuf,
    /// The roster id the consortium agreed: any other roster is refused.
    #[arg(long, value_name = "HEX")]
    roster_id: Option<String>,
    /// Lake files or folders to check (every .parquet file below a folder).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub(crate) fn verify(args: VerifyArgs, global: &Global) -> anyhow::Result<()> {
    let roster = Roster::load(&args.roster, args.roster_id.as_deref())?;
    let mut files = Vec::new();
    for p in &args.paths {
        files.extend(lake_files(p)?);
    }
    anyhow::ensure!(
        !files.is_empty(),
        "no .parquet files in {}",
        show(&args.paths)
    );
    let mut by_owner: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut bad = Vec::new();
    for f in &files {
        match verify_file(&roster, f) {
            Ok(s) => {
                let e = by_owner.entry(s.signature.owner).or_default();
                e.0 += 1;
                e.1 += s.signature.size;
            }
            Err(e) => bad.push(e.to_string()),
        }
    }
    for b in &bad {
        eprintln!("cipherlake: {b}");
    }
    if !global.quiet {
        for (owner, (n, bytes)) in &by_owner {
            eprintln!("{owner}: {n} file(s), {bytes} bytes, signed and unchanged");
        }
    }
    anyhow::ensure!(
        bad.is_empty(),
        "{} of {} file(s) failed verification against roster {}",
        bad.len(),
        files.len(),
        roster.id()
    );
    if !global.quiet {
        eprintln!(
            "all {} file(s) verified against roster {}",
            files.len(),
            roster.id()
        );
    }
    Ok(())
}

/// The `.parquet` files of a lake path, as a table listing sees them (hidden and `_` entries,
/// such as cipherlake's temporaries, left out).
fn lake_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(list_inputs(path)?
        .into_iter()
        .map(|f| f.path)
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect())
}

fn show(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
