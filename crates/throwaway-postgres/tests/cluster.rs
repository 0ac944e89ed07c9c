//! The throwaway cluster itself: it starts, gives distinct databases and drops them,
//! keeps its data across a restart, and refuses connections once stopped.

use throwaway_postgres::{shared, Cluster, PASSWORD, PASSWORD_ROLE};

fn database_exists(name: &str) -> bool {
    let admin = shared().database();
    let mut client = admin.client().unwrap();
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .unwrap();
    row.get::<_, i64>(0) == 1
}

#[test]
fn the_shared_cluster_answers_on_loopback() {
    let database = shared().database();
    assert!(database.url().starts_with(&format!(
        "postgres://registrar_test@127.0.0.1:{}/",
        shared().port()
    )));
    let mut client = database.client().unwrap();
    let row = client.query_one("SELECT current_database(), current_user, pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), database.name());
    assert_eq!(row.get::<_, String>(1), "registrar_test");
    assert_eq!(row.get::<_, String>(2), "UTF8");
}

#[test]
fn two_databases_are_distinct_and_dropped() {
    let first = shared().database();
    let second = shared().database();
    assert_ne!(first.name(), second.name());
    first
        .client()
        .unwrap()
        .batch_execute("CREATE TABLE only_here (x int)")
        .unwrap();
    let seen = second
        .client()
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(seen, 0);
    let (first_name, second_name) = (first.name().to_string(), second.name().to_string());
    // A connection still open does not stop the drop (WITH (FORCE)).
    let _open = first.client().unwrap();
    drop(first);
    drop(second);
    assert!(!database_exists(&first_name));
    assert!(!database_exists(&second_name));
}

#[test]
fn the_password_role_needs_its_password() {
    let database = shared().database();
    let mut config = postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(shared().port())
        .user(PASSWORD_ROLE)
        .dbname(database.name());
    assert!(config.connect(postgres::NoTls).is_err());
    config.password(PASSWORD);
    config.connect(postgres::NoTls).unwrap();
}

#[test]
fn a_restart_keeps_the_data_and_a_stopped_cluster_refuses() {
    let cluster = Cluster::start().unwrap();
    let port = cluster.port();
    let database = cluster.database();
    database
        .client()
        .unwrap()
        .batch_execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        .unwrap();
    cluster.stop().unwrap();
    let refused = database.client().err().unwrap().to_string();
    assert!(refused.contains(&format!("127.0.0.1:{port}")), "{refused}");
    cluster.restart().unwrap();
    assert_eq!(cluster.port(), port);
    let value: i32 = database
        .client()
        .unwrap()
        .query_one("SELECT x FROM kept", &[])
        .unwrap()
        .get(0);
    assert_eq!(value, 42);
    let root = cluster.socket_dir().to_path_buf();
    drop(database);
    drop(cluster);
    assert!(!root.exists(), "{} is left behind", root.display());
}
