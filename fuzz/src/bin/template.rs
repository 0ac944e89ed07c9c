//! Value templates (`core::template`): parsing any text either fails with a column inside
//! it or gives a template that renders over an entry of hostile values without panicking,
//! with values that are non-empty and without duplicates, as the module promises.

use registrar::core::template::{RenderOutcome, Template};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some(text) = registrar_fuzz::text(data) else {
            return;
        };
        // First line the template, the rest values for the entry it renders.
        let (source, values) = text.split_once('\n').unwrap_or((text, ""));
        match Template::parse(source) {
            Ok(template) => {
                assert_eq!(template.as_str(), source);
                let entry = registrar_fuzz::entry_with_values(values.as_bytes());
                let _ = template.attributes();
                match template.render_outcome(&entry) {
                    RenderOutcome::Values(rendered) => {
                        assert!(!rendered.is_empty());
                        assert!(rendered.iter().all(|value| !value.is_empty()));
                        let mut unique = rendered.clone();
                        unique.sort();
                        unique.dedup();
                        assert_eq!(unique.len(), rendered.len(), "duplicates in {rendered:?}");
                        assert_eq!(template.render_first(&entry).as_ref(), rendered.first());
                    }
                    RenderOutcome::MissingAttribute(_) | RenderOutcome::Empty => {
                        assert_eq!(template.render_first(&entry), None);
                    }
                }
            }
            Err(e) => assert!(e.column >= 1 && e.column <= source.chars().count() + 1),
        }
    });
}
