//! `cipherlake inspect`: what a file is. Key files: kind, key id, size. Parquet files: rows, row
//! groups, and each column with its encryption metadata. Text or JSON.

use std::fs::File;
use std::path::PathBuf;

use anyhow::Context;
use cipherlake::keyfile::{self, KeyFile};
use cipherlake::lake::EncryptedColumn;
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
    let info = match sniff(&args.file)? {
        Kind::Parquet => parquet_info(&args)?,
        Kind::Json => key_info(&args)?,
    };
    match args.format {
        Format::Json => println!("{info}"),
        Format::Text => print_text(&info),
    }
    Ok(())
}

enum Kind {
    Parquet,
    Json,
}

/// What kind of file this is, from its first bytes: Parquet starts with `PAR1`, a key file with
/// `{`. Anything else is refused with what was expected.
fn sniff(path: &std::path::Path) -> anyhow::Result<Kind> {
    use std::io::Read;
    let mut head = Vec::with_capacity(64);
    File::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .take(64)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if head.starts_with(b"PAR1") {
        return Ok(Kind::Parquet);
    }
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(Kind::Json),
        None => anyhow::bail!("{}: the file is empty", path.display()),
        Some(_) => anyhow::bail!(
            "{}: neither a key file (JSON, starting with `{{`) nor a Parquet file (starting with PAR1)",
            path.display()
        ),
    }
}

fn key_info(args: &Args) -> anyhow::Result<Value> {
    let (kind, pk): (&str, PublicKey) = match keyfile::load(&args.file)? {
        KeyFile::Public(pk) if pk.threshold().is_some() => ("threshold public key", pk),
        KeyFile::Public(pk) => ("public key", pk),
        KeyFile::Private(sk) => ("private key", sk.public_key().clone()),
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
    let extra = pk.threshold().map_or(
        Value::Null,
        |th| json!({"parties": th.parties, "needed": th.needed}),
    );
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
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).with_context(|| {
        format!("{name}: it starts like a Parquet file but cannot be read as one")
    })?;
    let md = builder.metadata();
    let mut columns = Vec::new();
    for f in builder.schema().fields() {
        columns.push(
            match EncryptedColumn::from_field(f).with_context(|| name.clone())? {
                Some(c) => json!({
                    "name": f.name(), "type": f.data_type().to_string(), "encrypted": true,
                    "key_id": c.key_id, "scale": c.scale, "plain_type": c.plain_type.to_string(),
                }),
                None => {
                    json!({"name": f.name(), "type": f.data_type().to_string(), "encrypted": false})
                }
            },
        );
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
