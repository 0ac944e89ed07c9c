//! The read contract: the views `registrar_registrations_v1`, `registrar_accounts_v1`
//! and `registrar_groups_v1` that IM systems and compliance reports query. Their columns
//! (names and order) are pinned here on both backends, a row is read through each after
//! real applies of the quickstart (with a group rule and a manual registration), the two
//! backends give the same rows, and the SQL the README shows a compliance gateway running
//! is run as written.

use std::path::Path;
use std::process::Command;

mod common;

use common::workspace::Workspace;
use common::{stderr, BIN};
use throwaway_postgres::{Backend, TestStore};

/// Each view's columns, in order. `_v1` never changes: a new shape is a `_v2` beside it.
const COLUMNS: [(&str, &[&str]); 3] = [
    (
        "registrar_registrations_v1",
        &[
            "protocol",
            "im_name",
            "im_name_key",
            "source",
            "mapping",
            "account_anchor",
            "account_dn",
            "account_status",
            "display_name",
            "mail",
        ],
    ),
    (
        "registrar_accounts_v1",
        &[
            "anchor",
            "dn",
            "source",
            "status",
            "display_name",
            "department",
            "title",
            "telephone",
            "location",
            "mail",
            "registrations",
        ],
    ),
    (
        "registrar_groups_v1",
        &[
            "group_name",
            "kind",
            "source",
            "rule",
            "member_anchor",
            "member_dn",
        ],
    ),
];

const GROUPS: &str = "\
groups:
  - name: \"{cn}\"
    kind: distribution_list
    source: corp
    filter: \"(objectClass=groupOfNames)\"
";

const BARRY: &str = "5f0c9a1e-0001-4c1e-9a51-000000000001";
const CARLA: &str = "5f0c9a1e-0002-4c1e-9a51-000000000002";

type Rows = Vec<Vec<Option<String>>>;

/// A store on `backend` after an apply of the quickstart with a group rule and the
/// manual registration of aol name `JSmith`.
fn applied_store(backend: Backend) -> (Workspace, TestStore) {
    let ws = Workspace::new();
    let config = std::fs::read_to_string(ws.config().join("registrar.yaml")).unwrap();
    ws.write_config("registrar.yaml", &format!("{config}{GROUPS}"));
    let store = TestStore::on(backend);
    for args in [
        &["apply", "--auto-approve"][..],
        &[
            "state",
            "register",
            "--protocol",
            "aol",
            "--im-name",
            "JSmith",
            "--account",
            "cn=John Smith,ou=Contractors,dc=example,dc=com",
            "--source",
            "manual",
        ],
    ] {
        let output = Command::new(BIN)
            .arg("--config")
            .arg(ws.config())
            .arg("--state")
            .arg(store.argument())
            .args(args)
            .env_remove("REGISTRAR_STATE")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    (ws, store)
}

/// Every row of `sql` on the store, each value as text (integers too), as a consumer
/// with its own client reads it: rusqlite on the file, the PostgreSQL client's simple
/// query protocol on the database.
fn query(store: &TestStore, sql: &str) -> Rows {
    match store.database() {
        Some(database) => {
            let mut client = database.client().unwrap();
            client
                .simple_query(sql)
                .unwrap()
                .into_iter()
                .filter_map(|message| match message {
                    postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_string))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()
        }
        None => {
            let connection = rusqlite::Connection::open(store.file()).unwrap();
            let mut statement = connection.prepare(sql).unwrap();
            let columns = statement.column_count();
            statement
                .query_map([], |row| {
                    (0..columns)
                        .map(|i| {
                            Ok(match row.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => None,
                                rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
                                other => Some(other.as_str().unwrap().to_string()),
                            })
                        })
                        .collect()
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
    }
}

/// A view's column names in order, from the backend's own catalog.
fn columns(store: &TestStore, view: &str) -> Vec<String> {
    let sql = match store.backend() {
        Backend::Sqlite => format!("SELECT name FROM pragma_table_info('{view}') ORDER BY cid"),
        Backend::Postgres => format!(
            "SELECT column_name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{view}' \
             ORDER BY ordinal_position"
        ),
    };
    query(store, &sql)
        .into_iter()
        .map(|row| row[0].clone().unwrap())
        .collect()
}

fn texts(values: &[Option<&str>]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(str::to_string)).collect()
}

/// The queries of the ```sql blocks of the README's "Reading registrations from the
/// store" section, one per paragraph.
fn readme_queries() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("### Reading registrations from the store")
        .expect("the README's section on the views");
    let section = &readme[start + 4..];
    let section = &section[..section.find("\n#").unwrap_or(section.len())];
    section
        .split("```sql\n")
        .skip(1)
        .flat_map(|block| {
            // One query per paragraph of the block.
            block[..block.find("```").unwrap()]
                .split("\n\n")
                .map(|query| query.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|query| !query.is_empty())
        .collect()
}

#[test]
fn the_views_keep_their_columns_and_read_the_same_rows_on_both_backends() {
    let stores = [Backend::Sqlite, Backend::Postgres].map(applied_store);
    for (_, store) in &stores {
        for (view, expected) in COLUMNS {
            assert_eq!(
                columns(store, view),
                expected,
                "{view} on {:?}",
                store.backend()
            );
        }
    }

    let every_row = |store: &TestStore| -> Vec<Rows> {
        COLUMNS
            .iter()
            .map(|(view, columns)| {
                query(
                    store,
                    &format!("SELECT * FROM {view} ORDER BY {}", columns.join(", ")),
                )
            })
            .collect()
    };
    let [(_, sqlite), (_, postgres)] = &stores;
    let rows = every_row(sqlite);
    assert_eq!(every_row(postgres), rows);

    // A row through each view.
    let barry_aol = texts(&[
        Some("aol"),
        Some("bjohnson"),
        Some("bjohnson"),
        Some("ldap"),
        Some("aol-from-mail"),
        Some(BARRY),
        Some("cn=Barry Johnson,ou=People,dc=example,dc=com"),
        Some("active"),
        Some("Barry Johnson"),
        Some("bjohnson@example.com"),
    ]);
    assert!(rows[0].contains(&barry_aol), "{:?}", rows[0]);
    let barry = texts(&[
        Some(BARRY),
        Some("cn=Barry Johnson,ou=People,dc=example,dc=com"),
        Some("corp"),
        Some("active"),
        Some("Barry Johnson"),
        Some("Accounting"),
        Some("Controller"),
        Some("+1 408 555 0101"),
        Some("San Jose"),
        Some("bjohnson@example.com"),
        Some("2"),
    ]);
    assert!(rows[1].contains(&barry), "{:?}", rows[1]);
    let staff = |anchor: &str, dn: &str| {
        texts(&[
            Some("Staff"),
            Some("distribution_list"),
            Some("corp"),
            Some("{cn}"),
            Some(anchor),
            Some(dn),
        ])
    };
    assert_eq!(
        rows[2],
        [
            staff(BARRY, "cn=Barry Johnson,ou=People,dc=example,dc=com"),
            staff(CARLA, "cn=Carla Diaz,ou=People,dc=example,dc=com"),
        ]
    );
}

#[test]
fn the_readme_query_finds_who_holds_aol_jsmith_on_both_backends() {
    let queries = readme_queries();
    assert!(
        !queries.is_empty(),
        "no ```sql block in the README's section"
    );
    let stores = [Backend::Sqlite, Backend::Postgres].map(applied_store);
    for (_, store) in &stores {
        let held = query(store, &queries[0]);
        assert_eq!(
            held,
            [texts(&[
                Some("cn=John Smith,ou=Contractors,dc=example,dc=com"),
                Some("active"),
                None,
                None,
                Some("manual"),
                None,
                Some("JSmith"),
            ])],
            "on {:?}",
            store.backend()
        );
        // Every other query the section shows runs on both backends and finds rows.
        for sql in &queries[1..] {
            assert!(
                !query(store, sql).is_empty(),
                "{sql} on {:?}",
                store.backend()
            );
        }
    }
    let [(_, sqlite), (_, postgres)] = &stores;
    for sql in &queries {
        assert_eq!(query(sqlite, sql), query(postgres, sql), "{sql}");
    }
}
