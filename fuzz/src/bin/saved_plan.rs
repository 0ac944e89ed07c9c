//! The saved-plan reader (`apply --plan FILE`, `registrar show`, `app::read_whole_plan`):
//! any bytes are a plan or an error, never a panic; a plan read is written again as
//! `plan --out` writes it (with its effect and review notes), and reads back to the same
//! plan, effect and notes.

use registrar::app::read_whole_plan;
use registrar::render::{json, PlanDocument};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok((plan, dirty, review)) = read_whole_plan(data) else {
            return;
        };
        let written = json(&PlanDocument {
            plan: &plan,
            revision_dirty: dirty,
            effect: review.effect.as_ref(),
            connection_trust: &review.connection_trust,
        });
        let (again, dirty_again, review_again) = read_whole_plan(written.as_bytes())
            .unwrap_or_else(|e| panic!("a written plan does not read back: {e}\n{written}"));
        assert_eq!(dirty_again, dirty);
        assert_eq!(again, plan, "round trip through\n{written}");
        assert_eq!(review_again, review, "round trip through\n{written}");
    });
}
