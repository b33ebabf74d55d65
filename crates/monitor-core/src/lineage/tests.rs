//! The membership rules on made-up events, with a clock that ticks once
//! per event.

use super::*;

const A: u8 = 1;
const B: u8 = 2;

/// A lineage fed events stamped with a clock that ticks once per
/// event, as the kernel's would.
#[derive(Default)]
struct Feed {
    lineage: Lineage<u8>,
    now: u64,
}

impl Feed {
    fn tick(&mut self) -> u64 {
        self.now += 10;
        self.now
    }

    /// The caller pins `pid` now and inserts it.
    fn insert(&mut self, unit: u8, pid: i32) -> Result<(), u8> {
        let now = self.tick();
        self.lineage.insert(unit, pid, now)
    }

    fn apply(&mut self, event: ProcEvent) -> Vec<Change<u8>> {
        self.lineage.apply(&event)
    }

    fn fork_at(&mut self, at: u64, parent: i32, child: i32) -> Vec<Change<u8>> {
        self.apply(ProcEvent::Fork(Fork {
            parent_pid: parent,
            parent_tgid: parent,
            child_pid: child,
            child_tgid: child,
            timestamp_ns: at,
        }))
    }

    fn fork(&mut self, parent: i32, child: i32) -> Vec<Change<u8>> {
        let at = self.tick();
        self.fork_at(at, parent, child)
    }

    /// A new thread `tid` of process `tgid`, made by its thread `by`.
    fn thread(&mut self, tgid: i32, by: i32, tid: i32) -> Vec<Change<u8>> {
        let at = self.tick();
        self.apply(ProcEvent::Fork(Fork {
            parent_pid: by,
            parent_tgid: tgid,
            child_pid: tid,
            child_tgid: tgid,
            timestamp_ns: at,
        }))
    }

    /// A new process `child` forked by thread `by` of process `tgid`.
    fn fork_by_thread(&mut self, tgid: i32, by: i32, child: i32) -> Vec<Change<u8>> {
        let at = self.tick();
        self.apply(ProcEvent::Fork(Fork {
            parent_pid: by,
            parent_tgid: tgid,
            child_pid: child,
            child_tgid: child,
            timestamp_ns: at,
        }))
    }

    fn exit_at(&mut self, at: u64, pid: i32, tgid: i32) -> Vec<Change<u8>> {
        self.apply(ProcEvent::Exit(Exit {
            pid,
            tgid,
            exit_code: 0,
            exit_signal: 17,
            parent_tgid: 1,
            timestamp_ns: at,
        }))
    }

    fn exit(&mut self, pid: i32, tgid: i32) -> Vec<Change<u8>> {
        let at = self.tick();
        self.exit_at(at, pid, tgid)
    }

    fn exec(&mut self, pid: i32) -> Vec<Change<u8>> {
        let at = self.tick();
        self.apply(ProcEvent::Exec(Exec {
            pid,
            tgid: pid,
            timestamp_ns: at,
        }))
    }

    fn members(&self, unit: u8) -> Vec<i32> {
        let mut pids: Vec<i32> = self.lineage.members(unit).collect();
        pids.sort_unstable();
        pids
    }
}

fn joined(unit: u8, pid: i32, parent: i32) -> Change<u8> {
    Change::Joined { unit, pid, parent }
}

#[test]
fn a_fork_by_a_member_joins_its_unit_and_others_are_ignored() {
    let mut feed = Feed::default();
    feed.insert(A, 100).expect("new");
    assert_eq!(feed.fork(100, 101), vec![joined(A, 101, 100)]);
    assert_eq!(
        feed.lineage.since_ns(101),
        Some(feed.now),
        "the fork's time"
    );
    assert!(feed.fork(200, 201).is_empty());
    assert_eq!(feed.members(A), vec![100, 101]);
    assert_eq!(feed.lineage.unit_of(201), None);
}

/// The escape the units exist for: root 100 forks 101, which calls
/// setsid, forks 102 and exits at once; 100 exits too. All of it
/// happened before a single event was read, and 102 is still caught.
#[test]
fn a_double_fork_is_followed_even_after_both_parents_exited() {
    let mut feed = Feed::default();
    feed.insert(A, 100).expect("new");
    let mut changes = feed.fork(100, 101);
    changes.extend(feed.fork(101, 102));
    changes.extend(feed.exit(101, 101));
    changes.extend(feed.exit(100, 100));
    assert_eq!(
        changes,
        vec![
            joined(A, 101, 100),
            joined(A, 102, 101),
            Change::Left { unit: A, pid: 101 },
            Change::Left { unit: A, pid: 100 },
        ]
    );
    assert_eq!(feed.members(A), vec![102]);
}

/// The monitor spawns a root and inserts it before it reads the
/// root's own fork event (and the ones the root made since): that
/// event announces the member itself, not a reuse of its pid.
#[test]
fn a_root_inserted_before_its_own_fork_event_is_read_stays() {
    let mut feed = Feed::default();
    let spawned = feed.tick();
    let forked = feed.tick();
    feed.insert(A, 100).expect("new");
    assert!(feed.fork_at(spawned, 1, 100).is_empty());
    assert_eq!(feed.fork_at(forked, 100, 101), vec![joined(A, 101, 100)]);
    assert_eq!(feed.members(A), vec![100, 101]);
}

/// An earlier holder of the root's pid exited; that exit is read only
/// after the root was inserted. The root stays.
#[test]
fn an_earlier_holders_exit_read_late_changes_nothing() {
    let mut feed = Feed::default();
    let old_exit = feed.tick();
    feed.insert(A, 100).expect("new");
    assert!(feed.exit_at(old_exit, 100, 100).is_empty());
    assert_eq!(feed.members(A), vec![100]);
    assert_eq!(
        feed.exit(100, 100),
        vec![Change::Left { unit: A, pid: 100 }]
    );
}

#[test]
fn an_exit_removes_only_that_member() {
    let mut feed = Feed::default();
    feed.insert(A, 100).expect("new");
    feed.fork(100, 101);
    assert_eq!(
        feed.exit(101, 101),
        vec![Change::Left { unit: A, pid: 101 }]
    );
    assert_eq!(feed.members(A), vec![100]);
    assert!(feed.exit(555, 555).is_empty());
}

/// Member 101 exited while events were lost; its pid went to an
/// unrelated process, whose children must not join.
#[test]
fn a_reused_pid_clears_stale_membership() {
    let mut feed = Feed::default();
    feed.insert(A, 100).expect("new");
    feed.fork(100, 101);
    assert_eq!(
        feed.fork(300, 101),
        vec![Change::Stale { unit: A, pid: 101 }]
    );
    assert!(feed.fork(101, 102).is_empty());
    assert_eq!(feed.members(A), vec![100]);
    // A thread id is a pid too.
    feed.fork(100, 103);
    assert_eq!(
        feed.thread(300, 300, 103),
        vec![Change::Stale { unit: A, pid: 103 }]
    );
    // And a thread's exit under a member's pid means the same.
    feed.fork(100, 104);
    assert_eq!(
        feed.exit(104, 300),
        vec![Change::Stale { unit: A, pid: 104 }]
    );
}

#[test]
fn a_member_forking_into_a_reused_pid_is_stale_then_joined() {
    let mut feed = Feed::default();
    feed.insert(A, 100).expect("new");
    feed.fork(100, 101);
    assert_eq!(
        feed.fork(100, 101),
        vec![Change::Stale { unit: A, pid: 101 }, joined(A, 101, 100)]
    );
}

#[test]
fn threads_are_not_members_and_their_exits_change_nothing() {
    let mut feed = Feed::default();
    feed.insert(A, 100).expect("new");
    assert!(feed.thread(100, 100, 150).is_empty());
    assert_eq!(feed.members(A), vec![100]);
    // A thread's fork makes a process of the member's: it joins.
    assert_eq!(
        feed.fork_by_thread(100, 150, 151),
        vec![joined(A, 151, 100)]
    );
    assert!(feed.exit(150, 100).is_empty());
    assert_eq!(feed.members(A), vec![100, 151]);
}

/// A thread other than the leader exec'd: the kernel ended the leader
/// (exit with pid == tgid), then the process went on under the same
/// pid (exec), and later forked.
#[test]
fn an_exec_from_a_thread_revives_the_process() {
    let mut feed = Feed::default();
    feed.insert(A, 100).expect("new");
    feed.thread(100, 100, 150);
    assert_eq!(
        feed.exit(100, 100),
        vec![Change::Left { unit: A, pid: 100 }]
    );
    assert_eq!(feed.exec(100), vec![Change::Revived { unit: A, pid: 100 }]);
    assert_eq!(feed.fork(100, 101), vec![joined(A, 101, 100)]);
    // An exec of a member that never left changes nothing.
    assert!(feed.exec(101).is_empty());
}

/// The leader called pthread_exit; a surviving thread forks.
#[test]
fn a_fork_by_a_departed_process_revives_it_first() {
    let mut feed = Feed::default();
    feed.insert(A, 100).expect("new");
    feed.exit(100, 100);
    assert_eq!(
        feed.fork_by_thread(100, 150, 160),
        vec![Change::Revived { unit: A, pid: 100 }, joined(A, 160, 100)]
    );
}

#[test]
fn a_departed_pid_given_to_a_new_process_is_never_revived() {
    let mut feed = Feed::default();
    feed.insert(A, 100).expect("new");
    feed.exit(100, 100);
    assert!(feed.fork(300, 100).is_empty());
    assert!(feed.exec(100).is_empty());
    assert!(feed.fork(100, 101).is_empty());
    assert_eq!(feed.lineage.member_count(A), 0);
}

#[test]
fn departed_memory_is_bounded() {
    let mut feed = Feed::default();
    feed.insert(A, 1).expect("new");
    let n = i32::try_from(DEPARTED_KEPT).expect("small") * 3;
    for pid in 2..n {
        feed.fork(1, pid);
        feed.exit(pid, pid);
    }
    assert!(feed.lineage.departed.len() <= DEPARTED_KEPT);
    assert!(feed.lineage.departed_order.len() <= 2 * DEPARTED_KEPT);
    // The most recent ones can still come back; the oldest cannot.
    assert!(!feed.exec(n - 1).is_empty());
    assert!(feed.exec(2).is_empty());
    // One pid leaving and coming back over and over stays one entry.
    for _ in 0..3 * DEPARTED_KEPT {
        feed.exit(1, 1);
        feed.exec(1);
    }
    assert!(feed.lineage.departed_order.len() <= 2 * DEPARTED_KEPT);
    assert_eq!(feed.lineage.unit_of(1), Some(A));
}

#[test]
fn units_are_separate_and_a_pid_belongs_to_one() {
    let mut feed = Feed::default();
    feed.insert(A, 100).expect("new");
    feed.insert(B, 200).expect("new");
    feed.fork(100, 101);
    feed.fork(200, 201);
    assert_eq!(feed.insert(B, 101), Err(A));
    assert_eq!(feed.insert(A, 101), Ok(()));
    assert_eq!(feed.members(A), vec![100, 101]);
    assert_eq!(feed.members(B), vec![200, 201]);
    feed.exit(100, 100);
    let mut gone = feed.lineage.remove_unit(A);
    gone.sort_unstable();
    assert_eq!(gone, vec![101]);
    // Nothing of A comes back, and its old members' forks join nothing.
    assert!(feed.exec(100).is_empty());
    assert!(feed.fork(101, 102).is_empty());
    assert_eq!(feed.lineage.unit_of(201), Some(B));
    assert_eq!(feed.lineage.remove(201), Some(B));
    assert_eq!(feed.members(B), vec![200]);
}

#[test]
fn an_overrun_changes_nothing_here() {
    let mut feed = Feed::default();
    feed.insert(A, 100).expect("new");
    assert!(feed.apply(ProcEvent::Overrun).is_empty());
    assert_eq!(feed.lineage.member_count(A), 1);
}
