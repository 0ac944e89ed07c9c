//! One shared `ArcStr` per distinct string, for values read in bulk that repeat: the
//! protocol, mapping and source names of every stored row or saved change, the anchor
//! an account's registrations point at. Sharing them keeps one allocation where there
//! were many.

use arcstr::ArcStr;
use std::collections::HashSet;

/// Hands out one `ArcStr` per distinct string it is given. (foldhash: millions of
/// short strings hash several times faster than with the default SipHash, and they come
/// from the store and saved plans, not from an attacker.)
#[derive(Debug, Default)]
pub struct Interner(HashSet<ArcStr, foldhash::fast::FixedState>);

impl Interner {
    /// An interner with room for `strings` distinct strings.
    pub fn with_capacity(strings: usize) -> Self {
        Interner(HashSet::with_capacity_and_hasher(
            strings,
            Default::default(),
        ))
    }

    /// Room for `strings` more distinct strings.
    pub fn reserve(&mut self, strings: usize) {
        self.0.reserve(strings);
    }

    /// The shared string equal to `text`, made on first sight.
    pub fn get(&mut self, text: &str) -> ArcStr {
        if let Some(shared) = self.0.get(text) {
            return shared.clone();
        }
        let shared: ArcStr = text.into();
        self.0.insert(shared.clone());
        shared
    }

    /// [`Interner::get`] for an optional string.
    pub fn get_optional(&mut self, text: Option<&str>) -> Option<ArcStr> {
        text.map(|text| self.get(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_allocation() {
        let mut interner = Interner::default();
        let first = interner.get("aol");
        let again = interner.get(&String::from("aol"));
        let other = interner.get("sip");
        assert!(ArcStr::ptr_eq(&first, &again));
        assert_eq!(&*other, "sip");
        assert!(!ArcStr::ptr_eq(&first, &other));
        assert_eq!(interner.get_optional(None), None);
        assert!(ArcStr::ptr_eq(
            &interner.get_optional(Some("aol")).unwrap(),
            &first
        ));
    }
}
