//! `cipherlake decrypt`: a key holder turns encrypted columns (of a lake file or a query result)
//! back into plain values.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use cipherlake::keyfile;
use cipherlake::lake::atomic::{Output, Privacy};
use cipherlake::lake::decrypt::{decrypt_batch, decrypted_schema};
use cipherlake::lake::io::{list_inputs, InputKind};
use cipherlake::lake::output::{BatchWriter, Format};
use cipherlake::paillier::PrivateKey;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::reader::ChunkReader;

use super::Global;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Private key file (private.json).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The key id the key was made with: a private.json with any other id is refused.
    #[arg(long, value_name = "HEX")]
    key_id: Option<String>,
    /// Encrypted .parquet file, a folder of them, or `-` for standard input.
    #[arg(long, value_name = "PATH|-")]
    input: String,
    /// Where to write the plaintext (`-`: standard output).
    #[arg(long, value_name = "PATH|-", default_value = "-")]
    output: String,
    /// table, csv, json, ndjson or parquet (default: from the output's extension; table on stdout).
    #[arg(long)]
    format: Option<String>,
    /// Overwrite an existing output.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: Args, _global: &Global) -> anyhow::Result<()> {
    let sk = keyfile::load_private(&args.key)?;
    super::pin(sk.public_key().key_id(), args.key_id.as_deref(), &args.key)?;
    // Decrypted lake files are patient-level values: the output is for the key holder only.
    let (out, format) = super::output_target(
        &args.output,
        args.format.as_deref(),
        args.force,
        Privacy::Secret,
    )?;
    let mut job = Job {
        sk: &sk,
        format,
        out: Some(out),
        writer: None,
        first_schema: None,
    };
    if args.input == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
        anyhow::ensure!(
            !buf.is_empty(),
            "standard input is empty: expected a Parquet file"
        );
        job.add("<stdin>", Bytes::from(buf))?;
    } else {
        let files = list_inputs(Path::new(&args.input))?;
        let files: Vec<_> = files
            .into_iter()
            .filter(|f| f.kind == InputKind::Parquet)
            .collect();
        anyhow::ensure!(
            !files.is_empty(),
            "{}: no .parquet files to decrypt",
            args.input
        );
        for f in files {
            let file =
                File::open(&f.path).with_context(|| format!("cannot open {}", f.path.display()))?;
            job.add(&f.path.display().to_string(), file)?;
        }
    }
    if let Some(w) = job.writer {
        w.finish()?;
    }
    Ok(())
}

/// Decrypts one source after another into a single output.
struct Job<'a> {
    sk: &'a PrivateKey,
    format: Format,
    /// The output until the first schema is known (then the writer holds it); None inside for
    /// standard output.
    out: Option<Option<Output>>,
    writer: Option<BatchWriter>,
    first_schema: Option<SchemaRef>,
}

impl Job<'_> {
    fn add<R: ChunkReader + 'static>(&mut self, name: &str, reader: R) -> anyhow::Result<()> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(reader)
            .with_context(|| format!("{name}: not a Parquet file"))?;
        let schema = decrypted_schema(builder.schema(), self.sk.public_key().key_id(), name)?;
        match &self.first_schema {
            None => self.first_schema = Some(schema.clone()),
            Some(s) => anyhow::ensure!(
                s.fields() == schema.fields(),
                "{name}: its columns differ from the first file's; decrypt the files one by one"
            ),
        }
        let w = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(BatchWriter::create(
                self.format,
                self.out.take().flatten(),
                schema,
            )?),
        };
        let mut row = 1u64;
        for batch in builder.build()? {
            let batch = batch.with_context(|| format!("{name}: cannot read"))?;
            let plain = decrypt_batch(self.sk, &batch, row, name)?;
            row += batch.num_rows() as u64;
            w.write(&plain)?;
        }
        Ok(())
    }
}
