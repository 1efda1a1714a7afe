//! Files in: listing inputs, and the Parquet writer settings for ciphertext columns. (Outputs are
//! `lake::atomic`.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};

/// A progress callback: called with a number of input bytes just consumed.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// The kind of an input file, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// `.csv` with a header row.
    Csv,
    /// `.parquet` (or `.parq`).
    Parquet,
}

impl InputKind {
    /// The kind of `path`, if it is an input cipherlake reads.
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(InputKind::Csv),
            "parquet" | "parq" => Some(InputKind::Parquet),
            _ => None,
        }
    }
}

/// One input file and its path relative to the input folder.
#[derive(Clone, Debug)]
pub struct InputFile {
    /// Where it is.
    pub path: PathBuf,
    /// Relative to the input folder (its file name for a single file).
    pub relative: PathBuf,
    /// CSV or Parquet.
    pub kind: InputKind,
}

/// The input files of a file or folder (recursively, sorted, hidden files skipped).
pub fn list_inputs(input: &Path) -> Result<Vec<InputFile>> {
    let meta = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
    if meta.is_file() {
        let kind = InputKind::of(input).ok_or_else(|| {
            Error::Data(format!("{}: not a .csv or .parquet file", input.display()))
        })?;
        let relative = PathBuf::from(input.file_name().unwrap_or_default());
        return Ok(vec![InputFile {
            path: input.to_owned(),
            relative,
            kind,
        }]);
    }
    let mut out = Vec::new();
    // Hidden (`.`) and `_` entries are skipped: temporary outputs, Spark's `_SUCCESS` and the like.
    let visible = |e: &walkdir::DirEntry| {
        e.depth() == 0 || !e.file_name().to_string_lossy().starts_with(['.', '_'])
    };
    for entry in walkdir::WalkDir::new(input)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(visible)
    {
        let entry = entry.map_err(|e| walk_error(input, e))?;
        let Some(kind) = InputKind::of(entry.path()).filter(|_| entry.file_type().is_file()) else {
            continue;
        };
        let path = entry.path().to_owned();
        let relative = path.strip_prefix(input).unwrap_or(&path).to_owned();
        out.push(InputFile {
            path,
            relative,
            kind,
        });
    }
    if out.is_empty() {
        return Err(Error::Data(format!(
            "{}: no .csv or .parquet files in this folder",
            input.display()
        )));
    }
    Ok(out)
}

/// A folder walk's error, naming the entry it failed on.
pub(crate) fn walk_error(root: &Path, e: walkdir::Error) -> Error {
    let path = e.path().unwrap_or(root).to_owned();
    let cause = e
        .into_io_error()
        .unwrap_or_else(|| std::io::Error::other("a symbolic link loop"));
    Error::io(path, cause)
}

/// Parquet settings: ciphertext columns PLAIN, no dictionary, no compression, no statistics
/// (random bytes: all of those cost CPU and space for nothing); other columns zstd. Row groups
/// hold about 8 MiB of ciphertexts: each ciphertext costs microseconds of CPU to aggregate, so
/// row groups are the unit DataFusion spreads over cores, and small ones balance better (with
/// 64 MiB groups, two cores got 131k and 69k rows of a 200k-row file).
pub fn parquet_props(schema: &Schema, encrypted: &[&str], width: usize) -> WriterProperties {
    let per_row = (encrypted.len() * width).max(1);
    let rows = ((8 << 20) / per_row).clamp(1024, 1 << 20);
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(rows));
    for name in encrypted {
        debug_assert!(schema.index_of(name).is_ok());
        let col = ColumnPath::from(*name);
        b = b
            .set_column_encoding(col.clone(), Encoding::PLAIN)
            .set_column_dictionary_enabled(col.clone(), false)
            .set_column_compression(col.clone(), Compression::UNCOMPRESSED)
            .set_column_statistics_enabled(col, EnabledStatistics::None);
    }
    b.build()
}
