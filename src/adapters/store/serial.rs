//! The state serial, kept in the `meta` table: it moves with every apply that writes
//! and every registration, so a saved plan made at another serial is stale.

use super::database::{params, Database, SqlResult};

use super::error::{quoted, UnreadableValue, ValueProblem};

/// The serial; a value that is no integer is refused ([`UnreadableValue`]), not read as 0.
pub(super) fn read_serial(connection: &Database) -> SqlResult<i64> {
    let text: String = connection.query_row(
        "SELECT value FROM meta WHERE key = 'serial'",
        params![],
        |row| row.get(0),
    )?;
    text.parse().map_err(|_| {
        UnreadableValue {
            table: "meta",
            row: format!("key {}", quoted("serial")),
            column: "value",
            found: quoted(&text),
            problem: ValueProblem::NotAnInteger,
        }
        .into_sql(0)
    })
}

pub(super) fn write_serial(connection: &Database, serial: i64) -> SqlResult<()> {
    connection.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'serial'",
        params![serial.to_string()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::database::params;
    use super::super::error::StoreError;
    use super::super::history::RunRecord;
    use super::super::test_support::{corrupt, store_with_one_registration};
    use registrar_core::state::RegistrationSource;

    #[test]
    fn a_serial_that_is_no_integer_is_refused_not_read_as_zero() {
        let (_dir, mut store) = store_with_one_registration();
        corrupt(
            &store,
            "UPDATE meta SET value = 'seven' WHERE key = 'serial'",
        );
        let error = store.serial().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: table meta, key \"serial\": value \"seven\" is not an integer",
                store.location()
            )
        );
        assert!(matches!(store.load(), Err(StoreError::Unreadable { .. })));
        // A write that moves the serial is refused whole: its rows are not recorded.
        let error = store
            .register(
                ("xmpp", "carol"),
                "carol",
                "cn=carol,dc=x",
                (RegistrationSource::Manual, None),
                RunRecord::new("register", "t"),
            )
            .unwrap_err();
        assert!(matches!(error, StoreError::Unreadable { .. }), "{error}");
        let registrations: i64 = store
            .connection
            .query_row("SELECT count(*) FROM registrations", params![], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(registrations, 1);
    }

    #[test]
    fn a_serial_as_registrar_wrote_it_reads_back() {
        let (_dir, store) = store_with_one_registration();
        assert_eq!(store.serial().unwrap(), 1);
    }
}
