//! `cipherlake bench`: end-to-end measurements whose figures go in the README, each against a
//! reference measured in the same run (timings on shared machines are noisy; ratios are not).
//!
//! - `bench sum`: `SELECT SUM(c)` over encrypted Parquet at 1 and 2 partitions, a GROUP BY with
//!   1,000 groups, AVG and the per-row expressions -c, c * 3, c + c, against a bare GMP
//!   `mul + rem mod n²` loop over the same values.
//! - `bench reverify`: a hospital's re-verification of a request over a signed lake, against the
//!   cloud's own run of the same query.
//! - `bench ledger`: reading and checking the release ledger, the differencing rule and the ε
//!   budget, per past release and per 100k rows of row set.
//! - `bench noise`: differential privacy's noise shares from the OS CSPRNG against the discrete
//!   Laplace (χ²), and the noise round's cost per cell.
//! - `bench decrypt`: CRT decryption 4 at a time (the IFMA kernel) against one by one (GMP).
//! - `bench encrypt`: `encrypt` of synthetic admissions (2 encrypted columns) with 1 and 2 threads.

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use cipherlake::lake::decrypt::decrypt_batch;
use cipherlake::lake::io::parquet_props;
use cipherlake::lake::{encrypt_path, EncryptOptions, EncryptedColumn};
use cipherlake::paillier::{Ciphertext, PrivateKey};
use cipherlake::sql::{self, KeyRing};
use cipherlake::synth;
use datafusion::arrow::array::{ArrayRef, AsArray, FixedSizeBinaryArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use rug::Integer;
use serde_json::json;

use super::Global;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Encrypted SUM throughput against a bare GMP loop.
    Sum {
        /// Encrypted rows.
        #[arg(long, default_value_t = 200_000)]
        rows: usize,
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// Threshold decryption costs: partial decryption + proof, verification, combine; and a
    /// 1,000-cell result end to end.
    Threshold {
        /// Key size: 2048, 3072 or 4096.
        #[arg(long, default_value_t = 2048)]
        bits: u32,
        /// Cells of the end-to-end result.
        #[arg(long, default_value_t = 1000)]
        cells: usize,
    },
    /// A hospital's re-verification of a request (signatures, private copies, its own run of the
    /// SQL with provenance, the bit-for-bit comparison) against the cloud's own run of the query.
    Reverify {
        /// Lake rows (synthetic admissions, 3 encrypted columns, split between two owners).
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// The release ledger: reading and checking it (chain, signatures, row sets) and the
    /// differencing rule of a new cell against every release, per past release and row.
    Ledger {
        /// Past releases in the ledger (one cell each).
        #[arg(long, default_value_t = 200)]
        releases: usize,
        /// Rows in each release's row set.
        #[arg(long, default_value_t = 100_000)]
        rows: u32,
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// Differential privacy: a goodness-of-fit test of summed noise shares drawn from the OS
    /// CSPRNG against the discrete Laplace, and the cost of the noise round per cell (drawing,
    /// encrypting and proving a share; checking one).
    Noise {
        /// Sums of shares per goodness-of-fit test.
        #[arg(long, default_value_t = 200_000)]
        samples: usize,
        /// Cells of the timed noise round (2048-bit key).
        #[arg(long, default_value_t = 100)]
        cells: usize,
    },
    /// CRT decryption with the private key, one core: 4 at a time (the IFMA kernel's
    /// constant-time powers where the CPU has it) against GMP's one by one, same run.
    Decrypt {
        /// Ciphertexts to decrypt.
        #[arg(long, default_value_t = 2000)]
        values: usize,
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// Encryption throughput with 1 and 2 threads.
    Encrypt {
        /// Rows of synthetic admissions (2 encrypted columns each).
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
    },
}

pub(crate) fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    // Figures are only comparable on the same kind of machine: say which.
    println!(
        "CPU: {} ({} cores available)",
        cpu_model(),
        std::thread::available_parallelism().map_or(1, |c| c.get())
    );
    match args.what {
        What::Sum { rows, repeat } => bench_sum(rows, repeat.max(1), global),
        What::Encrypt { rows } => bench_encrypt(rows, global),
        What::Threshold { bits, cells } => bench_threshold(bits, cells.max(1), global),
        What::Reverify { rows, repeat } => bench_reverify(rows.max(2), repeat.max(1), global),
        What::Ledger {
            releases,
            rows,
            repeat,
        } => bench_ledger(releases.max(1), rows.max(1), repeat.max(1), global),
        What::Noise { samples, cells } => bench_noise(samples.max(1000), cells.max(1), global),
        What::Decrypt { values, repeat } => bench_decrypt(values.max(8), repeat.max(1), global),
    }
}

fn bench_decrypt(values: usize, repeat: usize, global: &Global) -> anyhow::Result<()> {
    say(global, "generating a 2048-bit key…");
    let sk = PrivateKey::generate(2048)?;
    let pk = sk.public_key();
    let plain: Vec<i128> = (0..values as i128).map(|i| i * 7919 - 5000).collect();
    let cts = pk.encrypt_many_i128(&plain)?;
    let refs: Vec<&Ciphertext> = cts.iter().collect();
    let (mut batch, mut single) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        let t = Instant::now();
        let got = sk.decrypt_raw_many(&refs);
        batch.push(values as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let one: Vec<Integer> = cts.iter().map(|c| sk.decrypt_raw(c)).collect();
        single.push(values as f64 / t.elapsed().as_secs_f64());
        anyhow::ensure!(got == one, "the two decryptions differ");
        for (v, want) in got.into_iter().zip(&plain) {
            anyhow::ensure!(pk.decode(v)? == *want, "a wrong decryption");
        }
    }
    let (batch, single) = (median(batch), median(single));
    println!("CRT decryption at 2048 bits, {values} values, one core, median of {repeat}:");
    println!(
        "  4 at a time ({}, constant-time)  {batch:>8.0} /s",
        cipherlake::paillier::arith::kernel()
    );
    println!("  one by one (GMP, variable-time powm)  {single:>8.0} /s");
    println!("  ratio {:.2}x", batch / single);
    println!(
        "{}",
        json!({"values": values, "batch_per_s": batch, "single_per_s": single, "arith": cipherlake::paillier::arith::kernel()})
    );
    Ok(())
}

fn bench_noise(samples: usize, cells: usize, global: &Global) -> anyhow::Result<()> {
    use cipherlake::release::noise::{chi_square, collect, draw, Mechanism, CHI_SQUARE_CRITICAL};
    use cipherlake::release::verify::CellProvenance;
    use rayon::prelude::*;

    println!("noise shares from the OS CSPRNG, {samples} sums of t shares each, against the discrete Laplace:");
    for (epsilon, parties) in [(0.5, 2u32), (0.5, 3), (1.0, 5)] {
        let m = Mechanism::new(epsilon, 1, parties)?;
        let sums = (0..samples)
            .into_par_iter()
            .map(|_| {
                (0..parties)
                    .map(|_| m.os_share())
                    .sum::<cipherlake::Result<i64>>()
            })
            .collect::<cipherlake::Result<Vec<i64>>>()?;
        let chi = chi_square(&m, &sums);
        let mean = sums.iter().sum::<i64>() as f64 / samples as f64;
        let var = sums.iter().map(|&z| (z as f64 - mean).powi(2)).sum::<f64>() / samples as f64;
        println!(
            "  ε {epsilon}, t = {parties}: χ² {chi:.1} over 32 degrees of freedom ({} at p = 0.001, critical {CHI_SQUARE_CRITICAL}); variance {var:.3} for {:.3}",
            if chi < CHI_SQUARE_CRITICAL { "fits" } else { "DOES NOT FIT" },
            m.variance()
        );
        println!(
            "{}",
            json!({"epsilon": epsilon, "parties": parties, "samples": samples, "chi_square": chi, "variance": var, "expected_variance": m.variance()})
        );
    }

    say(global, "dealing a 2048-bit 2-of-3 key…");
    let parties: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let d = cipherlake::paillier::threshold::deal(2048, &parties, 2)?;
    let pk = &d.public;
    let m = Mechanism::new(1.0, 50_000, 2)?;
    let provenance: Vec<CellProvenance> = (0..cells as u64)
        .map(|row| CellProvenance {
            column: "total".into(),
            row,
            rows: 0,
            owners: Default::default(),
            measure: "cost".into(),
            row_set: Default::default(),
            plain: true,
            count: false,
            scale: 2,
        })
        .collect();
    let with: Vec<(&CellProvenance, Mechanism)> = provenance.iter().map(|c| (c, m)).collect();
    let t = Instant::now();
    let files = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let f = draw(pk, p, i + 1, "req", "sha", &with)?;
            Ok((format!("{p}.noise.json"), format!("{p}-sha"), f))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let drawn = t.elapsed().as_secs_f64() / (2 * cells) as f64;
    let want = provenance
        .iter()
        .map(|c| ((c.column.clone(), c.row), m))
        .collect();
    let t = Instant::now();
    let product = collect(pk, ("a", "a-sha"), "req", "sha", &files, &want)?;
    let checked = t.elapsed().as_secs_f64() / (2 * cells) as f64;
    anyhow::ensure!(product.len() == cells, "every cell gets its noise");
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    println!(
        "noise round at 2048 bits, {cells} cells × 2 hospitals (wall clock on {cores} cores):"
    );
    println!(
        "  draw + encrypt + prove one share  {:>8.2} ms ({:.2} core-ms)",
        drawn * 1000.0,
        drawn * 1000.0 * cores
    );
    println!(
        "  check one share's proof           {:>8.2} ms ({:.2} core-ms)",
        checked * 1000.0,
        checked * 1000.0 * cores
    );
    println!(
        "{}",
        json!({"bits": 2048, "cells": cells, "draw_ms_per_share": drawn * 1000.0, "check_ms_per_share": checked * 1000.0, "cores": cores})
    );
    Ok(())
}

/// The CPU model from /proc/cpuinfo (Linux), or what is known without it.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| format!("unknown {}", std::env::consts::ARCH))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn say(global: &Global, msg: &str) {
    if !global.quiet {
        eprintln!("{msg}");
    }
}

fn bench_sum(rows: usize, repeat: usize, global: &Global) -> anyhow::Result<()> {
    anyhow::ensure!(rows >= 1000, "--rows must be at least 1000");
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    say(global, "generating a 2048-bit key…");
    let sk = PrivateKey::generate(2048)?;
    let pk = sk.public_key();
    // 1,000 fresh encryptions; row i holds base[i % 1000] ⊕ base[(i / 1000) % 1000], a valid
    // ciphertext of a known sum, at the cost of one multiplication instead of an encryption.
    say(global, &format!("making {rows} ciphertexts…"));
    let base_plain: Vec<i64> = (0..1000).map(|i| (i * 7919 % 2003) as i64 - 1000).collect();
    let base: Vec<Ciphertext> = base_plain
        .iter()
        .map(|&v| pk.encrypt_i128(v as i128))
        .collect::<Result<_, _>>()?;
    let width = pk.ciphertext_width();
    let mut bytes = vec![0u8; rows * width];
    let mut expected = 0i128;
    let mut cts: Vec<Integer> = Vec::with_capacity(rows);
    for (i, out) in bytes.chunks_exact_mut(width).enumerate() {
        let (a, b) = (i % 1000, (i / 1000) % 1000);
        let c = pk.add(&base[a], &base[b]);
        expected += (base_plain[a] + base_plain[b]) as i128;
        c.write_le(out);
        cts.push(c.into_integer());
    }
    let col = EncryptedColumn {
        key_id: pk.key_id().into(),
        scale: 0,
        plain_type: DataType::Int64,
        aggregate: None,
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        col.field("c", width),
    ]));
    let g: ArrayRef = Arc::new(Int64Array::from_iter_values(
        (0..rows).map(|i| (i % 1000) as i64),
    ));
    let c_bytes = bytes.clone();
    let c: ArrayRef = Arc::new(FixedSizeBinaryArray::try_new(
        width as i32,
        bytes.into(),
        None,
    )?);
    let path = dir.path().join("sum.parquet");
    let mut w = ArrowWriter::try_new(
        File::create(&path)?,
        schema.clone(),
        Some(parquet_props(&schema, &["c"], width)),
    )?;
    w.write(&RecordBatch::try_new(schema, vec![g, c])?)?;
    w.close()?;

    // The reference: the same multiplications in a bare GMP loop, one core.
    let n2 = pk.n_squared().clone();
    let mut bare = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        let mut acc = Integer::from(1);
        for x in &cts {
            acc *= x;
            acc %= &n2;
        }
        bare.push(rows as f64 / t.elapsed().as_secs_f64());
        std::hint::black_box(&acc);
    }
    let bare = median(bare);
    // The accumulators' own path on the same bytes, no SQL: batches of 8,192 values through
    // `Sum::add_all_le` (the IFMA kernel where the CPU has it, else GMP), one core.
    let m = pk.modulus();
    let values: Vec<&[u8]> = c_bytes.chunks_exact(width).collect();
    let mut kernel = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        let mut acc = cipherlake::paillier::Sum::new();
        for batch in values.chunks(8192) {
            acc.add_all_le(m, batch)
                .map_err(|(i, why)| anyhow::anyhow!("value {i}: {why}"))?;
        }
        kernel.push(rows as f64 / t.elapsed().as_secs_f64());
        std::hint::black_box(&acc);
    }
    let kernel = median(kernel);

    let mut keys = KeyRing::new();
    keys.add(pk.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    // What each result must decrypt to: a multiple of the plain sum, the mean, or 1,000 groups.
    enum Check {
        Sum(i128),
        Avg,
        Groups,
    }
    let cases = [
        ("SELECT paillier_sum(c) FROM t", 1, Check::Sum(1)),
        ("SELECT SUM(c) FROM t", 1, Check::Sum(1)),
        ("SELECT SUM(c) FROM t", 2, Check::Sum(1)),
        ("SELECT g, SUM(c) FROM t GROUP BY g", 2, Check::Groups),
        ("SELECT AVG(c) FROM t", 1, Check::Avg),
        ("SELECT SUM(-c) FROM t", 1, Check::Sum(-1)),
        ("SELECT SUM(c * 3) FROM t", 1, Check::Sum(3)),
        ("SELECT SUM(c + c) FROM t", 1, Check::Sum(2)),
        ("SELECT SUM(c + c) FROM t", 2, Check::Sum(2)),
    ];
    for (sql_text, partitions, check_as) in cases {
        let label = format!("{sql_text}, {partitions} part.");
        let mut rates = Vec::new();
        for _ in 0..repeat {
            let (rate, check) = runtime.block_on(async {
                let ctx = sql::session(keys.clone(), Some(partitions));
                sql::register_table(&ctx, "t", path.to_str().unwrap_or_default(), &keys).await?;
                let t = Instant::now();
                let batches = sql::plan(&ctx, sql_text).await?.collect().await?;
                let rate = rows as f64 / t.elapsed().as_secs_f64();
                anyhow::Ok((rate, batches))
            })?;
            rates.push(rate);
            match check_as {
                Check::Avg => {
                    let plain = decrypt_batch(&sk, &check[0], 1, "bench")?;
                    let got = plain
                        .column(0)
                        .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                        .value(0);
                    let want = expected as f64 / rows as f64;
                    anyhow::ensure!(
                        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                        "{label}: wrong average {got} instead of {want}"
                    );
                }
                Check::Sum(k) => {
                    let plain = decrypt_batch(&sk, &check[0], 1, "bench")?;
                    let got = plain
                        .column(0)
                        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                        .value(0);
                    anyhow::ensure!(
                        got as i128 == k * expected,
                        "{label}: wrong sum {got} instead of {}",
                        k * expected
                    );
                }
                Check::Groups => {
                    let n: usize = check.iter().map(|b| b.num_rows()).sum();
                    anyhow::ensure!(n == 1000, "expected 1000 groups, got {n}");
                }
            }
        }
        let rate = median(rates);
        results.push(json!({"query": label, "rows_per_s": rate.round(), "ratio_to_bare_loop": (rate / bare * 100.0).round() / 100.0}));
    }
    println!("bare GMP mul+rem mod n² loop (1 core): {:.0} mults/s", bare);
    println!(
        "Sum::add_all_le, batches of 8,192 ({}; 1 core): {:.0} mults/s = {:.2}x the bare loop",
        cipherlake::paillier::arith::kernel(),
        kernel,
        kernel / bare
    );
    println!(
        "{:<48} {:>12} {:>10}",
        "query (2048-bit, median)", "rows/s", "÷ bare"
    );
    for r in &results {
        println!(
            "{:<48} {:>12} {:>9.2}x",
            r["query"].as_str().unwrap_or(""),
            r["rows_per_s"].as_f64().unwrap_or(0.0),
            r["ratio_to_bare_loop"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "{}",
        json!({"rows": rows, "bare_loop_per_s": bare.round(), "arith": cipherlake::paillier::arith::kernel(),
               "add_all_le_per_s": kernel.round(), "results": results})
    );
    Ok(())
}

fn bench_encrypt(rows: usize, global: &Global) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    say(global, "generating a 2048-bit key…");
    let sk = PrivateKey::generate(2048)?;
    let pk = sk.public_key();
    let input = dir.path().join("admissions.csv");
    synth::write_admissions(&input, 0, rows, 1)?;
    // Build the fixed-base table before timing.
    pk.encrypt_i128(0)?;
    let mut rates = Vec::new();
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        let out = dir.path().join(format!("out-{threads}.parquet"));
        let opts = EncryptOptions {
            columns: super::encrypt::parse_columns("cost:2,length_of_stay")?,
            batch_size: 8192,
            progress: None,
            overwrite: true,
            signer: None,
        };
        say(
            global,
            &format!("encrypting {rows} rows × 2 columns with {threads} thread(s)…"),
        );
        let t = Instant::now();
        let stats = pool.install(|| encrypt_path(pk, &input, &out, &opts))?;
        let secs = t.elapsed().as_secs_f64();
        rates.push((
            threads,
            stats.rows as f64 / secs,
            stats.values as f64 / secs,
        ));
    }
    println!("{:<10} {:>12} {:>14}", "threads", "rows/s", "values/s");
    for (t, r, v) in &rates {
        println!("{t:<10} {r:>12.0} {v:>14.0}");
    }
    let speedup = rates[1].1 / rates[0].1;
    println!("speed-up with 2 threads: {speedup:.2}x");
    println!(
        "{}",
        json!({"rows": rows, "rows_per_s_1": rates[0].1.round(), "rows_per_s_2": rates[1].1.round(), "speedup": (speedup * 100.0).round() / 100.0})
    );
    Ok(())
}

fn bench_threshold(bits: u32, cells: usize, global: &Global) -> anyhow::Result<()> {
    use cipherlake::lake::schema::{AggregateKind, AggregateValue};
    use cipherlake::paillier::threshold::{
        combine, deal, partial_decrypt, partial_decrypt_batch, verify_batch, verify_partial,
    };
    use cipherlake::release::partial::{combine_result, partial_decrypt_result, ResultFile};
    use cipherlake::release::policy::Policy;
    use cipherlake::release::requester::RequesterKey;

    let parties: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    say(global, &format!("dealing a {bits}-bit 2-of-3 key…"));
    let t = Instant::now();
    let d = deal(bits, &parties, 2)?;
    let deal_secs = t.elapsed().as_secs_f64();
    let pk = &d.public;
    let c = pk.encrypt_i128(123_456)?;

    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let mut xs = Vec::new();
        for _ in 0..9 {
            let t = Instant::now();
            f()?;
            xs.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(median(xs))
    };
    let p1 = partial_decrypt(pk, &d.shares[0], &c, b"bench")?;
    let p2 = partial_decrypt(pk, &d.shares[1], &c, b"bench")?;
    let partial_ms = time(&mut || {
        partial_decrypt(pk, &d.shares[0], &c, b"bench")?;
        Ok(())
    })?;
    let verify_ms = time(&mut || {
        anyhow::ensure!(
            verify_partial(pk, 1, &c, &p1, b"bench"),
            "proof does not verify"
        );
        Ok(())
    })?;
    let combine_ms = time(&mut || {
        let m = combine(pk, &[(1, &p1.value), (2, &p2.value)])?;
        anyhow::ensure!(pk.decode(m)? == 123_456, "wrong plaintext");
        Ok(())
    })?;

    // The batched primitives alone on `cells` ciphertexts, with all cores: one party's partial
    // decryptions and their one proof, and the verification of that proof.
    let cts = (0..cells)
        .map(|i| pk.encrypt_i128(i as i128))
        .collect::<cipherlake::Result<Vec<_>>>()?;
    let named: Vec<(&cipherlake::paillier::Ciphertext, Vec<u8>)> = cts
        .iter()
        .enumerate()
        .map(|(i, c)| (c, format!("cell {i}").into_bytes()))
        .collect();
    let t = Instant::now();
    let (values, proof) = partial_decrypt_batch(pk, &d.shares[0], &named, b"bench", None)?;
    let batch_partial_secs = t.elapsed().as_secs_f64();
    let proof = proof.context("no proof for a non-empty batch")?;
    let items: Vec<_> = named
        .iter()
        .zip(&values)
        .map(|((c, name), v)| (*c, v, name.clone()))
        .collect();
    let t = Instant::now();
    anyhow::ensure!(
        verify_batch(pk, d.shares[0].index(), &items, &proof, b"bench"),
        "the batched proof does not verify"
    );
    let batch_verify_secs = t.elapsed().as_secs_f64();

    // A result file of `cells` aggregate cells (100 rows each), partially decrypted by two
    // parties and combined, with all cores.
    let width = pk.ciphertext_width();
    let size = AggregateValue::width(width);
    let mut buf = vec![0u8; cells * size];
    for (i, out) in buf.chunks_exact_mut(size).enumerate() {
        pk.encrypt_i128(i as i128)?.write_le(&mut out[..width]);
        AggregateValue::write_rows(out, 100);
    }
    let col = EncryptedColumn {
        key_id: pk.key_id().into(),
        scale: 0,
        plain_type: DataType::Int64,
        aggregate: Some(AggregateKind::Sum),
    };
    let field = col.field("s", size);
    let schema = Arc::new(Schema::new(vec![field]));
    let array: ArrayRef = Arc::new(FixedSizeBinaryArray::try_new(
        size as i32,
        buf.into(),
        None,
    )?);
    let mut file = Vec::new();
    {
        let mut w = ArrowWriter::try_new(&mut file, schema.clone(), None)?;
        w.write(&RecordBatch::try_new(schema, vec![array])?)?;
        w.close()?;
    }
    let result = ResultFile::read("bench", bytes::Bytes::from(file))?;
    say(
        global,
        &format!("{cells}-cell result: two parties partially decrypt, then combine…"),
    );
    // As on the release path: one batched proof per party, partials sealed to the requester.
    let requester = RequesterKey::generate();
    let recipient = requester.recipient();
    let policy = Policy::default();
    let t = Instant::now();
    let partials = [("a", 0usize), ("c", 2)]
        .iter()
        .map(|&(name, i)| {
            let p = partial_decrypt_result(
                pk,
                &d.shares[i],
                &result,
                &policy,
                None,
                Some(&recipient),
                None,
                &[],
                None,
            )?;
            Ok((name.to_owned(), p))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let partial_secs = t.elapsed().as_secs_f64() / 2.0;
    let t = Instant::now();
    let combined = combine_result(
        pk,
        &result,
        &partials,
        11,
        None,
        Some(requester.identity()),
        None,
    )?;
    let combine_secs = t.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let first = combined.batches[0]
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .value(cells - 1);
    anyhow::ensure!(
        first as usize == cells - 1,
        "wrong plaintext in the end-to-end result"
    );

    let per_cell = |secs: f64| secs * 1000.0 * cores / cells as f64;
    println!("threshold 2-of-3, {bits}-bit key (dealt and self-tested in {deal_secs:.1} s)");
    println!("one cell with its own proof (the per-cell fallback), one core, median of 9:");
    println!("  partial decryption + proof  {partial_ms:>8.2} ms/cell");
    println!("  proof verification          {verify_ms:>8.2} ms/cell");
    println!("  combine (2 parties)         {combine_ms:>8.3} ms/cell");
    println!(
        "{cells} cells, one batched proof, {cores} cores (core-ms = wall ms × cores / cells):"
    );
    println!(
        "  partial decryption + proof  {batch_partial_secs:>8.2} s  = {:.2} core-ms/cell",
        per_cell(batch_partial_secs)
    );
    println!(
        "  proof verification          {batch_verify_secs:>8.2} s  = {:.2} core-ms/cell",
        per_cell(batch_verify_secs)
    );
    println!("{cells}-cell result file end to end, sealed to the requester, {cores} cores:");
    println!(
        "  partial-decrypt, per party  {partial_secs:>8.2} s  = {:.2} core-ms/cell",
        per_cell(partial_secs)
    );
    println!(
        "  combine (open, verify 2 batches, decrypt) {combine_secs:>6.2} s  = {:.2} core-ms/cell",
        per_cell(combine_secs)
    );
    println!(
        "{}",
        json!({"bits": bits, "partial_ms": partial_ms, "verify_ms": verify_ms, "combine_ms": combine_ms,
               "cells": cells, "cores": cores,
               "batch_partial_core_ms_per_cell": per_cell(batch_partial_secs), "batch_verify_core_ms_per_cell": per_cell(batch_verify_secs), "partial_per_party_s": partial_secs, "combine_s": combine_secs,
               "batched_partial_core_ms_per_cell": per_cell(partial_secs), "batched_combine_core_ms_per_cell": per_cell(combine_secs)})
    );
    Ok(())
}

fn bench_reverify(rows: usize, repeat: usize, global: &Global) -> anyhow::Result<()> {
    use cipherlake::paillier::threshold::deal;
    use cipherlake::release::partial::ResultFile;
    use cipherlake::release::policy::Policy;
    use cipherlake::release::requester::RequesterKey;
    use cipherlake::release::{verify, OwnerKey, Roster};

    const SQL: &str = include_str!("../../queries/totals_by_region.sql");
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let owners = ["a", "b"];
    say(global, "dealing a 2048-bit key…");
    let d = deal(2048, &owners.map(String::from), 2)?;
    let pk = &d.public;
    let keys = owners
        .iter()
        .map(|o| OwnerKey::generate(o))
        .collect::<cipherlake::Result<Vec<_>>>()?;
    let roster = Roster::new(pk.key_id(), keys.iter().map(OwnerKey::public).collect())?;
    say(
        global,
        &format!("encrypting and signing {rows} admissions (3 encrypted columns)…"),
    );
    for (i, (o, key)) in owners.iter().zip(keys).enumerate() {
        let plain = dir.path().join(format!("plain/{o}.csv"));
        std::fs::create_dir_all(dir.path().join("plain"))?;
        let n = rows / 2 + (i == 0) as usize * (rows % 2);
        synth::write_admissions(&plain, i, n, 2026)?;
        let out = dir
            .path()
            .join(format!("lake/hospital={o}/admissions.parquet"));
        super::demo::encrypt_signed(pk, &plain, &out, key)?;
    }
    let lake = dir.path().join("lake").display().to_string();
    let tables = vec![("admissions".to_owned(), lake.clone())];
    let mut ring = KeyRing::new();
    ring.add(pk.clone());
    let recipient = RequesterKey::generate().recipient();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = dir.path().join("result.parquet");
    let (mut cloud, mut hospital) = (Vec::new(), Vec::new());
    let policy = Policy::default();
    for _ in 0..repeat {
        let t = Instant::now();
        let request = runtime.block_on(async {
            let ctx = sql::session(ring.clone(), None);
            sql::register_table(&ctx, "admissions", &lake, &ring).await?;
            super::demo::cloud_run(&ctx, SQL, &tables, &roster, &recipient, &result).await
        })?;
        cloud.push(t.elapsed().as_secs_f64());
        let bytes = std::fs::read(&result)?;
        let size = bytes.len() as u64;
        let file = ResultFile::read("result", bytes::Bytes::from(bytes))?;
        let t = Instant::now();
        let checked = runtime.block_on(verify::reverify(
            &request,
            &roster,
            &ring,
            &policy,
            file.sha256(),
            size,
            file.batches(),
        ))?;
        hospital.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            checked.cells.iter().map(|c| c.rows).max() <= Some(rows as u64),
            "a cell traced to more rows than the lake has"
        );
    }
    let (cloud, hospital) = (median(cloud), median(hospital));
    let per_100k = hospital * 100_000.0 / rows as f64;
    println!(
        "re-verification of `queries/totals_by_region.sql` over {rows} signed lake rows (2 owners, 2048-bit key), median of {repeat}:"
    );
    println!("  cloud: query + result + request   {cloud:>8.2} s");
    println!(
        "  hospital: re-verification         {hospital:>8.2} s  = {per_100k:.2} s per 100k rows, {:.2}x the cloud's run",
        hospital / cloud
    );
    println!(
        "{}",
        json!({"rows": rows, "cloud_s": cloud, "reverify_s": hospital, "reverify_s_per_100k_rows": per_100k, "ratio": hospital / cloud})
    );
    Ok(())
}

fn bench_ledger(releases: usize, rows: u32, repeat: usize, global: &Global) -> anyhow::Result<()> {
    use cipherlake::release::ledger::{budget, differencing, snapshot, Entry, Ledger};
    use cipherlake::release::noise::{CellNoise, Mechanism, NoiseMap};
    use cipherlake::release::policy::Dp;
    use cipherlake::release::verify::{CellProvenance, RowSet};
    use cipherlake::release::{OwnerKey, Roster};

    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let key = OwnerKey::generate("a")?;
    let roster = Roster::new(&"ab".repeat(32), vec![key.public()])?;
    let ledger = Ledger::new(&dir.path().join("ledger.jsonl"));
    // Release i: `rows` rows over two files, every other row of one and every third of the
    // other (as a filter on a plaintext column picks them), shifted by 60 rows per release so
    // that every pair differs by at least 20 rows (the rule is evaluated, never triggered).
    let cell = |i: u32| -> CellProvenance {
        let start = i * 60;
        let half = rows / 2;
        let row_set: RowSet = [
            ("f1".to_owned(), (0..half).map(|r| start + 2 * r).collect()),
            (
                "f2".to_owned(),
                (0..rows - half).map(|r| start + 3 * r).collect(),
            ),
        ]
        .into_iter()
        .collect();
        CellProvenance {
            column: "t".into(),
            row: 0,
            rows: u64::from(rows),
            owners: Default::default(),
            measure: "cost".into(),
            row_set,
            plain: true,
            count: false,
            scale: 0,
        }
    };
    say(
        global,
        &format!("writing {releases} signed releases of {rows} rows each…"),
    );
    // Every release noisy (ε 0.01 a cell), so that the budget counts each of them.
    let mechanism = Mechanism::new(0.01, 1, 2)?;
    let noisy = |c: &CellProvenance| -> NoiseMap {
        [(
            (c.column.clone(), c.row),
            CellNoise {
                mechanism,
                noise: Integer::from(1),
                pinned: None,
            },
        )]
        .into_iter()
        .collect()
    };
    for i in 0..releases {
        let c = cell(i as u32);
        let e = Entry::new(
            "a",
            &format!("{i:064x}"),
            "SELECT SUM(cost) FROM adm",
            snapshot(["f1", "f2"]),
            std::slice::from_ref(&c),
            Some(&noisy(&c)),
        );
        ledger.append(&roster, &key, &e, |_| Ok(()))?;
    }
    let bytes = std::fs::metadata(ledger.path())?.len();
    let new = [cell(releases as u32 + 7)];
    let new_noise = noisy(&new[0]);
    let dp = Dp {
        epsilon: 0.01,
        budget: 1e6,
        budget_per_requester: None,
        window_days: None,
        sensitivity: Default::default(),
    };
    let (mut read, mut check, mut spent) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat {
        let t = Instant::now();
        let (past, _) = ledger.read(&roster, None)?;
        read.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let reasons = differencing("new", &new, &past, 11);
        check.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            reasons.is_empty(),
            "the benchmark's releases should not conflict"
        );
        let t = Instant::now();
        let over = budget("new", None, &new, &new_noise, &past, &dp, u64::MAX);
        spent.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(over.is_empty(), "the benchmark's budget is not spent");
    }
    let (read, check, spent) = (median(read), median(check), median(spent));
    let per = |s: f64| s * 1000.0 / releases as f64;
    let per_100k = |s: f64| per(s) * 100_000.0 / f64::from(rows);
    println!(
        "release ledger: {releases} past releases of one cell of {rows} rows ({:.2} MB), median of {repeat}:",
        bytes as f64 / 1e6
    );
    println!(
        "  read + check (chain, signatures, row sets)  {:>8.3} s = {:.3} ms per release, {:.3} ms per 100k rows",
        read,
        per(read),
        per_100k(read)
    );
    println!(
        "  differencing rule, one new cell             {:>8.3} s = {:.3} ms per release, {:.3} ms per 100k rows",
        check,
        per(check),
        per_100k(check)
    );
    println!(
        "  ε budget (every release noisy), one new cell {:>8.3} s = {:.3} ms per release, {:.3} ms per 100k rows",
        spent,
        per(spent),
        per_100k(spent)
    );
    println!(
        "{}",
        json!({"releases": releases, "rows": rows, "ledger_bytes": bytes, "read_s": read, "check_s": check, "budget_s": spent,
               "budget_ms_per_release": per(spent), "budget_ms_per_release_per_100k_rows": per_100k(spent),
               "read_ms_per_release": per(read), "check_ms_per_release": per(check),
               "read_ms_per_release_per_100k_rows": per_100k(read), "check_ms_per_release_per_100k_rows": per_100k(check)})
    );
    Ok(())
}
