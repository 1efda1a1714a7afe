//! Signed lake files, the lake's side: where a file's signature lives (`FILE.parquet.sig.json`,
//! a name lake listings skip), a file's partition path (what a signature binds), hashing a file
//! as it is written, and the hook through which `encrypt` has each output signed. The keys, the
//! roster and the signature format are `crate::release`'s.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a signature file's name adds to its lake file's name.
pub const SUFFIX: &str = ".sig.json";

/// Signs each file `encrypt` writes (implemented by `release::signature::Signer`).
pub trait FileSigner: Send + Sync {
    /// The contents of the signature file of the file that will be at `target`, of `size` bytes
    /// hashing to `sha256`.
    fn sign_file(&self, target: &Path, size: u64, sha256: &[u8; 32]) -> Result<String>;
}

/// The signature file of `file`.
pub fn sidecar(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(SUFFIX);
    PathBuf::from(s)
}

/// The partition path of a file at `path`: everything from its outermost `key=value` folder
/// down to its name (`/`-separated), or its name alone when no folder above it is one. Partition
/// columns come from those folders, and a folder between them and the file (`hospital=b/sub/`)
/// stays bound too. `/lake/adm/hospital=a/year=2024/f.parquet` → `hospital=a/year=2024/f.parquet`;
/// `/lake/hospital=b/sub/f.parquet` → `hospital=b/sub/f.parquet`; `/lake/f.parquet` → `f.parquet`.
pub fn partition_path(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let Some((name, dirs)) = parts.split_last() else {
        return String::new();
    };
    let from = dirs
        .iter()
        .position(|d| d.contains('=') && !d.starts_with('.'))
        .unwrap_or(dirs.len());
    let mut out: Vec<&str> = dirs[from..].iter().map(String::as_str).collect();
    out.push(name);
    out.join("/")
}

/// Size and SHA-256 of a file.
pub fn hash_file(path: &Path) -> Result<(u64, [u8; 32])> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut w = HashingWriter::new(std::io::sink());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n]).map_err(|e| Error::io(path, e))?;
    }
    Ok(w.finish())
}

/// A writer that hashes and counts what passes through it (the encrypted output is signed as
/// it is written, without reading it back).
pub struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hash: Sha256::new(),
            size: 0,
        }
    }

    /// Bytes written so far and their SHA-256.
    pub fn finish(self) -> (u64, [u8; 32]) {
        (self.size, self.hash.finalize().into())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_paths_bind_every_folder_from_the_outermost_key_value_one() {
        let p = |s: &str| partition_path(Path::new(s));
        assert_eq!(
            p("/lake/adm/hospital=a/year=2024/f.parquet"),
            "hospital=a/year=2024/f.parquet"
        );
        assert_eq!(p("/lake/f.parquet"), "f.parquet");
        assert_eq!(
            p("/lake/hospital=b/sub/f.parquet"),
            "hospital=b/sub/f.parquet"
        );
        assert_eq!(p("/x=1/lake/f.parquet"), "x=1/lake/f.parquet");
        assert_eq!(p("f.parquet"), "f.parquet");
    }
}
