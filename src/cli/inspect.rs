//! `cipherlake inspect`: what a file is. Key files: kind, key id, size. Parquet files: rows, row
//! groups, and each column with its encryption metadata. Text or JSON.

use std::fs::File;
use std::path::PathBuf;

use anyhow::Context;
use cipherlake::lake::EncryptedColumn;
use cipherlake::paillier::keyfile::{self, KeyFile};
use cipherlake::paillier::PublicKey;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};

use super::Global;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The file to describe: public.json, private.json or a .parquet file.
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub(crate) fn run(args: Args, _global: &Global) -> anyhow::Result<()> {
    let mut magic = [0u8; 4];
    let is_parquet = File::open(&args.file)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && &magic == b"PAR1";
    let info = if is_parquet {
        parquet_info(&args)?
    } else {
        key_info(&args)?
    };
    match args.format {
        Format::Json => println!("{info}"),
        Format::Text => print_text(&info),
    }
    Ok(())
}

fn key_info(args: &Args) -> anyhow::Result<Value> {
    let (kind, pk, extra): (&str, PublicKey, Value) = match keyfile::load(&args.file)? {
        KeyFile::Public(pk, None) => ("public key", pk, Value::Null),
        KeyFile::Public(pk, Some(th)) => {
            let extra = json!({"parties": th.parties, "needed": th.needed});
            ("threshold public key", pk, extra)
        }
        KeyFile::Private(sk) => ("private key", sk.public_key().clone(), Value::Null),
        KeyFile::Share(share) => {
            return Ok(json!({
                "file": args.file.display().to_string(),
                "kind": "key share",
                "key_id": share.key_id(),
                "party": share.party(),
                "index": share.index(),
            }))
        }
    };
    Ok(json!({
        "threshold": extra,
        "file": args.file.display().to_string(),
        "kind": kind,
        "key_id": pk.key_id(),
        "bits": pk.bits(),
        "fast_encryption": pk.hs().is_some(),
        "ciphertext_bytes": pk.ciphertext_width(),
    }))
}

fn parquet_info(args: &Args) -> anyhow::Result<Value> {
    let name = args.file.display().to_string();
    let file = File::open(&args.file).with_context(|| format!("cannot open {name}"))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{name}: not a readable Parquet file"))?;
    let md = builder.metadata();
    let mut columns = Vec::new();
    for f in builder.schema().fields() {
        columns.push(match EncryptedColumn::from_field(f)? {
            Some(c) => json!({
                "name": f.name(), "type": f.data_type().to_string(), "encrypted": true,
                "key_id": c.key_id, "scale": c.scale, "plain_type": c.plain_type.to_string(),
            }),
            None => {
                json!({"name": f.name(), "type": f.data_type().to_string(), "encrypted": false})
            }
        });
    }
    Ok(json!({
        "file": name,
        "kind": "parquet",
        "rows": md.file_metadata().num_rows(),
        "row_groups": md.num_row_groups(),
        "columns": columns,
    }))
}

fn print_text(info: &Value) {
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    if info["kind"] == "parquet" {
        println!("file        {}", s(&info["file"]));
        println!("kind        parquet");
        println!("rows        {}", info["rows"]);
        println!("row groups  {}", info["row_groups"]);
        println!("columns");
        for c in info["columns"].as_array().into_iter().flatten() {
            if c["encrypted"] == true {
                println!(
                    "  {:<20} encrypted  plain {} scale {} key {}",
                    s(&c["name"]),
                    s(&c["plain_type"]),
                    c["scale"],
                    s(&c["key_id"])
                );
            } else {
                println!("  {:<20} {}", s(&c["name"]), s(&c["type"]));
            }
        }
        return;
    }
    println!("file              {}", s(&info["file"]));
    println!("kind              {}", s(&info["kind"]));
    println!("key_id            {}", s(&info["key_id"]));
    if info["kind"] == "key share" {
        println!(
            "party             {} (index {})",
            s(&info["party"]),
            info["index"]
        );
        return;
    }
    println!("bits              {}", info["bits"]);
    if let Some(th) = info["threshold"].as_object() {
        let parties: Vec<String> = th["parties"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        println!(
            "threshold         {} of {} parties: {}",
            th["needed"],
            parties.len(),
            parties.join(", ")
        );
    }
    let fast = if info["fast_encryption"] == true {
        "yes (DJN base hs)"
    } else {
        "no (r^n)"
    };
    println!("fast encryption   {fast}");
    println!("ciphertext bytes  {}", info["ciphertext_bytes"]);
}
