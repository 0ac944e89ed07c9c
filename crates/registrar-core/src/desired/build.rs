//! [`DesiredBuilder`]: takes prepared entries in reading order (users kept as arrivals
//! in fixed-size chunks) and, in `finish`, settles what depends on other entries:
//! shared and frozen anchors, claims sorted by name, groups.

use arcstr::ArcStr;
use std::collections::HashMap;

use crate::entry::Entry;
use crate::join::{Join, Sequential};
use crate::matched::Tally;
use crate::model::Rules;
use crate::quote::shown_for_message;

use super::claims::{sort_prefix, sorted_claims};
use super::desired_state::{Desired, DesiredAccount, SourceEntries, Warning, WarningKind};
use super::groups::{resolve_groups, GroupFacts, ListedGroup};
use super::prepare::{Candidate, EntryPreparer, GroupEntry, PendingClaim, Prepared, PreparedEntry};

/// Computes the desired state from whole sources. `sources` may come in any order.
pub fn desired(rules: &Rules, sources: &[SourceEntries]) -> Desired {
    let mut builder = DesiredBuilder::new(rules);
    for source in sources {
        builder.begin_source(&source.source);
        for entry in &source.entries {
            builder.add_entry(&source.source, entry);
        }
    }
    builder.finish()
}

/// A user entry as it arrived: a candidate account, or the news that an exclusion
/// freezes its anchor.
#[derive(Debug)]
pub(super) enum Arrival {
    User(Candidate),
    Frozen(ArcStr),
}

impl Arrival {
    pub(super) fn anchor(&self) -> &str {
        match self {
            Arrival::User(candidate) => &candidate.account.anchor,
            Arrival::Frozen(anchor) => anchor,
        }
    }
}

/// User entries in arrival order, kept in fixed-size chunks: growing one vector of a
/// million candidates by doubling would copy it, into fresh memory, over and over. Each
/// comes with its sort key: its anchor's first bytes and its arrival index.
#[derive(Default)]
pub(super) struct Arrivals {
    pub(super) chunks: Vec<Vec<Option<Arrival>>>,
    pub(super) order: Vec<(u64, u64, u32)>,
}

/// Arrivals per chunk.
pub(super) const ARRIVAL_CHUNK: usize = 1 << 14;

impl Arrivals {
    pub(super) fn push(&mut self, arrival: Arrival) {
        let (high, low) = sort_prefix(0, arrival.anchor());
        self.order.push((high, low, self.order.len() as u32));
        if self
            .chunks
            .last()
            .is_none_or(|chunk| chunk.len() == ARRIVAL_CHUNK)
        {
            self.chunks.push(Vec::with_capacity(ARRIVAL_CHUNK));
        }
        self.chunks
            .last_mut()
            .expect("a chunk with room")
            .push(Some(arrival));
    }

    pub(super) fn get(&self, index: u32) -> &Arrival {
        let index = index as usize;
        self.chunks[index / ARRIVAL_CHUNK][index % ARRIVAL_CHUNK]
            .as_ref()
            .expect("not taken yet")
    }

    pub(super) fn take(&mut self, index: u32) -> Arrival {
        let index = index as usize;
        self.chunks[index / ARRIVAL_CHUNK][index % ARRIVAL_CHUNK]
            .take()
            .expect("each arrival taken once")
    }
}

/// Builds [`Desired`] one entry at a time, so that readers can stream entries through it
/// without holding a whole directory in memory. The result does not depend on the order
/// in which entries or sources arrive.
pub struct DesiredBuilder<'r> {
    preparer: EntryPreparer<'r>,
    /// User entries in arrival order; anchors that several share, and frozen anchors,
    /// are settled in `finish`.
    arrivals: Arrivals,
    /// By source name, for the sources group rules read.
    group_facts: HashMap<String, GroupFacts>,
    lists: Vec<ListedGroup>,
    tally: Tally,
    out: Desired,
}

impl<'r> DesiredBuilder<'r> {
    /// Starts an empty desired state for `rules`.
    pub fn new(rules: &'r Rules) -> Self {
        let preparer = EntryPreparer::new(rules);
        let tally = preparer.watch.tally();
        DesiredBuilder {
            preparer,
            arrivals: Arrivals::default(),
            group_facts: HashMap::new(),
            lists: Vec::new(),
            tally,
            out: Desired::default(),
        }
    }

    /// The per-entry step this builder takes the results of; clone it for other threads.
    pub fn preparer(&self) -> &EntryPreparer<'r> {
        &self.preparer
    }

    /// Records that `source` was read, even if it yields no entry (rule 7 needs to know).
    pub fn begin_source(&mut self, source: &str) {
        let rules = self.preparer.rules;
        if let Some(index) = rules.sources.iter().position(|s| s.name == source) {
            self.tally.begin_source(index);
        }
        self.out
            .accounts_per_source
            .entry(source.to_string())
            .or_insert(0);
    }

    /// Adds one entry of `source`: [`EntryPreparer::prepare`], then
    /// [`DesiredBuilder::add_prepared`].
    pub(crate) fn add_entry(&mut self, source_name: &str, entry: &Entry) {
        let prepared = self.preparer.prepare(source_name, entry);
        self.add_prepared(prepared);
    }

    /// Takes the next entry's contribution, in reading order. It must come from this
    /// builder's preparer or a clone of it.
    pub fn add_prepared(&mut self, prepared: PreparedEntry) {
        self.tally.add(&prepared.1);
        match prepared.0 {
            Prepared::Ignored => {}
            Prepared::MissingAnchor(warning) => self.out.warnings.push(warning),
            Prepared::Frozen {
                anchor,
                source,
                group_dn,
            } => {
                self.out.frozen_accounts.insert(anchor.to_string());
                if let Some(dn) = group_dn {
                    let source = &self.preparer.rules.sources[source].name;
                    self.facts(source).frozen_users.insert(dn);
                }
                self.arrivals.push(Arrival::Frozen(anchor));
            }
            Prepared::User(candidate) => self.arrivals.push(Arrival::User(candidate)),
            Prepared::Group(group) => self.add_group(group),
        }
    }

    pub(super) fn facts(&mut self, source: &str) -> &mut GroupFacts {
        if !self.group_facts.contains_key(source) {
            self.group_facts
                .insert(source.to_string(), GroupFacts::default());
        }
        self.group_facts.get_mut(source).expect("just inserted")
    }

    pub(super) fn add_group(&mut self, group: GroupEntry) {
        self.out.warnings.extend(group.warnings);
        for (rule, name) in group.lists {
            if group.frozen {
                self.out.frozen_groups.insert(name);
            } else {
                self.lists.push(ListedGroup {
                    rule,
                    dn: group.dn.clone(),
                    name,
                });
            }
        }
        let source = &self.preparer.rules.sources[group.source].name;
        let facts = self.facts(source);
        if group.frozen {
            facts.frozen_groups.insert(group.dn);
            return;
        }
        facts
            .groups
            .entry(group.dn)
            .or_default()
            .extend(group.members);
    }

    /// The desired state of every entry added.
    pub fn finish(self) -> Desired {
        self.finish_with(&Sequential)
    }

    /// [`DesiredBuilder::finish`], sorting the claims of a large directory in two halves
    /// at once through `join`.
    pub fn finish_with(self, join: &impl Join) -> Desired {
        let DesiredBuilder {
            preparer,
            arrivals,
            group_facts,
            lists,
            tally,
            mut out,
        } = self;
        out.matched = tally.matched(preparer.rules, &preparer.watch);
        let rules = preparer.rules;
        let names = &preparer.names;

        // Arrivals by anchor, then in arrival order. Most comparisons are settled by the
        // anchors' first bytes, kept beside the index so that sorting touches no string.
        let mut arrivals = arrivals;
        let mut order = std::mem::take(&mut arrivals.order);
        order.sort_unstable_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| arrivals.get(a.2).anchor().cmp(arrivals.get(b.2).anchor()))
                .then(a.2.cmp(&b.2))
        });

        let mut accounts: Vec<DesiredAccount> = Vec::with_capacity(order.len());
        // By account index.
        let mut pending: Vec<Vec<PendingClaim>> = Vec::with_capacity(order.len());
        let mut per_source = vec![0u64; rules.sources.len()];
        // Per source: user DN → index into `accounts`. Accounts come in anchor order, so
        // when two share a DN the first anchor wins whatever the input order.
        let mut user_dns: HashMap<&str, HashMap<String, usize>> = HashMap::new();
        let mut keep = |candidate: Candidate| {
            let index = accounts.len();
            per_source[candidate.source] += 1;
            if let Some(dn) = candidate.group_dn {
                user_dns
                    .entry(rules.sources[candidate.source].name.as_str())
                    .or_default()
                    .entry(dn)
                    .or_insert(index);
            }
            pending.push(candidate.claims);
            accounts.push(candidate.account);
        };
        // Each anchor's arrivals together: an exclusion freezes the anchor whole (no
        // account, nothing counted), otherwise the entry first in (source, DN) order wins
        // and only its skip counts and warnings count. Settled once the anchor's every
        // arrival is known, so that the outcome does not depend on their order.
        let mut settle = |run: &mut Vec<Arrival>, out: &mut Desired| {
            if run.is_empty() {
                return;
            }
            if run
                .iter()
                .any(|arrival| matches!(arrival, Arrival::Frozen(_)))
            {
                run.clear();
                return;
            }
            let mut candidates = run.drain(..).map(|arrival| match arrival {
                Arrival::User(candidate) => candidate,
                Arrival::Frozen(_) => unreachable!("frozen runs are settled above"),
            });
            let mut winner = candidates.next().expect("a run is not empty");
            // Mostly none: a vector only allocates for an anchor read twice.
            let mut losers: Vec<Candidate> = Vec::new();
            for candidate in candidates {
                // Ties (one DN read twice) go to the first arrival.
                let key = |c: &Candidate| (c.account.source.clone(), c.account.dn.clone());
                if key(&candidate) < key(&winner) {
                    losers.push(std::mem::replace(&mut winner, candidate));
                } else {
                    losers.push(candidate);
                }
            }
            for loser in &losers {
                let (winner_dn, loser_dn) = (&winner.account.dn, &loser.account.dn);
                let anchor = &winner.account.anchor;
                out.warnings.push(Warning {
                    account: Some(anchor.to_string()),
                    ..Warning::new(
                        WarningKind::DuplicateAnchor,
                        format!(
                            "entries \"{}\" and \"{}\" share anchor {}; only \"{}\" is used",
                            shown_for_message(&**winner_dn),
                            shown_for_message(&**loser_dn),
                            shown_for_message(&**anchor),
                            shown_for_message(&**winner_dn)
                        ),
                    )
                });
            }
            if let Some(effects) = winner.effects.take() {
                for (mapping, counts) in effects.skipped {
                    let skipped = out
                        .skipped
                        .entry(rules.mappings[mapping].name.clone())
                        .or_default();
                    skipped.missing_attribute += counts.missing_attribute;
                    skipped.invalid_name += counts.invalid_name;
                    skipped.disabled += counts.disabled;
                }
                out.warnings.extend(effects.warnings);
                out.frozen_registrations
                    .extend(effects.frozen_registrations);
            }
            keep(winner);
        };
        let mut run: Vec<Arrival> = Vec::new();
        for &(_, _, index) in &order {
            let arrival = arrivals.take(index);
            if run
                .first()
                .is_some_and(|first| first.anchor() != arrival.anchor())
            {
                settle(&mut run, &mut out);
            }
            run.push(arrival);
        }
        settle(&mut run, &mut out);
        drop(arrivals);
        drop(order);
        for (source, count) in rules.sources.iter().zip(per_source) {
            if count > 0 {
                *out.accounts_per_source
                    .entry(source.name.clone())
                    .or_default() += count;
            }
        }

        resolve_groups(rules, &group_facts, lists, &user_dns, &accounts, &mut out);
        drop(user_dns);
        out.accounts = accounts;
        out.claims = sorted_claims(names, pending, join);
        out.warnings.sort();
        out.warnings.dedup();
        out
    }
}
