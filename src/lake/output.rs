//! Writing result tables: Parquet, CSV, JSON, NDJSON or a printed table, to an [`Output`] (a
//! file that appears when complete, or a device) or to standard output.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::str::FromStr;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;

use super::atomic::{is_device, Output};
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
    /// The format a file extension stands for (`.txt` is a printed table).
    fn of_extension(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" => Format::Csv,
            "json" => Format::Json,
            "ndjson" | "jsonl" => Format::Ndjson,
            "parquet" | "parq" => Format::Parquet,
            "txt" => Format::Table,
            _ => return None,
        })
    }

    /// The format of an output: the one `given`, which must agree with the path's extension
    /// when that names a format; else the extension's; a table on standard output (`path` None)
    /// or on a device such as /dev/null. A file whose extension names no format needs one given:
    /// nothing is ever written in a format its name does not say.
    pub fn for_output(path: Option<&Path>, given: Option<Format>) -> Result<Format> {
        let Some(path) = path else {
            return Ok(given.unwrap_or(Format::Table));
        };
        match (given, Format::of_extension(path)) {
            (Some(g), Some(e)) if g != e => Err(Error::Invalid(format!(
                "{} has the extension of {} output, but the format asked for is {}",
                path.display(),
                e.name(),
                g.name()
            ))),
            (Some(g), _) => Ok(g),
            (None, Some(e)) => Ok(e),
            (None, None) if is_device(path) => Ok(Format::Table),
            (None, None) => Err(Error::Invalid(format!(
                "cannot tell the format of {} from its extension: name the format (table, csv, json, ndjson or parquet) or use one of .txt, .csv, .json, .ndjson, .parquet",
                path.display()
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Parquet => "parquet",
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
    /// A writer to `output` (None: standard output), begun by the caller before any work.
    pub fn create(format: Format, output: Option<Output>, schema: SchemaRef) -> Result<Self> {
        let dest: Box<dyn Write + Send> = match &output {
            None => Box::new(BufWriter::new(std::io::stdout())),
            Some(out) => Box::new(BufWriter::new(out.writer()?)),
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
        let name = self
            .output
            .as_ref()
            .map_or_else(|| "<standard output>".into(), |o| o.target().to_owned());
        let io = |e: std::io::Error| Error::io(&name, e);
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
