//! `cipherlake partial-decrypt`: one party checks a query result and, if the disclosure policy
//! allows it, writes its partial decryptions with proofs. Every request is appended to an audit log.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use cipherlake::keyfile;
use cipherlake::lake::atomic::{Output, Privacy};
use cipherlake::release::audit::{AuditLog, Head};
use cipherlake::release::ledger::{self, Ledger};
use cipherlake::release::noise::{self, CellNoise, NoiseFile, NoiseMap};
use cipherlake::release::partial::{partial_decrypt_result, PartialFile, ResultFile};
use cipherlake::release::policy::Policy;
use cipherlake::release::verify::CellProvenance;
use cipherlake::release::OwnerKey;
use cipherlake::release::{verify, Request};
use cipherlake::sql::KeyRing;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{progress, Global};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// This party's share (share-NAME.json).
    #[arg(long, value_name = "FILE")]
    share: PathBuf,
    /// The threshold public key (public.json).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The key id the key ceremony printed: a public.json with any other id is refused.
    #[arg(long, value_name = "HEX")]
    key_id: Option<String>,
    /// The encrypted query result (Parquet, from `cipherlake query --format parquet`).
    #[arg(long, value_name = "RESULT")]
    input: PathBuf,
    /// Where to write this party's partial decryptions.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// This hospital's release policy (a `cipherlake.release_policy` JSON file; default:
    /// min_rows 11, min_owners 1).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Refuse any aggregate over fewer distinct contributing rows (and any individual value);
    /// overrides the policy file's min_rows.
    #[arg(long, value_name = "N")]
    min_rows: Option<u64>,
    /// Refuse any aggregate whose rows come from fewer owners (needs --request); overrides the
    /// policy file's min_owners.
    #[arg(long, value_name = "N")]
    min_owners: Option<u64>,
    /// Refuse any aggregate to which an owner contributes fewer rows (needs --request);
    /// overrides the policy file's min_rows_per_owner.
    #[arg(long, value_name = "N")]
    min_rows_per_owner: Option<u64>,
    /// The decryption request (from `query --request`): the party re-verifies it (signatures,
    /// the files read, its own run of the SQL, bit for bit) before it decrypts anything.
    #[arg(long, value_name = "FILE", requires = "roster")]
    request: Option<PathBuf>,
    /// The consortium's release ledger (a shared file): the request is checked against every
    /// release in it (the differencing rule), and this release is appended, signed with
    /// --signing-key. Needs --request.
    #[arg(long, value_name = "FILE", requires_all = ["request", "signing_key"])]
    ledger: Option<PathBuf>,
    /// This hospital's owner signing key (OWNER.signing.json; its owner id must be this share's
    /// party, on the roster): signs its ledger entries.
    #[arg(long, value_name = "FILE", requires = "ledger")]
    signing_key: Option<PathBuf>,
    /// Differential privacy, round 1 (a policy with `[dp]`): after the same checks, write to
    /// --output this party's encrypted noise shares for every cell instead of decrypting. Every
    /// releasing hospital draws its own; then each runs round 2 with all of them (--noise).
    #[arg(long, requires = "ledger", conflicts_with = "noise")]
    draw_noise: bool,
    /// Differential privacy, round 2: the noise files of the releasing hospitals (this party's
    /// own among them, as it drew it). Each cell is decrypted with the product of their shares,
    /// or with the noise of an earlier release of the same rows (from the ledger).
    #[arg(long, num_args = 1.., value_name = "FILE", requires = "ledger")]
    noise: Vec<PathBuf>,
    /// Decrypt without a request: the cloud's result file alone then says what each cell is (its
    /// tags and row counts), so a lying cloud can make this party reveal one patient's value.
    /// Only for results this party computed itself.
    #[arg(long, conflicts_with = "request")]
    unverified: bool,
    #[command(flatten)]
    roster: super::owners::RosterFlags,
    /// Audit log to append to (default: audit.log beside the share file).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Overwrite an existing output.
    #[arg(long)]
    force: bool,
}

/// The policy in force: the file's (or the default), with the flags' overrides.
fn policy(args: &Args) -> anyhow::Result<Policy> {
    let mut p = match &args.policy {
        Some(path) => Policy::load(path)?,
        None => Policy::default(),
    };
    if let Some(n) = args.min_rows {
        p.min_rows = n;
    }
    if let Some(n) = args.min_owners {
        p.min_owners = n;
    }
    if let Some(n) = args.min_rows_per_owner {
        p.min_rows_per_owner = n;
    }
    p.check("the release policy (--policy, --min-rows, --min-owners, --min-rows-per-owner)")?;
    let per_owner = p.min_owners > 1 || p.min_rows_per_owner > 1 || !p.owner_breakdown;
    if per_owner && args.request.is_none() {
        anyhow::bail!(
            "the policy's rules per owner (min_owners {}, min_rows_per_owner {}, owner_breakdown {}) need --request: owners are known only from a re-verified request's signed files",
            p.min_owners,
            p.min_rows_per_owner,
            p.owner_breakdown
        );
    }
    if args.request.is_none() && (p.max_groups.is_some() || p.measures.is_some()) {
        anyhow::bail!(
            "the policy's max_groups and measures need --request: they are decided on the hospital's own run"
        );
    }
    match (&p.dp, args.draw_noise || !args.noise.is_empty()) {
        (Some(_), _) if args.ledger.is_none() => anyhow::bail!(
            "the policy's [dp] needs --ledger (with --request and --signing-key): the budget and the noise of earlier releases are kept there"
        ),
        (Some(_), false) => anyhow::bail!(
            "the policy's [dp] adds noise to every cell: first each releasing hospital runs partial-decrypt --draw-noise (round 1), then each runs it again with every noise file (--noise FILE …)"
        ),
        (None, true) => anyhow::bail!(
            "--draw-noise and --noise need a policy with differential privacy ([dp] in --policy)"
        ),
        _ => {}
    }
    Ok(p)
}

pub(crate) fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.request.is_some() || args.unverified,
        "no --request given: a hospital re-verifies the cloud's decryption request before it decrypts \
         (--request REQUEST --roster ROSTER --roster-id ID); to decrypt a result you computed \
         yourself, without one, pass --unverified"
    );
    let policy = policy(&args)?;
    let pk = keyfile::load_threshold_public(&args.key)?;
    super::pin(pk.key_id(), args.key_id.as_deref(), &args.key)?;
    let share = keyfile::load_share(&args.share)?;
    share
        .check_against(&pk)
        .with_context(|| format!("share {}", args.share.display()))?;
    // Both the audit log and the output are checked before any work: a request that cannot be
    // logged (or whose log's chain is broken) is not served, and one whose output cannot be
    // written is not decrypted.
    let audit_path = args.audit_log.clone().unwrap_or_else(|| {
        args.share
            .parent()
            .unwrap_or(Path::new("."))
            .join("audit.log")
    });
    let log = AuditLog::open(&audit_path)?;
    let ledger = match (&args.ledger, &args.signing_key) {
        (Some(path), Some(key)) => Some(open_ledger(path, key, &share, &args, &log)?),
        _ => None,
    };
    let out = Output::file(&args.output, args.force, Privacy::Shared)?;
    let name = args.input.display().to_string();
    let bytes = std::fs::read(&args.input).with_context(|| format!("cannot read {name}"))?;
    let size = bytes.len() as u64;
    let result = ResultFile::read(&name, Bytes::from(bytes))?;
    // What every audit entry of this run says, whatever the decision.
    let mut event = json!({
        "verb": "partial-decrypt",
        "party": share.party(),
        "key_id": pk.key_id(),
        "result": name,
        "request": args.request.as_ref().map(|p| p.display().to_string()),
        "unverified": args.unverified,
        "policy": policy,
        "output": args.output.display().to_string(),
    });
    let (result, request, provenance, noise) = match &args.request {
        None => (result, None, Vec::new(), None),
        Some(path) => match reverify(&args, path, &pk, &policy, result, size, global).and_then(
            |(result, request, cells)| {
                let noise = match &ledger {
                    Some(l) => {
                        l.check(&args, &pk, &log, &request, &result, &cells, &policy, global)?
                    }
                    None => None,
                };
                Ok((result, request, cells, noise))
            },
        ) {
            Ok((result, request, cells, noise)) => (result, Some(request), cells, noise),
            Err(e) => {
                // A refused re-verification is a decision too: it is logged with its reason.
                event["decision"] = json!("refused");
                event["reason"] = json!(super::message(&e));
                if let Some(h) = ledger.as_ref().and_then(|l| l.read.borrow().clone()) {
                    event["ledger"] = json!(args.ledger.as_ref().map(|p| p.display().to_string()));
                    event["ledger_head"] = json!(h.to_string());
                }
                log.append(event)?;
                return Err(e);
            }
        },
    };
    if args.draw_noise {
        let (Some(request), Some(drawn)) = (&request, &noise) else {
            anyhow::bail!("--draw-noise needs a re-verified request under a policy with [dp]");
        };
        return draw_noise(
            out,
            &args,
            &pk,
            &share,
            &log,
            event,
            request,
            &result,
            &provenance,
            drawn,
            global,
        );
    }
    let request_id = request.as_ref().map(|r| r.request_id.clone());
    let cells = result.encrypted_cells()?;
    let pb = progress::count_bar("partial decryption", global.quiet);
    let pb2 = pb.clone();
    let outcome = match partial_decrypt_result(
        &pk,
        &share,
        &result,
        &policy,
        request_id.as_deref(),
        request.as_ref().map(|r| r.recipient.as_str()),
        noise.as_ref(),
        &ledger::relations(&provenance),
        Some(Arc::new(move |n| pb2.inc(n))),
    ) {
        Err(e) => Err(("refused", anyhow::Error::from(e))),
        // Written under a temporary name; in place only once the release is in the ledger.
        Ok(partial) => write_partial(&out, &partial)
            .map(|()| partial)
            .map_err(|e| ("failed", e)),
    };
    pb.finish_and_clear();
    // The outcome is logged after the write: "granted" means the partials were released. Each
    // cell's verdict is its provenance on this party's own run (without a request, only the
    // cloud's tags vouch for the cells, and the log says so by listing none).
    event["result_sha256"] = json!(result.sha256());
    event["request_id"] = json!(request_id);
    match &outcome {
        Ok(_) => {
            event["decision"] = json!("granted");
            event["cells"] = json!(cells);
            event["verdicts"] = provenance
                .iter()
                .map(|c| {
                    let mut v = json!({"row": c.row, "column": c.column, "verdict": "released", "rows": c.rows, "owners": c.owners});
                    if let Some(n) = noise.as_ref().and_then(|n| n.get(&(c.column.clone(), c.row))) {
                        v["epsilon"] = json!(n.mechanism.epsilon);
                        v["sensitivity"] = json!(n.mechanism.sensitivity);
                        v["pinned"] = json!(n.pinned);
                    }
                    v
                })
                .collect();
        }
        Err((decision, e)) => {
            event["decision"] = json!(decision);
            event["reason"] = json!(super::message(e));
        }
    }
    // A release goes into the consortium's ledger before it is logged here; if it cannot, the
    // partials are withdrawn (a release the other hospitals cannot see is not made).
    if let (Ok(_), Some(l), Some(r)) = (&outcome, &ledger, &request) {
        match l.ledger.enter(
            &l.roster,
            &l.key,
            r,
            &provenance,
            &policy,
            noise.as_ref(),
            &cipherlake::paillier::threshold::params(&pk)?.parties,
        ) {
            Ok(h) => {
                event["ledger"] = json!(l.ledger.path().display().to_string());
                event["ledger_head"] = json!(h.to_string());
            }
            Err(e) => {
                // The partials never appear: their temporary file goes with `out`.
                drop(out);
                let e = anyhow::Error::from(e).context(format!(
                    "the release could not be entered in the ledger, so {} was not written",
                    args.output.display()
                ));
                event["decision"] = json!("failed");
                event["reason"] = json!(super::message(&e));
                log.append(event)?;
                return Err(e);
            }
        }
    }
    let committed = match &outcome {
        Ok(_) => out.commit().map_err(anyhow::Error::from),
        Err(_) => Ok(()),
    };
    if let Err(e) = &committed {
        event["decision"] = json!("failed");
        event["reason"] = json!(super::message(e));
    }
    let head = match log.append(event) {
        Ok(head) => head,
        Err(e) => {
            // Not logged, not served: the partials just written are withdrawn.
            if outcome.is_ok() {
                let _ = std::fs::remove_file(&args.output);
            }
            return Err(anyhow::Error::from(e).context(format!(
                "the outcome could not be logged, so {} was withdrawn",
                args.output.display()
            )));
        }
    };
    committed?;
    let partial = outcome.map_err(|(_, e)| e)?;
    if !global.quiet {
        eprintln!(
            "party {}: {cells} cells partially decrypted{} → {} (logged in {} as entry {head})",
            share.party(),
            partial
                .sealed_to
                .as_deref()
                .map_or(String::new(), |r| format!(", sealed to the requester {r}")),
            args.output.display(),
            log.path().display()
        );
    }
    Ok(())
}

/// Re-verifies the request for `result` (see `release::verify`); returns the result under this
/// party's own schema, the request and each cell's provenance.
fn reverify(
    args: &Args,
    path: &Path,
    pk: &cipherlake::paillier::PublicKey,
    policy: &Policy,
    result: ResultFile,
    size: u64,
    global: &Global,
) -> anyhow::Result<(ResultFile, Request, Vec<CellProvenance>)> {
    let roster = args.roster.load()?.context("--request needs --roster")?;
    let request = Request::load(path)?;
    let mut keys = KeyRing::new();
    keys.add(pk.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the query runtime")?;
    let started = std::time::Instant::now();
    let checked = runtime.block_on(verify::reverify(
        &request,
        &roster,
        &keys,
        policy,
        result.sha256(),
        size,
        result.batches(),
    ))?;
    if !global.quiet {
        let owners: Vec<String> = checked
            .owners
            .iter()
            .map(|(o, n)| format!("{o} ({n})"))
            .collect();
        eprintln!(
            "request {}: {} signed file(s) from {}; re-run in {:.2} s equals the result bit for bit",
            request.request_id,
            checked.files,
            owners.join(", "),
            started.elapsed().as_secs_f64()
        );
        let smallest = checked.cells.iter().map(|c| c.rows).min();
        eprintln!(
            "  {} cell(s), each a sum over distinct lake rows (smallest {}), from at least {} owner(s)",
            checked.cells.len(),
            smallest.map_or("-".to_owned(), |n| n.to_string()),
            checked.cells.iter().map(|c| c.owners.len()).min().unwrap_or(0)
        );
    }
    Ok((result.with_batches(checked.batches), request, checked.cells))
}

/// Writes the partials into `out`'s temporary file (committed by the caller).
fn write_partial(out: &Output, partial: &PartialFile) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(partial)? + "\n";
    out.writer()?.write_all(text.as_bytes())?;
    Ok(())
}

/// The ledger as this party uses it: its signing key, the roster, and the ledger head this party
/// last saw (from its own audit log), which the ledger must still hold.
struct PartyLedger {
    ledger: Ledger,
    key: OwnerKey,
    roster: cipherlake::release::Roster,
    seen: Option<Head>,
    /// The head read by the last check (logged, so a later cut is caught even when this party
    /// released nothing).
    read: std::cell::RefCell<Option<Head>>,
}

fn open_ledger(
    path: &Path,
    key: &Path,
    share: &cipherlake::paillier::threshold::KeyShare,
    args: &Args,
    log: &AuditLog,
) -> anyhow::Result<PartyLedger> {
    let key = OwnerKey::load(key)?;
    anyhow::ensure!(
        key.owner() == share.party(),
        "the signing key is owner `{}`'s but the share is party `{}`'s: a hospital signs its ledger entries as itself",
        key.owner(),
        share.party()
    );
    let roster = args.roster.load()?.context("--ledger needs --roster")?;
    anyhow::ensure!(
        roster.owner(key.owner()).map(|o| o.key_b64()) == Some(key.public().key_b64()),
        "the signing key of `{}` is not the one on the roster {}: the other hospitals could not check its ledger entries",
        key.owner(),
        roster.id()
    );
    let ledger = Ledger::new(path);
    // The last head this party saw of this ledger, from its own audit log.
    let here = json!(path.display().to_string());
    let seen = log
        .last_event(|e| e["ledger"] == here && e.get("ledger_head").is_some())?
        .map(|e| {
            e["ledger_head"]
                .as_str()
                .unwrap_or_default()
                .parse::<Head>()
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("audit log {}", log.path().display()))
        })
        .transpose()?;
    Ok(PartyLedger {
        ledger,
        key,
        roster,
        seen,
        read: Default::default(),
    })
}

impl PartyLedger {
    /// Reads and checks the whole ledger, then its rules for this request's cells (differencing
    /// against every release in it and against each other; with the policy's `dp`, the noise and
    /// the budget). With `dp`, returns each cell's noise: from the ledger for rows released
    /// before, else the product of the noise files' shares (round 2), or a placeholder while the
    /// shares are being drawn (round 1).
    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        args: &Args,
        pk: &cipherlake::paillier::PublicKey,
        log: &AuditLog,
        request: &Request,
        result: &ResultFile,
        cells: &[CellProvenance],
        policy: &Policy,
        global: &Global,
    ) -> anyhow::Result<Option<NoiseMap>> {
        let started = std::time::Instant::now();
        let (past, head) = self.ledger.read(&self.roster, self.seen.as_ref())?;
        *self.read.borrow_mut() = head;
        let noise = match &policy.dp {
            None => None,
            Some(dp) => Some(cell_noise(
                args,
                pk,
                (self.key.owner(), log),
                request,
                result,
                cells,
                dp,
                &past,
            )?),
        };
        let parties = &cipherlake::paillier::threshold::params(pk)?.parties;
        ledger::check(request, cells, &past, policy, noise.as_ref(), parties)?;
        if !global.quiet {
            eprintln!(
                "  ledger {}: {} earlier release(s), none within {} rows of a cell (checked in {:.2} s)",
                self.ledger.path().display(),
                past.len(),
                policy.min_rows,
                started.elapsed().as_secs_f64()
            );
            if let Some(n) = &noise {
                let pinned = n.values().filter(|c| c.pinned.is_some()).count();
                eprintln!(
                    "  differential privacy: ε {} per cell, within the budget; {pinned} of {} cell(s) repeat an earlier release's noise",
                    policy.dp.as_ref().map_or(0.0, |d| d.epsilon),
                    n.len()
                );
            }
        }
        Ok(noise)
    }
}

/// Each cell's mechanism under `dp` and its noise: an earlier release's for the same rows,
/// else the noise files' (round 2) or a placeholder (round 1, `--draw-noise`).
#[allow(clippy::too_many_arguments)]
fn cell_noise(
    args: &Args,
    pk: &cipherlake::paillier::PublicKey,
    (party, log): (&str, &AuditLog),
    request: &Request,
    result: &ResultFile,
    cells: &[CellProvenance],
    dp: &cipherlake::release::policy::Dp,
    past: &[ledger::Release],
) -> anyhow::Result<NoiseMap> {
    let th = cipherlake::paillier::threshold::params(pk)?;
    let mut reasons = Vec::new();
    let mut mechanisms = BTreeMap::new();
    for c in cells {
        match noise::mechanism_for(dp, c, th.needed as u32) {
            Ok(m) => {
                mechanisms.insert((c.column.clone(), c.row), m);
            }
            Err(why) => reasons.push(why),
        }
    }
    if !reasons.is_empty() {
        return Err(cipherlake::Error::ReleaseRefused {
            request: request.request_id.clone(),
            reasons,
        }
        .into());
    }
    let fresh = if args.draw_noise {
        None
    } else {
        let own = drawn_noise(log, &request.request_id)?;
        let mut files = Vec::new();
        for path in &args.noise {
            let name = path.display().to_string();
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {name}"))?;
            let sha = hex::encode(Sha256::digest(&bytes));
            let f: NoiseFile = serde_json::from_slice(&bytes)
                .with_context(|| format!("{name}: not a noise file"))?;
            files.push((name, sha, f));
        }
        Some(noise::collect(
            pk,
            (party, &own),
            &request.request_id,
            result.sha256(),
            &files,
            &mechanisms,
        )?)
    };
    Ok(cells
        .iter()
        .map(|c| {
            let key = (c.column.clone(), c.row);
            let m = mechanisms[&key];
            let n = match ledger::pinning(&request.request_id, c, &m, past, &th.parties) {
                Some((seq, earlier)) => CellNoise {
                    mechanism: m,
                    noise: earlier.noise.clone(),
                    pinned: Some(seq),
                },
                None => CellNoise {
                    mechanism: m,
                    noise: fresh
                        .as_ref()
                        .and_then(|f| f.get(&key))
                        .map_or_else(|| rug::Integer::from(1), |c| c.as_integer().clone()),
                    pinned: None,
                },
            };
            (key, n)
        })
        .collect())
}

/// The SHA-256 of the noise file this party drew for `request_id`, from its audit log.
fn drawn_noise(log: &AuditLog, request_id: &str) -> anyhow::Result<String> {
    let drawn =
        log.last_event(|e| e["decision"] == "noise drawn" && e["request_id"] == request_id)?;
    drawn
        .as_ref()
        .and_then(|e| e["noise_sha256"].as_str())
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "this party drew no noise for request {request_id} (its audit log {} records none): run partial-decrypt --draw-noise first",
                log.path().display()
            )
        })
}

/// Round 1 of differential privacy: this party's encrypted noise shares for every cell, written
/// to `out` and logged (the log keeps their SHA-256, so that round 2 finds this party's own).
#[allow(clippy::too_many_arguments)]
fn draw_noise(
    out: Output,
    args: &Args,
    pk: &cipherlake::paillier::PublicKey,
    share: &cipherlake::paillier::threshold::KeyShare,
    log: &AuditLog,
    mut event: serde_json::Value,
    request: &Request,
    result: &ResultFile,
    cells: &[CellProvenance],
    drawn: &NoiseMap,
    global: &Global,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let with: Vec<(&CellProvenance, noise::Mechanism)> = cells
        .iter()
        .map(|c| (c, drawn[&(c.column.clone(), c.row)].mechanism))
        .collect();
    let file = noise::draw(
        pk,
        share.party(),
        share.index(),
        &request.request_id,
        result.sha256(),
        &with,
    )?;
    let text = serde_json::to_string_pretty(&file)? + "\n";
    out.writer()?.write_all(text.as_bytes())?;
    out.commit()?;
    event["request_id"] = json!(request.request_id);
    event["result_sha256"] = json!(result.sha256());
    event["decision"] = json!("noise drawn");
    event["noise_sha256"] = json!(hex::encode(Sha256::digest(text.as_bytes())));
    event["cells"] = json!(file.cells.len());
    let head = match log.append(event) {
        Ok(h) => h,
        Err(e) => {
            // Unlogged noise could not be recognised as this party's in round 2.
            let _ = std::fs::remove_file(&args.output);
            return Err(anyhow::Error::from(e).context(format!(
                "the noise could not be logged, so {} was withdrawn",
                args.output.display()
            )));
        }
    };
    if !global.quiet {
        eprintln!(
            "party {}: noise shares for {} cell(s) drawn and encrypted in {:.2} s → {} (logged in {} as entry {head}); next, every releasing hospital runs partial-decrypt with --noise and all the noise files",
            share.party(),
            file.cells.len(),
            started.elapsed().as_secs_f64(),
            args.output.display(),
            log.path().display()
        );
    }
    Ok(())
}
