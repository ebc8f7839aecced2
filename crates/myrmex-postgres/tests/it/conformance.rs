//! The `myrmex-store` conformance suite against [`PgRecordStore`], one schema per case.

use myrmex_postgres::{ConnectOptions, PgRecordStore};
use myrmex_store::conformance::{self, Backend};

use crate::common::db;

/// A durable backend on one fresh schema: reopening reconnects to the same schema.
struct Pg {
    options: ConnectOptions,
    _db: crate::common::TestDb,
}

impl Backend for Pg {
    type Store = PgRecordStore;

    fn open(&mut self) -> PgRecordStore {
        PgRecordStore::connect(&self.options).expect("connect")
    }

    fn reopen(&mut self, store: PgRecordStore) -> Option<PgRecordStore> {
        myrmex_store::Store::close(&store).expect("close before reopening");
        drop(store);
        Some(self.open())
    }
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let Some(t) = db(concat!("conf_", stringify!($case))) else { return };
                let mut backend = Pg { options: t.options.clone(), _db: t };
                conformance::$case(&mut backend);
            }
        )*
    };
}

cases!(
    job_crud,
    idempotent_materialization,
    watermark_compare_and_set,
    concurrent_materialization,
    fencing,
    lease_expiry,
    interrupted_runs,
    retries,
    dependencies,
    cancellation,
    retention,
    list_filters,
    batch_atomicity,
    reopen_keeps_everything,
    closed_store,
);
