//! Applying a plan: in one transaction, its changes (`changes.rs`), the snapshots it
//! imported (`snapshots.rs`), the hashes of the rows it wrote (`hashes.rs`), the new
//! serial and the run; a plan made at another serial is refused whole.

use registrar_core::drift::{self, WrittenRow};
use registrar_core::plan::Plan;

use super::changes::ChangeWriter;
use super::database::Backend;
use super::error::{store_error, StoreError};
use super::hashes::refresh_hashes;
use super::history::{insert_run, RunRecord};
use super::open::Store;
use super::serial::{read_serial, write_serial};
use super::snapshots::{self, KeptWrites, SnapshotWriter, Standing};

impl Store {
    /// Applies `plan` in one transaction: all of it lands, or none of it. Refuses a plan
    /// made at another serial. Returns the new serial. `run` is recorded in the history
    /// in the same transaction, with the serials filled in. Kept snapshots are left as
    /// they are; see [`Store::apply_with_snapshots`].
    pub fn apply(&mut self, plan: &Plan, run: RunRecord) -> Result<i64, StoreError> {
        self.apply_with_snapshots(plan, run, &KeptWrites::default(), &mut |_| {})
    }

    /// [`Store::apply`], writing `kept` (the snapshots the plan imported, the standing
    /// facts it leaves) in the same transaction: [`Store::apply_keeping`] with everything
    /// known beforehand.
    pub fn apply_with_snapshots(
        &mut self,
        plan: &Plan,
        run: RunRecord,
        kept: &KeptWrites,
        progress: &mut dyn FnMut(u64),
    ) -> Result<i64, StoreError> {
        let keep = |writer: &mut SnapshotWriter<'_>| {
            for write in &kept.snapshots {
                writer.write(write)?;
            }
            Ok::<_, StoreError>(kept.standing.clone())
        };
        self.apply_keeping(
            plan.state_serial,
            run,
            |writer| writer.write(&plan.changes, progress),
            keep,
            || Ok(drift::written_rows(&plan.changes)),
        )
    }

    /// Applies a plan made at store serial `planned` in one transaction: all of it lands,
    /// or none of it, and a store at another serial refuses it (stale). In order:
    /// `changes` writes the plan's changes through a [`ChangeWriter`] (as many at a time
    /// as the caller has: a saved plan is written as it is read); `keep` writes the
    /// snapshots the plan imported through a [`SnapshotWriter`] (their entries can stream
    /// in as they are read again) and returns the standing facts the apply leaves, so that
    /// the store never keeps a snapshot whose plan did not land; `written` answers
    /// [`drift::written_rows`] of the plan's changes (worked out meanwhile elsewhere, if the
    /// caller likes), whose hashes are recorded. An error from any of them leaves the
    /// store as it was. `run` is recorded in the history with the serials filled in.
    /// The serial moves when the plan has changes or a snapshot is written: a saved plan
    /// made from the old snapshot is stale. Returns the new serial.
    pub fn apply_keeping<E: From<StoreError>>(
        &mut self,
        planned: i64,
        mut run: RunRecord,
        changes: impl FnOnce(&mut ChangeWriter<'_>) -> Result<(), E>,
        keep: impl FnOnce(&mut SnapshotWriter<'_>) -> Result<Option<Standing>, E>,
        written: impl FnOnce() -> Result<Vec<WrittenRow>, E>,
    ) -> Result<i64, E> {
        let location = self.location.clone();
        let fail = |e| store_error(&location, e);
        // A large plan writes rows all over the indexes: a page cache of up to 64 MiB
        // (SQLite's default is 2 MiB) keeps their hot pages in memory for the
        // transaction. (More is slower: a first import of a million users, into a store
        // of 2.5 GB, takes longer with 256 MiB or 1 GiB, page faults and all.) Multi-row
        // statements keep a statement journal, in memory rather than in a temporary file.
        if self.connection.backend() == Backend::Sqlite {
            self.connection
                .execute_batch("PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;")
                .map_err(fail)?;
        }
        let transaction = self.connection.begin_write().map_err(fail)?;
        // A leader applies only while its session holds the lead, checked on it here.
        self.confirm_lead(&transaction)?;
        let serial = read_serial(&transaction).map_err(fail)?;
        if serial != planned {
            return Err(StoreError::StalePlan {
                planned,
                actual: serial,
            }
            .into());
        }
        let mut change_writer = ChangeWriter::new(&transaction, &location)?;
        changes(&mut change_writer)?;
        let wrote_changes = change_writer.finish()?;
        let mut writer = SnapshotWriter::new(&transaction, &location, serial + 1);
        let standing = keep(&mut writer)?;
        let wrote_snapshots = writer.wrote();
        writer.finish()?;
        let new_serial = if wrote_changes || wrote_snapshots {
            serial + 1
        } else {
            serial
        };
        refresh_hashes(&transaction, written()?).map_err(fail)?;
        snapshots::write_standing(&transaction, standing.as_ref(), new_serial).map_err(fail)?;
        write_serial(&transaction, new_serial).map_err(fail)?;
        run.serial_before = serial;
        run.serial_after = new_serial;
        insert_run(&transaction, &run).map_err(fail)?;
        transaction.commit().map_err(fail)?;
        Ok(new_serial)
    }
}

#[cfg(test)]
mod tests {

    use crate::adapters::store::database::params;
    use crate::adapters::store::history::RunRecord;
    use crate::adapters::store::read::ManagedCounts;
    use registrar_core::desired::{Desired, DesiredAccount, DesiredGroup};
    use registrar_core::model::{GroupKind, Rules};
    use registrar_core::plan::Plan;
    use registrar_core::state::State;

    fn desired_with_group(group: &str) -> Desired {
        let mut desired = Desired::default();
        desired.insert_account(DesiredAccount::new("a", "cn=a,dc=x", "hr"));
        desired.groups.insert(
            group.to_string(),
            DesiredGroup {
                name: group.to_string(),
                kind: GroupKind::OrgUnit,
                source: "hr".to_string(),
                rule: group.to_string(),
                members: vec!["a".into()],
            },
        );
        desired
    }

    /// The plan of an empty store towards one org unit, `staff`, with one member.
    fn staff_plan() -> Plan {
        registrar_core::plan::plan(
            &Rules::default(),
            desired_with_group("staff"),
            &State::default(),
        )
        .unwrap()
    }

    #[test]
    fn a_saved_plan_with_groups_applies_and_loads_back() {
        let (_test_store, mut store) = crate::adapters::store::test_support::fresh_store();
        let plan = staff_plan();
        let saved: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        store.apply(&saved, RunRecord::new("test", "t")).unwrap();
        let state = store.load().unwrap();
        let row = &state.groups["staff"];
        assert_eq!(row.owner.as_deref(), Some("staff"));
        assert_eq!(row.kind, "org_unit");
        assert_eq!(row.members, vec!["a".to_string()]);
    }

    #[test]
    fn member_changes_to_an_unmanaged_group_are_refused_whole() {
        let (_test_store, mut store) = crate::adapters::store::test_support::fresh_store();
        let plan = staff_plan();
        store
            .connection
            .execute(
                "INSERT INTO groups (name, kind, source, owner) VALUES ('staff', 'team', NULL, NULL)",
                params![],
            )
            .unwrap();
        let error = store.apply(&plan, RunRecord::new("test", "t")).unwrap_err();
        assert!(error.to_string().contains("group"), "{error}");
        let state = store.load().unwrap();
        assert!(
            state.accounts.is_empty(),
            "nothing lands when one change fails"
        );
        assert_eq!(state.groups["staff"].owner, None);
        assert_eq!(state.serial, 0);
    }

    #[test]
    fn the_history_keeps_changing_runs_and_prunes_the_rest() {
        let (_test_store, mut store) = crate::adapters::store::test_support::fresh_store();
        let plan = staff_plan();
        let applied = RunRecord {
            revision: Some("abc".to_string()),
            duration_ms: Some(1234),
            ..RunRecord::new("run every: apply", "t0")
        };
        store.apply(&plan, applied).unwrap();
        for n in 0..5 {
            let planned = RunRecord {
                outcome: "planned".to_string(),
                revision: Some(format!("rev{n}")),
                ..RunRecord::new("run hourly: plan", format!("t{}", n + 1))
            };
            store.record_run(planned).unwrap();
        }
        assert_eq!(store.applied_revision().unwrap().as_deref(), Some("abc"));
        let runs = store.runs(10).unwrap();
        assert_eq!(runs.len(), 6);
        assert_eq!((runs[0].serial_before, runs[0].serial_after), (1, 1));
        assert_eq!(runs[5].duration_ms, Some(1234));

        // Keep 2: the three oldest plans go, the apply (it changed the store) stays.
        assert_eq!(store.prune_runs(2).unwrap(), 3);
        let left: Vec<String> = store
            .runs(10)
            .unwrap()
            .into_iter()
            .map(|run| run.started_at)
            .collect();
        assert_eq!(left, ["t5", "t4", "t0"]);
        assert_eq!(
            store.managed_counts().unwrap(),
            ManagedCounts {
                accounts: 1,
                registrations: 0,
                groups: 1,
                group_members: 1,
            }
        );
    }
}
