//! Encrypting a table: CSV or Parquet in, Parquet out with the chosen columns Paillier-encrypted.
//! Streams record batches (memory stays flat however large the input), encrypts each batch's
//! values on the rayon pool, and writes through a temporary file or folder that is renamed into
//! place only when everything succeeded.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, FixedSizeBinaryArray, RecordBatch, RecordBatchReader};
use datafusion::arrow::csv::reader::Format;
use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use rayon::prelude::*;

use super::atomic::{is_device, Output, Privacy};
use super::io::{list_inputs, parquet_props, InputFile, InputKind, Progress};
use super::output::Format as OutputFormat;
use super::schema::EncryptedColumn;
use super::signed::{sidecar, FileSigner, HashingWriter};
use super::values::{fixed_size_binary, ColumnPlan};
use crate::error::{shorten, Error, Result};
use crate::paillier::PublicKey;

/// One `--encrypt` entry: a column and an optional decimal scale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptSpec {
    /// Column name.
    pub column: String,
    /// `:SCALE`, if given.
    pub scale: Option<u32>,
}

impl EncryptSpec {
    /// Encrypt `column`, at `scale` decimal places if given.
    pub fn new(column: &str, scale: Option<u32>) -> Self {
        EncryptSpec {
            column: column.to_owned(),
            scale,
        }
    }
}

/// Settings of an encryption run.
pub struct EncryptOptions {
    /// Columns to encrypt.
    pub columns: Vec<EncryptSpec>,
    /// Rows per record batch.
    pub batch_size: usize,
    /// Called with input bytes consumed, for a progress bar.
    pub progress: Option<Progress>,
    /// Replace an existing output.
    pub overwrite: bool,
    /// Signs each output file (the data owner's key): the signature goes beside the file
    /// (`FILE.parquet.sig.json`, see `lake::signed`).
    pub signer: Option<Arc<dyn FileSigner>>,
}

/// What an encryption run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct EncryptStats {
    /// Input files read.
    pub files: usize,
    /// Rows written.
    pub rows: u64,
    /// Values encrypted (non-NULL cells of encrypted columns).
    pub values: u64,
}

/// Encrypts a file or a folder of files (`.csv` with a header row, `.parquet`) to Parquet. A folder
/// gives a folder of the same layout.
pub fn encrypt_path(
    pk: &PublicKey,
    input: &Path,
    output: &Path,
    opts: &EncryptOptions,
) -> Result<EncryptStats> {
    let inputs = list_inputs(input)?;
    let csv_schema = csv_table_schema(&inputs)?;
    let folder = input.is_dir();
    let writes: Vec<PathBuf> = inputs
        .iter()
        .map(|f| f.relative.with_extension("parquet"))
        .collect();
    if opts.signer.is_some() && !folder && is_device(output) {
        return Err(Error::Invalid(format!(
            "{}: a signed output must be a file (its signature goes beside it)",
            output.display()
        )));
    }
    let out = if folder {
        if let Some((a, b)) = first_clash(&inputs, &writes) {
            return Err(Error::Data(format!(
                "{} and {} would both be written as {}: rename one of them",
                a.path.display(),
                b.path.display(),
                b.relative.with_extension("parquet").display()
            )));
        }
        let mut expected = writes.clone();
        if opts.signer.is_some() {
            expected.extend(writes.iter().map(|w| sidecar(w)));
        }
        Output::dir(output, opts.overwrite, Privacy::Shared, &expected)?
    } else {
        let parquet = matches!(
            OutputFormat::for_output(Some(output), None),
            Ok(OutputFormat::Parquet)
        );
        if !parquet && !is_device(output) {
            return Err(Error::Invalid(format!(
                "{}: the encrypted output is Parquet; give it a .parquet name",
                output.display()
            )));
        }
        Output::file(output, opts.overwrite, Privacy::Shared)?
    };
    let mut stats = EncryptStats::default();
    let mut single_signature = None;
    for (file, rel) in inputs.iter().zip(&writes) {
        let dst = if folder {
            out.file_for(rel)?
        } else {
            out.writer()?
        };
        let (rows, values, size, sha) = encrypt_file(pk, file, csv_schema.as_ref(), dst, opts)?;
        stats.files += 1;
        stats.rows += rows;
        stats.values += values;
        if let Some(signer) = &opts.signer {
            let at = if folder {
                output.join(rel)
            } else {
                output.to_owned()
            };
            let json = signer.sign_file(&at, size, &sha)?;
            if folder {
                let path = sidecar(rel);
                out.file_for(&path)?
                    .write_all(json.as_bytes())
                    .map_err(|e| Error::io(output.join(&path), e))?;
            } else {
                single_signature = Some(json);
            }
        }
    }
    out.commit()?;
    // A single file's signature is written after the file: a run stopped in between leaves a
    // file without a valid signature, which verification refuses, never a signed partial file.
    if let Some(json) = single_signature {
        let side = Output::file(&sidecar(output), true, Privacy::Shared)?;
        side.writer()?
            .write_all(json.as_bytes())
            .map_err(|e| Error::io(sidecar(output), e))?;
        side.commit()?;
    }
    Ok(stats)
}

/// Two inputs whose outputs would have the same name (`a.csv` and `a.parquet`, say).
fn first_clash<'a>(
    inputs: &'a [InputFile],
    writes: &[PathBuf],
) -> Option<(&'a InputFile, &'a InputFile)> {
    let mut seen = std::collections::HashMap::new();
    for (file, w) in inputs.iter().zip(writes) {
        if let Some(first) = seen.insert(w, file) {
            return Some((first, file));
        }
    }
    None
}

type Batches = Box<dyn RecordBatchReader + Send>;

/// One schema for all the CSV files of an input, so that every output file of a folder has the
/// same columns and types: each file's sample is inferred, then types are widened (an empty file
/// adds nothing; Int64 with Float64 gives Float64; any other disagreement gives Utf8).
fn csv_table_schema(inputs: &[InputFile]) -> Result<Option<Schema>> {
    let mut merged: Option<(Schema, &Path)> = None;
    for file in inputs.iter().filter(|f| f.kind == InputKind::Csv) {
        let f = File::open(&file.path).map_err(|e| Error::io(&file.path, e))?;
        let (schema, _) = Format::default()
            .with_header(true)
            .infer_schema(f, Some(10_000))
            .map_err(|e| Error::Data(format!("{}: cannot read CSV: {e}", file.path.display())))?;
        merged = Some(match merged {
            None => (schema, &file.path),
            Some((m, first)) => {
                let names = |s: &Schema| {
                    s.fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect::<Vec<_>>()
                };
                if names(&m) != names(&schema) {
                    return Err(Error::Data(format!(
                        "{}: its columns ({}) differ from those of {} ({})",
                        file.path.display(),
                        names(&schema).join(", "),
                        first.display(),
                        names(&m).join(", ")
                    )));
                }
                let fields: Vec<Field> = m
                    .fields()
                    .iter()
                    .zip(schema.fields())
                    .map(|(a, b)| Field::new(a.name(), widen(a.data_type(), b.data_type()), true))
                    .collect();
                (Schema::new(fields), first)
            }
        });
    }
    Ok(merged.map(|(s, _)| s))
}

fn widen(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        (a, b) if a == b => a.clone(),
        (DataType::Null, t) | (t, DataType::Null) => t.clone(),
        (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => {
            DataType::Float64
        }
        _ => DataType::Utf8,
    }
}

/// Opens a CSV or Parquet input as a stream of batches, with the plans for the columns to encrypt.
fn open(
    path: &Path,
    kind: InputKind,
    csv_schema: Option<&Schema>,
    opts: &EncryptOptions,
) -> Result<(Batches, Vec<(usize, ColumnPlan)>)> {
    let name = path.display().to_string();
    let open_file = || File::open(path).map_err(|e| Error::io(path, e));
    let check_columns = |schema: &Schema| -> Result<Vec<usize>> {
        opts.columns
            .iter()
            .map(|spec| {
                schema.index_of(&spec.column).map_err(|_| {
                    let have: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    Error::Data(format!(
                        "{name}: no column `{}` to encrypt (columns: {})",
                        spec.column,
                        have.join(", ")
                    ))
                })
            })
            .collect()
    };
    match kind {
        InputKind::Csv => {
            let format = Format::default().with_header(true);
            let inferred = csv_schema
                .ok_or_else(|| Error::Invalid(format!("{name}: no CSV schema was inferred")))?;
            let indices = check_columns(inferred)?;
            // Columns to encrypt are read as text and parsed exactly (no float detour).
            let mut fields: Vec<Field> = inferred
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            let mut plans = Vec::new();
            for (spec, &i) in opts.columns.iter().zip(&indices) {
                let declared = fields[i].data_type().clone();
                fields[i] = Field::new(&spec.column, DataType::Utf8, true);
                plans.push((
                    i,
                    ColumnPlan::new(&spec.column, &DataType::Utf8, &declared, spec.scale, &name)?,
                ));
            }
            let schema = Arc::new(Schema::new(fields));
            let reader = CountingReader {
                inner: open_file()?,
                progress: opts.progress.clone(),
            };
            let csv = ReaderBuilder::new(schema)
                .with_format(format)
                .with_batch_size(opts.batch_size)
                .build(reader)?;
            Ok((Box::new(csv), plans))
        }
        InputKind::Parquet => {
            let builder = ParquetRecordBatchReaderBuilder::try_new(open_file()?)
                .map_err(|e| Error::Data(format!("{name}: cannot read Parquet: {e}")))?;
            let schema = builder.schema().clone();
            let indices = check_columns(&schema)?;
            let mut plans = Vec::new();
            for (spec, &i) in opts.columns.iter().zip(&indices) {
                let field = schema.field(i);
                if EncryptedColumn::from_field(field)?.is_some() {
                    return Err(Error::Data(format!(
                        "{name}: column `{}` is already encrypted",
                        spec.column
                    )));
                }
                let t = field.data_type();
                plans.push((i, ColumnPlan::new(&spec.column, t, t, spec.scale, &name)?));
            }
            let total_rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
            let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let reader = builder.with_batch_size(opts.batch_size).build()?;
            let progress = opts.progress.clone();
            let counted = ProgressByRows {
                inner: reader,
                bytes_per_row: file_len as f64 / total_rows as f64,
                progress,
            };
            Ok((Box::new(counted), plans))
        }
    }
}

fn encrypt_file(
    pk: &PublicKey,
    src: &InputFile,
    csv_schema: Option<&Schema>,
    dst: File,
    opts: &EncryptOptions,
) -> Result<(u64, u64, u64, [u8; 32])> {
    let name = src.path.display().to_string();
    let (batches, plans) = open(&src.path, src.kind, csv_schema, opts)?;
    let in_schema = batches.schema();
    let width = pk.ciphertext_width();
    let mut fields: Vec<Field> = in_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for (i, plan) in &plans {
        let col = EncryptedColumn {
            key_id: pk.key_id().to_owned(),
            scale: plan.scale,
            plain_type: plan.plain_type.clone(),
            aggregate: None,
        };
        fields[*i] = col.field(&plan.name, width);
    }
    let out_schema: SchemaRef = Arc::new(Schema::new_with_metadata(
        fields,
        in_schema.metadata().clone(),
    ));
    let encrypted: Vec<&str> = plans.iter().map(|(_, p)| p.name.as_str()).collect();
    let props = parquet_props(&out_schema, &encrypted, width);
    let mut writer =
        ArrowWriter::try_new(HashingWriter::new(dst), out_schema.clone(), Some(props))?;
    let (mut rows, mut values) = (0u64, 0u64);
    for batch in batches {
        let batch = batch.map_err(|e| Error::Data(shorten(format!("{name}: {e}"))))?;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for (i, plan) in &plans {
            let plain = plan.encode(&columns[*i], rows + 1, &name)?;
            values += plain.iter().filter(|v| v.is_some()).count() as u64;
            columns[*i] = Arc::new(encrypt_values(pk, &plain)?);
        }
        rows += batch.num_rows() as u64;
        writer.write(&RecordBatch::try_new(out_schema.clone(), columns)?)?;
    }
    // Writes the footer, then hands back the hashing writer.
    let (size, sha) = writer.into_inner()?.finish();
    Ok((rows, values, size, sha))
}

/// Encrypts signed values in parallel into a `FixedSizeBinary` array; `None` stays NULL. A batch
/// of at least 256 values goes 8 at a time (what the IFMA kernel encrypts in one pass, its table
/// built on first use), chunks of 64 per task; a smaller one value by value.
pub fn encrypt_values(pk: &PublicKey, values: &[Option<i128>]) -> Result<FixedSizeBinaryArray> {
    const CHUNK: usize = 64;
    let width = pk.ciphertext_width();
    if values.len() < 256 {
        let mut buf = vec![0u8; values.len() * width];
        buf.par_chunks_mut(width)
            .zip(values.par_iter())
            .try_for_each(|(out, v)| -> Result<()> {
                if let Some(v) = v {
                    pk.encrypt_i128(*v)?.write_le(out);
                }
                Ok(())
            })?;
        return fixed_size_binary(buf, width, values.iter().map(Option::is_some));
    }
    let mut buf = vec![0u8; values.len() * width];
    buf.par_chunks_mut(CHUNK * width)
        .zip(values.par_chunks(CHUNK))
        .try_for_each(|(out, chunk)| -> Result<()> {
            let present: Vec<i128> = chunk.iter().flatten().copied().collect();
            let mut cts = pk.encrypt_many_i128(&present)?.into_iter();
            for (out, v) in out.chunks_mut(width).zip(chunk) {
                if v.is_some() {
                    if let Some(c) = cts.next() {
                        c.write_le(out);
                    }
                }
            }
            Ok(())
        })?;
    fixed_size_binary(buf, width, values.iter().map(Option::is_some))
}

/// Counts bytes read from a CSV file for the progress bar.
struct CountingReader {
    inner: File,
    progress: Option<Progress>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = &self.progress {
            p(n as u64);
        }
        Ok(n)
    }
}

/// Reports Parquet progress as the share of the file's bytes its rows so far stand for.
struct ProgressByRows<R> {
    inner: R,
    bytes_per_row: f64,
    progress: Option<Progress>,
}

impl<R: RecordBatchReader> Iterator for ProgressByRows<R> {
    type Item = <R as Iterator>::Item;
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next();
        if let (Some(Ok(b)), Some(p)) = (&item, &self.progress) {
            p((b.num_rows() as f64 * self.bytes_per_row) as u64);
        }
        item
    }
}

impl<R: RecordBatchReader> RecordBatchReader for ProgressByRows<R> {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

/// Total bytes of the inputs under `input`, for sizing a progress bar.
pub fn input_bytes(input: &Path) -> Result<u64> {
    Ok(list_inputs(input)?
        .iter()
        .map(|f| std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0))
        .sum())
}
