mod conformance {
    use std::path::PathBuf;

    use myrmex_store::JsonFileStore;
    use myrmex_store::conformance::Backend;

    struct JsonBackend {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl JsonBackend {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.json");
            Self { _dir: dir, path }
        }
    }

    impl Backend for JsonBackend {
        type Store = JsonFileStore;
        fn open(&mut self) -> JsonFileStore {
            JsonFileStore::open(&self.path).unwrap()
        }
        fn reopen(&mut self, store: JsonFileStore) -> Option<JsonFileStore> {
            use myrmex_store::Store;
            store.close().unwrap();
            Some(self.open())
        }
    }

    myrmex_store::conformance_tests!(JsonBackend::new());
}
