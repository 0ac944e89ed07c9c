//! Checking the parsed files together into the core's [`Rules`] and the sources' settings:
//! each section by its own check (`check_sources.rs`, `check_sections.rs`,
//! `check_lists.rs`), then the references between sections once every file is in
//! (`check_references.rs`). Every problem is collected; none stops the others.

use std::collections::BTreeMap;
use std::path::Path;

use super::check_references::check_references;
use super::locate::Locator;
use super::parse::{ParsedFile, UnreadSources};
use super::problem::{ConfigProblem, Location, UnreadableFile};
use super::settings::{LdapBind, LdapSettings, SelfService, SourceLocation, SourceSettings};
use registrar_core::dn::normalize_dn;
use registrar_core::model::Rules;

/// Tells why a data file the config names cannot be read, if it cannot (the working
/// tree, or a git revision).
pub type DataFileCheck<'a> = &'a dyn Fn(&Path) -> Result<(), UnreadableFile>;

/// Merges the parsed files and checks cross-references, collecting every problem.
pub(super) fn check(
    parsed: &[ParsedFile<'_>],
    unread: &UnreadSources,
    check_file: DataFileCheck<'_>,
    problems: &mut Vec<ConfigProblem>,
) -> Checked {
    let mut checker = Checker {
        rules: Rules::default(),
        settings: Vec::new(),
        self_service: None,
        names: BTreeMap::new(),
        sections: BTreeMap::new(),
        problems,
    };
    for ParsedFile { file, config, kept } in parsed {
        let locate = Locator { file, kept };
        let base_dir = file.path.parent().unwrap_or(Path::new("."));
        checker.sources(&config.sources, &locate, base_dir, check_file);
        checker.object_types(config.object_types.as_ref(), &locate);
        checker.accounts(config.accounts.as_ref(), &locate);
        checker.mappings(&config.mappings, &locate);
        checker.groups(&config.groups, &locate);
        checker.exclusions(&config.exclusions, &locate);
        checker.policy(config.policy.as_ref(), &locate);
        checker.protocols(&config.protocols, &locate);
        checker.schedules(&config.schedules, &locate);
        checker.self_service(config.self_service.as_ref(), &locate);
    }
    checker.self_service_source();
    check_references(
        parsed,
        unread,
        &checker.rules,
        &checker.names,
        checker.problems,
    );
    checker.finish()
}

/// What the checks make of every file together.
pub(super) struct Checked {
    pub(super) rules: Rules,
    pub(super) sources: Vec<SourceSettings>,
    pub(super) self_service: Option<SelfService>,
}

/// What the checks have gathered so far, over every file.
pub(super) struct Checker<'p> {
    pub(super) rules: Rules,
    pub(super) settings: Vec<SourceSettings>,
    /// The `self_service` section and where its `source` is, once a file set it.
    pub(super) self_service: Option<(SelfService, Location)>,
    /// Where each (kind, name) was first defined: names are unique per kind.
    pub(super) names: BTreeMap<(&'static str, String), Location>,
    /// Where each section that only one file may set was set.
    sections: BTreeMap<&'static str, Location>,
    pub(super) problems: &'p mut Vec<ConfigProblem>,
}

impl Checker<'_> {
    pub(super) fn problem(&mut self, location: Location, message: String) {
        self.problems.push(ConfigProblem { location, message });
    }

    /// Records the `kind` called `name`, defined at `at`; `false` (and a problem) when
    /// one of that name came first.
    pub(super) fn unique(&mut self, kind: &'static str, name: &str, at: Location) -> bool {
        if let Some(first) = self.names.get(&(kind, name.to_string())) {
            let message = format!("duplicate {kind} name {name:?} (first defined at {first})");
            self.problem(at, message);
            false
        } else {
            self.names.insert((kind, name.to_string()), at);
            true
        }
    }

    /// Records that `section` is set at `at`; a problem when another file set it first.
    pub(super) fn single(&mut self, section: &'static str, at: Location) {
        if let Some(first) = self.sections.get(section) {
            let message =
                format!("section {section} is set in more than one file (also at {first})");
            self.problem(at, message);
        } else {
            self.sections.insert(section, at);
        }
    }

    /// The rules and settings, every file in: each LDAP source's bind DN made a protected
    /// principal (DESIGN rule 9), and everything in name order.
    fn finish(self) -> Checked {
        let Checker {
            mut rules,
            mut settings,
            self_service,
            ..
        } = self;
        for source in &settings {
            if let SourceLocation::Ldap(LdapSettings {
                bind: LdapBind::Simple { dn, .. },
                ..
            }) = &source.location
            {
                rules.policy.protected_principals.insert(normalize_dn(dn));
            }
        }
        rules.sources.sort_by(|a, b| a.name.cmp(&b.name));
        rules.mappings.sort_by(|a, b| a.name.cmp(&b.name));
        rules.groups.sort_by(|a, b| a.owner.cmp(&b.owner));
        settings.sort_by(|a, b| a.name.cmp(&b.name));
        Checked {
            rules,
            sources: settings,
            self_service: self_service.map(|(section, _)| section),
        }
    }
}
