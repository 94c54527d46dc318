//! The state directory: one JSON file per kept generation, written atomically.
//!
//! ```text
//! STATE_DIR/generations/000000000042.json   {generation, created_at, source, comment?, file_hash?, config}
//! ```
//!
//! The current generation is the highest number present: there is no second "current" file that
//! could disagree with the generations. A file is written to a temporary name in the same directory,
//! fsynced, renamed over its final name and the directory fsynced, all before the API answers: after a
//! crash at any point a generation is either wholly there or not there at all, and one that was
//! acknowledged is there.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use weir_config::Config;

use crate::error::{Error, Result};

/// Where a generation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The watched config file (at start-up, on change, on SIGHUP).
    File,
    /// A full config through the API (`PUT /v1/config`).
    Api,
    /// One object changed through the API.
    Patch,
    /// A rollback to an earlier generation.
    Rollback,
}

impl Source {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Api => "api",
            Source::Patch => "patch",
            Source::Rollback => "rollback",
        }
    }
}

/// What is known of a generation without its config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Generation number (1, 2, ...).
    pub generation: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Where it came from.
    pub source: Source,
    /// Free text (`rollback to 3`, `weirctl apply -m ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One generation as stored: its [`Meta`] and its config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Number, time, source, comment.
    #[serde(flatten)]
    pub meta: Meta,
    /// Fingerprint of the config file's bytes as last applied from the file. It is carried over
    /// by API changes, so that a restart with an unchanged file does not undo them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_hash: Option<String>,
    /// The validated config (secrets included: the directory and files are private).
    pub config: Arc<Config>,
}

/// The kept generations on disk, and an index of them in memory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    keep: usize,
    index: BTreeMap<u64, Meta>,
}

impl Store {
    /// Opens (creating it, mode 0700) `state_dir/generations`, indexes the generations and returns
    /// the highest one that reads back whole. A file that does not is renamed `*.corrupt` and logged.
    pub fn open(state_dir: &Path, keep: usize) -> Result<(Store, Option<Generation>)> {
        if keep == 0 {
            return Err(Error::Setting("--keep must be at least 1".into()));
        }
        let dir = state_dir.join("generations");
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(Error::io("create state dir", &dir))?;
        let mut store = Store {
            dir,
            keep,
            index: BTreeMap::new(),
        };
        let mut numbers = Vec::new();
        for entry in fs::read_dir(&store.dir).map_err(Error::io("read", &store.dir))? {
            let entry = entry.map_err(Error::io("read", &store.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') && name.ends_with(".tmp") {
                // A write that never reached its rename: it was never acknowledged.
                let _ = fs::remove_file(entry.path());
                continue;
            }
            if let Some(n) = parse_file_name(name) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        let mut current = None;
        for n in numbers.iter().rev() {
            match store.read_file(*n) {
                Ok(g) => {
                    store.index.insert(*n, g.meta.clone());
                    if current.is_none() {
                        current = Some(g);
                    }
                }
                Err(e) => {
                    tracing::error!(generation = n, error = %e, "stored generation is unreadable; set aside as .corrupt");
                    let path = store.path_of(*n);
                    let _ = fs::rename(&path, path.with_extension("json.corrupt"));
                }
            }
        }
        Ok((store, current))
    }

    /// The directory holding the generation files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kept generations, oldest first.
    pub fn list(&self) -> impl DoubleEndedIterator<Item = &Meta> {
        self.index.values()
    }

    /// Whether `n` is kept.
    pub fn contains(&self, n: u64) -> bool {
        self.index.contains_key(&n)
    }

    /// The highest kept generation number below `n`.
    pub fn before(&self, n: u64) -> Option<u64> {
        self.index.range(..n).next_back().map(|(k, _)| *k)
    }

    /// Reads a kept generation from disk.
    pub fn read(&self, n: u64) -> Result<Option<Generation>> {
        if !self.contains(n) {
            return Ok(None);
        }
        self.read_file(n).map(Some)
    }

    fn read_file(&self, n: u64) -> Result<Generation> {
        let path = self.path_of(n);
        let bytes = fs::read(&path).map_err(Error::io("read", &path))?;
        let g: Generation = serde_json::from_slice(&bytes).map_err(|e| Error::Io {
            what: "decode",
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        if g.meta.generation != n {
            return Err(Error::Io {
                what: "decode",
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("file holds generation {}", g.meta.generation),
                ),
            });
        }
        Ok(g)
    }

    /// Writes `g` durably (temp file, fsync, rename, fsync of the directory), then prunes to the
    /// last `keep` generations. Returns only once the generation survives a crash.
    pub fn write(&mut self, g: &Generation) -> Result<()> {
        let n = g.meta.generation;
        let bytes = serde_json::to_vec_pretty(g).map_err(|source| Error::Encode {
            generation: n,
            source,
        })?;
        let tmp = self.dir.join(format!(".{n:012}.json.tmp"));
        let path = self.path_of(n);
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(Error::io("create", &tmp))?;
            f.write_all(&bytes).map_err(Error::io("write", &tmp))?;
            f.sync_all().map_err(Error::io("fsync", &tmp))?;
            drop(f);
            fs::rename(&tmp, &path).map_err(Error::io("rename", &tmp))?;
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(Error::io("fsync", &self.dir))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
            return written;
        }
        self.index.insert(n, g.meta.clone());
        self.prune();
        Ok(())
    }

    /// Deletes all but the last `keep` generations. A failure only leaves an extra file behind.
    fn prune(&mut self) {
        while self.index.len() > self.keep {
            let Some((&old, _)) = self.index.iter().next() else {
                break;
            };
            let path = self.path_of(old);
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(generation = old, error = %e, "cannot delete old generation");
                }
            }
            self.index.remove(&old);
        }
    }

    fn path_of(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{n:012}.json"))
    }
}

fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Now, as RFC 3339 UTC with seconds (`2026-05-01T12:00:00Z`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(n: u64) -> Generation {
        Generation {
            meta: Meta {
                generation: n,
                created_at: rfc3339(0),
                source: Source::Api,
                comment: None,
            },
            file_hash: None,
            config: Arc::new(Config::default()),
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn writes_reads_prunes_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, current) = Store::open(dir.path(), 2).expect("open");
        assert!(current.is_none());
        for n in 1..=3 {
            store.write(&generation(n)).expect("write");
        }
        assert_eq!(
            store.list().map(|m| m.generation).collect::<Vec<_>>(),
            [2, 3]
        );
        assert!(!store.dir().join("000000000001.json").exists());
        assert_eq!(store.before(3), Some(2));
        assert_eq!(store.before(2), None);
        // A torn temp file and a corrupt generation are both ignored on reopen.
        fs::write(store.dir().join(".000000000004.json.tmp"), b"{").expect("tmp");
        fs::write(store.dir().join("000000000005.json"), b"{\"gener").expect("corrupt");
        let (store, current) = Store::open(dir.path(), 2).expect("reopen");
        assert_eq!(current.map(|g| g.meta.generation), Some(3));
        assert!(!store.dir().join(".000000000004.json.tmp").exists());
        assert!(store.dir().join("000000000005.json.corrupt").exists());
        assert_eq!(store.read(2).expect("read"), Some(generation(2)));
        assert_eq!(store.read(1).expect("read"), None);
    }
}
