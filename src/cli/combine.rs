//! `cipherlake combine`: verify the parties' partial decryptions and turn a query result into
//! plaintext, with small counts suppressed.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use cipherlake::keyfile;
use cipherlake::lake::atomic::Privacy;
use cipherlake::lake::output::BatchWriter;
use cipherlake::release::partial::{combine_result, PartialFile, ResultFile};
use cipherlake::release::requester::RequesterKey;

use super::{progress, Global};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The threshold public key (public.json).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The key id the key ceremony printed: a public.json with any other id is refused.
    #[arg(long, value_name = "HEX")]
    key_id: Option<String>,
    /// The encrypted query result the partials were made for.
    #[arg(long, value_name = "RESULT")]
    input: PathBuf,
    /// Partial decryption files, one per party (at least the threshold).
    #[arg(long, num_args = 1.., required = true, value_name = "FILE")]
    partials: Vec<PathBuf>,
    /// Where to write the plaintext (`-`: standard output).
    #[arg(long, default_value = "-", value_name = "PATH|-")]
    output: String,
    /// table, csv, json, ndjson or parquet (default: from the output's extension; table on stdout).
    #[arg(long)]
    format: Option<String>,
    /// Suppress decrypted counts from 1 to N−1 (the parties' own minimum applies too).
    #[arg(long, default_value_t = 11, value_name = "N")]
    min_rows: u64,
    /// The decryption request the parties re-verified: every partial must be for it.
    #[arg(long, value_name = "FILE")]
    request: Option<PathBuf>,
    /// The requester's secret key (from `requester-key`): opens the partials sealed to it.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Overwrite an existing output.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let pk = keyfile::load_threshold_public(&args.key)?;
    super::pin(pk.key_id(), args.key_id.as_deref(), &args.key)?;
    // Decrypted results are plaintext: owner-only, and checked before any proof is verified.
    let (out, format) = super::output_target(
        &args.output,
        args.format.as_deref(),
        args.force,
        Privacy::Secret,
    )?;
    let name = args.input.display().to_string();
    let bytes = std::fs::read(&args.input).with_context(|| format!("cannot read {name}"))?;
    let size = bytes.len() as u64;
    let result = ResultFile::read(&name, Bytes::from(bytes))?;
    let request = args
        .request
        .as_deref()
        .map(cipherlake::release::Request::load)
        .transpose()?;
    if let Some(r) = &request {
        anyhow::ensure!(
            r.result.sha256 == result.sha256() && r.result.size == size,
            "request {} is for another result file than {name}",
            r.request_id
        );
    }
    let mut partials = Vec::new();
    for p in &args.partials {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        let parsed: PartialFile = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a partial decryption file", p.display()))?;
        partials.push((p.display().to_string(), parsed));
    }
    let identity = args
        .identity
        .as_deref()
        .map(RequesterKey::load)
        .transpose()?;
    if let (Some(r), Some(id)) = (&request, &identity) {
        anyhow::ensure!(
            r.recipient == id.recipient(),
            "request {} is sealed to {}, and --identity is the key of {}: the partials are not for this requester",
            r.request_id,
            r.recipient,
            id.recipient()
        );
    }
    let pb = progress::count_bar("verifying proofs", global.quiet);
    let pb2 = pb.clone();
    let combined = combine_result(
        &pk,
        &result,
        &partials,
        args.min_rows,
        request.as_ref().map(|r| r.request_id.as_str()),
        identity.as_ref().map(RequesterKey::identity),
        Some(Arc::new(move |n| pb2.inc(n))),
    );
    pb.finish_and_clear();
    let combined = combined?;
    // A rejected partial is worth knowing about even when enough others were valid.
    for r in &combined.rejected {
        eprintln!("cipherlake: warning: partial rejected and left out: {r}");
    }
    let schema = combined
        .batches
        .first()
        .map(|b| b.schema())
        .context("the result file has no record batch")?;
    let mut w = BatchWriter::create(format, out, schema)?;
    for b in &combined.batches {
        w.write(b)?;
    }
    w.finish()?;
    if !global.quiet {
        let unused = if combined.unused.is_empty() {
            String::new()
        } else {
            format!("; not needed: {}", combined.unused.join(", "))
        };
        let complementary = if combined.complementary > 0 {
            format!(
                ", of which {} only so that no small count can be derived by subtraction",
                combined.complementary
            )
        } else {
            String::new()
        };
        eprintln!(
            "combined with parties {}; {} count(s) suppressed (small: below {}{complementary}){unused}",
            combined.parties.join(", "),
            combined.suppressed,
            args.min_rows
        );
    }
    // How noisy cells were released is part of the result, not a progress message.
    for (column, n) in &combined.noise {
        eprintln!(
            "differential privacy: column `{column}`: {}; {} cell(s){}",
            n.mechanism.describe(n.scale),
            n.cells,
            if n.pinned > 0 {
                format!(", {} repeating an earlier release's noisy answer", n.pinned)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
