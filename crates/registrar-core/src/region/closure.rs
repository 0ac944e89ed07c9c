//! The region's closure rules: from the entries a change touched, which other kept
//! entries a delta plan must consider, and which names and accounts it holds whole.
//!
//! The rules (each pulls kept entries into the region):
//!
//! - **Anchors.** Every kept entry on the anchor of a touched entry (entries sharing an
//!   anchor settle together, and an exclusion freezes an anchor whole); their names join
//!   the region.
//! - **Names.** The names a touched entry claims before or after the change, and the
//!   names the store registers to the touched anchors: every kept entry producing one.
//! - **Winners.** The anchors of the names' holders in the store, and of every entry the
//!   names pulled in: every kept entry on them (to know which entry wins each anchor).
//! - **Groups** (only with group rules): downward, the members a touched group entry
//!   (or an entry giving one of its group names) lists, through nesting; upward, every
//!   group entry listing an entry of an account whose memberships the region holds
//!   whole, through nesting; then every entry giving a group name a region group entry
//!   gives.
//!
//! The closure asks what it needs of a [`KeptDirectory`] (the kept snapshots and the
//! store's registrations); the app answers from the store. Pure: no I/O of its own.

use arcstr::ArcStr;
use std::collections::{BTreeMap, BTreeSet};

use crate::desired::{Desired, DesiredBuilder, EntryFootprint, EntryPreparer};
use crate::entry::Entry;
use crate::model::Rules;
use crate::state::RegistrationKey;

use super::prune::{pruned_group, relevant_members};

/// A kept entry's identity: its source's name and its normalised DN.
pub type EntryKey = (String, String);

/// The questions the closure asks of the kept snapshots (the entries of the last apply,
/// with their footprints) and of the store's registrations.
pub trait KeptDirectory {
    type Error;

    /// The kept entry `key` of `source`, with the footprint kept for it (`None`: the
    /// closure prepares the entry to find it); `None` when the snapshot holds no such key.
    #[allow(clippy::type_complexity)]
    fn entry(
        &self,
        source: &str,
        key: &str,
    ) -> Result<Option<(Entry, Option<EntryFootprint>)>, Self::Error>;

    /// The kept entries whose footprint has `anchor`.
    fn on_anchor(&self, anchor: &str) -> Result<Vec<EntryKey>, Self::Error>;

    /// The kept entries whose footprint has the name `name`.
    fn producing(&self, name: &RegistrationKey) -> Result<Vec<EntryKey>, Self::Error>;

    /// The kept group entries giving the group name `name`.
    fn giving_group(&self, name: &str) -> Result<Vec<EntryKey>, Self::Error>;

    /// The normalised DNs of the kept group entries of `source` listing `member`.
    fn listing(&self, source: &str, member: &str) -> Result<Vec<String>, Self::Error>;

    /// The names the store registers to the account `anchor`.
    fn names_held_by(&self, anchor: &str) -> Result<Vec<RegistrationKey>, Self::Error>;

    /// The accounts the store registers any of `names` to.
    fn holders_of(&self, names: &BTreeSet<RegistrationKey>) -> Result<Vec<ArcStr>, Self::Error>;
}

/// An entry of the region as it was (kept) and as it is, with the footprint of each.
pub(super) struct Versions {
    pub(super) before: Option<Entry>,
    pub(super) after: Option<Entry>,
    pub(super) prints: [EntryFootprint; 2],
}

impl Versions {
    /// Whether either version is a group entry a rule reads.
    pub(super) fn is_group(&self) -> bool {
        self.prints
            .iter()
            .any(|print| !print.groups.is_empty() || !print.members.is_empty())
    }
}

/// The region being gathered: its entries by (source, normalised DN), the names whose
/// claims it holds whole, the accounts whose group memberships it holds whole, and every
/// anchor it involves.
pub struct RegionEntries<'r> {
    rules: &'r Rules,
    preparer: EntryPreparer<'r>,
    entries: BTreeMap<EntryKey, Versions>,
    /// The entries the changes touched.
    touched: Vec<EntryKey>,
    /// The group entries whose members the region holds (downward from touched ones).
    expanded: BTreeSet<EntryKey>,
    names: BTreeSet<RegistrationKey>,
    members: BTreeSet<String>,
    anchors: BTreeSet<ArcStr>,
    /// Anchors whose entries are all in the region.
    anchors_whole: BTreeSet<ArcStr>,
}

impl<'r> RegionEntries<'r> {
    /// An empty region under `rules`.
    pub fn new(rules: &'r Rules) -> Self {
        RegionEntries {
            rules,
            preparer: EntryPreparer::new(rules),
            entries: BTreeMap::new(),
            touched: Vec::new(),
            expanded: BTreeSet::new(),
            names: BTreeSet::new(),
            members: BTreeSet::new(),
            anchors: BTreeSet::new(),
            anchors_whole: BTreeSet::new(),
        }
    }

    /// How many entries the region holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the region holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the region holds the entry `key` of `source`.
    pub fn contains(&self, source: &str, key: &str) -> bool {
        self.entries
            .contains_key(&(source.to_string(), key.to_string()))
    }

    /// Every anchor the region involves: the store's accounts it needs.
    pub fn anchors(&self) -> &BTreeSet<ArcStr> {
        &self.anchors
    }

    /// The names whose claims and store rows the region holds whole.
    pub fn names(&self) -> &BTreeSet<RegistrationKey> {
        &self.names
    }

    /// The accounts whose group memberships the region holds whole.
    pub fn members(&self) -> &BTreeSet<String> {
        &self.members
    }

    fn footprint(&self, source: &str, entry: Option<&Entry>) -> EntryFootprint {
        entry
            .map(|entry| {
                self.preparer
                    .footprint(&self.preparer.prepare(source, entry))
            })
            .unwrap_or_default()
    }

    fn add(&mut self, source: &str, key: &str, before: Option<Entry>, after: Option<Entry>) {
        let prints = [
            self.footprint(source, before.as_ref()),
            self.footprint(source, after.as_ref()),
        ];
        for print in &prints {
            self.anchors.extend(print.anchor.clone());
        }
        self.entries.insert(
            (source.to_string(), key.to_string()),
            Versions {
                before,
                after,
                prints,
            },
        );
    }

    /// Adds an entry the changes touched (`key`, its normalised DN, as it was and as it
    /// is; `None` where it did not exist); its anchors and names are the change's.
    pub fn insert(&mut self, source: &str, key: &str, before: Option<Entry>, after: Option<Entry>) {
        self.add(source, key, before, after);
        let versions = &self.entries[&(source.to_string(), key.to_string())];
        let mut names = Vec::new();
        let mut anchors = Vec::new();
        for print in &versions.prints {
            names.extend(print.names.iter().cloned());
            anchors.extend(print.anchor.iter().map(|anchor| anchor.to_string()));
        }
        self.names.extend(names);
        self.members.extend(anchors);
        self.touched.push((source.to_string(), key.to_string()));
    }

    /// Adds the kept entry `key` of `source`, which the changes did not touch, unless the
    /// region has it already. Returns whether it is in the region now (a key the snapshot
    /// does not hold is not).
    fn pull<K: KeptDirectory>(
        &mut self,
        kept: &K,
        source: &str,
        key: &str,
    ) -> Result<bool, K::Error> {
        if self
            .entries
            .contains_key(&(source.to_string(), key.to_string()))
        {
            return Ok(true);
        }
        let Some((entry, kept_print)) = kept.entry(source, key)? else {
            return Ok(false);
        };
        // The kept footprint is this config's (the standing facts say so): reading it
        // spares preparing the entry again, which for a large group is most of the cost.
        let print = match kept_print {
            Some(print) => print,
            None => self.footprint(source, Some(&entry)),
        };
        self.anchors.extend(print.anchor.clone());
        self.entries.insert(
            (source.to_string(), key.to_string()),
            Versions {
                before: Some(entry.clone()),
                after: Some(entry),
                prints: [print.clone(), print],
            },
        );
        Ok(true)
    }

    /// One list of the footprints of the region's entry `key` of `source`, before and
    /// after the change together.
    fn both<T: Ord + Clone>(
        &self,
        source: &str,
        key: &str,
        list: impl Fn(&EntryFootprint) -> &Vec<T>,
    ) -> BTreeSet<T> {
        let prints = &self.entries[&(source.to_string(), key.to_string())].prints;
        prints
            .iter()
            .flat_map(|print| list(print).iter().cloned())
            .collect()
    }

    /// Pulls in every kept entry on `anchor` (once per anchor); returns their keys.
    fn pull_anchor<K: KeptDirectory>(
        &mut self,
        kept: &K,
        anchor: &ArcStr,
    ) -> Result<Vec<EntryKey>, K::Error> {
        if !self.anchors_whole.insert(anchor.clone()) {
            return Ok(Vec::new());
        }
        let keys = kept.on_anchor(anchor)?;
        for (source, key) in &keys {
            self.pull(kept, source, key)?;
        }
        Ok(keys)
    }

    /// Closes the region over what the touched entries can affect: the entries on their
    /// anchors (whose names join the region), the names their accounts hold, every entry
    /// producing one of those names, and the entries on the anchors of those and of the
    /// names' holders (to know which entry wins each anchor). With group rules, also the
    /// groups (see [`RegionEntries::close_groups`]).
    pub fn close<K: KeptDirectory>(&mut self, kept: &K) -> Result<(), K::Error> {
        let touched: Vec<ArcStr> = self.anchors.iter().cloned().collect();
        for anchor in &touched {
            for (source, key) in self.pull_anchor(kept, anchor)? {
                let names = self.both(&source, &key, |print| &print.names);
                self.names.extend(names);
            }
            self.names.extend(kept.names_held_by(anchor)?);
        }
        let names: Vec<RegistrationKey> = self.names.iter().cloned().collect();
        for name in &names {
            for (source, key) in kept.producing(name)? {
                self.pull(kept, &source, &key)?;
            }
        }
        self.anchors.extend(kept.holders_of(&self.names)?);
        if !self.rules.groups.is_empty() {
            self.close_groups(kept)?;
        }
        let claimants: Vec<ArcStr> = self.anchors.iter().cloned().collect();
        for anchor in &claimants {
            self.pull_anchor(kept, anchor)?;
        }
        Ok(())
    }

    /// Closes the region over the groups the change can affect. The accounts whose
    /// memberships it holds whole are those of the touched entries and every account a
    /// touched group entry (or one giving the same group name) reaches, before or after:
    /// for each, every group entry reaching it, through nesting. Then every entry giving a
    /// group name the region's group entries give (to settle which one wins the name).
    fn close_groups<K: KeptDirectory>(&mut self, kept: &K) -> Result<(), K::Error> {
        self.close_groups_down(kept)?;
        self.close_groups_up(kept)?;
        // Every entry giving a group name a region group entry gives.
        let names: BTreeSet<String> = self
            .entries
            .values()
            .flat_map(|versions| versions.prints.iter())
            .flat_map(|print| print.groups.iter().cloned())
            .collect();
        for name in names {
            for (source, key) in kept.giving_group(&name)? {
                self.pull(kept, &source, &key)?;
            }
        }
        Ok(())
    }

    /// Downward: what touched group entries, and the entries competing for their names,
    /// reach. Their members' accounts join those whose memberships the region holds.
    fn close_groups_down<K: KeptDirectory>(&mut self, kept: &K) -> Result<(), K::Error> {
        let mut down: Vec<EntryKey> = Vec::new();
        for (source, key) in self.touched.clone() {
            if !self.entries[&(source.clone(), key.clone())].is_group() {
                continue;
            }
            for name in self.both(&source, &key, |print| &print.groups) {
                for (source, key) in kept.giving_group(&name)? {
                    self.pull(kept, &source, &key)?;
                    down.push((source, key));
                }
            }
            down.push((source, key));
        }
        while let Some((source, key)) = down.pop() {
            if !self.expanded.insert((source.clone(), key.clone())) {
                continue;
            }
            for member in self.both(&source, &key, |print| &print.members) {
                if !self.pull(kept, &source, &member)? {
                    continue;
                }
                let versions = &self.entries[&(source.clone(), member.clone())];
                let anchors: Vec<String> = versions
                    .prints
                    .iter()
                    .filter_map(|print| print.anchor.as_deref().map(str::to_string))
                    .collect();
                if versions.is_group() {
                    down.push((source.clone(), member.clone()));
                }
                self.members.extend(anchors);
            }
        }
        Ok(())
    }

    /// Upward: every group entry reaching an entry of the accounts whose memberships the
    /// region holds (its DN, before or after), or a touched entry, through nesting.
    fn close_groups_up<K: KeptDirectory>(&mut self, kept: &K) -> Result<(), K::Error> {
        let whole: Vec<ArcStr> = self.members.iter().map(|a| a.as_str().into()).collect();
        for anchor in &whole {
            self.pull_anchor(kept, anchor)?;
        }
        let mut up: Vec<EntryKey> = self.touched.clone();
        for ((source, key), versions) in &self.entries {
            let on_member = versions.prints.iter().any(|print| {
                print
                    .anchor
                    .as_deref()
                    .is_some_and(|anchor| self.members.contains(anchor))
            });
            if on_member {
                up.push((source.clone(), key.clone()));
            }
        }
        let mut listed: BTreeSet<EntryKey> = BTreeSet::new();
        while let Some((source, key)) = up.pop() {
            if !listed.insert((source.clone(), key.clone())) {
                continue;
            }
            for group in kept.listing(&source, &key)? {
                if self.pull(kept, &source, &group)? {
                    up.push((source.clone(), group));
                }
            }
        }
        Ok(())
    }

    /// The normalised DNs of the region's entries of `source`.
    pub fn keys_of(&self, source: &str) -> BTreeSet<String> {
        self.entries
            .keys()
            .filter(|(s, _)| s == source)
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// The desired state of the region's entries before the changes and after.
    ///
    /// A group entry the region only passes through (neither touched nor expanded) comes
    /// with only the members that can matter: those in the region, and those an expanded
    /// group lists. Its other members are reached, or not, the same way before and after
    /// the change, and are what they were: left out of both, they cancel, and a list of a
    /// hundred thousand members costs what its few relevant ones cost. (Not when a rule or
    /// exclusion reads `member` itself.)
    pub fn desired(&self) -> (Desired, Desired) {
        let relevant = relevant_members(self.rules, &self.entries, &self.expanded);
        let pruned: BTreeMap<&EntryKey, Entry> = match &relevant {
            Some(relevant) => self
                .entries
                .iter()
                .filter(|(key, versions)| {
                    versions.is_group()
                        && !self.expanded.contains(*key)
                        && !self.touched.contains(*key)
                })
                .filter_map(|(key, versions)| {
                    let entry = versions.after.as_ref()?;
                    let keep = relevant.get(key.0.as_str());
                    Some((key, pruned_group(entry, &versions.prints[1], keep)))
                })
                .collect(),
            None => BTreeMap::new(),
        };
        let build = |version: fn(&Versions) -> Option<&Entry>| {
            let mut builder = DesiredBuilder::new(self.rules);
            for source in &self.rules.sources {
                builder.begin_source(&source.name);
            }
            for (key, versions) in &self.entries {
                let entry = pruned.get(key).or_else(|| version(versions));
                if let Some(entry) = entry {
                    builder.add_entry(&key.0, entry);
                }
            }
            builder.finish()
        };
        (
            build(|versions| versions.before.as_ref()),
            build(|versions| versions.after.as_ref()),
        )
    }

    /// The names and members the region holds whole, for [`super::Region`], leaving the
    /// region's entries behind.
    pub fn into_held(self) -> (BTreeSet<RegistrationKey>, BTreeSet<String>) {
        (self.names, self.members)
    }
}

/// The group names whose stored rows a region needs: those its desired states, before
/// and after, give or freeze.
pub fn group_names(before: &Desired, after: &Desired) -> BTreeSet<String> {
    before
        .groups
        .keys()
        .chain(after.groups.keys())
        .chain(before.frozen_groups.iter())
        .chain(after.frozen_groups.iter())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dn::normalize_dn;
    use crate::filter::Filter;
    use crate::model::{Anchor, GroupRule, GroupSelector, Mapping, SourceRule};
    use crate::template::Template;

    /// The kept entries of source `hr`, with their footprints, and the store's
    /// registrations (name, holder): answering as the store's indexes would.
    struct Kept {
        entries: BTreeMap<EntryKey, (Entry, EntryFootprint)>,
        registrations: Vec<(RegistrationKey, ArcStr)>,
    }

    impl Kept {
        fn new(rules: &Rules, entries: &[Entry]) -> Self {
            let preparer = EntryPreparer::new(rules);
            let entries = entries
                .iter()
                .map(|entry| {
                    let print = preparer.footprint(&preparer.prepare("hr", entry));
                    (key_of(entry), (entry.clone(), print))
                })
                .collect();
            Kept {
                entries,
                registrations: Vec::new(),
            }
        }

        fn keys_where(&self, test: impl Fn(&EntryFootprint) -> bool) -> Vec<EntryKey> {
            self.entries
                .iter()
                .filter(|(_, (_, print))| test(print))
                .map(|(key, _)| key.clone())
                .collect()
        }
    }

    impl KeptDirectory for Kept {
        type Error = std::convert::Infallible;

        fn entry(
            &self,
            source: &str,
            key: &str,
        ) -> Result<Option<(Entry, Option<EntryFootprint>)>, Self::Error> {
            let found = self.entries.get(&(source.to_string(), key.to_string()));
            Ok(found.map(|(entry, print)| (entry.clone(), Some(print.clone()))))
        }

        fn on_anchor(&self, anchor: &str) -> Result<Vec<EntryKey>, Self::Error> {
            Ok(self.keys_where(|print| print.anchor.as_deref() == Some(anchor)))
        }

        fn producing(&self, name: &RegistrationKey) -> Result<Vec<EntryKey>, Self::Error> {
            Ok(self.keys_where(|print| print.names.contains(name)))
        }

        fn giving_group(&self, name: &str) -> Result<Vec<EntryKey>, Self::Error> {
            Ok(self.keys_where(|print| print.groups.iter().any(|group| group == name)))
        }

        fn listing(&self, source: &str, member: &str) -> Result<Vec<String>, Self::Error> {
            let listing = self.keys_where(|print| print.members.iter().any(|m| m == member));
            Ok(listing
                .into_iter()
                .filter(|(s, _)| s == source)
                .map(|(_, key)| key)
                .collect())
        }

        fn names_held_by(&self, anchor: &str) -> Result<Vec<RegistrationKey>, Self::Error> {
            Ok(self
                .registrations
                .iter()
                .filter(|(_, holder)| &**holder == anchor)
                .map(|(name, _)| name.clone())
                .collect())
        }

        fn holders_of(
            &self,
            names: &BTreeSet<RegistrationKey>,
        ) -> Result<Vec<ArcStr>, Self::Error> {
            Ok(self
                .registrations
                .iter()
                .filter(|(name, _)| names.contains(name))
                .map(|(_, holder)| holder.clone())
                .collect())
        }
    }

    fn key_of(entry: &Entry) -> EntryKey {
        ("hr".to_string(), normalize_dn(&entry.dn))
    }

    /// A user `cn` of the account `number` (its anchor) claiming the aim name `uid`.
    fn user(cn: &str, number: &str, uid: &str) -> Entry {
        Entry::new(format!("cn={cn},ou=people,dc=x"))
            .with("objectClass", &["top", "person", "organizationalPerson"])
            .with("cn", &[cn])
            .with("employeeNumber", &[number])
            .with("uid", &[uid])
    }

    /// A group entry `cn` listing `members`.
    fn group(cn: &str, members: &[&Entry]) -> Entry {
        let dns: Vec<&str> = members.iter().map(|member| member.dn.as_str()).collect();
        Entry::new(format!("cn={cn},ou=groups,dc=x"))
            .with("objectClass", &["top", "groupOfNames"])
            .with("cn", &[cn])
            .with("member", &dns)
    }

    fn aim(name: &str) -> RegistrationKey {
        RegistrationKey {
            protocol: "aim".into(),
            name_key: name.into(),
        }
    }

    /// Accounts anchored on `employeeNumber`, each claiming its `uid` as an aim name;
    /// with `lists`, every group entry is a distribution list named after its `cn`.
    fn rules(lists: bool) -> Rules {
        let groups = if lists {
            vec![GroupRule {
                owner: "lists".to_string(),
                name: Template::parse("{cn}").unwrap(),
                source: "hr".to_string(),
                selector: GroupSelector::DistributionList(Box::new(
                    Filter::parse("(objectClass=groupOfNames)").unwrap(),
                )),
            }]
        } else {
            Vec::new()
        };
        Rules {
            sources: vec![SourceRule {
                name: "hr".to_string(),
                anchor: Anchor::Attribute("employeeNumber".to_string()),
                allow_empty: false,
            }],
            mappings: vec![Mapping {
                name: "aim".to_string(),
                protocol: "aim".to_string(),
                value: Template::parse("{uid}").unwrap(),
                when: None,
                sources: None,
                renamed_from: Vec::new(),
            }],
            groups,
            ..Rules::default()
        }
    }

    /// The region of the change of `before` into `after` (a kept entry, or `None` for an
    /// added one) against `kept`, closed.
    fn closed<'r>(
        rules: &'r Rules,
        kept: &Kept,
        before: Option<&Entry>,
        after: Option<&Entry>,
    ) -> RegionEntries<'r> {
        let (_, key) = key_of(before.or(after).unwrap());
        let mut region = RegionEntries::new(rules);
        region.insert("hr", &key, before.cloned(), after.cloned());
        let Ok(()) = region.close(kept);
        region
    }

    fn holds(region: &RegionEntries, entry: &Entry) -> bool {
        let (source, key) = key_of(entry);
        region.contains(&source, &key)
    }

    #[test]
    fn entries_on_a_touched_anchor_are_pulled_in_with_their_names() {
        let rules = rules(false);
        let touched = user("ann", "1", "ann");
        let same_account = user("ann-admin", "1", "annadmin");
        let other = user("bob", "2", "bob");
        let kept = Kept::new(
            &rules,
            &[touched.clone(), same_account.clone(), other.clone()],
        );
        let changed = user("ann", "1", "ann2");
        let region = closed(&rules, &kept, Some(&touched), Some(&changed));

        assert!(holds(&region, &same_account));
        assert!(!holds(&region, &other));
        // The names the anchor's entries claim, before and after, are held whole.
        for name in ["ann", "ann2", "annadmin"] {
            assert!(region.names().contains(&aim(name)), "{name}");
        }
        assert!(!region.names().contains(&aim("bob")));
        assert_eq!(region.members(), &BTreeSet::from(["1".to_string()]));
    }

    #[test]
    fn entries_claiming_a_name_the_change_claims_before_or_after_are_pulled_in() {
        let rules = rules(false);
        let touched = user("ann", "1", "shared");
        let rival_before = user("cid", "3", "shared");
        let rival_after = user("dee", "4", "wanted");
        let unrelated = user("eve", "5", "eve");
        let kept = Kept::new(
            &rules,
            &[
                touched.clone(),
                rival_before.clone(),
                rival_after.clone(),
                unrelated.clone(),
            ],
        );
        let changed = user("ann", "1", "wanted");
        let region = closed(&rules, &kept, Some(&touched), Some(&changed));

        assert!(holds(&region, &rival_before));
        assert!(holds(&region, &rival_after));
        assert!(!holds(&region, &unrelated));
    }

    #[test]
    fn a_rival_claimants_anchor_comes_whole_to_settle_who_wins_it() {
        let rules = rules(false);
        let added = user("ann", "1", "shared");
        let rival = user("cid", "3", "shared");
        let rivals_twin = user("cid-admin", "3", "cidadmin");
        let kept = Kept::new(&rules, &[rival.clone(), rivals_twin.clone()]);
        let region = closed(&rules, &kept, None, Some(&added));

        assert!(holds(&region, &rival));
        assert!(holds(&region, &rivals_twin));
        // The rival's other names are not the region's: only the names it holds whole.
        assert!(!region.names().contains(&aim("cidadmin")));
    }

    #[test]
    fn names_the_store_registers_to_a_touched_account_and_their_holders_are_pulled_in() {
        let rules = rules(false);
        let touched = user("ann", "1", "ann");
        // The store registers `old` to ann's account (a name her entry no longer gives),
        // and `ann` to account 9 (a manual registration the change competes with).
        let claiming_old = user("fay", "6", "old");
        let on_holder = user("gus", "9", "gus");
        let unrelated = user("hal", "7", "hal");
        let mut kept = Kept::new(
            &rules,
            &[
                touched.clone(),
                claiming_old.clone(),
                on_holder.clone(),
                unrelated.clone(),
            ],
        );
        kept.registrations = vec![(aim("old"), "1".into()), (aim("ann"), "9".into())];
        let changed = user("ann", "1", "ann").with("cn", &["ann", "annie"]);
        let region = closed(&rules, &kept, Some(&touched), Some(&changed));

        assert!(region.names().contains(&aim("old")));
        assert!(holds(&region, &claiming_old));
        assert!(region.anchors().contains("9"));
        assert!(holds(&region, &on_holder));
        assert!(!holds(&region, &unrelated));
    }

    #[test]
    fn without_group_rules_no_group_entry_is_pulled_in() {
        let rules = rules(false);
        let touched = user("ann", "1", "ann");
        let list = group("team", &[&touched]);
        let kept = Kept::new(&rules, &[touched.clone(), list.clone()]);
        let changed = user("ann", "1", "ann2");
        let region = closed(&rules, &kept, Some(&touched), Some(&changed));

        assert!(!holds(&region, &list));
        assert_eq!(region.len(), 1);
    }

    #[test]
    fn groups_reaching_a_touched_user_are_pulled_in_through_nesting() {
        let rules = rules(true);
        let touched = user("ann", "1", "ann");
        let other = user("bob", "2", "bob");
        let team = group("team", &[&touched]);
        let department = group("department", &[&team]);
        let elsewhere = group("elsewhere", &[&other]);
        let kept = Kept::new(
            &rules,
            &[
                touched.clone(),
                other.clone(),
                team.clone(),
                department.clone(),
                elsewhere.clone(),
            ],
        );
        let changed = user("ann", "1", "ann2");
        let region = closed(&rules, &kept, Some(&touched), Some(&changed));

        assert!(holds(&region, &team));
        assert!(holds(&region, &department));
        assert!(!holds(&region, &elsewhere));
        assert!(!holds(&region, &other));
    }

    #[test]
    fn a_touched_group_brings_its_members_through_nesting_and_holds_their_memberships() {
        let rules = rules(true);
        let ann = user("ann", "1", "ann");
        let bob = user("bob", "2", "bob");
        let cid = user("cid", "3", "cid");
        let inner = group("inner", &[&bob]);
        let team = group("team", &[&ann, &inner]);
        // Bob's other list must come too: the region holds bob's memberships whole.
        let bobs_other = group("other", &[&bob]);
        let unrelated = group("unrelated", &[&cid]);
        let kept = Kept::new(
            &rules,
            &[
                ann.clone(),
                bob.clone(),
                cid.clone(),
                inner.clone(),
                team.clone(),
                bobs_other.clone(),
                unrelated.clone(),
            ],
        );
        let changed = group("team", &[&inner]);
        let region = closed(&rules, &kept, Some(&team), Some(&changed));

        for entry in [&ann, &bob, &inner, &bobs_other] {
            assert!(holds(&region, entry), "{}", entry.dn);
        }
        assert!(!holds(&region, &cid));
        assert!(!holds(&region, &unrelated));
        let members: BTreeSet<String> = ["1", "2"].map(str::to_string).into();
        assert_eq!(region.members(), &members);
    }

    #[test]
    fn entries_giving_a_group_name_of_the_region_are_pulled_in() {
        let rules = rules(true);
        let ann = user("ann", "1", "ann");
        let team = group("team", &[&ann]);
        // Another entry giving the name `team` (elsewhere in the tree) competes for it.
        let namesake = Entry::new("cn=team,ou=old,dc=x")
            .with("objectClass", &["top", "groupOfNames"])
            .with("cn", &["team"]);
        let kept = Kept::new(&rules, &[ann.clone(), team.clone(), namesake.clone()]);
        let changed = user("ann", "1", "ann2");
        let region = closed(&rules, &kept, Some(&ann), Some(&changed));

        assert!(holds(&region, &team));
        assert!(holds(&region, &namesake));
    }

    #[test]
    fn a_pass_through_group_keeps_only_its_relevant_members() {
        let rules = rules(true);
        let ann = user("ann", "1", "ann");
        let bob = user("bob", "2", "bob");
        let team = group("team", &[&ann, &bob]);
        let kept = Kept::new(&rules, &[ann.clone(), bob.clone(), team.clone()]);
        let changed = user("ann", "1", "ann2");
        let region = closed(&rules, &kept, Some(&ann), Some(&changed));
        assert!(!holds(&region, &bob));

        // Bob, outside the region, is left out of the list on both sides rather than
        // counted as an unknown member.
        let (before, after) = region.desired();
        for desired in [&before, &after] {
            assert_eq!(desired.groups["team"].members, [ArcStr::from("1")]);
            assert_eq!(desired.group_skipped.get("team"), None);
        }
        assert_eq!(
            group_names(&before, &after),
            BTreeSet::from(["team".to_string()])
        );
    }
}
