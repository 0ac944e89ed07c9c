//! The records an LDIF file holds: content records (entries) and change records.
//!
//! This module is only the data model: it must not parse, read files or apply changes.
//! Applying a change record is [`Directory`](super::Directory)'s job (`directory.rs`).

use registrar_core::entry::{Attribute, Entry};

/// One LDIF record. A file holds records of one kind only; the reader rejects a mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A content record (`ldif-attrval-record`): a whole entry.
    Content(Entry),
    /// A change record (`ldif-change-record`): an add, delete, modify or rename.
    Change(ChangeRecord),
}

impl Record {
    /// The DN the record is about.
    pub fn dn(&self) -> &str {
        match self {
            Record::Content(entry) => &entry.dn,
            Record::Change(change) => &change.dn,
        }
    }
}

/// A change record: which entry, with which LDAP controls, and what change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// The DN of the entry to change, as written.
    pub dn: String,
    /// The `control:` lines, in source order.
    pub controls: Vec<Control>,
    /// The change itself.
    pub change: Change,
}

/// An LDAP control attached to a change record (`control: oid [true|false] [value]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// The control's numeric OID.
    pub oid: String,
    /// Whether the server must refuse the operation if it does not support the control.
    /// `false` when the line does not say.
    pub criticality: bool,
    /// The control value, if the line has one.
    pub value: Option<Vec<u8>>,
}

/// What a change record does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `changetype: add`: create the entry with these attributes. Descriptions that
    /// differ only in case are merged, as in [`Entry`].
    Add(Vec<Attribute>),
    /// `changetype: delete`: remove the entry.
    Delete,
    /// `changetype: modify`: apply these modifications, in order.
    Modify(Vec<Modification>),
    /// `changetype: modrdn` or `changetype: moddn`: rename and/or move the entry.
    ModRdn(ModRdn),
}

/// One mod-spec of a modify record: `add: cn` / `cn: value` ... / `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modification {
    /// What to do.
    pub op: ModOp,
    /// The attribute description the mod-spec names, as written on its `add:`
    /// (`delete:`, ...) line.
    pub attribute: String,
    /// The values, in source order. Empty means "all values" for `delete` and "remove the
    /// attribute" for `replace`.
    pub values: Vec<Vec<u8>>,
}

/// The operation of a mod-spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModOp {
    /// `add:` the values.
    Add,
    /// `delete:` the values, or the whole attribute when there are none.
    Delete,
    /// `replace:` all values with these (none: remove the attribute).
    Replace,
    /// `increment:` the integer value by the one value given (RFC 4525).
    Increment,
}

impl ModOp {
    /// The LDIF keyword: `add`, `delete`, `replace` or `increment`.
    pub fn keyword(self) -> &'static str {
        match self {
            ModOp::Add => "add",
            ModOp::Delete => "delete",
            ModOp::Replace => "replace",
            ModOp::Increment => "increment",
        }
    }
}

/// A rename (`modrdn` / `moddn`) change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModRdn {
    /// Which keyword the record used. Both mean the same operation (LDAP ModifyDN).
    pub keyword: RenameKeyword,
    /// The new RDN, as written.
    pub new_rdn: String,
    /// Whether the old RDN values are removed from the entry (`deleteoldrdn: 1`).
    pub delete_old_rdn: bool,
    /// The new parent DN (`newsuperior:`), if the entry moves.
    pub new_superior: Option<String>,
}

/// The keyword a rename record was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RenameKeyword {
    /// `changetype: modrdn`.
    ModRdn,
    /// `changetype: moddn`.
    ModDn,
}

impl RenameKeyword {
    /// The LDIF keyword: `modrdn` or `moddn`.
    pub fn keyword(self) -> &'static str {
        match self {
            RenameKeyword::ModRdn => "modrdn",
            RenameKeyword::ModDn => "moddn",
        }
    }
}
