//! A checkpoint store on the local file system: `<dir>/<group>.ckpt`,
//! replaced atomically (write a temporary file, fsync it, rename it over the
//! old one, fsync the directory), so a crash at any moment leaves either the
//! old or the new checkpoint, never a mix.

use super::{Checkpoint, CheckpointError, CheckpointStore};
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    path: PathBuf,
}

impl FileStore {
    /// The store of `group` in `dir` (created on the first save).
    pub fn new(dir: impl Into<PathBuf>, group: &str) -> Self {
        let dir = dir.into();
        let name: String = group
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{name}.ckpt"));
        FileStore { dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> CheckpointError {
        CheckpointError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }
}

impl CheckpointStore for FileStore {
    fn load(&mut self) -> Result<Option<Checkpoint>, CheckpointError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Checkpoint::decode(&bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io(e))?;
        let tmp = self.path.with_extension("ckpt.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&checkpoint.encode())?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &self.path)?;
            // Make the rename itself durable.
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| self.io(e))
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::sample;

    #[test]
    fn saves_loads_and_replaces() {
        let dir = std::env::temp_dir().join(format!("cxpulse-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = FileStore::new(&dir, "my group/1");
        assert!(store.load().unwrap().is_none());
        store.save(&sample(1, 10)).unwrap();
        store.save(&sample(2, 5000)).unwrap();
        assert_eq!(store.load().unwrap().unwrap(), sample(2, 5000));
        assert!(store.path().ends_with("my_group_1.ckpt"));
        // A damaged file is an error, not an empty state.
        std::fs::write(store.path(), b"CXCKPT2\ngarbage").unwrap();
        assert!(store.load().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
