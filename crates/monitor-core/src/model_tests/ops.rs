//! The operations a case is made of, and how they are drawn.

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;

use super::model::ROOT_UID;
use super::{CHECK, GRACE, UNIT_SCAN};
use crate::{OrphanAction, OrphanTarget, ShutdownPolicy, TrackOptions};

/// Whose unit a tracked root makes, said relative to the root's uid so
/// that most tracks succeed and the rest are refused.
#[derive(Debug, Clone, Copy)]
pub(super) enum Owner {
    Same,
    Root,
    Other,
}

impl Owner {
    pub(super) fn of(self, uid: u32) -> u32 {
        match self {
            Self::Same => uid,
            Self::Root => ROOT_UID,
            Self::Other if uid == 1000 => 1001,
            Self::Other => 1000,
        }
    }
}

/// How a root is tracked.
#[derive(Debug, Clone)]
pub(super) struct Opts {
    pub(super) owner: Owner,
    pub(super) tree: bool,
    pub(super) target: OrphanTarget,
    pub(super) action: OrphanAction,
    pub(super) grace: Duration,
}

impl Opts {
    pub(super) fn options(&self, owner: u32) -> TrackOptions {
        TrackOptions::new()
            .owner(owner)
            .tree(self.tree)
            .target(self.target)
            .action(self.action)
            .grace(self.grace)
    }
}

/// The process group a started process joins.
#[derive(Debug, Clone, Copy)]
pub(super) enum Group {
    Own,
    Shared(i32),
    Monitors,
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    /// A new process under a new parent, with `kids` children of its
    /// own, tracked at once or not.
    Start {
        uid: u32,
        group: Group,
        stubborn: bool,
        kids: u8,
        track: Option<Opts>,
    },
    /// A new child of the monitor, handed over with `track_child`.
    StartOwned {
        uid: u32,
        stubborn: bool,
        opts: Opts,
    },
    /// Tracks a running process as a root.
    Track { pick: Index, opts: Opts },
    /// Untracks a unit by its root's pid.
    Untrack { pick: Index },
    /// A running process exits.
    Exit { pick: Index, code: i32 },
    /// The recorded parent of a registered unit's root dies.
    ParentDeath { pick: Index },
    /// A running process forks (a new uid: a setuid helper).
    Fork {
        pick: Index,
        uid: Option<u32>,
        setsid: bool,
        stubborn: bool,
    },
    /// A running process (a tracked one, with `tracked`) changes its real
    /// uid.
    SetUid {
        pick: Index,
        tracked: bool,
        uid: u32,
    },
    /// `terminate`, `kill` or `stop` of a tracked process or unit.
    Stop {
        pick: Index,
        kill: bool,
        target: Option<OrphanTarget>,
    },
    /// Virtual time passes.
    Advance(Duration),
}

fn uid() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![ROOT_UID, 1000, 1001])
}

fn target() -> impl Strategy<Value = OrphanTarget> {
    prop::sample::select(vec![
        OrphanTarget::Process,
        OrphanTarget::Tree,
        OrphanTarget::Group,
    ])
}

fn opts() -> impl Strategy<Value = Opts> {
    let action = prop::sample::select(vec![
        OrphanAction::Terminate,
        OrphanAction::Kill,
        OrphanAction::Notify,
    ]);
    let grace = prop::sample::select(vec![Duration::ZERO, Duration::from_millis(500), GRACE]);
    let owner =
        prop_oneof![3 => Just(Owner::Same), 1 => Just(Owner::Root), 1 => Just(Owner::Other)];
    (owner, prop::bool::weighted(0.8), target(), action, grace).prop_map(
        |(owner, tree, target, action, grace)| Opts {
            owner,
            tree,
            target,
            action,
            grace,
        },
    )
}

fn group() -> impl Strategy<Value = Group> {
    prop_oneof![
        3 => Just(Group::Own),
        2 => (500..502).prop_map(Group::Shared),
        1 => Just(Group::Monitors),
    ]
}

fn advance() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (1u64..300).prop_map(Duration::from_millis),
        Just(UNIT_SCAN),
        Just(GRACE),
        Just(CHECK),
        (0u64..25_000).prop_map(Duration::from_millis),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (uid(), group(), any::<bool>(), 0..3u8, prop::option::weighted(0.8, opts()))
            .prop_map(|(uid, group, stubborn, kids, track)| {
                Op::Start { uid, group, stubborn, kids, track }
            }),
        2 => (uid(), any::<bool>(), opts())
            .prop_map(|(uid, stubborn, opts)| Op::StartOwned { uid, stubborn, opts }),
        2 => (any::<Index>(), opts()).prop_map(|(pick, opts)| Op::Track { pick, opts }),
        1 => any::<Index>().prop_map(|pick| Op::Untrack { pick }),
        2 => (any::<Index>(), 0..3).prop_map(|(pick, code)| Op::Exit { pick, code }),
        3 => any::<Index>().prop_map(|pick| Op::ParentDeath { pick }),
        4 => (
            any::<Index>(),
            prop::option::weighted(0.3, uid()),
            prop::bool::weighted(0.25),
            any::<bool>(),
        )
            .prop_map(|(pick, uid, setsid, stubborn)| Op::Fork { pick, uid, setsid, stubborn }),
        2 => (any::<Index>(), any::<bool>(), uid())
            .prop_map(|(pick, tracked, uid)| Op::SetUid { pick, tracked, uid }),
        2 => (any::<Index>(), any::<bool>(), prop::option::of(target()))
            .prop_map(|(pick, kill, target)| Op::Stop { pick, kill, target }),
        6 => advance().prop_map(Op::Advance),
    ]
}

pub(super) fn case() -> impl Strategy<Value = (ShutdownPolicy, Vec<Op>)> {
    let policy = prop::sample::select(vec![ShutdownPolicy::TerminateUnits, ShutdownPolicy::Leave]);
    (policy, prop::collection::vec(op(), 1..=40))
}
