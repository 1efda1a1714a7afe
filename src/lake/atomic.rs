//! Outputs that appear only when complete, the one way cipherlake writes files (tables, results,
//! key files):
//!
//! - a file or folder is written under a temporary name beside its target, then renamed into
//!   place; a crash leaves either nothing or the complete output under its final name;
//! - temporary names start with `.cipherlake-tmp-` and never contain `=`, so a lake listing
//!   (DataFusion reads `col=value` folders as partitions) never sees them, even while a run is
//!   under way or after it was killed; a run removes the stale ones it finds beside its target
//!   (unlocked, so their writer is gone);
//! - an existing target is kept unless the caller allows overwriting; a folder target is replaced
//!   only if it holds nothing but files this run writes again;
//! - a target that is not a regular file (`/dev/null`, a named pipe) is written straight through;
//! - folders created for the output are removed again if the output is never committed;
//! - [`Privacy::Secret`] outputs (keys, shares, decrypted values) are created 0600, all others
//!   with the process's umask;
//! - [`FileSet`] replaces several files as one: all of them or none.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{join_limited, Error, Result};

/// Who may read an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privacy {
    /// Ciphertexts, public keys, plaintext aggregates meant to be shared: the umask decides.
    Shared,
    /// Private keys, key shares, decrypted patient-level values: owner only (0600, folders 0700).
    Secret,
}

impl Privacy {
    fn file_mode(self) -> u32 {
        match self {
            Privacy::Shared => 0o666,
            Privacy::Secret => 0o600,
        }
    }
    fn dir_mode(self) -> u32 {
        match self {
            Privacy::Shared => 0o777,
            Privacy::Secret => 0o700,
        }
    }
}

/// Prefix of every temporary file or folder.
const TEMP_PREFIX: &str = ".cipherlake-tmp-";
/// Prefix of a replaced output kept aside until its successor is in place.
const OLD_PREFIX: &str = ".cipherlake-old-";
/// An unlocked temporary entry older than this is a dead run's leftover. (A fresh one may belong
/// to a run that has created it but not locked it yet.)
const STALE_AFTER: Duration = Duration::from_secs(60);

/// An output file or folder that exists under its final name only after `commit`. Dropping it
/// uncommitted removes everything it wrote, and the folders it created.
pub struct Output {
    target: PathBuf,
    overwrite: bool,
    privacy: Privacy,
    kind: Kind,
    // Dropped after `kind`, so that the temporary entry is gone before its folders are removed.
    parents: CreatedDirs,
}

enum Kind {
    /// A device or pipe, written straight through.
    Direct(File),
    /// A temporary file (locked while this run lives).
    File(tempfile::NamedTempFile),
    /// A temporary folder and the lock held on it.
    Dir(tempfile::TempDir, File),
}

impl Output {
    /// Starts a single-file output at `target`.
    pub fn file(target: &Path, overwrite: bool, privacy: Privacy) -> Result<Self> {
        let direct = match existing(target)? {
            Existing::None => None,
            Existing::File => {
                refuse_existing(target, overwrite)?;
                None
            }
            Existing::Dir => {
                return Err(Error::Invalid(format!(
                    "{} is a folder; give a file name",
                    target.display()
                )))
            }
            Existing::Special => Some(
                OpenOptions::new()
                    .write(true)
                    .open(target)
                    .map_err(|e| Error::io(target, e))?,
            ),
        };
        let (kind, parents) = match direct {
            Some(f) => (Kind::Direct(f), CreatedDirs::default()),
            None => {
                let (parent, parents) = prepare_parent(target)?;
                (Kind::File(temp_file(&parent, target, privacy)?), parents)
            }
        };
        Ok(Output {
            target: target.to_owned(),
            overwrite,
            privacy,
            kind,
            parents,
        })
    }

    /// Starts a folder output at `target` that will hold the files `writes` (relative paths).
    /// With `overwrite`, an existing folder is replaced only if every file in it is one of those.
    pub fn dir(
        target: &Path,
        overwrite: bool,
        privacy: Privacy,
        writes: &[PathBuf],
    ) -> Result<Self> {
        match existing(target)? {
            Existing::None => {}
            Existing::Dir => {
                refuse_existing(target, overwrite)?;
                refuse_foreign_files(target, writes)?;
            }
            Existing::File | Existing::Special => {
                return Err(Error::Invalid(format!(
                    "{} exists and is not a folder; the output of a folder input is a folder",
                    target.display()
                )))
            }
        }
        let (parent, parents) = prepare_parent(target)?;
        let prefix = temp_prefix(target);
        let tmp = builder(&prefix, privacy.dir_mode())
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        let lock = lock(tmp.path())?;
        Ok(Output {
            target: target.to_owned(),
            overwrite,
            privacy,
            kind: Kind::Dir(tmp, lock),
            parents,
        })
    }

    /// Where the output goes.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// A handle to write the single output file.
    pub fn writer(&self) -> Result<File> {
        let file = match &self.kind {
            Kind::Direct(f) => f,
            Kind::File(tmp) => tmp.as_file(),
            Kind::Dir(..) => {
                return Err(Error::Invalid(format!(
                    "{} is a folder output: write its files one by one",
                    self.target.display()
                )))
            }
        };
        file.try_clone().map_err(|e| Error::io(&self.target, e))
    }

    /// A new file `relative` inside a folder output.
    pub fn file_for(&self, relative: &Path) -> Result<File> {
        let Kind::Dir(tmp, _) = &self.kind else {
            return Err(Error::Invalid(format!(
                "{} is a single-file output",
                self.target.display()
            )));
        };
        let path = tmp.path().join(relative);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
        }
        create_new(&path, self.privacy)
    }

    /// Moves the finished output to its final name.
    pub fn commit(mut self) -> Result<()> {
        match self.kind {
            Kind::Direct(f) => {
                drop(f);
            }
            Kind::File(tmp) => {
                tmp.as_file()
                    .sync_all()
                    .map_err(|e| Error::io(tmp.path(), e))?;
                persist(tmp, &self.target, self.overwrite)?;
            }
            Kind::Dir(tmp, lock) => {
                let old = match existing(&self.target)? {
                    Existing::None => None,
                    _ if !self.overwrite => {
                        return Err(Error::AlreadyExists {
                            path: self.target.clone(),
                        })
                    }
                    _ => {
                        let old = side_path(&self.target, OLD_PREFIX);
                        std::fs::rename(&self.target, &old)
                            .map_err(|e| Error::io(&self.target, e))?;
                        Some(old)
                    }
                };
                if let Err(e) = std::fs::rename(tmp.path(), &self.target) {
                    if let Some(old) = &old {
                        let _ = std::fs::rename(old, &self.target);
                    }
                    return Err(Error::io(&self.target, e));
                }
                // The folder now lives under its final name: nothing left to clean up.
                let _ = tmp.keep();
                drop(lock);
                if let Some(old) = old {
                    std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
                }
            }
        }
        self.parents.keep();
        Ok(())
    }
}

/// Several files replaced as one (a key set: public.json and every share). All temporary files
/// are created by `begin`, before any work, so that an unwritable folder is found first; `commit`
/// moves the old files aside, puts every new file in place, and on any failure puts the old
/// ones back: the old set is never left half replaced.
pub struct FileSet {
    files: Vec<(PathBuf, tempfile::NamedTempFile)>,
    overwrite: bool,
    // Dropped after `files`.
    parents: Vec<CreatedDirs>,
}

impl FileSet {
    /// Prepares temporary files for `targets`. Each target must be absent, or a regular file
    /// when `overwrite` is given.
    pub fn begin(targets: &[(PathBuf, Privacy)], overwrite: bool) -> Result<Self> {
        let mut set = FileSet {
            files: Vec::new(),
            overwrite,
            parents: Vec::new(),
        };
        for (target, _) in targets {
            match existing(target)? {
                Existing::None => {}
                Existing::File => refuse_existing(target, overwrite)?,
                _ => {
                    return Err(Error::Invalid(format!(
                        "{} exists and is not a regular file",
                        target.display()
                    )))
                }
            }
        }
        for (target, privacy) in targets {
            let (parent, created) = prepare_parent(target)?;
            set.parents.push(created);
            let tmp = temp_file(&parent, target, *privacy)?;
            set.files.push((target.clone(), tmp));
        }
        Ok(set)
    }

    /// Writes the contents of the `i`-th file.
    pub fn write(&mut self, i: usize, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let (_, tmp) = self
            .files
            .get_mut(i)
            .ok_or_else(|| Error::Invalid(format!("file set has no file {i}")))?;
        tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp.path(), e))
    }

    /// Puts every file in place, or none.
    pub fn commit(mut self) -> Result<()> {
        let mut aside: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut placed: Vec<PathBuf> = Vec::new();
        let undo = |aside: &[(PathBuf, PathBuf)], placed: &[PathBuf]| {
            for p in placed {
                let _ = std::fs::remove_file(p);
            }
            for (target, old) in aside {
                let _ = std::fs::rename(old, target);
            }
        };
        for (target, _) in &self.files {
            let found = existing(target)?;
            if found != Existing::None {
                if !self.overwrite || found != Existing::File {
                    undo(&aside, &placed);
                    return Err(match found {
                        Existing::File => Error::AlreadyExists {
                            path: target.clone(),
                        },
                        _ => Error::Invalid(format!(
                            "{} exists and is not a regular file",
                            target.display()
                        )),
                    });
                }
                let old = side_path(target, OLD_PREFIX);
                if let Err(e) = std::fs::rename(target, &old) {
                    undo(&aside, &placed);
                    return Err(Error::io(target, e));
                }
                aside.push((target.clone(), old));
            }
        }
        for (target, tmp) in std::mem::take(&mut self.files) {
            if let Err(e) = persist(tmp, &target, false) {
                undo(&aside, &placed);
                return Err(e);
            }
            placed.push(target);
        }
        for (_, old) in &aside {
            let _ = std::fs::remove_file(old);
        }
        for p in &mut self.parents {
            p.keep();
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Existing {
    None,
    File,
    Dir,
    /// A device, pipe or socket.
    Special,
}

/// What is at `path` (a symbolic link counts as a file: replacing it replaces the link, never
/// what it points to, unless it points to a device).
fn existing(path: &Path) -> Result<Existing> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Ok(match std::fs::metadata(path) {
            Ok(m) if is_special(&m.file_type()) => Existing::Special,
            _ => Existing::File,
        });
    }
    Ok(if ft.is_dir() {
        Existing::Dir
    } else if ft.is_file() {
        Existing::File
    } else {
        Existing::Special
    })
}

/// True for a device, pipe or socket: an output written straight through, never replaced.
pub fn is_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| is_special(&m.file_type()))
}

fn is_special(ft: &std::fs::FileType) -> bool {
    !ft.is_file() && !ft.is_dir() && !ft.is_symlink()
}

fn refuse_existing(target: &Path, overwrite: bool) -> Result<()> {
    if overwrite {
        Ok(())
    } else {
        Err(Error::AlreadyExists {
            path: target.to_owned(),
        })
    }
}

/// Refuses to replace a folder holding any file this run does not write again.
fn refuse_foreign_files(target: &Path, writes: &[PathBuf]) -> Result<()> {
    let ours: HashSet<&Path> = writes.iter().map(PathBuf::as_path).collect();
    let mut foreign = Vec::new();
    for entry in walkdir::WalkDir::new(target).min_depth(1) {
        let entry = entry.map_err(|e| super::io::walk_error(target, e))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry.path().strip_prefix(target).unwrap_or(entry.path());
        if !ours.contains(rel) {
            foreign.push(rel.display().to_string());
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    Err(Error::Invalid(format!(
        "{} holds files this run would not write ({}): refusing to replace it; move them away or choose another output folder",
        target.display(),
        join_limited(&foreign, ", ")
    )))
}

/// Folders created on the way to an output, removed again (if empty) unless kept.
#[derive(Default)]
struct CreatedDirs {
    /// Outermost first.
    dirs: Vec<PathBuf>,
}

impl CreatedDirs {
    fn keep(&mut self) {
        self.dirs.clear();
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
        }
    }
}

/// The folder an output goes into, created if missing (what was created is recorded), with
/// stale temporary entries of dead runs removed.
fn prepare_parent(target: &Path) -> Result<(PathBuf, CreatedDirs)> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut created = CreatedDirs::default();
    let mut missing = Vec::new();
    let mut p = parent.as_path();
    while !p.as_os_str().is_empty() && !p.exists() {
        missing.push(p.to_owned());
        match p.parent() {
            Some(up) => p = up,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(&d) {
            Ok(()) => created.dirs.push(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(&d, e)),
        }
    }
    remove_stale(&parent);
    Ok((parent, created))
}

/// Removes temporary entries whose run is gone: not locked, and older than [`STALE_AFTER`].
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(TEMP_PREFIX) || name.starts_with(OLD_PREFIX)) {
            continue;
        }
        let path = entry.path();
        let old_enough = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if !old_enough {
            continue;
        }
        let Ok(f) = File::open(&path) else { continue };
        if f.try_lock().is_err() {
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let _ = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

/// `.cipherlake-tmp-NAME-`, with every `=` of the target's name replaced (a partition-like name
/// would be read by a lake listing).
fn temp_prefix(target: &Path) -> String {
    format!("{TEMP_PREFIX}{}-", safe_name(target))
}

fn safe_name(target: &Path) -> String {
    target
        .file_name()
        .map(|n| n.to_string_lossy().replace('=', "_"))
        .unwrap_or_default()
}

/// A fresh name beside `target` with `prefix` (for a replaced output kept aside).
fn side_path(target: &Path, prefix: &str) -> PathBuf {
    let mut suffix = [0u8; 6];
    // A name clash only makes the rename fail; the OS generator failing is not worth an error.
    let _ = crate::paillier::randomness::fill(&mut suffix);
    let tag = hex::encode(suffix);
    let name = format!("{prefix}{}-{tag}", safe_name(target));
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(name),
        _ => PathBuf::from(name),
    }
}

/// A locked temporary file for `target` in `parent`.
fn temp_file(parent: &Path, target: &Path, privacy: Privacy) -> Result<tempfile::NamedTempFile> {
    let prefix = temp_prefix(target);
    let tmp = builder(&prefix, privacy.file_mode())
        .tempfile_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    tmp.as_file()
        .try_lock()
        .map_err(|e| Error::io(tmp.path(), std::io::Error::other(e.to_string())))?;
    Ok(tmp)
}

/// Opens `path` (a folder) and locks it for as long as the handle lives.
fn lock(path: &Path) -> Result<File> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    f.try_lock()
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
    Ok(f)
}

fn create_new(path: &Path, privacy: Privacy) -> Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(privacy.file_mode());
    }
    o.open(path).map_err(|e| Error::io(path, e))
}

fn persist(tmp: tempfile::NamedTempFile, target: &Path, overwrite: bool) -> Result<()> {
    let r = if overwrite {
        tmp.persist(target).map(drop)
    } else {
        tmp.persist_noclobber(target).map(drop)
    };
    r.map_err(|e| match e.error.kind() {
        std::io::ErrorKind::AlreadyExists => Error::AlreadyExists {
            path: target.to_owned(),
        },
        _ => Error::io(target, e.error),
    })
}

/// A temporary-entry builder with `prefix`, creating with `mode` (the umask applies).
fn builder(prefix: &str, mode: u32) -> tempfile::Builder<'_, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_file_appears_only_on_commit_and_never_under_a_partition_like_name() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("hospital=a.parquet");
        let out = Output::file(&target, false, Privacy::Shared).unwrap();
        out.writer().unwrap().write_all(b"x").unwrap();
        let during = names(d.path());
        assert_eq!(during.len(), 1);
        assert!(
            during[0].starts_with(TEMP_PREFIX) && !during[0].contains('='),
            "{during:?}"
        );
        out.commit().unwrap();
        assert_eq!(names(d.path()), ["hospital=a.parquet"]);
        let e = Output::file(&target, false, Privacy::Shared).err().unwrap();
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    }

    #[test]
    fn dropped_outputs_leave_nothing_not_even_their_folders() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("x/y/out.csv");
        let out = Output::file(&target, false, Privacy::Shared).unwrap();
        assert!(d.path().join("x/y").is_dir());
        drop(out);
        assert!(names(d.path()).is_empty());
        let dir = Output::dir(&d.path().join("p/q"), false, Privacy::Shared, &[]).unwrap();
        dir.file_for(Path::new("a/b.parquet")).unwrap();
        drop(dir);
        assert!(names(d.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn secret_outputs_are_0600_whatever_the_umask_allows() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("plain.csv");
        let out = Output::file(&target, false, Privacy::Secret).unwrap();
        out.commit().unwrap();
        let m = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(m & 0o777, 0o600);
    }

    #[test]
    fn folder_outputs_replace_only_what_they_write() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("lake");
        std::fs::create_dir_all(target.join("other")).unwrap();
        std::fs::write(target.join("a.parquet"), b"old").unwrap();
        std::fs::write(target.join("other/keep.txt"), b"keep").unwrap();
        let writes = [PathBuf::from("a.parquet")];
        let e = Output::dir(&target, true, Privacy::Shared, &writes)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("other/keep.txt"), "{e}");
        std::fs::remove_file(target.join("other/keep.txt")).unwrap();
        let out = Output::dir(&target, true, Privacy::Shared, &writes).unwrap();
        out.file_for(Path::new("a.parquet"))
            .unwrap()
            .write_all(b"new")
            .unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read(target.join("a.parquet")).unwrap(), b"new");
        assert_eq!(names(d.path()), ["lake"]);
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_written_straight_through() {
        let out = Output::file(Path::new("/dev/null"), false, Privacy::Shared).unwrap();
        out.writer().unwrap().write_all(b"discarded").unwrap();
        out.commit().unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
    }

    #[test]
    fn stale_entries_of_dead_runs_are_removed_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        // A dead run's file and folder: unlocked, an hour old.
        let dead = d.path().join(format!("{TEMP_PREFIX}x.parquet-dead"));
        std::fs::write(&dead, b"half").unwrap();
        File::options()
            .write(true)
            .open(&dead)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let dead_dir = d.path().join(format!("{TEMP_PREFIX}lake-dead"));
        std::fs::create_dir(&dead_dir).unwrap();
        std::fs::write(dead_dir.join("a.parquet"), b"half").unwrap();
        File::open(&dead_dir).unwrap().set_modified(old).unwrap();
        // A live run's file: locked, however old.
        let live = d.path().join(format!("{TEMP_PREFIX}y.parquet-live"));
        std::fs::write(&live, b"busy").unwrap();
        let held = File::options().write(true).open(&live).unwrap();
        held.set_modified(old).unwrap();
        held.lock().unwrap();
        let out = Output::file(&d.path().join("z.csv"), false, Privacy::Shared).unwrap();
        out.commit().unwrap();
        let left = names(d.path());
        assert!(!left.iter().any(|n| n.ends_with("dead")), "{left:?}");
        assert!(left.iter().any(|n| n.ends_with("live")), "{left:?}");
    }

    #[test]
    fn a_file_set_is_replaced_whole_or_not_at_all() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("share-a.json");
        let b = d.path().join("share-b.json");
        std::fs::write(&a, b"old a").unwrap();
        std::fs::write(&b, b"old b").unwrap();
        let targets = [(a.clone(), Privacy::Secret), (b.clone(), Privacy::Secret)];
        let e = FileSet::begin(&targets, false).err().unwrap();
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
        let mut set = FileSet::begin(&targets, true).unwrap();
        set.write(0, b"new a").unwrap();
        set.write(1, b"new b").unwrap();
        // b becomes a folder after begin: committing fails, and a keeps its old content.
        std::fs::remove_file(&b).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("x"), b"").unwrap();
        assert!(set.commit().is_err());
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        assert!(b.is_dir());
        assert_eq!(names(d.path()), ["share-a.json", "share-b.json"]);
    }
}
