use myrmex_store::MemoryStore;
use myrmex_store::conformance::Fresh;

myrmex_store::conformance_tests!(Fresh(MemoryStore::new));
