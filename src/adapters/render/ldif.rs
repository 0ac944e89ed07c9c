//! The plan as LDIF change records (`plan --format ldif`): the registration store seen as
//! an LDAP tree, and each change of the plan as the one change record that makes the
//! same change to that tree, for `ldapmodify`.
//!
//! The tree, under a base DN ([`LdifBase`], `--ldif-base`, default `ou=registrar`), with
//! the object classes and attributes of `schemas/registrar.ldap.schema`:
//!
//! ```text
//! <base>
//! ├── ou=accounts        registrarAnchor=<anchor>                    registrarAccount
//! ├── ou=registrations   registrarKey=<protocol>:<normalised IM name>  registrarRegistration
//! └── ou=groups          registrarGroupName=<name>                   registrarGroup
//! ```
//!
//! RDNs are the store's keys (account anchor, protocol and normalised name, group name),
//! so they never change: an account moved in its directory keeps its entry, a name that
//! changes case keeps its entry. Group `member` values are the DNs of account entries.
//! A plan against an empty, never-applied store (serial 0) first adds the base and the
//! three containers, so that a new server tree fed the LDIF of every applied plan, in
//! order, mirrors the store.
//!
//! Records go through the LDIF writer (`crate::adapters::ldif::write_change`), one at a time, so
//! output streams whatever the plan's size and base64 and folding follow RFC 2849. This
//! module only translates: it never decides what changes, and it refuses (an
//! [`io::ErrorKind::InvalidData`] error) a change that lacks what its record needs rather
//! than write a record that does something else.

use registrar_core::ArcStr;
use std::io::{self, Write};

use crate::adapters::ldif::{write_change, write_version, ChangeRecord, ModOp, Modification};
use registrar_core::dn::{escape_value, AttributeValue, Dn};
use registrar_core::entry::Attribute;
use registrar_core::model::ProfileField;
use registrar_core::plan::{Action, Change, Kind, Plan};

/// Where the registration store's tree sits in the directory: a DN whose first RDN is one
/// `ou=`, `o=` or `dc=` value, so that the base entry can be given a standard object
/// class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdifBase {
    /// The DN with canonical RFC 4514 escaping.
    dn: String,
    /// The base entry's attributes (object classes and naming values).
    entry: Vec<(&'static str, String)>,
}

/// Why a text is not a usable base DN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--ldif-base \"{text}\": {message}")]
pub struct LdifBaseError {
    pub text: String,
    pub message: String,
}

/// The three containers under the base: (RDN value of `ou`, what they hold).
const CONTAINERS: [&str; 3] = ["accounts", "registrations", "groups"];

impl LdifBase {
    /// The base when `--ldif-base` is not given.
    pub const DEFAULT: &'static str = "ou=registrar";

    /// Parses a base DN such as `ou=registrar,dc=example,dc=com`.
    pub fn parse(text: &str) -> Result<LdifBase, LdifBaseError> {
        let fail = |message: String| LdifBaseError {
            text: text.to_string(),
            message,
        };
        let dn = Dn::parse(text).map_err(|e| fail(format!("not a DN: {e}")))?;
        let Some(rdn) = dn.rdn() else {
            return Err(fail("the base cannot be the root DN".to_string()));
        };
        let [ava] = rdn.avas() else {
            return Err(fail(
                "the base's first RDN must be a single ou=, o= or dc= value".to_string(),
            ));
        };
        let AttributeValue::Text(value) = &ava.value else {
            return Err(fail(
                "the base's first RDN must be a string, not a #BER value".to_string(),
            ));
        };
        let value = value.clone();
        let entry = match ava.attribute_type.to_ascii_lowercase().as_str() {
            "ou" => vec![
                ("objectClass", "organizationalUnit".to_string()),
                ("ou", value),
            ],
            "o" => vec![("objectClass", "organization".to_string()), ("o", value)],
            "dc" => vec![
                ("objectClass", "dcObject".to_string()),
                ("objectClass", "organization".to_string()),
                ("dc", value.clone()),
                ("o", value),
            ],
            other => {
                return Err(fail(format!(
                    "the base's first RDN must be ou=, o= or dc=, not {other}="
                )))
            }
        };
        Ok(LdifBase {
            dn: dn.to_string(),
            entry,
        })
    }

    /// The base DN, canonically escaped.
    pub fn dn(&self) -> &str {
        &self.dn
    }

    /// The DN of the entry of the account with this anchor.
    pub fn account_dn(&self, anchor: &str) -> String {
        format!(
            "registrarAnchor={},ou=accounts,{}",
            escape_value(anchor),
            self.dn
        )
    }

    /// The DN of the entry of the registration with this name key on `protocol`.
    pub fn registration_dn(&self, protocol: &str, name_key: &str) -> String {
        format!(
            "registrarKey={},ou=registrations,{}",
            escape_value(&registration_key(protocol, name_key)),
            self.dn
        )
    }

    /// The DN of the entry of the group called `name`.
    pub fn group_dn(&self, name: &str) -> String {
        format!(
            "registrarGroupName={},ou=groups,{}",
            escape_value(name),
            self.dn
        )
    }

    /// The records adding the base entry and the three containers.
    fn container_records(&self) -> Vec<ChangeRecord> {
        let mut records = vec![add(&self.dn, self.entry.clone())];
        for container in CONTAINERS {
            records.push(add(
                &format!("ou={container},{}", self.dn),
                vec![
                    ("objectClass", "organizationalUnit".to_string()),
                    ("ou", container.to_string()),
                ],
            ));
        }
        records
    }
}

impl Default for LdifBase {
    fn default() -> Self {
        LdifBase::parse(LdifBase::DEFAULT).expect("the default base parses")
    }
}

/// The `registrarKey` value of a registration: `<protocol>:<name key>`. The protocol (a
/// config name) holds no `:`, so the first `:` splits the two.
pub fn registration_key(protocol: &str, name_key: &str) -> String {
    format!("{protocol}:{name_key}")
}

/// The attribute holding a profile field.
pub fn profile_attribute(field: ProfileField) -> &'static str {
    match field {
        ProfileField::DisplayName => "registrarDisplayName",
        ProfileField::Department => "registrarDepartment",
        ProfileField::Title => "registrarTitle",
        ProfileField::Telephone => "registrarTelephone",
        ProfileField::Location => "registrarLocation",
        ProfileField::Mail => "registrarMail",
    }
}

/// Streams `plan` as LDIF change records under `base`: `version: 1`, a comment naming
/// the plan, the base and containers when the plan is against serial 0, then one record
/// per change in plan (apply) order.
pub fn write_ldif(plan: &Plan, base: &LdifBase, out: &mut impl Write) -> io::Result<()> {
    write_version(out)?;
    let mut header = format!(
        "registrar plan: {} change(s) against state serial {}, revision {}.",
        plan.changes.len(),
        plan.state_serial,
        plan.revision.as_deref().unwrap_or("none")
    );
    header
        .push_str(" Load it only with `registrar apply --plan` of this same plan (`plan --out`).");
    if let Some(reason) = &plan.summary.blocked_reason {
        header.push_str(&format!(
            " BLOCKED: {reason}; apply refuses this plan without --allow-deletes."
        ));
    }
    write_comment(out, &header)?;
    writeln!(out)?;
    if plan.state_serial == 0 {
        for record in base.container_records() {
            write_change(out, &record)?;
        }
    }
    for change in &plan.changes {
        write_change(out, &change_record(change, base)?)?;
    }
    Ok(())
}

/// Writes `text` as `# ` comment lines of at most 76 ASCII bytes, wrapped at spaces;
/// control characters become spaces and other non-ASCII ones `?`, so that the output
/// stays ASCII, as every record the LDIF writer makes is.
fn write_comment(out: &mut impl Write, text: &str) -> io::Result<()> {
    let text: String = text
        .chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if c.is_ascii() => c,
            _ => '?',
        })
        .collect();
    let mut line = String::from("#");
    for word in text.split(' ').filter(|word| !word.is_empty()) {
        for piece in word.as_bytes().chunks(73) {
            let piece = std::str::from_utf8(piece).expect("ASCII");
            if line.len() + 1 + piece.len() > 76 {
                writeln!(out, "{line}")?;
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(piece);
        }
    }
    writeln!(out, "{line}")
}

/// An add record of `attributes`, values given as text; empty values are left out (the
/// store never holds them, and directory strings cannot be empty).
fn add(dn: &str, attributes: Vec<(&'static str, String)>) -> ChangeRecord {
    let mut merged: Vec<Attribute> = Vec::new();
    for (description, value) in attributes {
        if value.is_empty() {
            continue;
        }
        match merged.iter_mut().find(|a| a.description == description) {
            Some(attribute) => attribute.values.push(value.into_bytes()),
            None => merged.push(Attribute {
                description: description.to_string(),
                values: vec![value.into_bytes()],
            }),
        }
    }
    record(dn, crate::adapters::ldif::Change::Add(merged))
}

fn record(dn: &str, change: crate::adapters::ldif::Change) -> ChangeRecord {
    ChangeRecord {
        dn: dn.to_string(),
        controls: Vec::new(),
        change,
    }
}

/// `replace: attribute` with the new value, or with no value (which removes the
/// attribute if present and is a no-op otherwise, RFC 4511 §4.6) when there is none.
fn replace(attribute: &str, new: Option<&str>) -> Modification {
    Modification {
        op: ModOp::Replace,
        attribute: attribute.to_string(),
        values: new
            .filter(|value| !value.is_empty())
            .map(|value| vec![value.as_bytes().to_vec()])
            .unwrap_or_default(),
    }
}

fn modify(dn: &str, modifications: Vec<Modification>) -> ChangeRecord {
    record(dn, crate::adapters::ldif::Change::Modify(modifications))
}

fn delete(dn: &str) -> ChangeRecord {
    record(dn, crate::adapters::ldif::Change::Delete)
}

/// A change the renderer cannot translate faithfully.
fn refuse(change: &Change, message: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "cannot write the {} {} change as LDIF: {message}",
            format!("{:?}", change.kind).to_lowercase(),
            format!("{:?}", change.action).to_lowercase()
        ),
    )
}

fn required<'a>(change: &Change, value: Option<&'a ArcStr>, what: &str) -> io::Result<&'a str> {
    value
        .map(|value| &**value)
        .ok_or_else(|| refuse(change, &format!("the plan gives no {what}")))
}

/// `modify` with a `replace:` per changed field, each field named by `attribute_of`.
fn update(
    change: &Change,
    dn: &str,
    attribute_of: impl Fn(&str) -> Option<&'static str>,
) -> io::Result<ChangeRecord> {
    let fields = change
        .fields()
        .filter(|fields| !fields.is_empty())
        .ok_or_else(|| refuse(change, "the plan gives no changed field"))?;
    let mut modifications = Vec::with_capacity(fields.len());
    for (field, (_, new)) in fields {
        let attribute = attribute_of(field)
            .ok_or_else(|| refuse(change, &format!("unknown field {field:?}")))?;
        modifications.push(replace(attribute, new.as_deref()));
    }
    Ok(modify(dn, modifications))
}

/// The one change record that makes `change` in the tree under `base`.
pub fn change_record(change: &Change, base: &LdifBase) -> io::Result<ChangeRecord> {
    match change.kind {
        Kind::Account => {
            let anchor = required(change, change.account.as_ref(), "account")?;
            let dn = base.account_dn(anchor);
            match change.action {
                Action::Add => {
                    let mut attributes = vec![
                        ("objectClass", "registrarAccount".to_string()),
                        ("registrarAnchor", anchor.to_string()),
                        (
                            "registrarEntryDn",
                            required(change, change.dn.as_ref(), "dn")?.to_string(),
                        ),
                        ("registrarActive", "TRUE".to_string()),
                    ];
                    if let Some(source) = change.source() {
                        attributes.push(("registrarSource", source.to_string()));
                    }
                    for (field, value) in change.profile().into_iter().flat_map(|p| p.iter()) {
                        attributes.push((profile_attribute(field), value.to_string()));
                    }
                    Ok(add(&dn, attributes))
                }
                Action::Update => update(change, &dn, |field| match field {
                    "dn" => Some("registrarEntryDn"),
                    "source" => Some("registrarSource"),
                    other => ProfileField::from_name(other).map(profile_attribute),
                }),
                Action::Deactivate => {
                    Ok(modify(&dn, vec![replace("registrarActive", Some("FALSE"))]))
                }
                Action::Reactivate => {
                    Ok(modify(&dn, vec![replace("registrarActive", Some("TRUE"))]))
                }
                Action::Remove => Ok(delete(&dn)),
            }
        }
        Kind::Registration => {
            let protocol = required(change, change.protocol.as_ref(), "protocol")?;
            let im_name = required(change, change.im_name.as_ref(), "IM name")?;
            let name_key = change.name_key();
            let dn = base.registration_dn(protocol, &name_key);
            match change.action {
                Action::Add => Ok(add(
                    &dn,
                    vec![
                        ("objectClass", "registrarRegistration".to_string()),
                        ("registrarKey", registration_key(protocol, &name_key)),
                        ("registrarProtocol", protocol.to_string()),
                        ("registrarImName", im_name.to_string()),
                        (
                            "registrarAnchor",
                            required(change, change.account.as_ref(), "account")?.to_string(),
                        ),
                        ("registrarSource", "ldap".to_string()),
                        (
                            "registrarOwner",
                            required(change, change.mapping.as_ref(), "mapping")?.to_string(),
                        ),
                    ],
                )),
                Action::Update => update(change, &dn, |field| match field {
                    "im_name" => Some("registrarImName"),
                    "mapping" => Some("registrarOwner"),
                    _ => None,
                }),
                Action::Remove => Ok(delete(&dn)),
                Action::Deactivate | Action::Reactivate => {
                    Err(refuse(change, "registrations cannot be deactivated"))
                }
            }
        }
        Kind::Group => {
            let dn = base.group_dn(required(change, change.group.as_ref(), "group")?);
            match change.action {
                Action::Add => {
                    let kind = change
                        .group_kind()
                        .ok_or_else(|| refuse(change, "the plan gives no group kind"))?;
                    let mut attributes = vec![
                        ("objectClass", "registrarGroup".to_string()),
                        (
                            "registrarGroupName",
                            required(change, change.group.as_ref(), "group")?.to_string(),
                        ),
                        ("registrarGroupKind", kind.name().to_string()),
                    ];
                    if let Some(source) = change.source() {
                        attributes.push(("registrarSource", source.to_string()));
                    }
                    attributes.push((
                        "registrarOwner",
                        required(change, change.group_rule(), "group rule")?.to_string(),
                    ));
                    Ok(add(&dn, attributes))
                }
                Action::Update => update(change, &dn, |field| match field {
                    "group_rule" => Some("registrarOwner"),
                    "kind" => Some("registrarGroupKind"),
                    "source" => Some("registrarSource"),
                    _ => None,
                }),
                Action::Remove => Ok(delete(&dn)),
                Action::Deactivate | Action::Reactivate => {
                    Err(refuse(change, "groups cannot be deactivated"))
                }
            }
        }
        Kind::GroupMember => {
            let dn = base.group_dn(required(change, change.group.as_ref(), "group")?);
            let member = base.account_dn(required(change, change.member.as_ref(), "member")?);
            let op = match change.action {
                Action::Add => ModOp::Add,
                Action::Remove => ModOp::Delete,
                Action::Update | Action::Deactivate | Action::Reactivate => {
                    return Err(refuse(change, "memberships can only be added or removed"))
                }
            };
            Ok(modify(
                &dn,
                vec![Modification {
                    op,
                    attribute: "member".to_string(),
                    values: vec![member.into_bytes()],
                }],
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::adapters::ldif::{Change as LdifChange, Directory, LdifReader, Record};
    use registrar_core::entry::Entry;
    use registrar_core::model::{GroupKind, Profile};
    use registrar_core::plan::{Detail, FieldChange, Summary};

    fn plan(serial: i64, changes: Vec<Change>) -> Plan {
        Plan {
            format_version: 1,
            revision: Some("abc123".to_string()),
            state_serial: serial,
            inputs_digest: String::new(),
            config_digest: String::new(),
            summary: Summary::default(),
            changes,
            warnings: Vec::new(),
            skipped: BTreeMap::new(),
            group_skipped: BTreeMap::new(),
            imports: Vec::new(),
            sources: Default::default(),
        }
    }

    fn text(plan: &Plan, base: &LdifBase) -> String {
        let mut out = Vec::new();
        write_ldif(plan, base, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The output read back by our own LDIF reader: change records only.
    fn read_back(plan: &Plan, base: &LdifBase) -> Vec<ChangeRecord> {
        let text = text(plan, base);
        for line in text.lines() {
            assert!(line.is_ascii() && line.len() <= 76, "{line:?} in\n{text}");
        }
        LdifReader::new(text.as_bytes())
            .map(|record| match record {
                Ok(Record::Change(change)) => change,
                other => panic!("{other:?} in\n{text}"),
            })
            .collect()
    }

    fn account_add(anchor: &str, dn: &str, profile: &[(ProfileField, &str)]) -> Change {
        let mut p = Profile::default();
        for (field, value) in profile {
            p.set(*field, Some(value.to_string()));
        }
        Change {
            account: Some(anchor.into()),
            dn: Some(dn.into()),
            ..Change::new(Action::Add, Kind::Account)
        }
        .with_detail(Detail {
            source: Some("hr".into()),
            profile: Some(p),
            ..Detail::default()
        })
    }

    fn registration(action: Action, protocol: &str, name: &str, anchor: &str) -> Change {
        Change {
            protocol: Some(protocol.into()),
            im_name: Some(name.into()),
            account: Some(anchor.into()),
            mapping: Some("aol-mail".into()),
            ..Change::new(action, Kind::Registration)
        }
    }

    fn group_add(name: &str) -> Change {
        Change {
            group: Some(name.into()),
            ..Change::new(Action::Add, Kind::Group)
        }
        .with_detail(Detail {
            group_rule: Some("lists".into()),
            group_kind: Some(GroupKind::DistributionList),
            source: Some("hr".into()),
            ..Detail::default()
        })
    }

    fn member(action: Action, group: &str, anchor: &str) -> Change {
        Change {
            group: Some(group.into()),
            member: Some(anchor.into()),
            ..Change::new(action, Kind::GroupMember)
        }
    }

    fn fields(pairs: &[(&str, Option<&str>, Option<&str>)]) -> BTreeMap<String, FieldChange> {
        pairs
            .iter()
            .map(|(field, old, new)| {
                (
                    field.to_string(),
                    (old.map(str::to_string), new.map(str::to_string)),
                )
            })
            .collect()
    }

    /// (DN, operation) of each record, with the modify's mod-specs.
    fn shape(records: &[ChangeRecord]) -> Vec<(String, String)> {
        records
            .iter()
            .map(|record| {
                let op = match &record.change {
                    LdifChange::Add(_) => "add".to_string(),
                    LdifChange::Delete => "delete".to_string(),
                    LdifChange::Modify(mods) => mods
                        .iter()
                        .map(|m| {
                            let values: Vec<String> = m
                                .values
                                .iter()
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                                .collect();
                            format!("{} {}={}", m.op.keyword(), m.attribute, values.join("|"))
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                    LdifChange::ModRdn(_) => "rename".to_string(),
                };
                (record.dn.clone(), op)
            })
            .collect()
    }

    fn added(record: &ChangeRecord) -> Entry {
        let LdifChange::Add(attributes) = &record.change else {
            panic!("not an add: {record:?}");
        };
        Entry {
            dn: record.dn.clone(),
            attributes: attributes.clone(),
        }
    }

    fn text_values<'a>(entry: &'a Entry, attribute: &'a str) -> Vec<&'a str> {
        entry
            .values(attribute)
            .map(|v| std::str::from_utf8(v).unwrap())
            .collect()
    }

    #[test]
    fn a_plan_against_serial_zero_adds_the_base_and_containers_first() {
        let base = LdifBase::parse("ou=IM,dc=example,dc=com").unwrap();
        let records = read_back(&plan(0, vec![account_add("a1", "cn=A", &[])]), &base);
        assert_eq!(
            shape(&records[..4]),
            [
                ("ou=IM,dc=example,dc=com", "add"),
                ("ou=accounts,ou=IM,dc=example,dc=com", "add"),
                ("ou=registrations,ou=IM,dc=example,dc=com", "add"),
                ("ou=groups,ou=IM,dc=example,dc=com", "add"),
            ]
            .map(|(dn, op)| (dn.to_string(), op.to_string()))
        );
        let base_entry = added(&records[0]);
        assert_eq!(
            text_values(&base_entry, "objectClass"),
            ["organizationalUnit"]
        );
        assert_eq!(text_values(&base_entry, "ou"), ["IM"]);
        assert_eq!(text_values(&added(&records[2]), "ou"), ["registrations"]);
        assert_eq!(
            records[4].dn,
            "registrarAnchor=a1,ou=accounts,ou=IM,dc=example,dc=com"
        );
        assert_eq!(records.len(), 5);

        // Against a store that has been applied to, the tree exists already.
        let records = read_back(&plan(3, vec![account_add("a1", "cn=A", &[])]), &base);
        assert_eq!(records.len(), 1);
        // An empty plan at serial 0 still makes the tree; at serial 1 it is empty.
        assert_eq!(read_back(&plan(0, Vec::new()), &base).len(), 4);
        assert!(read_back(&plan(1, Vec::new()), &base).is_empty());
    }

    #[test]
    fn base_entries_get_the_class_of_their_rdn() {
        let classes = |text: &str| {
            let base = LdifBase::parse(text).unwrap();
            let entry = added(&read_back(&plan(0, Vec::new()), &base)[0]);
            (
                entry.dn.clone(),
                entry
                    .attributes
                    .iter()
                    .map(|a| {
                        format!(
                            "{}={}",
                            a.description,
                            a.values
                                .iter()
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                                .collect::<Vec<_>>()
                                .join("|")
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            classes("ou=registrar"),
            (
                "ou=registrar".to_string(),
                vec![
                    "objectClass=organizationalUnit".to_string(),
                    "ou=registrar".to_string()
                ]
            )
        );
        assert_eq!(
            classes("O=Corp,c=US").1,
            ["objectClass=organization", "o=Corp"]
        );
        assert_eq!(
            classes("dc=im, dc=example").1,
            ["objectClass=dcObject|organization", "dc=im", "o=im"]
        );
        assert_eq!(classes("dc=im, dc=example").0, "dc=im,dc=example");
        assert_eq!(LdifBase::default().dn(), "ou=registrar");
        for (bad, why) in [
            ("", "root DN"),
            ("cn=registrar", "not cn="),
            ("ou=a+ou=b", "single"),
            ("ou=#0403616263", "#BER"),
            ("ou=a,,", "not a DN"),
        ] {
            let error = LdifBase::parse(bad).unwrap_err().to_string();
            assert!(error.contains(why), "{bad:?}: {error}");
            assert!(
                error.starts_with(&format!("--ldif-base \"{bad}\": ")),
                "{error}"
            );
        }
    }

    #[test]
    fn every_change_kind_becomes_its_record() {
        let base = LdifBase::default();
        let acc = |anchor: &str| format!("registrarAnchor={anchor},ou=accounts,ou=registrar");
        let reg = |key: &str| format!("registrarKey={key},ou=registrations,ou=registrar");
        let grp = |name: &str| format!("registrarGroupName={name},ou=groups,ou=registrar");
        let changes = vec![
            account_add(
                "a1",
                "cn=Alice,dc=x",
                &[
                    (ProfileField::DisplayName, "Alice"),
                    (ProfileField::Mail, "alice@x"),
                ],
            ),
            Change {
                account: Some("a2".into()),
                ..Change::new(Action::Update, Kind::Account)
            }
            .with_detail(Detail {
                fields: Some(fields(&[
                    ("department", Some("Sales"), Some("Finance")),
                    ("title", Some("Boss"), None),
                    ("dn", Some("cn=B,dc=x"), Some("cn=B,ou=new,dc=x")),
                    ("source", None, Some("hr")),
                ])),
                ..Detail::default()
            }),
            Change {
                account: Some("a3".into()),
                ..Change::new(Action::Reactivate, Kind::Account)
            },
            registration(Action::Remove, "aol", "Old", "a2"),
            Change {
                ..registration(Action::Update, "aol", "bob", "a2")
            }
            .with_detail(Detail {
                fields: Some(fields(&[
                    ("im_name", Some("bob"), Some("Bob")),
                    ("mapping", Some("aol-old"), Some("aol-mail")),
                ])),
                ..Detail::default()
            }),
            registration(Action::Add, "aol", "Alice", "a1"),
            member(Action::Remove, "old-list", "a2"),
            Change {
                group: Some("old-list".into()),
                ..Change::new(Action::Remove, Kind::Group)
            },
            group_add("sales"),
            Change {
                group: Some("ops".into()),
                ..Change::new(Action::Update, Kind::Group)
            }
            .with_detail(Detail {
                fields: Some(fields(&[
                    ("group_rule", Some("old"), Some("lists")),
                    ("source", Some("hr"), None),
                ])),
                ..Detail::default()
            }),
            member(Action::Add, "sales", "a1"),
            Change {
                account: Some("a4".into()),
                ..Change::new(Action::Deactivate, Kind::Account)
            },
            Change {
                account: Some("a5".into()),
                ..Change::new(Action::Remove, Kind::Account)
            },
        ];
        let records = read_back(&plan(7, changes), &base);
        let expected: Vec<(String, &str)> = vec![
            (acc("a1"), "add"),
            (acc("a2"), "replace registrarDepartment=Finance; replace registrarEntryDn=cn=B,ou=new,dc=x; replace registrarSource=hr; replace registrarTitle="),
            (acc("a3"), "replace registrarActive=TRUE"),
            (reg("aol:old"), "delete"),
            (reg("aol:bob"), "replace registrarImName=Bob; replace registrarOwner=aol-mail"),
            (reg("aol:alice"), "add"),
            (grp("old-list"), "delete member=registrarAnchor=a2,ou=accounts,ou=registrar"),
            (grp("old-list"), "delete"),
            (grp("sales"), "add"),
            (grp("ops"), "replace registrarOwner=lists; replace registrarSource="),
            (grp("sales"), "add member=registrarAnchor=a1,ou=accounts,ou=registrar"),
            (acc("a4"), "replace registrarActive=FALSE"),
            (acc("a5"), "delete"),
        ];
        assert_eq!(
            shape(&records),
            expected
                .into_iter()
                .map(|(dn, op)| (dn, op.to_string()))
                .collect::<Vec<_>>()
        );
        let account = added(&records[0]);
        assert_eq!(text_values(&account, "objectClass"), ["registrarAccount"]);
        assert_eq!(text_values(&account, "registrarAnchor"), ["a1"]);
        assert_eq!(text_values(&account, "registrarEntryDn"), ["cn=Alice,dc=x"]);
        assert_eq!(text_values(&account, "registrarActive"), ["TRUE"]);
        assert_eq!(text_values(&account, "registrarSource"), ["hr"]);
        assert_eq!(text_values(&account, "registrarDisplayName"), ["Alice"]);
        assert_eq!(text_values(&account, "registrarMail"), ["alice@x"]);
        assert!(!account.has("registrarTitle"));
        let name = added(&records[5]);
        for (attribute, value) in [
            ("objectClass", "registrarRegistration"),
            ("registrarKey", "aol:alice"),
            ("registrarProtocol", "aol"),
            ("registrarImName", "Alice"),
            ("registrarAnchor", "a1"),
            ("registrarSource", "ldap"),
            ("registrarOwner", "aol-mail"),
        ] {
            assert_eq!(text_values(&name, attribute), [value], "{attribute}");
        }
        let group = added(&records[8]);
        for (attribute, value) in [
            ("objectClass", "registrarGroup"),
            ("registrarGroupName", "sales"),
            ("registrarGroupKind", "distribution_list"),
            ("registrarSource", "hr"),
            ("registrarOwner", "lists"),
        ] {
            assert_eq!(text_values(&group, attribute), [value], "{attribute}");
        }
    }

    #[test]
    fn hostile_values_round_trip_through_dns_and_values() {
        let base = LdifBase::parse("ou=Registrar Ünïcode,dc=example").unwrap();
        let hostile = [
            "*)(uid=*",
            "a,b=c",
            "x+y",
            "#hash",
            " leading and trailing ",
            "Ærøskøbing 東京",
            "line\nbreak\r",
            "back\\slash\"quote;<>",
            "cn=Smith\\, John,ou=People",
        ];
        let mut changes = Vec::new();
        for (i, value) in hostile.iter().enumerate() {
            changes.push(account_add(
                value,
                value,
                &[
                    (ProfileField::DisplayName, value),
                    (ProfileField::Location, value),
                ],
            ));
            changes.push(registration(
                Action::Add,
                "aol",
                &format!("{}{i}", value.trim()),
                value,
            ));
            changes.push(group_add(value));
            changes.push(member(Action::Add, value, value));
        }
        let text = text(&plan(0, changes), &base);
        // Values that are not safe LDIF strings are base64, never raw.
        assert!(!text.contains("line\nbreak"));
        assert!(!text.contains("Ærø"));
        let records = read_back(&plan(0, Vec::new()), &base);
        assert_eq!(records[0].dn, "ou=Registrar Ünïcode,dc=example");
        let records: Vec<ChangeRecord> = LdifReader::new(text.as_bytes())
            .map(|r| match r.unwrap() {
                Record::Change(change) => change,
                Record::Content(entry) => panic!("{entry:?}"),
            })
            .collect();
        let rdn_value = |dn: &str| -> String {
            let parsed = Dn::parse(dn).unwrap_or_else(|e| panic!("{dn:?}: {e}"));
            assert_eq!(parsed.rdns().len(), 4, "{dn:?}");
            assert_eq!(
                parsed.parent().unwrap().parent().unwrap().normalized(),
                Dn::parse(base.dn()).unwrap().normalized()
            );
            match parsed.rdn().unwrap().avas() {
                [ava] => match &ava.value {
                    AttributeValue::Text(text) => text.clone(),
                    AttributeValue::Ber(_) => panic!("BER in {dn:?}"),
                },
                avas => panic!("{avas:?}"),
            }
        };
        for (i, value) in hostile.iter().enumerate() {
            let [account, name, group, membership] = &records[4 + 4 * i..8 + 4 * i] else {
                unreachable!()
            };
            assert_eq!(rdn_value(&account.dn), *value);
            let account = added(account);
            assert_eq!(text_values(&account, "registrarAnchor"), [*value]);
            assert_eq!(text_values(&account, "registrarEntryDn"), [*value]);
            assert_eq!(text_values(&account, "registrarDisplayName"), [*value]);
            assert_eq!(text_values(&account, "registrarLocation"), [*value]);
            let key = format!("aol:{}{i}", value.trim().to_lowercase());
            assert_eq!(rdn_value(&name.dn), key);
            assert_eq!(text_values(&added(name), "registrarKey"), [key.as_str()]);
            assert_eq!(text_values(&added(name), "registrarAnchor"), [*value]);
            assert_eq!(rdn_value(&group.dn), *value);
            assert_eq!(text_values(&added(group), "registrarGroupName"), [*value]);
            let LdifChange::Modify(mods) = &membership.change else {
                panic!("{membership:?}")
            };
            assert_eq!(membership.dn, group.dn);
            let member_dn = std::str::from_utf8(&mods[0].values[0]).unwrap();
            assert_eq!(member_dn, account.dn);
            assert_eq!(rdn_value(member_dn), *value);
        }
    }

    #[test]
    fn applied_in_order_the_records_build_the_tree_strictly() {
        // Two plans, as two applies would go: the second changes what the first made.
        let base = LdifBase::default();
        let first = plan(
            0,
            vec![
                account_add("a1", "cn=A,dc=x", &[(ProfileField::Title, "Boss")]),
                account_add("a2", "cn=B,dc=x", &[]),
                registration(Action::Add, "aol", "Alice", "a1"),
                registration(Action::Add, "aol", "bob", "a2"),
                group_add("sales"),
                member(Action::Add, "sales", "a1"),
                member(Action::Add, "sales", "a2"),
            ],
        );
        let second = plan(
            1,
            vec![
                Change {
                    account: Some("a1".into()),
                    ..Change::new(Action::Update, Kind::Account)
                }
                .with_detail(Detail {
                    fields: Some(fields(&[
                        ("title", Some("Boss"), None),
                        ("department", None, Some("Ops")),
                    ])),
                    ..Detail::default()
                }),
                registration(Action::Remove, "aol", "bob", "a2"),
                Change {
                    ..registration(Action::Update, "aol", "alice", "a1")
                }
                .with_detail(Detail {
                    fields: Some(fields(&[("im_name", Some("Alice"), Some("ALICE"))])),
                    ..Detail::default()
                }),
                registration(Action::Add, "aol", "Bob", "a1"),
                member(Action::Remove, "sales", "a2"),
                Change {
                    account: Some("a2".into()),
                    ..Change::new(Action::Deactivate, Kind::Account)
                },
            ],
        );
        let mut tree = Directory::default();
        for plan in [&first, &second] {
            for record in read_back(plan, &base) {
                tree.apply(&record).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let a1 = tree
            .get("registrarAnchor=a1,ou=accounts,ou=registrar")
            .unwrap();
        assert!(!a1.has("registrarTitle"));
        assert_eq!(text_values(a1, "registrarDepartment"), ["Ops"]);
        let a2 = tree
            .get("registrarAnchor=a2,ou=accounts,ou=registrar")
            .unwrap();
        assert_eq!(text_values(a2, "registrarActive"), ["FALSE"]);
        let alice = tree
            .get("registrarKey=aol:alice,ou=registrations,ou=registrar")
            .unwrap();
        assert_eq!(text_values(alice, "registrarImName"), ["ALICE"]);
        let bob = tree
            .get("registrarKey=aol:bob,ou=registrations,ou=registrar")
            .unwrap();
        assert_eq!(text_values(bob, "registrarAnchor"), ["a1"]);
        assert_eq!(text_values(bob, "registrarImName"), ["Bob"]);
        let sales = tree
            .get("registrarGroupName=sales,ou=groups,ou=registrar")
            .unwrap();
        assert_eq!(
            text_values(sales, "member"),
            ["registrarAnchor=a1,ou=accounts,ou=registrar"]
        );
        assert_eq!(tree.len(), 4 + 2 + 2 + 1);
    }

    #[test]
    fn blocked_plans_say_so_in_a_comment() {
        let mut blocked = plan(2, Vec::new());
        blocked.summary.blocked = true;
        blocked.revision = Some("3f2a1c9".repeat(6));
        blocked.summary.blocked_reason =
            Some(format!("9 deletions\nexceed 5 in Ü{}", "x".repeat(90)));
        let text = text(&blocked, &LdifBase::default());
        let comments: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
        assert!(comments.iter().all(|l| l.len() <= 76), "{text}");
        let joined = comments
            .iter()
            .map(|l| l.trim_start_matches('#'))
            .collect::<String>();
        assert!(
            joined.contains(" BLOCKED: 9 deletions exceed 5 in ?xxx"),
            "{text}"
        );
        assert!(joined.contains(&"3f2a1c9".repeat(6)), "{text}");
        assert!(joined.contains("; apply refuses this plan"), "{text}");
        assert!(text.is_ascii());
        assert!(text.starts_with("version: 1\n"));
    }

    #[test]
    fn a_change_missing_what_its_record_needs_is_refused() {
        let base = LdifBase::default();
        for (change, needle) in [
            (Change::new(Action::Add, Kind::Account), "no account"),
            (
                Change {
                    account: Some("a".into()),
                    ..Change::new(Action::Add, Kind::Account)
                },
                "no dn",
            ),
            (
                Change {
                    account: Some("a".into()),
                    ..Change::new(Action::Update, Kind::Account)
                }
                .with_detail(Detail {
                    fields: Some(fields(&[("shoe_size", None, Some("9"))])),
                    ..Detail::default()
                }),
                "unknown field \"shoe_size\"",
            ),
            (
                Change {
                    mapping: None,
                    ..registration(Action::Add, "aol", "x", "a")
                },
                "no mapping",
            ),
            (member(Action::Update, "g", "a"), "only be added or removed"),
        ] {
            let error = change_record(&change, &base).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            assert!(error.to_string().contains(needle), "{error}");
        }
    }
}
