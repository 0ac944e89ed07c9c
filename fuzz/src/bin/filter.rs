//! RFC 4515 filters (`core::filter`): any text either fails to parse with an error inside
//! the text, or parses to a filter whose canonical print parses again to the same filter;
//! evaluating it over an entry with hostile values never panics.

use registrar::core::filter::Filter;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some(text) = registrar_fuzz::text(data) else {
            return;
        };
        // First line the filter, the rest values for the entry it is evaluated over.
        let (filter_text, values) = text.split_once('\n').unwrap_or((text, ""));
        match Filter::parse(filter_text) {
            Ok(filter) => {
                let printed = filter.to_string();
                let again = Filter::parse(&printed)
                    .unwrap_or_else(|e| panic!("canonical print {printed:?} does not parse: {e}"));
                assert_eq!(again, filter, "round trip through {printed:?}");
                assert_eq!(
                    again.to_string(),
                    printed,
                    "the canonical print is a fixed point"
                );
                let entry = registrar_fuzz::entry_with_values(values.as_bytes());
                let _ = filter.matches(&entry);
                let _ = filter.attributes();
            }
            Err(e) => assert!(
                e.column >= 1 && e.column <= filter_text.chars().count() + 1,
                "column {} outside a filter of {} characters",
                e.column,
                filter_text.chars().count()
            ),
        }
    });
}
