//! Recycled entries: a thread's pool of entries given back with [`recycle`], which
//! content records are filled into so that reading a large file allocates next to
//! nothing per record. Only an optimisation: the entries read are the same either way.

use std::cell::RefCell;

use super::decode::Decoder;
use registrar_core::entry::{Attribute, Entry};

thread_local! {
    /// Entries given back with [`recycle`]: content records read on this thread are
    /// filled into them, reusing their allocations.
    pub(super) static SPARE_ENTRIES: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Entries a thread keeps for reuse, at most (a few batches in flight).
pub(super) const MAX_SPARE_ENTRIES: usize = 4096;
/// Value buffers a reader keeps for reuse, at most.
pub(super) const MAX_SPARE_VALUES: usize = 1024;
/// Larger entries and buffers are freed, not kept: the pool must not hold on to the
/// memory of the occasional photo or huge group.
pub(super) const MAX_RECYCLED_ATTRIBUTES: usize = 64;
pub(super) const MAX_RECYCLED_VALUES: usize = 64;
pub(super) const MAX_RECYCLED_VALUE: usize = 4096;

/// Gives entries back for the LDIF readers of this thread to fill again, so that a
/// reader streaming a large file allocates next to nothing per record. Only an
/// optimisation: the entries read are the same either way. Large entries are freed.
pub fn recycle(entries: impl IntoIterator<Item = Entry>) {
    SPARE_ENTRIES.with(|spare| {
        let mut spare = spare.borrow_mut();
        for entry in entries {
            if spare.len() >= MAX_SPARE_ENTRIES {
                break;
            }
            let small = entry.attributes.len() <= MAX_RECYCLED_ATTRIBUTES
                && entry.attributes.iter().all(|attribute| {
                    attribute.values.len() <= MAX_RECYCLED_VALUES
                        && attribute
                            .values
                            .iter()
                            .all(|value| value.capacity() <= MAX_RECYCLED_VALUE)
                });
            if small {
                spare.push(entry);
            }
        }
    });
}

/// An entry to fill: a recycled one when there is one, else a new one with room for
/// `attributes`.
#[inline]
pub(super) fn spare_entry(attributes: usize) -> Entry {
    SPARE_ENTRIES
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_else(|| Entry {
            dn: String::new(),
            attributes: Vec::with_capacity(attributes),
        })
}

/// Adds a value to the record being filled into a (possibly recycled) entry:
/// `attributes[..*used]` are the record's so far; later ones are left from an older
/// record and reused for their buffers. Merges like [`Entry::push_value`], with a fast
/// path for runs of the same attribute.
#[inline]
pub(super) fn refill(
    attributes: &mut Vec<Attribute>,
    used: &mut usize,
    description: &str,
    value: Vec<u8>,
    decoder: &mut Decoder,
) {
    let live = &mut attributes[..*used];
    if let Some(last) = live.last_mut() {
        if last.description.eq_ignore_ascii_case(description) {
            last.values.push(value);
            return;
        }
    }
    if let Some(attribute) = live
        .iter_mut()
        .find(|attribute| attribute.description.eq_ignore_ascii_case(description))
    {
        attribute.values.push(value);
        return;
    }
    if *used == attributes.len() {
        attributes.push(Attribute {
            description: String::new(),
            // Most attributes hold one value.
            values: Vec::with_capacity(1),
        });
    }
    let attribute = &mut attributes[*used];
    decoder.keep_values(attribute.values.drain(..));
    attribute.description.clear();
    attribute.description.push_str(description);
    attribute.values.push(value);
    *used += 1;
}
