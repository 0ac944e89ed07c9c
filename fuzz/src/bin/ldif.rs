//! The LDIF reader (`ldif::LdifReader`), content and change records: any bytes are
//! records or one located error, never a panic; every record read is written by the LDIF
//! writer (or refused with an error) and what it writes reads back to the same record.
//! `attr:< URL` values are refused, so the input cannot make the reader open a file.

use registrar::ldif::{write_change, write_entry, LdifReader, Record};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let refuse =
            |_: &str, _: usize| -> Result<Vec<u8>, String> { Err("not read while fuzzing".into()) };
        let reader = LdifReader::new(data).with_resolver(refuse);
        for record in reader {
            let Ok(record) = record else {
                break;
            };
            let mut written = Vec::new();
            let wrote = match &record {
                Record::Content(entry) => write_entry(&mut written, entry),
                Record::Change(change) => write_change(&mut written, change),
            };
            if wrote.is_err() {
                continue;
            }
            let mut again = LdifReader::new(&written[..]).with_resolver(refuse);
            let read = again
                .next()
                .unwrap_or_else(|| {
                    panic!(
                        "nothing read back from {:?}",
                        String::from_utf8_lossy(&written)
                    )
                })
                .unwrap_or_else(|e| {
                    panic!(
                        "written record does not read back: {e}\n{}",
                        String::from_utf8_lossy(&written)
                    )
                });
            assert_eq!(
                read,
                record,
                "round trip through {:?}",
                String::from_utf8_lossy(&written)
            );
        }
    });
}
