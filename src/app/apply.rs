//! `registrar apply`: a plan, just made or saved by `plan --out`, applied to the store in
//! one transaction with the snapshots its `ldif` sources imported.
//!
//! A saved plan is applied as it is read: one thread parses the file (`saved_plan.rs`)
//! and hands its changes over a batch at a time, while the store's writing thread writes
//! them. A first import of a million users is a gigabyte of JSON; its rows start landing
//! as soon as the plan's header is read and checked, not after the whole file.

use std::borrow::{BorrowMut, Cow};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::mpsc::{self, SyncSender};

use super::clock::{now, Started};
use super::context::{Context, Outcome};
use super::error::AppError;
use super::feeds::FeedKeep;
use super::reading::head_files;
use super::reconcile::{reconcile_for, Purpose};
use super::saved_plan::{self, SavedPlanError};
use super::snapshots::{self, HandedOver, ToWriter, ToWriterChannel};
use super::sources::InputsDigest;
use super::threads::{self, spawn_scoped};
use super::{progress, region};
use crate::adapters::git::{GitError, Repo};
use crate::adapters::render;
use crate::adapters::store::{RunRecord, Store, StoreError};
use crate::adapters::tree::Tree;
use crate::config::{self, raw::ImportMode};
use registrar_core::drift::{self, WrittenRows};
use registrar_core::plan::{Change, Plan, Summary};
use registrar_core::region::StandingFacts;

/// Whether `apply` without a saved plan may go ahead once it has shown its plan
/// (DESIGN.md, "Apply asks first").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// `--auto-approve`: apply what was planned without asking.
    Auto,
    /// Ask on the terminal; refuse without one.
    Ask,
}

/// The question `apply` asks before applying a plan it just made.
pub const APPROVAL_QUESTION: &str =
    "Apply these changes? Only 'yes' is accepted.\n  Enter a value: ";

/// `registrar apply`. With `--rev REV` a saved plan must have been made at REV's commit
/// from a clean tree, and is applied without a question (it was reviewed); without a
/// saved plan, the config is read at REV and sources in `mode`, the plan is shown, and
/// it is applied once approved: `yes` on a terminal, or `--auto-approve`. Either way the
/// store keeps, in the same transaction, the snapshot of each `ldif` source the plan
/// imported.
pub fn apply_command(
    context: &Context,
    saved_plan: Option<&Path>,
    allow_deletes: bool,
    mode: ImportMode,
    approval: Approval,
) -> Result<Outcome, AppError> {
    let no_store = !Store::exists(&context.state)?;
    let started = Started::now();
    let rev_flag = context
        .rev
        .as_deref()
        .map(|rev| format!(" --rev {rev}"))
        .unwrap_or_default();
    let (summary, serial) = match saved_plan {
        Some(path) => apply_saved(context, path, allow_deletes, &started, &rev_flag)?,
        None => {
            let mut reconciled = reconcile_for(context, None, (mode, Purpose::Apply))?;
            let plan = &reconciled.plan;
            let mut stdout = std::io::stdout().lock();
            // A closed pipe is not an error: the apply goes on.
            let _ = render::write_text(plan, reconciled.revision_dirty, context.color, &mut stdout)
                .and_then(|_| stdout.flush());
            drop(stdout);
            refuse_blocked(plan, allow_deletes)?;
            if approval == Approval::Ask && !plan.changes.is_empty() {
                ask_approval()?;
            }
            let mode_flag = match mode {
                ImportMode::Full => "",
                ImportMode::Delta => " --mode delta",
            };
            let run = RunRecord {
                revision: recorded_revision(plan, reconciled.revision_dirty),
                ..started.record(format!("apply{mode_flag}{rev_flag}"))
            };
            let files = head_files(context)?;
            let imported = Imported {
                files: &files,
                plan_name: "the plan",
                feeds: std::mem::take(&mut reconciled.feeds),
            };
            let serial = apply_recorded(context, None, plan, imported, run, Some(&started))
                .map_err(|error| {
                    match error {
                        // No plan was saved: what happened is a race with another writer.
                        AppError::Store(StoreError::StalePlan { planned, actual }) => {
                            AppError::StoreChangedWhileApplying { planned, actual }
                        }
                        other => other,
                    }
                })?;
            (reconciled.plan.summary, serial)
        }
    };
    if no_store {
        eprintln!("note: {} did not exist: created it", context.state);
    }
    let s = &summary;
    println!(
        "Apply complete: {} added, {} updated, {} removed, {} deactivated, {} reactivated. State serial {serial}.",
        s.add, s.update, s.remove, s.deactivate, s.reactivate
    );
    Ok(Outcome::Success)
}

/// Asks [`APPROVAL_QUESTION`] on the terminal, and refuses unless the answer is
/// exactly `yes`; without a terminal there is nobody to ask, and it refuses.
fn ask_approval() -> Result<(), AppError> {
    if !std::io::stdin().is_terminal() {
        return Err(AppError::NoTerminalToAsk);
    }
    let mut stdout = std::io::stdout().lock();
    let _ = write!(stdout, "\n{APPROVAL_QUESTION}").and_then(|_| stdout.flush());
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(AppError::AnswerUnreadable)?;
    let _ = writeln!(stdout);
    if answer.trim_end_matches(['\r', '\n']) == "yes" {
        Ok(())
    } else {
        Err(AppError::ApplyCancelled)
    }
}

/// Refuses a plan the deletion threshold blocks, unless deletes are allowed.
fn refuse_blocked(plan: &Plan, allow_deletes: bool) -> Result<(), AppError> {
    match &plan.summary.blocked_reason {
        Some(reason) if !allow_deletes => Err(AppError::PlanBlocked {
            reason: reason.clone(),
        }),
        _ => Ok(()),
    }
}

/// `apply --plan FILE`: the saved plan read on another thread, its changes written as
/// they come once its header passed the checks. Returns its summary and the new serial.
fn apply_saved(
    context: &Context,
    path: &Path,
    allow_deletes: bool,
    started: &Started,
    rev_flag: &str,
) -> Result<(Summary, i64), AppError> {
    let channel = ToWriterChannel::new();
    let (heads, head) = mpsc::channel();
    let mut sink = ChangesToWriter {
        heads,
        to_writer: channel.sender(),
        written: WrittenRows::default(),
    };
    std::thread::scope(|scope| {
        let reading = spawn_scoped(scope, move || {
            let read = saved_plan::read_plan(path, &mut sink);
            (read, sink.written)
        })?;
        let join = || threads::join(reading);
        let Ok((head, dirty)) = head.recv() else {
            // The reading ended before the plan's header: it says why.
            let (read, _) = join();
            return Err(read.err().unwrap_or_else(|| AppError::SavedPlan {
                path: path.to_path_buf(),
                error: SavedPlanError::NoHeader,
            }));
        };
        if let Some(rev) = &context.rev {
            check_plan_revision(context, path, &head, dirty, rev)?;
        }
        let files = saved_plan_files(context, &head, dirty)?;
        refuse_blocked(&head, allow_deletes)?;
        let run = RunRecord {
            revision: recorded_revision(&head, dirty),
            ..started.record(format!("apply --plan {}{rev_flag}", path.display()))
        };
        let plan_name = format!("plan {}", path.display());
        let imported = Imported {
            files: &files,
            plan_name: &plan_name,
            feeds: Vec::new(),
        };
        let hand_over = |_: &SyncSender<ToWriter<'_>>| {
            let (read, written) = join();
            Ok(read?.map(|(plan, _)| HandedOver {
                facts: StandingFacts::of(&plan),
                written: written.finish(),
            }))
        };
        let serial = apply_handed_over(
            context,
            Store::open(&context.state)?,
            &head,
            imported,
            run,
            Some(started),
            channel,
            hand_over,
        )?;
        Ok((head.summary, serial))
    })
}

/// The saved plan's side of an apply: its header to the thread that checks it, its
/// changes to the writing thread, and the rows they write worked out on the way.
struct ChangesToWriter<'p> {
    heads: mpsc::Sender<(Plan, bool)>,
    to_writer: SyncSender<ToWriter<'p>>,
    written: WrittenRows,
}

impl saved_plan::PlanSink for ChangesToWriter<'_> {
    fn head(&mut self, head: &Plan, dirty: bool) -> bool {
        self.heads.send((head.clone(), dirty)).is_ok()
    }

    fn changes(&mut self, batch: Vec<Change>) -> bool {
        self.written.add(&batch);
        self.to_writer
            .send(ToWriter::Changes(Cow::Owned(batch)))
            .is_ok()
    }
}

/// Where an apply reads again the files its plan imported, and how it names the plan.
pub(super) struct Imported<'a> {
    pub(super) files: &'a Tree,
    pub(super) plan_name: &'a str,
    /// What the pass that made the plan read of LDAP sources through their change
    /// feeds, for the store to keep (none for a saved plan: see `feeds.rs`).
    pub(super) feeds: Vec<FeedKeep>,
}

/// The files a saved plan's imports are read again from: `--rev`'s commit (checked to
/// be the plan's), else the plan's commit when it was made from a clean tree and the
/// repository has it, else the working tree. The digests the plan recorded decide
/// whether they are still the files it imported.
fn saved_plan_files(context: &Context, saved: &Plan, dirty: bool) -> Result<Tree, AppError> {
    if context.rev.is_some() {
        return head_files(context);
    }
    Ok(match (&saved.revision, dirty) {
        (Some(commit), false) => Tree::at_revision(&context.config_dir, commit)
            .unwrap_or_else(|_| Tree::working_tree(&context.config_dir)),
        _ => Tree::working_tree(&context.config_dir),
    })
}

/// Refuses a saved plan that was not made at `rev`'s commit from a clean tree.
fn check_plan_revision(
    context: &Context,
    path: &Path,
    saved: &Plan,
    dirty: bool,
    rev: &str,
) -> Result<(), AppError> {
    let repo = Repo::discover(&context.config_dir)?.ok_or_else(|| GitError::NotARepository {
        rev: rev.to_string(),
        path: context.config_dir.clone(),
    })?;
    let commit = repo.resolve(rev)?.to_string();
    let refuse = |why: String| {
        Err(AppError::PlanNotAtRevision {
            path: path.to_path_buf(),
            why,
            rev: rev.to_string(),
            commit: commit.clone(),
        })
    };
    match saved.revision.as_deref() {
        None => refuse("records no revision".to_string()),
        Some(planned) if planned != commit => refuse(format!("was made at revision {planned}")),
        Some(planned) if dirty => refuse(format!(
            "was made from a working tree with uncommitted changes on {planned}"
        )),
        Some(_) => Ok(()),
    }
}

/// The revision a run records: the plan's commit, `-dirty` when the working tree
/// differed from it (like `git describe --dirty`).
pub(super) fn recorded_revision(plan: &Plan, dirty: bool) -> Option<String> {
    plan.revision.as_ref().map(|commit| {
        if dirty {
            format!("{commit}-dirty")
        } else {
            commit.clone()
        }
    })
}

/// The first 12 characters of a revision (all of a shorter one), as the history and
/// the log show a commit. Characters, not bytes: a hand-edited run history may hold any
/// text.
pub(super) fn short_revision(revision: &str) -> &str {
    revision
        .char_indices()
        .nth(12)
        .map_or(revision, |(end, _)| &revision[..end])
}

/// Applies `plan`, just made by [`reconcile`] with `context`, to the store in one
/// transaction, keeping the snapshots it imported, and records the run with the plan's
/// revision. Returns the new state serial.
pub fn apply_plan(
    context: &Context,
    plan: &Plan,
    command: &str,
    started_at: String,
) -> Result<i64, AppError> {
    let run = RunRecord {
        revision: plan.revision.clone(),
        ..RunRecord::new(command, started_at)
    };
    let files = head_files(context)?;
    let imported = Imported {
        files: &files,
        plan_name: "the plan",
        feeds: Vec::new(),
    };
    apply_recorded(context, None, plan, imported, run, None)
}

/// Applies `plan`, held whole in memory, and records `run` with the plan's counts,
/// finished now; with `started`, its duration runs up to here. It writes through `held`
/// when given (a leading controller's session), else through a store opened for it.
pub(super) fn apply_recorded<'p>(
    context: &Context,
    held: Option<&mut Store>,
    plan: &'p Plan,
    imported: Imported,
    run: RunRecord,
    started: Option<&Started>,
) -> Result<i64, AppError> {
    let hand_over = |to_writer: &SyncSender<ToWriter<'p>>| {
        if to_writer
            .send(ToWriter::Changes(Cow::Borrowed(&plan.changes)))
            .is_err()
        {
            return Ok(None);
        }
        // Worked out while the changes are written.
        Ok(Some(HandedOver {
            facts: StandingFacts::of(plan),
            written: drift::written_rows(&plan.changes),
        }))
    };
    let channel = ToWriterChannel::new();
    match held {
        Some(store) => apply_handed_over(
            context, store, plan, imported, run, started, channel, hand_over,
        ),
        None => apply_handed_over(
            context,
            Store::open(&context.state)?,
            plan,
            imported,
            run,
            started,
            channel,
            hand_over,
        ),
    }
}

/// Applies the plan whose header is `head` to `store` (its changes, warnings and skip counts come
/// through `hand_over`, see [`snapshots::apply_keeping`]) and records `run` with the
/// plan's counts, finished now; with `started`, its duration runs up to here. Returns
/// the new state serial.
#[allow(clippy::too_many_arguments)]
fn apply_handed_over<'p>(
    context: &Context,
    store: impl BorrowMut<Store> + Send,
    head: &Plan,
    imported: Imported,
    run: RunRecord,
    started: Option<&Started>,
    channel: ToWriterChannel<'p>,
    hand_over: impl FnOnce(&SyncSender<ToWriter<'p>>) -> Result<Option<HandedOver>, AppError>,
) -> Result<i64, AppError> {
    // Checked again inside the transaction; here so that a stale plan is told as such
    // before its files are read again.
    let serial = store.borrow().serial()?;
    if serial != head.state_serial {
        return Err(StoreError::StalePlan {
            planned: head.state_serial,
            actual: serial,
        }
        .into());
    }
    // The plan's totals stand for delta plans by region when its config is the one
    // beside the files it imported, and one a region can be planned under.
    let config = config::load(imported.files, &context.config_dir)
        .ok()
        .filter(|config| {
            !head.config_digest.is_empty()
                && InputsDigest::config_only(&config.files) == head.config_digest
                && region::blocker(config).is_none()
        });
    let keeping = snapshots::keeping(
        head,
        imported.plan_name,
        imported.files,
        &context.config_dir,
        store.borrow(),
        config.as_ref().map(|config| &config.rules),
        imported.feeds,
    )?;
    let run = with_counts(
        RunRecord {
            finished_at: now(),
            duration_ms: started.map(Started::millis).or(run.duration_ms),
            ..run
        },
        &head.summary,
    );
    // A long apply shows its progress on a terminal's stderr.
    let mut progress = progress::Progress::new("apply", "changes", Some(head.summary.changes()));
    snapshots::apply_keeping(
        store,
        head.state_serial,
        run,
        keeping,
        imported.plan_name,
        (imported.files, &context.config_dir),
        move |done| progress.advance_to(done),
        channel,
        hand_over,
    )
}

/// `run` with the counts of a plan's `summary`.
fn with_counts(run: RunRecord, summary: &Summary) -> RunRecord {
    RunRecord {
        added: summary.add,
        updated: summary.update,
        removed: summary.remove,
        deactivated: summary.deactivate,
        reactivated: summary.reactivate,
        ..run
    }
}

#[cfg(test)]
mod tests {
    use super::short_revision;

    #[test]
    fn a_short_revision_is_its_first_twelve_characters() {
        assert_eq!(short_revision("3f2a1c9d0b1e77aa01"), "3f2a1c9d0b1e");
        assert_eq!(short_revision("3f2a"), "3f2a");
        assert_eq!(short_revision(""), "");
        // A hand-edited history: never cut inside a character.
        assert_eq!(short_revision("ééééééééééééé"), "éééééééééééé");
    }
}
