//! The state serial, kept in the `meta` table: it moves with every apply that writes
//! and every registration, so a saved plan made at another serial is stale.

use rusqlite::Connection;

pub(super) fn read_serial(connection: &Connection) -> rusqlite::Result<i64> {
    let text: String =
        connection.query_row("SELECT value FROM meta WHERE key = 'serial'", [], |row| {
            row.get(0)
        })?;
    Ok(text.parse().unwrap_or(0))
}

pub(super) fn write_serial(connection: &Connection, serial: i64) -> rusqlite::Result<()> {
    connection.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'serial'",
        [serial.to_string()],
    )?;
    Ok(())
}
