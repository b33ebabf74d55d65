//! The model-based property test of the actor: random sequences of
//! operations (start, track and hand over processes, untrack, exits,
//! parents dying, forks, uid changes, stops, time passing across unit
//! scans, grace periods and check ticks, then shutdown) run against a
//! monitor over the fake process table on paused time, each case on a
//! runtime of its own, and are checked after every step against a plain
//! reference model and a ledger of the event stream:
//!
//! 1. only members are ever signalled: a process tracked at that moment,
//!    in a registered unit whose owner is root or its uid;
//! 2. nothing tracked outlives its unit, and `status()` agrees with the
//!    events and with itself (units, members, counts);
//! 3. every exit status is delivered once: `OwnedChild::wait` resolves
//!    with the status the fake recorded, no sooner and no later than the
//!    reap, and no `Exited` or `Reaped` is reported twice;
//!
//! plus what the model predicts cheaply: a unit whose root's parent died
//! (action `kill` or `terminate`) has, a check interval and two grace
//! periods later, no process left running that it held and its owner may
//! signal; shutdown under `TerminateUnits` ends every owned unit, and
//! under `Leave` signals nothing.
//!
//! ```text
//! cargo test -p monitor-core model                          # 256 cases
//! PROPTEST_CASES=5000 cargo test -p monitor-core model      # a longer run
//! PROPTEST_RNG_SEED=42 cargo test -p monitor-core model     # a fixed seed
//! ```
//!
//! A failure prints the shrunk sequence of operations and the events of
//! the step that broke an invariant. The actor's `select!` picks among
//! ready inputs at random, so a seed fixes the operations, not every
//! interleaving.
//!
//! Files: `ops` (the operations and how they are drawn), `run` (a case in
//! progress: each operation applied to the fake and the model), `checks`
//! (what is checked after each step and at shutdown), `model` (the
//! reference model), `ledger` (the tracked set rebuilt from the events).

mod checks;
mod ledger;
mod model;
mod ops;
mod run;

use std::time::Duration;

use proptest::prelude::*;

use self::ops::{Op, case};
use self::run::Run;
use crate::ShutdownPolicy;

const CASES: u32 = 256;
pub(super) const CHECK: Duration = Duration::from_secs(10);
pub(super) const UNIT_SCAN: Duration = Duration::from_secs(1);
pub(super) const GRACE: Duration = Duration::from_secs(2);
pub(super) const KILL_TIMEOUT: Duration = Duration::from_secs(1);
/// Beyond a check interval and two grace periods, for re-checks.
pub(super) const SLACK: Duration = Duration::from_secs(3);

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(CASES),
        // A failure is reported with its shrunk input; nothing is written
        // into the source tree.
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_actor_keeps_the_models_invariants((policy, ops) in case()) {
        // Paused time needs a current-thread runtime; one per case, so no
        // case sees another's clock, tasks or timers.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        runtime
            .block_on(play(policy, &ops))
            .map_err(TestCaseError::fail)?;
    }
}

async fn play(policy: ShutdownPolicy, ops: &[Op]) -> Result<(), String> {
    let mut run = Run::start(policy).await;
    for (step, op) in ops.iter().enumerate() {
        let at = |error| format!("after step {step} ({op:?}): {error}");
        let untracked = run.apply(op).await.map_err(at)?;
        run.check_step(untracked).await.map_err(at)?;
    }
    // Every prediction comes due before the end.
    if let Some(due) = run.predictions.iter().map(|p| p.due).max() {
        tokio::time::sleep_until(due).await;
        run.check_step(None)
            .await
            .map_err(|error| format!("when the last prediction came due: {error}"))?;
    }
    run.shut_down(policy)
        .await
        .map_err(|error| format!("at shutdown ({policy:?}): {error}"))
}
