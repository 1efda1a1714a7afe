//! Writing result tables: Parquet, CSV, JSON, NDJSON or a printed table, to a file (through a
//! temporary file renamed at the end) or to standard output.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::str::FromStr;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;

use super::io::Output;
use crate::error::{Error, Result};

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A human-readable table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Parquet (keeps the encrypted columns' metadata).
    Parquet,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "table" => Format::Table,
            "csv" => Format::Csv,
            "json" => Format::Json,
            "ndjson" | "nd-json" | "jsonl" => Format::Ndjson,
            "parquet" => Format::Parquet,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown format `{other}`: use table, csv, json, ndjson or parquet"
                )))
            }
        })
    }
}

impl Format {
    /// The format an output path implies: by extension; a table for standard output.
    pub fn for_output(path: Option<&Path>) -> Format {
        let ext = path
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match (path, ext.as_deref()) {
            (None, _) => Format::Table,
            (_, Some("csv")) => Format::Csv,
            (_, Some("json")) => Format::Json,
            (_, Some("ndjson" | "jsonl")) => Format::Ndjson,
            _ => Format::Parquet,
        }
    }
}

enum Sink {
    Table(Vec<RecordBatch>),
    Csv(Box<datafusion::arrow::csv::Writer<Box<dyn Write + Send>>>),
    Json(datafusion::arrow::json::ArrayWriter<Box<dyn Write + Send>>),
    Ndjson(datafusion::arrow::json::LineDelimitedWriter<Box<dyn Write + Send>>),
    Parquet(Box<ArrowWriter<Box<dyn Write + Send>>>),
}

/// Writes record batches in one format to a file or standard output.
pub struct BatchWriter {
    sink: Sink,
    schema: SchemaRef,
    wrote: bool,
    output: Option<Output>,
    table_out: Option<Box<dyn Write + Send>>,
}

impl BatchWriter {
    /// A writer to `path` (None: standard output). `overwrite` replaces an existing file.
    pub fn create(
        format: Format,
        path: Option<&Path>,
        schema: SchemaRef,
        overwrite: bool,
    ) -> Result<Self> {
        let (dest, output): (Box<dyn Write + Send>, Option<Output>) = match path {
            None => (Box::new(BufWriter::new(std::io::stdout())), None),
            Some(p) => {
                let out = Output::begin(p, false, overwrite)?;
                let file = out.file_for(Path::new(""))?;
                (Box::new(BufWriter::new(file)), Some(out))
            }
        };
        let (sink, table_out) = match format {
            Format::Table => (Sink::Table(Vec::new()), Some(dest)),
            Format::Csv => (
                Sink::Csv(Box::new(
                    datafusion::arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(dest),
                )),
                None,
            ),
            Format::Json => (
                Sink::Json(datafusion::arrow::json::ArrayWriter::new(dest)),
                None,
            ),
            Format::Ndjson => (
                Sink::Ndjson(datafusion::arrow::json::LineDelimitedWriter::new(dest)),
                None,
            ),
            Format::Parquet => {
                let props = WriterProperties::builder().build();
                (
                    Sink::Parquet(Box::new(ArrowWriter::try_new(
                        dest,
                        schema.clone(),
                        Some(props),
                    )?)),
                    None,
                )
            }
        };
        Ok(BatchWriter {
            sink,
            schema,
            wrote: false,
            output,
            table_out,
        })
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.wrote = true;
        match &mut self.sink {
            Sink::Table(b) => b.push(batch.clone()),
            Sink::Csv(w) => w.write(batch)?,
            Sink::Json(w) => w.write(batch)?,
            Sink::Ndjson(w) => w.write(batch)?,
            Sink::Parquet(w) => w.write(batch)?,
        }
        Ok(())
    }

    /// Flushes, closes and (for a file) renames the output into place.
    pub fn finish(mut self) -> Result<()> {
        if !self.wrote {
            // An empty result still gets its header (CSV, table) or empty array (JSON).
            self.write(&RecordBatch::new_empty(self.schema.clone()))?;
        }
        let io = |e: std::io::Error| Error::io("<output>", e);
        match self.sink {
            Sink::Table(batches) => {
                if let Some(mut out) = self.table_out {
                    writeln!(out, "{}", pretty_format_batches(&batches)?).map_err(io)?;
                    out.flush().map_err(io)?;
                }
            }
            Sink::Csv(w) => w.into_inner().flush().map_err(io)?,
            Sink::Json(mut w) => {
                w.finish()?;
                w.into_inner().flush().map_err(io)?;
            }
            Sink::Ndjson(mut w) => {
                w.finish()?;
                w.into_inner().flush().map_err(io)?;
            }
            Sink::Parquet(w) => {
                w.into_inner()?.flush().map_err(io)?;
            }
        }
        if let Some(out) = self.output {
            out.commit()?;
        }
        Ok(())
    }
}
