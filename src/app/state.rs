//! The store's own commands: `registrar state show` (accounts, registrations, groups),
//! `registrar state register` (a manual or self registration) and `registrar status`
//! (the last runs, the applied revision, the schedules' next fires, the kept snapshots).

use std::collections::BTreeMap;

use super::apply::short_revision;
use super::clock::{now, rfc3339};
use super::context::{Context, Outcome};
use super::error::AppError;
use super::output::{pretty_json, print_stdout};
use super::reading::{head_files, load_state, read_config};
use super::register::{self, AllowProtected, UnmanagedRegistration};
use crate::adapters::store::{RunRecord, Store};

/// Output formats of `state show`, `status` and `discover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateFormat {
    Text,
    Json,
}

/// `registrar state show`.
pub fn state_show(context: &Context, format: StateFormat) -> Result<Outcome, AppError> {
    let state = load_state(&context.state)?;
    // `State` keeps groups by name, so they come out in name order.
    let groups: Vec<_> = state.groups.values().collect();
    match format {
        StateFormat::Json => {
            let accounts: Vec<_> = state
                .accounts
                .values()
                .map(|a| {
                    serde_json::json!({
                        "anchor": a.anchor,
                        "dn": a.dn,
                        "source": a.source,
                        "managed": a.source.is_some(),
                        "status": a.status,
                        "profile": a.profile,
                    })
                })
                .collect();
            let registrations: Vec<_> = state
                .registrations
                .values()
                .map(|r| {
                    serde_json::json!({
                        "protocol": r.protocol,
                        "im_name": r.im_name,
                        "account": r.account,
                        "source": r.source,
                        "owner": r.owner,
                    })
                })
                .collect();
            let document = serde_json::json!({
                "serial": state.serial,
                "accounts": accounts,
                "registrations": registrations,
                "groups": groups,
            });
            print_stdout(&pretty_json(&document)?);
        }
        StateFormat::Text => {
            let mut out = format!("state serial {}\n", state.serial);
            out.push_str(&format!("\naccounts ({})\n", state.accounts.len()));
            for a in state.accounts.values() {
                let source = a.source.as_deref().unwrap_or("unmanaged");
                let name = a
                    .profile
                    .get(registrar_core::model::ProfileField::DisplayName)
                    .map(|n| format!(" {n:?}"))
                    .unwrap_or_default();
                // Opaque anchors (entryUUID, objectGUID) are shown with the DN.
                let dn = if *a.anchor == *registrar_core::dn::normalize_dn(&a.dn) {
                    String::new()
                } else {
                    format!(" ({})", a.dn)
                };
                out.push_str(&format!(
                    "  {}{dn} [{}, {}]{name}\n",
                    a.anchor,
                    source,
                    a.status.name()
                ));
            }
            out.push_str(&format!(
                "\nregistrations ({})\n",
                state.registrations.len()
            ));
            for r in state.registrations.values() {
                let owner = r.owner.as_deref().unwrap_or("unmanaged");
                out.push_str(&format!(
                    "  {} {:?} → {} [{}, {owner}]\n",
                    r.protocol,
                    r.im_name,
                    r.account,
                    r.source.name()
                ));
            }
            out.push_str(&format!("\ngroups ({})\n", groups.len()));
            for g in groups {
                out.push_str(&format!(
                    "  {} [{}] {} members\n",
                    g.name,
                    g.kind,
                    g.members.len()
                ));
            }
            print_stdout(&out);
        }
    }
    Ok(Outcome::Success)
}

/// `registrar state register`.
pub fn state_register(
    context: &Context,
    registration: UnmanagedRegistration,
    allow: AllowProtected,
) -> Result<Outcome, AppError> {
    let registration = UnmanagedRegistration {
        protocol: &registration.protocol.to_ascii_lowercase(),
        ..registration
    };
    let config = read_config(context, &head_files(context)?, "")?;
    let started_at = now();
    let mut store = Store::open(&context.state)?;
    let allowed = if allow == AllowProtected::Record {
        " --allow-protected"
    } else {
        ""
    };
    let run = RunRecord {
        finished_at: now(),
        added: 1,
        ..RunRecord::new(
            format!(
                "state register --source {}{allowed}",
                registration.source.name()
            ),
            started_at,
        )
    };
    let registered = register::register_unmanaged(&config, &mut store, registration, allow, run)?;
    let account = registration.account_dn.trim();
    let anchor = &registered.anchor;
    // The anchor helps where it is not the DN's own normal form.
    let anchor = if *anchor == registrar_core::dn::normalize_dn(account) {
        String::new()
    } else {
        format!(", anchor {anchor}")
    };
    println!(
        "Registered {} name {:?} to {account} ({}{anchor}).",
        registration.protocol,
        registration.im_name.trim(),
        registration.source.name()
    );
    if let Some(rule) = registered.protected {
        eprintln!(
            "warning: {account} is a protected principal ({rule}); recorded because of \
             --allow-protected, and drift reports it"
        );
    }
    Ok(Outcome::Success)
}

/// How many runs `status` lists.
const STATUS_RUNS: usize = 10;

/// `registrar status`: the last runs, the revision last applied, when each schedule
/// fires next, and the snapshots kept for delta import. Schedules come from the config (at `--rev`, or the working tree); without
/// a config directory there are none to show.
pub fn status(context: &Context, format: StateFormat) -> Result<Outcome, AppError> {
    let schedules = if context.config_dir.is_dir() || context.rev.is_some() {
        let files = head_files(context)?;
        read_config(context, &files, "")?.schedules
    } else {
        Vec::new()
    };
    let store = Store::open_if_exists(&context.state)?;
    let (serial, runs, kept) = match &store {
        Some(store) => (
            store.serial()?,
            store.runs(STATUS_RUNS)?,
            store.kept_snapshots()?,
        ),
        None => (0, Vec::new(), BTreeMap::new()),
    };
    let applied_revision = match &store {
        Some(store) => store.applied_revision()?,
        None => None,
    };
    let now = chrono::Utc::now();
    let next: Vec<(String, String, String, Option<String>)> = schedules
        .iter()
        .map(|schedule| {
            let next = schedule.next_after(now).map(rfc3339);
            (
                schedule.name.clone(),
                schedule.cron_text.clone(),
                schedule.action_name().to_string(),
                next,
            )
        })
        .collect();
    match format {
        StateFormat::Json => {
            let document = serde_json::json!({
                "state_serial": serial,
                "applied_revision": applied_revision,
                "runs": runs,
                "schedules": next.iter().map(|(name, cron, action, next)| serde_json::json!({
                    "name": name, "cron": cron, "action": action, "next": next,
                })).collect::<Vec<_>>(),
                "kept_snapshots": kept.values().map(|snapshot| {
                    let file = |file: &crate::adapters::store::KeptFile| serde_json::json!({
                        "path": file.path, "digest": file.digest, "serial": file.serial,
                    });
                    serde_json::json!({
                        "source": snapshot.source,
                        "content": file(&snapshot.content),
                        "changes": snapshot.changes.iter().map(file).collect::<Vec<_>>(),
                    })
                }).collect::<Vec<_>>(),
            });
            print_stdout(&pretty_json(&document)?);
        }
        StateFormat::Text => {
            let mut out = format!(
                "state serial {serial}, applied revision {}\n",
                applied_revision.as_deref().unwrap_or("(none recorded)")
            );
            out.push_str(&format!("\nlast runs ({})\n", runs.len()));
            for run in &runs {
                out.push_str(&format!(
                    "  {} {} [{}] serial {}→{}: +{} ~{} -{} deactivated {} reactivated {}{}{}{}\n",
                    run.finished_at,
                    run.command,
                    run.outcome,
                    run.serial_before,
                    run.serial_after,
                    run.added,
                    run.updated,
                    run.removed,
                    run.deactivated,
                    run.reactivated,
                    run.revision
                        .as_deref()
                        .map(|r| format!(" at {}", short_revision(r)))
                        .unwrap_or_default(),
                    run.duration_ms
                        .map(|ms| format!(" in {:.2}s", ms as f64 / 1000.0))
                        .unwrap_or_default(),
                    run.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ));
            }
            out.push_str(&format!("\nschedules ({})\n", next.len()));
            for (name, cron, action, next) in &next {
                out.push_str(&format!(
                    "  {name} \"{cron}\" {action}: next {}\n",
                    next.as_deref().unwrap_or("never")
                ));
            }
            out.push_str(&format!("\nkept snapshots ({})\n", kept.len()));
            for snapshot in kept.values() {
                let last = snapshot
                    .changes
                    .last()
                    .map(|file| format!(", the last {} at serial {}", file.path, file.serial))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "  {}: {} imported at serial {}, {} change file(s){last}\n",
                    snapshot.source,
                    snapshot.content.path,
                    snapshot.content.serial,
                    snapshot.changes.len()
                ));
            }
            print_stdout(&out);
        }
    }
    Ok(Outcome::Success)
}
