//! Migrations and the version table.

use myrmex_postgres::{Error, PgStore, SCHEMA_VERSION};

use crate::common::db;

#[test]
fn migrating_twice_is_a_no_op() {
    let Some(t) = db("migrate_twice") else { return };
    let mut a = t.store("a");
    drop(t.store("b"));
    let versions: Vec<i32> = a
        .client()
        .query(
            "SELECT version FROM sched_schema_version ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
}

#[test]
fn a_newer_database_is_refused() {
    let Some(t) = db("newer_schema") else { return };
    let mut a = t.store("a");
    a.client()
        .execute(
            "INSERT INTO sched_schema_version (version) VALUES ($1)",
            &[&(SCHEMA_VERSION + 1)],
        )
        .unwrap();
    let err = PgStore::connect(&t.options).unwrap_err();
    match &err {
        Error::SchemaTooNew {
            found, supported, ..
        } => {
            assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(err.to_string().contains("upgrade myrmex"), "{err}");
}

#[test]
fn schema_names_are_checked() {
    let opts = myrmex_postgres::ConnectOptions::new("postgres://127.0.0.1:1/x").schema("bad; drop");
    assert!(matches!(
        PgStore::connect(&opts),
        Err(Error::InvalidSchemaName { .. })
    ));
}

#[test]
fn sessions_carry_the_configured_application_name() {
    let Some(t) = db("application_name") else {
        return;
    };
    let name = |s: &mut PgStore| -> String {
        s.client()
            .query_one("SELECT current_setting('application_name')", &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(name(&mut t.store("a")), "myrmex");
    let mut b = PgStore::connect(
        &t.options
            .clone()
            .node_id("b")
            .application_name("myrmex/t_application_name/b"),
    )
    .unwrap();
    assert_eq!(name(&mut b), "myrmex/t_application_name/b");
    assert_eq!(
        b.options().application_name,
        "myrmex/t_application_name/b",
        "kept in the store's options, so a Node's other sessions use it too"
    );
}
