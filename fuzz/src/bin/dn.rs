//! Distinguished names (`core::dn`): a parsed DN prints to text that parses to the same
//! DN, its normal form is a fixed point, `normalize_dn` is idempotent and agrees with the
//! parser, and a DN is within itself and its parent.

use registrar::core::dn::{normalize_dn, Dn};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some(text) = registrar_fuzz::text(data) else {
            return;
        };
        let normal = normalize_dn(text);
        assert_eq!(normalize_dn(&normal), normal, "normalize_dn is idempotent");
        match Dn::parse(text) {
            Ok(dn) => {
                let normalized = dn.normalized();
                assert_eq!(
                    normal, normalized,
                    "normalize_dn agrees with Dn::normalized"
                );
                let printed = dn.to_string();
                let again = Dn::parse(&printed)
                    .unwrap_or_else(|e| panic!("printed DN {printed:?} does not parse: {e}"));
                assert_eq!(again, dn, "round trip through {printed:?}");
                assert_eq!(
                    again
                        .rdns()
                        .iter()
                        .map(|rdn| rdn.avas().to_vec())
                        .collect::<Vec<_>>(),
                    dn.rdns()
                        .iter()
                        .map(|rdn| rdn.avas().to_vec())
                        .collect::<Vec<_>>(),
                    "the printed DN keeps every value as parsed"
                );
                let renormalized = Dn::parse(&normalized)
                    .unwrap_or_else(|e| panic!("normal form {normalized:?} does not parse: {e}"));
                assert_eq!(
                    renormalized.normalized(),
                    normalized,
                    "normal form is a fixed point"
                );
                assert!(dn.is_within(&dn));
                if let Some(parent) = dn.parent() {
                    assert!(dn.is_within(&parent));
                }
            }
            Err(e) => assert!(e.column >= 1 && e.column <= text.chars().count() + 1),
        }
    });
}
