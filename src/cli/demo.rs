//! `cipherlake demo`: the whole collaborative flow on a local lake, in one command. Synthetic
//! admissions for each hospital, the threshold key ceremony, each hospital's signing key and the
//! consortium roster, each hospital encrypting and signing its own extract into a hive-partitioned
//! lake, every query of `queries/` run by the cloud with the public key only and written with its
//! decryption request, two hospitals re-verifying each request (signatures, the files read, their
//! own run equal bit for bit, every cell traced to its lake rows), checking it against the release
//! ledger and partially decrypting sealed to the requester, each entering its release in the
//! ledger, the requester alone combining, and each result checked against the same query
//! computed by DataFusion on the plaintext.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use cipherlake::keyfile;
use cipherlake::lake::atomic::{FileSet, Output, Privacy};
use cipherlake::lake::{encrypt_path, EncryptOptions};
use cipherlake::paillier::threshold;
use cipherlake::release::ledger::{self, Ledger};
use cipherlake::release::partial::{combine_result, partial_decrypt_result, ResultFile};
use cipherlake::release::policy::Policy;
use cipherlake::release::requester::RequesterKey;
use cipherlake::release::signature::Signer;
use cipherlake::release::{verify, OwnerKey, Request, Roster};
use cipherlake::sql::{self, KeyRing};
use cipherlake::synth;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;

use super::Global;

/// The queries of `queries/`, built in so the demo runs from anywhere.
const QUERIES: [(&str, &str); 4] = [
    (
        "totals_by_region",
        include_str!("../../queries/totals_by_region.sql"),
    ),
    (
        "yearly_trend",
        include_str!("../../queries/yearly_trend.sql"),
    ),
    (
        "cost_by_chapter",
        include_str!("../../queries/cost_by_chapter.sql"),
    ),
    (
        "elderly_diabetes",
        include_str!("../../queries/elderly_diabetes.sql"),
    ),
];

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Admissions per hospital.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// Number of hospitals (data owners and key holders).
    #[arg(long, default_value_t = 3)]
    hospitals: usize,
    /// How many hospitals must cooperate to decrypt.
    #[arg(long, default_value_t = 2)]
    threshold: usize,
    /// Keep everything (keys, lake, results) in this folder; default: a temporary folder.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Key size in bits.
    #[arg(long, default_value_t = 2048)]
    bits: u32,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Minimum contributing rows per decrypted aggregate.
    #[arg(long, default_value_t = 11)]
    min_rows: u64,
}

struct Stages(Vec<(String, f64)>);

impl Stages {
    fn time<T>(&mut self, name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let t = Instant::now();
        let out = f()?;
        self.0.push((name.to_owned(), t.elapsed().as_secs_f64()));
        Ok(out)
    }
}

pub(crate) fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    anyhow::ensure!(
        (2..=26).contains(&args.hospitals),
        "--hospitals must be between 2 and 26"
    );
    anyhow::ensure!(args.rows >= 1, "--rows must be at least 1");
    let tmp;
    let dir: &Path = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d
        }
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
            tmp.path()
        }
    };
    let say = |s: String| {
        if !global.quiet {
            eprintln!("{s}");
        }
    };
    let names: Vec<String> = (0..args.hospitals)
        .map(|i| ((b'a' + i as u8) as char).to_string())
        .collect();
    let mut stages = Stages(Vec::new());
    let total = Instant::now();

    // 1. Each hospital's extract (plaintext, stays at the hospital).
    stages.time("synthetic admissions", || {
        for (i, h) in names.iter().enumerate() {
            let p = dir.join(format!("plain/hospital={h}/admissions.csv"));
            std::fs::create_dir_all(p.parent().unwrap_or(dir))?;
            synth::write_admissions(&p, i, args.rows, args.seed)?;
        }
        Ok(())
    })?;
    say(format!(
        "{} hospitals × {} admissions in {}",
        names.len(),
        args.rows,
        dir.join("plain").display()
    ));

    // 2. The key ceremony: public.json for everyone, one share per hospital.
    let keys = dir.join("keys");
    let dealt = stages.time("key ceremony (dealer + self-test)", || {
        let mut set = FileSet::begin(&keyfile::key_set_paths(&keys, Some(&names)), true)?;
        let d = threshold::deal(args.bits, &names, args.threshold)?;
        keyfile::write_dealt(&mut set, &d)?;
        set.commit()?;
        Ok(d)
    })?;
    let pk = &dealt.public;
    let th = threshold::params(pk)?;
    say(format!(
        "key {} ({} bits), {} of {} hospitals needed to decrypt",
        &pk.key_id()[..16],
        pk.bits(),
        th.needed,
        names.len()
    ));

    // 3. Each hospital's signing key, the consortium roster (pinned by its id) and the
    //    requester's key; each hospital encrypts its extract into the shared lake and signs it.
    let signers = names
        .iter()
        .map(|h| OwnerKey::generate(h))
        .collect::<cipherlake::Result<Vec<_>>>()?;
    let roster = Roster::new(pk.key_id(), signers.iter().map(OwnerKey::public).collect())?;
    write_shared(&dir.join("roster.json"), &roster.to_json()?)?;
    // Each hospital keeps its signing key (0600); it signs its lake files and its ledger entries.
    let owners = dir.join("owners");
    for key in &signers {
        super::owners::write_owner_key(key, &owners, true)?;
    }
    // The consortium's release ledger, new for this run's roster.
    let ledger = Ledger::new(&dir.join("ledger.jsonl"));
    match std::fs::remove_file(ledger.path()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(anyhow::Error::from(e).context("cannot start a new ledger"))
        }
        _ => {}
    }
    let requester = RequesterKey::generate();
    let recipient = requester.recipient();
    say(format!(
        "roster {} ({} owners); requester key {}…",
        &roster.id()[..16],
        names.len(),
        &recipient[..16]
    ));
    stages.time("encrypt and sign (each hospital)", || {
        for (h, key) in names.iter().zip(signers) {
            encrypt_signed(
                pk,
                &dir.join(format!("plain/hospital={h}/admissions.csv")),
                &dir.join(format!("lake/hospital={h}/admissions.parquet")),
                key,
            )?;
        }
        Ok(())
    })?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut ring = KeyRing::new();
    ring.add(pk.clone());
    let results = dir.join("results");
    std::fs::create_dir_all(&results)?;

    // 4. The cloud runs every query with the public key only, and writes its request.
    let lake = std::path::absolute(dir.join("lake"))?;
    let tables = vec![("admissions".to_owned(), lake.display().to_string())];
    let encrypted: Vec<(String, PathBuf, Request)> =
        stages.time("queries + requests (cloud, encrypted)", || {
            runtime.block_on(async {
                let ctx = sql::session(ring.clone(), None);
                sql::register_table(&ctx, "admissions", &tables[0].1, &ring).await?;
                let mut out = Vec::new();
                for (name, q) in QUERIES {
                    let path = results.join(format!("{name}.parquet"));
                    let request = cloud_run(&ctx, q, &tables, &roster, &recipient, &path).await?;
                    write_shared(
                        &results.join(format!("{name}.request.json")),
                        &request.to_json()?,
                    )?;
                    out.push((name.to_owned(), path, request));
                }
                anyhow::Ok(out)
            })
        })?;

    // 5. The first `threshold` hospitals each re-verify every request on their own, then
    //    partially decrypt, sealed to the requester.
    let deciders = &dealt.shares[..th.needed];
    let policy = Policy {
        min_rows: args.min_rows,
        ..Policy::default()
    };
    policy.check("--min-rows")?;
    let mut partials = Vec::new();
    let mut smallest = u64::MAX;
    stages.time(
        &format!("re-verification ({} hospitals)", th.needed),
        || {
            for (name, path, request) in &encrypted {
                let bytes = std::fs::read(path)?;
                let size = bytes.len() as u64;
                let result = ResultFile::read(name, Bytes::from(bytes))?;
                let mut own = Vec::new();
                for _ in deciders {
                    let (past, _) = ledger.read(&roster, None)?;
                    let checked = runtime.block_on(verify::reverify(
                        request,
                        &roster,
                        &ring,
                        &policy,
                        result.sha256(),
                        size,
                        result.batches(),
                    ))?;
                    ledger::check(request, &checked.cells, &past, &policy, None, &th.parties)?;
                    smallest = checked
                        .cells
                        .iter()
                        .map(|c| c.rows)
                        .fold(smallest, u64::min);
                    own.push((checked.batches, checked.cells));
                }
                partials.push((result, own, request));
            }
            Ok(())
        },
    )?;
    say(format!(
        "{} requests re-verified by hospitals {}: every file signed, every re-run equal bit for bit, the smallest cell over {smallest} distinct lake rows",
        encrypted.len(),
        deciders.iter().map(|s| s.party()).collect::<Vec<_>>().join(" + "),
    ));
    let mut sealed = Vec::new();
    stages.time(
        &format!("partial decryption ({} hospitals)", th.needed),
        || {
            for (result, own, request) in partials {
                let mut ps = Vec::new();
                for (share, (batches, cells)) in deciders.iter().zip(own) {
                    // Each hospital decrypts the result under its own schema (its own tags).
                    let mine = result.clone().with_batches(batches);
                    ps.push((
                        share.party().to_owned(),
                        partial_decrypt_result(
                            pk,
                            share,
                            &mine,
                            &policy,
                            Some(&request.request_id),
                            Some(&request.recipient),
                            None,
                            &ledger::relations(&cells),
                            None,
                        )?,
                    ));
                    // The release goes into the ledger, signed by the hospital.
                    let key =
                        OwnerKey::load(&owners.join(format!("{}.signing.json", share.party())))?;
                    ledger.enter(&roster, &key, request, &cells, &policy, None, &th.parties)?;
                }
                sealed.push((result, ps, request));
            }
            Ok(())
        },
    )?;
    // Only the requester's key opens the partials.
    let mut plain_results = Vec::new();
    stages.time("combine (requester: open, verify, decrypt)", || {
        for (result, ps, request) in &sealed {
            plain_results.push(combine_result(
                pk,
                result,
                ps,
                args.min_rows,
                Some(&request.request_id),
                Some(requester.identity()),
                None,
            )?);
        }
        Ok(())
    })?;

    // 6. The same queries on the plaintext, for comparison.
    let expected: Vec<Vec<RecordBatch>> =
        stages.time("same queries on plaintext (check)", || {
            runtime.block_on(async {
                let ctx = synth::plaintext_session(&dir.join("plain")).await?;
                let mut out = Vec::new();
                for (_, q) in QUERIES {
                    out.push(ctx.sql(q).await?.collect().await?);
                }
                anyhow::Ok(out)
            })
        })?;

    let mut matches = 0;
    for (((name, _, request), got), want) in encrypted.iter().zip(&plain_results).zip(&expected) {
        let (ok, suppressed) = compare(&got.batches, want, args.min_rows)?;
        if !global.quiet {
            println!(
                "\n== {name}: request {}…, re-verified and decrypted by hospitals {}, opened by the requester alone ==",
                &request.request_id[..16],
                got.parties.join(" + ")
            );
            println!("{}", pretty_format_batches(&got.batches)?);
            println!("-- same query on the plaintext --");
            println!("{}", pretty_format_batches(want)?);
        }
        let note = if suppressed > 0 {
            format!(" ({suppressed} cell(s) suppressed: small counts and their shares)")
        } else {
            String::new()
        };
        println!("{name}: {}{note}", if ok { "match" } else { "MISMATCH" });
        matches += usize::from(ok);
    }
    println!("\n{:<44} {:>9}", "stage", "seconds");
    for (name, secs) in &stages.0 {
        println!("{name:<44} {secs:>9.2}");
    }
    println!("{:<44} {:>9.2}", "total", total.elapsed().as_secs_f64());
    if matches == QUERIES.len() {
        println!("\nall {matches} results match");
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} results do not match the plaintext",
            QUERIES.len() - matches,
            QUERIES.len()
        )
    }
}

fn write_parquet(path: &Path, batches: &[RecordBatch]) -> anyhow::Result<()> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .context("a query returned no batch")?;
    let mut w = ArrowWriter::try_new(std::fs::File::create(path)?, schema, None)?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(())
}

/// Cell-by-cell comparison; a decrypted NULL where the plaintext count is below `min_rows` is a
/// suppressed small count, as the policy wants. Returns (all equal, suppressed cells).
fn compare(
    got: &[RecordBatch],
    want: &[RecordBatch],
    min_rows: u64,
) -> anyhow::Result<(bool, usize)> {
    let (g, w) = (cells(got)?, cells(want)?);
    if g.len() != w.len() {
        return Ok((false, 0));
    }
    let mut suppressed = 0;
    for (gr, wr) in g.iter().zip(&w) {
        // A share of a flag (AVG of a boolean) is suppressed with its count: a row with a
        // suppressed count may show other shares, values in [0, 1], as suppressed too.
        let small = |b: &str| b.parse::<u64>().is_ok_and(|v| v > 0 && v < min_rows);
        let row_suppressed = gr.iter().zip(wr).any(|(a, b)| a.is_empty() && small(b));
        for (a, b) in gr.iter().zip(wr) {
            if a == b {
                continue;
            }
            let share = b.parse::<f64>().is_ok_and(|v| (0.0..=1.0).contains(&v));
            if a.is_empty() && (small(b) || (row_suppressed && share)) {
                suppressed += 1;
                continue;
            }
            return Ok((false, suppressed));
        }
    }
    Ok((true, suppressed))
}

fn cells(batches: &[RecordBatch]) -> anyhow::Result<Vec<Vec<String>>> {
    let opts = FormatOptions::default();
    let mut rows = Vec::new();
    for b in batches {
        let f = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()?;
        for r in 0..b.num_rows() {
            rows.push(f.iter().map(|x| x.value(r).to_string()).collect());
        }
    }
    Ok(rows)
}

/// The cloud's side of one query: runs `sql` in `ctx`, writes the result to `path` (Parquet) and
/// returns the decryption request for it (the files its plan read, with their signatures).
pub(crate) async fn cloud_run(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
    tables: &[(String, String)],
    roster: &Roster,
    recipient: &str,
    path: &Path,
) -> anyhow::Result<Request> {
    let plan = sql::plan(ctx, sql).await?.create_physical_plan().await?;
    let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx()).await?;
    write_parquet(path, &batches)?;
    Ok(verify::make_request(
        sql, tables, &plan, roster, "analyst", recipient, path,
    )?)
}

/// A public file of the demo (roster, request), written atomically.
fn write_shared(path: &Path, text: &str) -> anyhow::Result<()> {
    let out = Output::file(path, true, Privacy::Shared)?;
    out.writer()?.write_all(text.as_bytes())?;
    out.commit()?;
    Ok(())
}

/// Encrypts synthetic admissions (`cost:2,length_of_stay,diabetic`) into `out`, signed by `key`.
pub(crate) fn encrypt_signed(
    pk: &cipherlake::paillier::PublicKey,
    plain: &Path,
    out: &Path,
    key: OwnerKey,
) -> anyhow::Result<()> {
    let opts = EncryptOptions {
        columns: super::encrypt::parse_columns("cost:2,length_of_stay,diabetic")?,
        batch_size: 8192,
        progress: None,
        overwrite: true,
        signer: Some(Arc::new(Signer::new(key, pk.key_id()))),
    };
    encrypt_path(pk, plain, out, &opts)?;
    Ok(())
}
