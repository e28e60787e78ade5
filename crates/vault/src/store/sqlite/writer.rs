//! The SQLite side of group commit (`store::group_commit`): one writer
//! connection per vault file in this process, its transaction taken with
//! `BEGIN IMMEDIATE` (the file's write lock).

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rusqlite::Connection;

use crate::error::Result;
use crate::store::group_commit::{GroupConnection, Writer};
use crate::store::shared::PerVault;

impl GroupConnection for Connection {
    fn begin(&mut self) -> Result<()> {
        // A wait for the lock in here is said to a staged import holding it.
        let _beginning = super::waiting::Beginning::new(self.path());
        Ok(self.execute_batch("BEGIN IMMEDIATE")?)
    }

    fn savepoint(&mut self) -> Result<()> {
        Ok(self.execute_batch("SAVEPOINT member")?)
    }

    fn release(&mut self) -> Result<()> {
        Ok(self.execute_batch("RELEASE member")?)
    }

    fn rollback_to_savepoint(&mut self) {
        let _ = self.execute_batch("ROLLBACK TO member; RELEASE member");
    }

    fn commit(&mut self) -> Result<()> {
        Ok(self.execute_batch("COMMIT")?)
    }

    fn rollback(&mut self) -> Result<()> {
        Ok(self.execute_batch("ROLLBACK")?)
    }

    fn in_transaction(&self) -> bool {
        !self.is_autocommit()
    }
}

/// One writer per file, by identity (device and inode): a vault restored
/// or created anew at the same path gets a writer of its own.
static WRITERS: LazyLock<PerVault<FileId, Writer<Connection>>> = LazyLock::new(PerVault::default);

/// The writer of the vault file at `path`.
pub(crate) fn writer_of(path: &Path) -> Arc<Writer<Connection>> {
    WRITERS.of(&file_id(path))
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum FileId {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg_attr(unix, allow(dead_code))]
    Path(PathBuf),
}

fn file_id(path: &Path) -> FileId {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata(path) {
            return FileId::Inode(meta.dev(), meta.ino());
        }
    }
    FileId::Path(path.canonicalize().unwrap_or_else(|_| path.to_path_buf()))
}
