//! Test support for the PostgreSQL store: a fresh schema per test on the server
//! `MCVPN_TEST_PG` names (scripts/netns-test.sh starts a throw-away cluster and sets it),
//! and [`both_backends!`], which runs a `fn(&mut dyn Store)` on SQLite and on PostgreSQL.

use std::str::FromStr;

use ::postgres::{Client, Config, NoTls};

use super::PgStore;

/// One test's schema `t_<random>` on the test server, dropped with everything in it at
/// the end of the test.
pub struct TestPg {
    config: Config,
    admin: Client,
    schema: String,
}

impl TestPg {
    /// `None` (after saying so) when `MCVPN_TEST_PG` is not set; a server that is named
    /// but cannot be reached fails the test.
    pub fn from_env() -> Option<TestPg> {
        let Ok(url) = std::env::var("MCVPN_TEST_PG") else {
            println!("skipped: MCVPN_TEST_PG not set");
            return None;
        };
        let base = Config::from_str(&url).expect("MCVPN_TEST_PG is a postgres:// URL");
        let schema = format!("t_{:016x}", rand::random::<u64>());
        let mut admin = base.connect(NoTls).expect("the MCVPN_TEST_PG server answers");
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .expect("create the test schema");
        let mut config = base.clone();
        config.options(&format!("-c search_path={schema}"));
        admin
            .batch_execute(&format!("SET search_path = {schema}"))
            .expect("search_path");
        Some(TestPg { config, admin, schema })
    }

    /// A store on this test's schema (migrated on the first).
    pub fn open(&self) -> PgStore {
        PgStore::open_config(self.config.clone()).expect("open the PostgreSQL store")
    }

    /// The connection configuration of the schema, for a store opened another way.
    pub fn config(&self) -> Config {
        self.config.clone()
    }

    /// A connection of the test's own, on the schema: raw SQL, `pg_terminate_backend`.
    pub fn admin(&mut self) -> &mut Client {
        &mut self.admin
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
    }
}

/// `both_backends!(f, g)`: for each `fn f(&mut dyn Store)` of the calling module, a module
/// `f` with the tests `sqlite` (in memory) and `postgres` (a fresh schema, or skipped
/// with one line when `MCVPN_TEST_PG` is not set).
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    let mut s = crate::store::SqliteStore::open_in_memory().unwrap();
                    super::$name(&mut s);
                }

                #[test]
                fn postgres() {
                    let Some(db) = crate::store::pg_test::TestPg::from_env() else { return };
                    let mut s = db.open();
                    super::$name(&mut s);
                    drop(s);
                }
            }
        )*
    };
}
pub(crate) use both_backends;

/// The TLS-only test server (`MCVPN_TEST_PG_TLS`, its CA in `MCVPN_TEST_PG_TLS_CA`;
/// `scripts/pg-throwaway.sh start-tls` makes one): `postgres://…@127.0.0.1:PORT/DB` with
/// its query taken off, and the CA file. `None` (after saying so) when they are not set.
pub fn tls_server_from_env() -> Option<(String, String)> {
    let (Ok(url), Ok(ca)) = (
        std::env::var("MCVPN_TEST_PG_TLS"),
        std::env::var("MCVPN_TEST_PG_TLS_CA"),
    ) else {
        println!("skipped: MCVPN_TEST_PG_TLS and MCVPN_TEST_PG_TLS_CA not set");
        return None;
    };
    let base = url.split_once('?').map_or(url.as_str(), |(b, _)| b).to_string();
    Some((base, ca))
}
