//! Store tests on both backends: a fresh database per test ([`TestDb`]: a temporary SQLite
//! file, or its own PostgreSQL schema, removed on drop, so tests run in parallel against
//! one server), and `on_both!` to run each test once per backend. The store, queue and
//! schedule tests (and benchmarks) include it alone with `#[path = ".../backends.rs"] mod
//! backends;` (which `on_both!` expects), so they need none of the fake GitHub; tests with
//! `mod support;` reach `TestDb` as `support::backends::TestDb`.
#![allow(dead_code)]

use std::path::PathBuf;

use sqlx::Connection as _;

use digestif::store::{Backend, ConnectOptions, Result, Store};

/// `DIGESTIF_TEST_POSTGRES_URL`, else the machine's test server.
pub fn postgres_url() -> String {
    std::env::var("DIGESTIF_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

#[derive(Debug)]
enum Cleanup {
    SqliteFile(PathBuf),
    PgSchema { url: String, schema: String },
}

/// A store on a database that disappears with this value.
#[derive(Debug)]
pub struct TestDb {
    pub store: Store,
    /// A URL other processes can use (SQLite only; PostgreSQL needs the schema too).
    pub url: String,
    pub schema: Option<String>,
    cleanup: Cleanup,
}

impl TestDb {
    pub async fn new(backend: Backend, migrate: bool) -> Result<TestDb> {
        TestDb::with_settings(backend, migrate, Vec::new()).await
    }

    /// With PostgreSQL session settings (ignored on SQLite).
    pub async fn with_settings(
        backend: Backend,
        migrate: bool,
        pg_settings: Vec<(String, String)>,
    ) -> Result<TestDb> {
        let tag = format!("{:016x}", rand::random::<u64>());
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("digestif-test-{tag}.db"));
                let url = format!("sqlite://{}", path.display());
                let mut o = ConnectOptions::new(url.clone());
                o.migrate = migrate;
                let store = Store::connect_with(o).await?;
                Ok(TestDb {
                    store,
                    url,
                    schema: None,
                    cleanup: Cleanup::SqliteFile(path),
                })
            }
            Backend::Postgres => {
                let url = postgres_url();
                let schema = format!("t_{tag}");
                let mut admin = sqlx::PgConnection::connect(&url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
                let mut o = ConnectOptions::new(url.clone());
                o.migrate = migrate;
                o.pg_schema = Some(schema.clone());
                o.pg_settings = pg_settings;
                let store = Store::connect_with(o).await?;
                Ok(TestDb {
                    store,
                    url: url.clone(),
                    schema: Some(schema.clone()),
                    cleanup: Cleanup::PgSchema { url, schema },
                })
            }
        }
    }

    /// A second, independent store (its own pool) on the same database: another replica.
    pub async fn replica(&self) -> Result<Store> {
        let mut o = ConnectOptions::new(self.url.clone());
        o.migrate = false;
        o.pg_schema = self.schema.clone();
        Store::connect_with(o).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::PgSchema { url, schema } => {
                let (url, schema) = (url.clone(), schema.clone());
                // Drop may run inside a runtime, which cannot block on itself: clean up
                // from a thread with its own.
                let t = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let mut c = sqlx::PgConnection::connect(&url).await.ok()?;
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS {schema} CASCADE"
                        )))
                        .execute(&mut c)
                        .await
                        .ok()?;
                        c.close().await.ok()
                    })
                });
                let _ = t.join();
            }
        }
    }
}

pub async fn db(backend: Backend) -> TestDb {
    TestDb::new(backend, true)
        .await
        .unwrap_or_else(|e| panic!("test database ({backend:?}): {e}"))
}

/// Runs each listed `async fn(TestDb)` once per backend.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                super::$name($crate::backends::db(digestif::store::Backend::Sqlite).await).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                super::$name($crate::backends::db(digestif::store::Backend::Postgres).await).await
            })*
        }
    };
}
