use std::path::PathBuf;

use myrmex_sqlite::SqliteStore;
use myrmex_store::Store;
use myrmex_store::conformance::Backend;

pub struct SqliteBackend {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteBackend {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("myrmex.db");
        Self { _dir: dir, path }
    }
}

impl Backend for SqliteBackend {
    type Store = SqliteStore;
    fn open(&mut self) -> SqliteStore {
        SqliteStore::open(&self.path).unwrap()
    }
    fn reopen(&mut self, store: SqliteStore) -> Option<SqliteStore> {
        store.close().unwrap();
        Some(self.open())
    }
}

myrmex_store::conformance_tests!(SqliteBackend::new());
