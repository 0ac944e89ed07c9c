//! Shared pieces of the fuzzing targets in `src/bin/`: each target is one AFL++ binary
//! (`cargo afl build --release`, run by `ci/fuzz`) that feeds its input to one parser of
//! registrar and asserts what must hold for any input (no panic, and where the module
//! promises one, a round trip).

use registrar::core::entry::Entry;

/// The input as text, or `None` when it is not UTF-8: the parsers that take `&str` are
/// only ever given UTF-8 (config files and LDIF values are checked before).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// An entry for filters and templates to look at, whose values come from the input so
/// that evaluation and rendering see hostile bytes too: every line of `values` is one
/// value of each of a few attributes a filter or template may name.
pub fn entry_with_values(values: &[u8]) -> Entry {
    let mut entry = Entry::new("uid=fuzz,ou=People,dc=example,dc=org");
    for value in values.split(|&b| b == b'\n') {
        for description in [
            "cn",
            "mail",
            "uid",
            "cn;lang-fr",
            "objectClass",
            "groupType",
        ] {
            entry.push_value(description, value.to_vec());
        }
    }
    entry
}
