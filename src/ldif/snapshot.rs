//! A directory snapshot kept by DN, and the application of LDIF change records to it
//! (RFC 2849 `add`, `delete`, `modify`, `modrdn`/`moddn`), as delta import needs.
//!
//! Pure: no I/O. Applying is strict, like a directory server: a change that does not
//! apply (adding an entry that exists, changing one that does not, deleting a value that
//! is absent) is an error and leaves the snapshot as it was before that record.
//!
//! Values compare ignoring ASCII case, as most directory string syntaxes do; binary
//! values compare byte for byte in effect, since case folding only touches ASCII letters.

use std::collections::BTreeMap;

use crate::core::dn::{normalize_dn, AttributeValue, Dn};
use crate::core::entry::{Attribute, Entry};
use crate::ldif::{Change, ChangeRecord, ModOp, ModRdn};

/// Why a change record does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{dn}: {message}")]
pub struct SnapshotError {
    /// The DN of the record, as written.
    pub dn: String,
    pub message: String,
}

/// Entries by normalised DN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    entries: BTreeMap<String, Entry>,
}

fn fail(dn: &str, message: impl Into<String>) -> SnapshotError {
    SnapshotError {
        dn: dn.to_string(),
        message: message.into(),
    }
}

fn same_value(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Snapshot {
    /// A snapshot of `entries`; two entries with the same DN are an error.
    pub fn from_entries(
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Snapshot, SnapshotError> {
        let mut snapshot = Snapshot::default();
        for entry in entries {
            snapshot.insert_new(entry)?;
        }
        Ok(snapshot)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the snapshot holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in normalised-DN order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The entries in normalised-DN order, by value.
    pub fn into_entries(self) -> impl Iterator<Item = Entry> {
        self.entries.into_values()
    }

    /// The entry with this DN, if any.
    pub fn get(&self, dn: &str) -> Option<&Entry> {
        self.entries.get(&normalize_dn(dn))
    }

    fn insert_new(&mut self, entry: Entry) -> Result<(), SnapshotError> {
        let key = normalize_dn(&entry.dn);
        if self.entries.contains_key(&key) {
            return Err(fail(&entry.dn, "entry already exists"));
        }
        self.entries.insert(key, entry);
        Ok(())
    }

    /// Applies one change record. On error the snapshot is unchanged.
    pub fn apply(&mut self, record: &ChangeRecord) -> Result<(), SnapshotError> {
        let dn = record.dn.as_str();
        let key = normalize_dn(dn);
        match &record.change {
            Change::Add(attributes) => {
                if self.entries.contains_key(&key) {
                    return Err(fail(dn, "cannot add: the entry already exists"));
                }
                let mut entry = Entry::new(dn);
                for attribute in attributes {
                    for value in &attribute.values {
                        entry.push_value(&attribute.description, value.clone());
                    }
                }
                self.entries.insert(key, entry);
                Ok(())
            }
            Change::Delete => {
                if self.entries.keys().any(|other| is_below(other, &key)) {
                    return Err(fail(dn, "cannot delete: the entry has children"));
                }
                self.entries
                    .remove(&key)
                    .map(drop)
                    .ok_or_else(|| fail(dn, "cannot delete: no such entry"))
            }
            Change::Modify(modifications) => {
                let entry = self
                    .entries
                    .get(&key)
                    .ok_or_else(|| fail(dn, "cannot modify: no such entry"))?;
                let mut changed = entry.clone();
                for modification in modifications {
                    modify(
                        &mut changed,
                        modification.op,
                        &modification.attribute,
                        &modification.values,
                    )
                    .map_err(|message| fail(dn, message))?;
                }
                self.entries.insert(key, changed);
                Ok(())
            }
            Change::ModRdn(rename) => self.rename(dn, &key, rename),
        }
    }

    /// `modrdn`/`moddn`: gives the entry a new RDN and/or parent; descendants move along.
    fn rename(&mut self, dn: &str, key: &str, rename: &ModRdn) -> Result<(), SnapshotError> {
        let Some(entry) = self.entries.get(key) else {
            return Err(fail(dn, "cannot rename: no such entry"));
        };
        let old = Dn::parse(&entry.dn).map_err(|e| fail(dn, format!("invalid DN: {e}")))?;
        let new_rdn = Dn::parse(&rename.new_rdn)
            .map_err(|e| fail(dn, format!("invalid newrdn {:?}: {e}", rename.new_rdn)))?;
        if new_rdn.rdns().len() != 1 {
            return Err(fail(
                dn,
                format!("newrdn {:?} must be a single RDN", rename.new_rdn),
            ));
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
        let new_key = normalize_dn(&new_dn);
        if new_key != key && self.entries.contains_key(&new_key) {
            return Err(fail(dn, format!("cannot rename: {new_dn} already exists")));
        }
        if is_below(&new_key, key) {
            return Err(fail(dn, "cannot move an entry below itself"));
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
        let descendants: Vec<String> = self
            .entries
            .keys()
            .filter(|other| is_below(other, key))
            .cloned()
            .collect();
        let old_depth = old.rdns().len();
        let mut moved = Vec::with_capacity(descendants.len());
        for child_key in &descendants {
            let mut child = self.entries[child_key].clone();
            let child_dn =
                Dn::parse(&child.dn).map_err(|e| fail(&child.dn, format!("invalid DN: {e}")))?;
            let relative = &child_dn.rdns()[..child_dn.rdns().len() - old_depth];
            let prefix: Vec<String> = relative.iter().map(|r| r.to_string()).collect();
            child.dn = format!("{},{new_dn}", prefix.join(","));
            moved.push(child);
        }
        self.entries.remove(key);
        for child_key in &descendants {
            self.entries.remove(child_key);
        }
        self.entries.insert(new_key, renamed);
        for child in moved {
            self.entries.insert(normalize_dn(&child.dn), child);
        }
        Ok(())
    }
}

/// Whether normalised `dn` lies strictly below normalised `ancestor`.
fn is_below(dn: &str, ancestor: &str) -> bool {
    dn.len() > ancestor.len() + 1
        && dn.ends_with(ancestor)
        && dn.as_bytes()[dn.len() - ancestor.len() - 1] == b','
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
) -> Result<(), String> {
    match op {
        ModOp::Add => {
            if values.is_empty() {
                return Err(format!("add: {description} gives no value"));
            }
            for value in values {
                let exists = position(entry, description).is_some_and(|i| {
                    entry.attributes[i]
                        .values
                        .iter()
                        .any(|v| same_value(v, value))
                });
                if exists {
                    return Err(format!(
                        "add: {description} already has the value {:?}",
                        String::from_utf8_lossy(value)
                    ));
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
            None => Err(format!("delete: the entry has no attribute {description}")),
        },
        ModOp::Delete => {
            for value in values {
                if !remove_value(entry, description, value) {
                    return Err(format!(
                        "delete: {description} has no value {:?}",
                        String::from_utf8_lossy(value)
                    ));
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
                return Err(format!("increment: {description} needs exactly one value"));
            };
            let by: i64 = std::str::from_utf8(by)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .ok_or_else(|| {
                    format!("increment: {description} by a value that is not an integer")
                })?;
            let index = position(entry, description)
                .ok_or_else(|| format!("increment: the entry has no attribute {description}"))?;
            for value in &mut entry.attributes[index].values {
                let current: i64 = std::str::from_utf8(value)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .ok_or_else(|| {
                        format!("increment: {description} holds a value that is not an integer")
                    })?;
                let next = current
                    .checked_add(by)
                    .ok_or_else(|| format!("increment: {description} overflows"))?;
                *value = next.to_string().into_bytes();
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ldif::{parse_content, LdifReader, Record};
    use std::path::Path;

    fn snapshot(text: &str) -> Snapshot {
        Snapshot::from_entries(parse_content(text.as_bytes(), Path::new(".")).unwrap()).unwrap()
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
        let mut snap = snapshot(BASE);
        for change in changes(
            "dn: cn=Cy,ou=People,dc=x\nchangetype: add\nobjectClass: person\ncn: Cy\n\n\
             dn: cn=Ann,ou=People,dc=x\nchangetype: modify\nadd: mail\nmail: a2@x\n-\n\
             delete: mail\nmail: ANN@X\n-\nreplace: title\ntitle: Boss\n-\nincrement: logins\nlogins: 2\n\n\
             dn: cn=Bob,ou=People,dc=x\nchangetype: delete\n",
        ) {
            snap.apply(&change).unwrap();
        }
        let ann = snap.get("CN=Ann, OU=People, DC=x").unwrap();
        let mail: Vec<_> = ann.text_values("mail").collect();
        assert_eq!(mail, ["a2@x"]);
        assert_eq!(ann.first_text("title").as_deref(), Some("Boss"));
        assert_eq!(ann.first_text("logins").as_deref(), Some("3"));
        assert!(snap.get("cn=Bob,ou=People,dc=x").is_none());
        assert!(snap.get("cn=Cy,ou=People,dc=x").is_some());
        assert_eq!(snap.len(), 3);
    }

    #[test]
    fn records_that_do_not_apply_are_errors_and_change_nothing() {
        let before = snapshot(BASE);
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
            let mut snap = before.clone();
            let error = snap.apply(&changes(text)[0]).unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
            assert_eq!(snap, before, "{text} changed the snapshot");
        }
    }

    #[test]
    fn rename_and_move_carry_descendants_and_rdn_values() {
        let mut snap = snapshot(BASE);
        for change in changes(
            "dn: cn=Ann,ou=People,dc=x\nchangetype: modrdn\nnewrdn: cn=Anne\ndeleteoldrdn: 1\n\n\
             dn: ou=People,dc=x\nchangetype: moddn\nnewrdn: ou=Staff\ndeleteoldrdn: 0\nnewsuperior: o=Corp,dc=x\n",
        ) {
            snap.apply(&change).unwrap();
        }
        let anne = snap
            .get("cn=Anne,ou=Staff,o=Corp,dc=x")
            .expect("moved with its parent");
        let cns: Vec<_> = anne.text_values("cn").collect();
        assert_eq!(cns, ["Anne"]);
        assert_eq!(anne.dn, "cn=Anne,ou=Staff,o=Corp,dc=x");
        let staff = snap.get("ou=Staff,o=Corp,dc=x").unwrap();
        let ous: Vec<_> = staff.text_values("ou").collect();
        assert_eq!(
            ous,
            ["People", "Staff"],
            "deleteoldrdn: 0 keeps the old value"
        );
        assert!(snap.get("cn=Bob,ou=Staff,o=Corp,dc=x").is_some());
        assert_eq!(snap.len(), 3);
    }
}
