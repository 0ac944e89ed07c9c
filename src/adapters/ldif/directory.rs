//! A directory in memory: entries kept by DN, and the application of LDIF change records
//! to them
//! (RFC 2849 `add`, `delete`, `modify`, `modrdn`/`moddn`), as delta import needs.
//!
//! Pure: no I/O. Applying is strict, like a directory server: a change that does not
//! apply (adding an entry that exists, changing one that does not, deleting a value that
//! is absent) is an error and leaves the directory as it was before that record.
//!
//! A directory is either complete (every entry in memory) or an overlay over a
//! [`DirectoryBase`] that holds the rest, such as the snapshot the store kept of the last
//! import: [`Directory::load_for`] fetches from the base what a record reads (its entry,
//! the target of a rename, the subtree below it), so applying a change file costs what the
//! changes touch, not what the directory holds. The keys a change wrote are
//! [`Directory::touched`], which is what a store must write back.
//!
//! Entries are keyed by their normalised DN ([`normalize_dn`]) and come out in that
//! order. Subtrees are found through [`tree_key`], the same key with its bytes reversed,
//! under which a subtree is one key range.
//!
//! Values compare ignoring ASCII case, as most directory string syntaxes do; binary
//! values compare byte for byte in effect, since case folding only touches ASCII letters.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::record::{Change, ChangeRecord, ModOp, ModRdn};
use registrar_core::dn::{normalize_dn, AttributeValue, Dn, DnError};
use registrar_core::entry::{Attribute, Entry};
use registrar_core::quote::{quote_for_message, shown_for_message};

/// Why a change record does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", shown_for_message(dn))]
pub struct ChangeError {
    /// The DN of the record, as written.
    pub dn: String,
    /// What is wrong with it.
    #[source]
    pub problem: ChangeProblem,
}

/// What keeps a change record from applying, as a directory server would refuse it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeProblem {
    /// Two entries of a complete directory have the same DN.
    #[error("entry already exists")]
    Duplicate,
    #[error("cannot add: the entry already exists")]
    AddExisting,
    #[error("cannot delete: the entry has children")]
    DeleteWithChildren,
    #[error("cannot delete: no such entry")]
    DeleteMissing,
    #[error("cannot modify: no such entry")]
    ModifyMissing,
    #[error("cannot rename: no such entry")]
    RenameMissing,
    #[error("cannot rename: {new_dn} already exists")]
    RenameOnto { new_dn: String },
    #[error("cannot move an entry below itself")]
    MoveBelowItself,
    /// An entry's DN (the record's, or a descendant's) does not parse.
    #[error("invalid DN: {0}")]
    InvalidDn(#[source] DnError),
    #[error("invalid newrdn {}: {source}", quote_for_message(new_rdn))]
    InvalidNewRdn { new_rdn: String, source: DnError },
    #[error("newrdn {} must be a single RDN", quote_for_message(new_rdn))]
    NewRdnNotSingle { new_rdn: String },
    #[error("add: {attribute} gives no value")]
    AddNoValue { attribute: String },
    #[error("add: {attribute} already has the value {}", quote_for_message(value))]
    AddPresent { attribute: String, value: Vec<u8> },
    #[error("delete: the entry has no attribute {attribute}")]
    DeleteNoAttribute { attribute: String },
    #[error("delete: {attribute} has no value {}", quote_for_message(value))]
    DeleteAbsent { attribute: String, value: Vec<u8> },
    #[error("increment: {attribute} needs exactly one value")]
    IncrementArity { attribute: String },
    #[error("increment: {attribute} by a value that is not an integer")]
    IncrementByNonInteger { attribute: String },
    #[error("increment: the entry has no attribute {attribute}")]
    IncrementNoAttribute { attribute: String },
    #[error("increment: {attribute} holds a value that is not an integer")]
    IncrementNonInteger { attribute: String },
    #[error("increment: {attribute} overflows")]
    IncrementOverflow { attribute: String },
}

/// The tree key of a normalised DN `key`: its bytes reversed. The tree key of `a`
/// starts with that of `b` followed by `,` exactly when `a` lies below `b`.
pub fn tree_key(key: &str) -> Vec<u8> {
    key.bytes().rev().collect()
}

/// The normalised DN of a tree key.
fn key_of(tree_key: &[u8]) -> String {
    String::from_utf8_lossy(&tree_key.iter().rev().copied().collect::<Vec<u8>>()).into_owned()
}

/// The tree keys of the entries strictly below the tree key `key` lie strictly between
/// these two: they start with `key` and `,` (`-` is the byte after `,`).
pub fn below_range(key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let with = |byte: u8| {
        let mut bound = Vec::with_capacity(key.len() + 1);
        bound.extend_from_slice(key);
        bound.push(byte);
        bound
    };
    (with(b','), with(b'-'))
}

/// [`below_range`] as map bounds.
fn below(key: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let (after, before) = below_range(key);
    (Bound::Excluded(after), Bound::Excluded(before))
}

/// Where the entries an overlay directory does not hold come from. Keys are normalised
/// DNs.
pub trait DirectoryBase {
    /// The entry at `key`, if the base has one.
    fn entry(&mut self, key: &str) -> Result<Option<Entry>, BaseError>;
    /// Every entry strictly below `key` (their [`tree_key`]s in the [`below_range`] of
    /// its tree key), with its key.
    fn below(&mut self, key: &str) -> Result<Vec<(String, Entry)>, BaseError>;
}

/// Why a [`DirectoryBase`] could not give what an overlay asked for: the base's own
/// error (a store's, say), which this module does not know. It reads as that error and
/// keeps it as the cause.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BaseError(Box<dyn std::error::Error + Send + Sync>);

impl BaseError {
    /// The base's own `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        BaseError(Box::new(error))
    }
}

/// Entries by normalised DN: all of them, or those an overlay has loaded or written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    entries: BTreeMap<String, Entry>,
    /// The [`tree_key`] of every key of `entries`.
    tree: BTreeSet<Vec<u8>>,
    /// Keys whose entry (or absence) this directory decides: loaded from the base, or
    /// written by a change. The base is not asked about them again.
    settled: BTreeSet<String>,
    /// Keys written (added, changed, removed) by the changes applied.
    touched: BTreeSet<String>,
}

fn fail(dn: &str, problem: ChangeProblem) -> ChangeError {
    ChangeError {
        dn: dn.to_string(),
        problem,
    }
}

fn same_value(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Directory {
    /// A complete directory of `entries`; two entries with the same DN are an error.
    pub fn from_entries(
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Directory, ChangeError> {
        let mut directory = Directory::default();
        for entry in entries {
            let key = normalize_dn(&entry.dn);
            if directory.entries.contains_key(&key) {
                return Err(fail(&entry.dn, ChangeProblem::Duplicate));
            }
            directory.hold(key, entry);
        }
        Ok(directory)
    }

    /// An empty overlay: change records applied to it read their entries from a base
    /// through [`Directory::load_for`].
    pub fn overlay() -> Directory {
        Directory::default()
    }

    /// The number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the directory holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries held, in normalised-DN order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The entries held with their keys (normalised DNs), in key order.
    pub fn keyed_entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries
            .iter()
            .map(|(key, entry)| (key.as_str(), entry))
    }

    /// The entries held, in normalised-DN order, by value.
    pub fn into_entries(self) -> impl Iterator<Item = Entry> {
        self.entries.into_values()
    }

    /// The entry with this DN, if held.
    pub fn get(&self, dn: &str) -> Option<&Entry> {
        self.entries.get(&normalize_dn(dn))
    }

    /// Whether this directory decides the entry at `key`: an overlay's base entry at a
    /// settled key is superseded (changed, moved away or deleted).
    pub fn is_settled(&self, key: &str) -> bool {
        self.settled.contains(key) || self.touched.contains(key)
    }

    /// The keys the applied changes wrote, in key order: the entry now held there, or
    /// `None` where it was removed.
    pub fn touched(&self) -> impl Iterator<Item = (&str, Option<&Entry>)> {
        self.touched
            .iter()
            .map(|key| (key.as_str(), self.entries.get(key)))
    }

    /// Loads from `base` what applying `record` reads, so that [`Directory::apply`] gives
    /// the result it would give on the whole directory: the record's entry, the entries
    /// below it (for a delete or a rename) and the rename's target. Keys already settled
    /// are not asked for again. A complete directory has nothing to load.
    pub fn load_for(
        &mut self,
        record: &ChangeRecord,
        base: &mut dyn DirectoryBase,
    ) -> Result<(), BaseError> {
        let key = normalize_dn(&record.dn);
        self.load(&key, base)?;
        match &record.change {
            Change::Add(_) | Change::Modify(_) => {}
            Change::Delete => self.load_below(&key, base)?,
            Change::ModRdn(rename) => {
                self.load_below(&key, base)?;
                let target = self
                    .entries
                    .get(&key)
                    .and_then(|entry| renamed_dn(&entry.dn, rename).ok());
                if let Some((new_dn, _, _)) = target {
                    self.load(&normalize_dn(&new_dn), base)?;
                }
            }
        }
        Ok(())
    }

    fn load(&mut self, key: &str, base: &mut dyn DirectoryBase) -> Result<(), BaseError> {
        if !self.is_settled(key) {
            if let Some(entry) = base.entry(key)? {
                self.hold(key.to_string(), entry);
            }
            self.settled.insert(key.to_string());
        }
        Ok(())
    }

    fn load_below(&mut self, key: &str, base: &mut dyn DirectoryBase) -> Result<(), BaseError> {
        for (child, entry) in base.below(key)? {
            if !self.is_settled(&child) {
                self.settled.insert(child.clone());
                self.hold(child, entry);
            }
        }
        Ok(())
    }

    /// Holds `entry` at `key`, keeping the tree index.
    fn hold(&mut self, key: String, entry: Entry) {
        self.tree.insert(tree_key(&key));
        self.entries.insert(key, entry);
    }

    /// Writes `entry` at `key`.
    fn put(&mut self, key: String, entry: Entry) {
        self.touched.insert(key.clone());
        self.hold(key, entry);
    }

    /// Removes the entry at `key`.
    fn take(&mut self, key: &str) -> Option<Entry> {
        self.touched.insert(key.to_string());
        self.tree.remove(&tree_key(key));
        self.entries.remove(key)
    }

    /// The keys of the entries held strictly below `key`.
    fn keys_below(&self, key: &str) -> impl Iterator<Item = String> + '_ {
        self.tree.range(below(&tree_key(key))).map(|k| key_of(k))
    }

    /// Applies one change record. On error the directory is unchanged. An overlay must
    /// have loaded what the record reads first ([`Directory::load_for`]).
    pub fn apply(&mut self, record: &ChangeRecord) -> Result<(), ChangeError> {
        let dn = record.dn.as_str();
        let key = normalize_dn(dn);
        match &record.change {
            Change::Add(attributes) => {
                if self.entries.contains_key(&key) {
                    return Err(fail(dn, ChangeProblem::AddExisting));
                }
                let mut entry = Entry::new(dn);
                for attribute in attributes {
                    for value in &attribute.values {
                        entry.push_value(&attribute.description, value.clone());
                    }
                }
                self.put(key, entry);
                Ok(())
            }
            Change::Delete => {
                if self.keys_below(&key).next().is_some() {
                    return Err(fail(dn, ChangeProblem::DeleteWithChildren));
                }
                if !self.entries.contains_key(&key) {
                    return Err(fail(dn, ChangeProblem::DeleteMissing));
                }
                self.take(&key);
                Ok(())
            }
            Change::Modify(modifications) => {
                let entry = self
                    .entries
                    .get(&key)
                    .ok_or_else(|| fail(dn, ChangeProblem::ModifyMissing))?;
                let mut changed = entry.clone();
                for modification in modifications {
                    modify(
                        &mut changed,
                        modification.op,
                        &modification.attribute,
                        &modification.values,
                    )
                    .map_err(|problem| fail(dn, problem))?;
                }
                self.put(key, changed);
                Ok(())
            }
            Change::ModRdn(rename) => self.rename(dn, &key, rename),
        }
    }

    /// `modrdn`/`moddn`: gives the entry a new RDN and/or parent; descendants move along.
    fn rename(&mut self, dn: &str, key: &str, rename: &ModRdn) -> Result<(), ChangeError> {
        let Some(entry) = self.entries.get(key) else {
            return Err(fail(dn, ChangeProblem::RenameMissing));
        };
        let (new_dn, old, new_rdn) = renamed_dn(&entry.dn, rename).map_err(|m| fail(dn, m))?;
        let new_key = normalize_dn(&new_dn);
        if new_key != key && self.entries.contains_key(&new_key) {
            return Err(fail(dn, ChangeProblem::RenameOnto { new_dn }));
        }
        if is_below(&tree_key(&new_key), &tree_key(key)) {
            return Err(fail(dn, ChangeProblem::MoveBelowItself));
        }

        // The entry itself: old RDN values out (when asked), new RDN values in.
        let mut renamed = entry.clone();
        if rename.delete_old_rdn {
            if let Some(rdn) = old.rdn() {
                for ava in rdn.avas() {
                    if let AttributeValue::Text(value) = &ava.value {
                        remove_value(&mut renamed, &ava.attribute_type, value.as_bytes());
                    }
                }
            }
        }
        if let Some(rdn) = new_rdn.rdn() {
            for ava in rdn.avas() {
                let AttributeValue::Text(value) = &ava.value else {
                    continue; // a #hex BER value names no attribute value to add
                };
                let present = renamed
                    .values(&ava.attribute_type)
                    .any(|v| same_value(v, value.as_bytes()));
                if !present {
                    renamed.push_value(&ava.attribute_type, value.as_bytes().to_vec());
                }
            }
        }
        renamed.dn = new_dn.clone();

        // Descendants keep their relative RDNs under the new DN.
        let descendants: Vec<String> = self.keys_below(key).collect();
        let old_depth = old.rdns().len();
        let mut moved = Vec::with_capacity(descendants.len());
        for child_key in &descendants {
            let mut child = self.entries[child_key].clone();
            let child_dn =
                Dn::parse(&child.dn).map_err(|e| fail(&child.dn, ChangeProblem::InvalidDn(e)))?;
            let relative = &child_dn.rdns()[..child_dn.rdns().len() - old_depth];
            let prefix: Vec<String> = relative.iter().map(|r| r.to_string()).collect();
            child.dn = format!("{},{new_dn}", prefix.join(","));
            moved.push(child);
        }
        self.take(key);
        for child_key in &descendants {
            self.take(child_key);
        }
        self.put(new_key, renamed);
        for child in moved {
            self.put(normalize_dn(&child.dn), child);
        }
        Ok(())
    }
}

/// The DN an entry called `dn` gets from `rename`, with its old DN and new RDN parsed.
fn renamed_dn(dn: &str, rename: &ModRdn) -> Result<(String, Dn, Dn), ChangeProblem> {
    let old = Dn::parse(dn).map_err(ChangeProblem::InvalidDn)?;
    let new_rdn = Dn::parse(&rename.new_rdn).map_err(|source| ChangeProblem::InvalidNewRdn {
        new_rdn: rename.new_rdn.clone(),
        source,
    })?;
    if new_rdn.rdns().len() != 1 {
        return Err(ChangeProblem::NewRdnNotSingle {
            new_rdn: rename.new_rdn.clone(),
        });
    }
    let parent = match &rename.new_superior {
        Some(superior) => superior.clone(),
        None => old.parent().map(|p| p.to_string()).unwrap_or_default(),
    };
    let new_dn = if parent.is_empty() {
        rename.new_rdn.clone()
    } else {
        format!("{},{parent}", rename.new_rdn)
    };
    Ok((new_dn, old, new_rdn))
}

/// Whether `key` lies strictly below `ancestor` (both [`tree_key`]s).
fn is_below(key: &[u8], ancestor: &[u8]) -> bool {
    key.len() > ancestor.len() + 1 && key.starts_with(ancestor) && key[ancestor.len()] == b','
}

/// Removes one value of exactly `description` (ignoring case); whether it was there.
fn remove_value(entry: &mut Entry, description: &str, value: &[u8]) -> bool {
    let Some(index) = position(entry, description) else {
        return false;
    };
    let values = &mut entry.attributes[index].values;
    let Some(at) = values.iter().position(|v| same_value(v, value)) else {
        return false;
    };
    values.remove(at);
    if values.is_empty() {
        entry.attributes.remove(index);
    }
    true
}

/// The index of the attribute whose description is exactly `description` (ignoring case).
fn position(entry: &Entry, description: &str) -> Option<usize> {
    entry
        .attributes
        .iter()
        .position(|a| a.description.eq_ignore_ascii_case(description))
}

/// One mod-spec of a modify record, RFC 4511 §4.6 semantics.
fn modify(
    entry: &mut Entry,
    op: ModOp,
    description: &str,
    values: &[Vec<u8>],
) -> Result<(), ChangeProblem> {
    let attribute = || description.to_string();
    match op {
        ModOp::Add => {
            if values.is_empty() {
                return Err(ChangeProblem::AddNoValue {
                    attribute: attribute(),
                });
            }
            for value in values {
                let exists = position(entry, description).is_some_and(|i| {
                    entry.attributes[i]
                        .values
                        .iter()
                        .any(|v| same_value(v, value))
                });
                if exists {
                    return Err(ChangeProblem::AddPresent {
                        attribute: attribute(),
                        value: value.clone(),
                    });
                }
                entry.push_value(description, value.clone());
            }
            Ok(())
        }
        ModOp::Delete if values.is_empty() => match position(entry, description) {
            Some(index) => {
                entry.attributes.remove(index);
                Ok(())
            }
            None => Err(ChangeProblem::DeleteNoAttribute {
                attribute: attribute(),
            }),
        },
        ModOp::Delete => {
            for value in values {
                if !remove_value(entry, description, value) {
                    return Err(ChangeProblem::DeleteAbsent {
                        attribute: attribute(),
                        value: value.clone(),
                    });
                }
            }
            Ok(())
        }
        ModOp::Replace => {
            match position(entry, description) {
                Some(index) if values.is_empty() => {
                    entry.attributes.remove(index);
                }
                Some(index) => entry.attributes[index].values = values.to_vec(),
                None if values.is_empty() => {}
                None => entry.attributes.push(Attribute {
                    description: description.to_string(),
                    values: values.to_vec(),
                }),
            }
            Ok(())
        }
        ModOp::Increment => {
            let [by] = values else {
                return Err(ChangeProblem::IncrementArity {
                    attribute: attribute(),
                });
            };
            let by: i64 = std::str::from_utf8(by)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .ok_or_else(|| ChangeProblem::IncrementByNonInteger {
                    attribute: attribute(),
                })?;
            let index = position(entry, description).ok_or_else(|| {
                ChangeProblem::IncrementNoAttribute {
                    attribute: attribute(),
                }
            })?;
            for value in &mut entry.attributes[index].values {
                let current: i64 = std::str::from_utf8(value)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .ok_or_else(|| ChangeProblem::IncrementNonInteger {
                        attribute: attribute(),
                    })?;
                let next =
                    current
                        .checked_add(by)
                        .ok_or_else(|| ChangeProblem::IncrementOverflow {
                            attribute: attribute(),
                        })?;
                *value = next.to_string().into_bytes();
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::ldif::{parse_content, LdifReader, Record};
    use std::path::Path;

    fn directory(text: &str) -> Directory {
        Directory::from_entries(parse_content(text.as_bytes(), Path::new(".")).unwrap()).unwrap()
    }

    fn changes(text: &str) -> Vec<ChangeRecord> {
        LdifReader::new(text.as_bytes())
            .map(|record| match record.unwrap() {
                Record::Change(change) => change,
                Record::Content(_) => panic!("expected change records"),
            })
            .collect()
    }

    const BASE: &str = "dn: ou=People,dc=x\nobjectClass: organizationalUnit\nou: People\n\n\
        dn: cn=Ann,ou=People,dc=x\nobjectClass: person\ncn: Ann\nmail: ann@x\nlogins: 1\n\n\
        dn: cn=Bob,ou=People,dc=x\nobjectClass: person\ncn: Bob\n";

    #[test]
    fn add_modify_delete_follow_ldap_semantics() {
        let mut directory = directory(BASE);
        for change in changes(
            "dn: cn=Cy,ou=People,dc=x\nchangetype: add\nobjectClass: person\ncn: Cy\n\n\
             dn: cn=Ann,ou=People,dc=x\nchangetype: modify\nadd: mail\nmail: a2@x\n-\n\
             delete: mail\nmail: ANN@X\n-\nreplace: title\ntitle: Boss\n-\nincrement: logins\nlogins: 2\n\n\
             dn: cn=Bob,ou=People,dc=x\nchangetype: delete\n",
        ) {
            directory.apply(&change).unwrap();
        }
        let ann = directory.get("CN=Ann, OU=People, DC=x").unwrap();
        let mail: Vec<_> = ann.text_values("mail").collect();
        assert_eq!(mail, ["a2@x"]);
        assert_eq!(ann.first_text("title").as_deref(), Some("Boss"));
        assert_eq!(ann.first_text("logins").as_deref(), Some("3"));
        assert!(directory.get("cn=Bob,ou=People,dc=x").is_none());
        assert!(directory.get("cn=Cy,ou=People,dc=x").is_some());
        assert_eq!(directory.len(), 3);
    }

    #[test]
    fn records_that_do_not_apply_are_errors_and_change_nothing() {
        let before = directory(BASE);
        let cases = [
            ("dn: cn=Ann,ou=People,dc=x\nchangetype: add\ncn: Ann\n", "already exists"),
            ("dn: cn=Zed,ou=People,dc=x\nchangetype: modify\nreplace: cn\ncn: Z\n", "no such entry"),
            ("dn: cn=Zed,ou=People,dc=x\nchangetype: delete\n", "no such entry"),
            ("dn: ou=People,dc=x\nchangetype: delete\n", "has children"),
            ("dn: cn=Ann,ou=People,dc=x\nchangetype: modify\nadd: mail\nmail: ann@x\n-\n", "already has"),
            ("dn: cn=Ann,ou=People,dc=x\nchangetype: modify\nreplace: title\ntitle: T\n-\ndelete: mail\nmail: nope@x\n-\n", "has no value"),
            ("dn: cn=Ann,ou=People,dc=x\nchangetype: modrdn\nnewrdn: cn=Bob\ndeleteoldrdn: 1\n", "already exists"),
        ];
        for (text, expected) in cases {
            let mut directory = before.clone();
            let error = directory.apply(&changes(text)[0]).unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
            assert_eq!(directory, before, "{text} changed the directory");
        }
    }

    #[test]
    fn a_refusal_says_what_was_refused_and_reads_as_before() {
        let mut directory = directory(BASE);
        let text = "dn: cn=Ann,ou=People,dc=x\nchangetype: modify\nadd: mail\nmail: ann@x\n-\n";
        let error = directory.apply(&changes(text)[0]).unwrap_err();
        assert_eq!(
            error.problem,
            ChangeProblem::AddPresent {
                attribute: "mail".to_string(),
                value: b"ann@x".to_vec(),
            }
        );
        assert_eq!(
            error.to_string(),
            "cn=Ann,ou=People,dc=x: add: mail already has the value \"ann@x\""
        );
        assert!(std::error::Error::source(&error).is_some());
        let text = "dn: cn=Ann,ou=People,dc=x\nchangetype: modrdn\nnewrdn: cn=A+sn=B,cn=C\n\
            deleteoldrdn: 1\n";
        let error = directory.apply(&changes(text)[0]).unwrap_err();
        assert!(
            matches!(&error.problem, ChangeProblem::NewRdnNotSingle { new_rdn } if new_rdn == "cn=A+sn=B,cn=C"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "cn=Ann,ou=People,dc=x: newrdn \"cn=A+sn=B,cn=C\" must be a single RDN"
        );
    }

    #[test]
    fn rename_and_move_carry_descendants_and_rdn_values() {
        let mut directory = directory(BASE);
        for change in changes(
            "dn: cn=Ann,ou=People,dc=x\nchangetype: modrdn\nnewrdn: cn=Anne\ndeleteoldrdn: 1\n\n\
             dn: ou=People,dc=x\nchangetype: moddn\nnewrdn: ou=Staff\ndeleteoldrdn: 0\nnewsuperior: o=Corp,dc=x\n",
        ) {
            directory.apply(&change).unwrap();
        }
        let anne = directory
            .get("cn=Anne,ou=Staff,o=Corp,dc=x")
            .expect("moved with its parent");
        let cns: Vec<_> = anne.text_values("cn").collect();
        assert_eq!(cns, ["Anne"]);
        assert_eq!(anne.dn, "cn=Anne,ou=Staff,o=Corp,dc=x");
        let staff = directory.get("ou=Staff,o=Corp,dc=x").unwrap();
        let ous: Vec<_> = staff.text_values("ou").collect();
        assert_eq!(
            ous,
            ["People", "Staff"],
            "deleteoldrdn: 0 keeps the old value"
        );
        assert!(directory.get("cn=Bob,ou=Staff,o=Corp,dc=x").is_some());
        assert_eq!(directory.len(), 3);
    }

    /// A base over a complete directory.
    struct MapBase(Directory);

    impl DirectoryBase for MapBase {
        fn entry(&mut self, key: &str) -> Result<Option<Entry>, BaseError> {
            Ok(self.0.entries.get(key).cloned())
        }

        fn below(&mut self, key: &str) -> Result<Vec<(String, Entry)>, BaseError> {
            Ok(self
                .0
                .keys_below(key)
                .map(|k| (k.clone(), self.0.entries[&k].clone()))
                .collect())
        }
    }

    #[test]
    fn an_overlay_gives_what_the_complete_directory_gives() {
        let text = "dn: cn=Cy,ou=People,dc=x\nchangetype: add\nobjectClass: person\ncn: Cy\n\n\
             dn: cn=Ann,ou=People,dc=x\nchangetype: modify\nreplace: title\ntitle: Boss\n-\n\n\
             dn: cn=Bob,ou=People,dc=x\nchangetype: delete\n\n\
             dn: cn=Bob,ou=People,dc=x\nchangetype: add\ncn: Bob\n\n\
             dn: ou=People,dc=x\nchangetype: moddn\nnewrdn: ou=Staff\ndeleteoldrdn: 1\n\n\
             dn: cn=Ann,ou=Staff,dc=x\nchangetype: modify\nadd: mail\nmail: a@x\n-\n";
        let mut complete = directory(&format!("{BASE}\ndn: dc=x\nobjectClass: domain\n"));
        let mut base = MapBase(complete.clone());
        let mut overlay = Directory::overlay();
        for change in changes(text) {
            complete.apply(&change).unwrap();
            overlay.load_for(&change, &mut base).unwrap();
            overlay.apply(&change).unwrap();
        }
        // The whole directory seen through the overlay: base entries not settled, then
        // the overlay's own.
        let mut seen: BTreeMap<String, Entry> = base
            .0
            .entries
            .iter()
            .filter(|(k, _)| !overlay.is_settled(k))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        seen.extend(
            overlay
                .keyed_entries()
                .map(|(k, e)| (k.to_string(), e.clone())),
        );
        assert_eq!(seen, complete.entries);
        assert!(overlay.get("dc=x").is_none(), "dc=x was not read");
        // What a store writes back: every key the changes wrote.
        let touched: Vec<_> = overlay
            .touched()
            .map(|(k, e)| (k.to_string(), e.is_some()))
            .collect();
        assert!(touched.contains(&("cn=bob,ou=people,dc=x".to_string(), false)));
        assert!(touched.contains(&("cn=bob,ou=staff,dc=x".to_string(), true)));
        assert!(touched.contains(&("ou=staff,dc=x".to_string(), true)));
        assert!(touched.contains(&("ou=people,dc=x".to_string(), false)));
    }

    #[test]
    fn subtrees_are_tree_key_ranges() {
        let directory = directory(BASE);
        let mut below: Vec<_> = directory
            .keys_below(&normalize_dn("OU=people, DC=x"))
            .collect();
        below.sort();
        assert_eq!(below, ["cn=ann,ou=people,dc=x", "cn=bob,ou=people,dc=x"]);
        assert!(!is_below(
            &tree_key("cn=a,xou=people,dc=x"),
            &tree_key("ou=people,dc=x")
        ));
        assert!(is_below(
            &tree_key("cn=a,ou=people,dc=x"),
            &tree_key("ou=people,dc=x")
        ));
    }
}
