//! Store tests on both backends: a fresh database per test (a temporary SQLite file, or
//! its own PostgreSQL schema), and `on_both!` to run each test once per backend.
//! Included by the store, queue and schedule tests with `#[path]`, so they need none of
//! the fake GitHub.

use digestif::store::Backend;
use digestif::store::testing::TestDb;

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
