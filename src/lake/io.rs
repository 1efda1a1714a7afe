//! Files in and out: listing inputs, Parquet writer settings for ciphertext columns, and outputs
//! that appear only when complete (a temporary file or folder renamed into place).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    walk(input, input, &mut out)?;
    out.sort_by(|a, b| a.relative.cmp(&b.relative));
    if out.is_empty() {
        return Err(Error::Data(format!(
            "{}: no .csv or .parquet files in this folder",
            input.display()
        )));
    }
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<InputFile>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with(['.', '_']) {
            continue;
        }
        let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if let Some(kind) = InputKind::of(&path) {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_owned();
            out.push(InputFile {
                path,
                relative,
                kind,
            });
        }
    }
    Ok(())
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

/// An output file or folder that exists under its final name only after `commit`. Dropping it
/// uncommitted removes everything written.
pub struct Output {
    target: PathBuf,
    overwrite: bool,
    kind: OutputKind,
}

enum OutputKind {
    File(Mutex<Option<tempfile::NamedTempFile>>),
    Dir(tempfile::TempDir),
}

impl Output {
    /// Starts an output at `target`: a folder if `dir`, else a single file. Refuses an existing
    /// target unless `overwrite`.
    pub fn begin(target: &Path, dir: bool, overwrite: bool) -> Result<Self> {
        if target.exists() && !overwrite {
            return Err(Error::io(
                target,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "already exists (use --force to overwrite)",
                ),
            ));
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let prefix = format!(
            ".{}.",
            target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let b = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .to_owned();
        let kind = if dir {
            OutputKind::Dir(b.tempdir_in(&parent).map_err(|e| Error::io(&parent, e))?)
        } else {
            OutputKind::File(Mutex::new(Some(
                b.tempfile_in(&parent).map_err(|e| Error::io(&parent, e))?,
            )))
        };
        Ok(Output {
            target: target.to_owned(),
            overwrite,
            kind,
        })
    }

    /// A handle to write `relative` (a folder output) or the single output file.
    pub fn file_for(&self, relative: &Path) -> Result<File> {
        match &self.kind {
            OutputKind::File(tmp) => {
                let guard = tmp
                    .lock()
                    .map_err(|_| Error::Invalid("output lock poisoned".into()))?;
                let tmp = guard
                    .as_ref()
                    .ok_or_else(|| Error::Invalid("output already committed".into()))?;
                tmp.as_file()
                    .try_clone()
                    .map_err(|e| Error::io(tmp.path(), e))
            }
            OutputKind::Dir(dir) => {
                let path = dir.path().join(relative);
                if let Some(p) = path.parent() {
                    std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
                }
                File::create(&path).map_err(|e| Error::io(&path, e))
            }
        }
    }

    /// Moves the finished output to its final name.
    pub fn commit(self) -> Result<()> {
        let target = self.target;
        match self.kind {
            OutputKind::File(tmp) => {
                let tmp = tmp
                    .into_inner()
                    .ok()
                    .flatten()
                    .ok_or_else(|| Error::Invalid("output already committed".into()))?;
                tmp.as_file()
                    .sync_all()
                    .map_err(|e| Error::io(tmp.path(), e))?;
                set_readable(tmp.path())?;
                if self.overwrite {
                    tmp.persist(&target)
                        .map_err(|e| Error::io(&target, e.error))?;
                } else {
                    tmp.persist_noclobber(&target)
                        .map_err(|e| Error::io(&target, e.error))?;
                }
            }
            OutputKind::Dir(dir) => {
                let path = dir.keep();
                set_readable(&path)?;
                if target.exists() && self.overwrite {
                    let removed = if target.is_dir() {
                        std::fs::remove_dir_all(&target)
                    } else {
                        std::fs::remove_file(&target)
                    };
                    removed.map_err(|e| Error::io(&target, e))?;
                }
                std::fs::rename(&path, &target).map_err(|e| Error::io(&target, e))?;
            }
        }
        Ok(())
    }
}

/// Temporary files and folders are created private (0600/0700); results are ordinary files.
#[cfg(unix)]
fn set_readable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(path, e))
}

#[cfg(not(unix))]
fn set_readable(_path: &Path) -> Result<()> {
    Ok(())
}
