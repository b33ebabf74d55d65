//! The process connector's messages, parsed from and built as byte slices
//! in safe code.
//!
//! A datagram holds netlink messages, each a 16-byte `nlmsghdr`, then a
//! 20-byte `cn_msg`, then its payload; a proc event payload is `what`,
//! `cpu`, `timestamp_ns` and a union. All fields are in host byte order.
//!
//! ```text
//! nlmsghdr  len:u32 type:u16 flags:u16 seq:u32 pid:u32             (16)
//! cn_msg    idx:u32 val:u32 seq:u32 ack:u32 len:u16 flags:u16      (20)
//! event     what:u32 cpu:u32 timestamp_ns:u64 data...
//!   fork    parent_pid parent_tgid child_pid child_tgid            (i32 each)
//!   exec    pid tgid
//!   exit    pid tgid exit_code exit_signal parent_pid parent_tgid  (parents: Linux 4.19)
//!   ack     err:u32                                                (what = 0)
//! ```

/// Netlink header length.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// `cn_msg` header length.
const CN_MSG_LEN: usize = 20;
/// `NLMSG_DONE`: the type the connector sends (and expects) its messages as.
const NLMSG_DONE: u16 = 3;
/// The process connector's id: `CN_IDX_PROC`, `CN_VAL_PROC`. The index is
/// also the multicast group to bind.
pub(crate) const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
/// `PROC_CN_MCAST_LISTEN`.
pub(crate) const MCAST_LISTEN: u32 = 1;
/// `proc_event.what` values.
const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;
/// The event filter (Linux 6.6): only forks and exits reach the socket
/// (not execs, nor uid, gid, sid, comm, ptrace, coredump changes). Every
/// event is read by the monitor, and a third of a machine's are execs,
/// which change no unit's membership: an exec only revives a leader that
/// seemed to exit (see `lineage`), and its next fork does that too, before
/// its child is judged. Older kernels send execs anyway; they are parsed.
pub(crate) const WANTED_EVENTS: u32 = PROC_EVENT_FORK | PROC_EVENT_EXIT;
/// Offset of the union in a proc event.
const EVENT_DATA: usize = 16;

/// A process (or thread) was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fork {
    /// The forking thread.
    pub(crate) parent_pid: i32,
    /// The forking process (its thread group id).
    pub(crate) parent_tgid: i32,
    /// The new thread's id.
    pub(crate) child_pid: i32,
    /// The new thread's process: equal to `child_pid` for a new process,
    /// the parent's for a new thread.
    pub(crate) child_tgid: i32,
    /// `CLOCK_MONOTONIC` nanoseconds when the kernel sent the event.
    pub(crate) timestamp_ns: u64,
}

impl Fork {
    /// A new process, not a new thread of an existing one.
    pub(crate) fn is_process(&self) -> bool {
        self.child_pid == self.child_tgid
    }
}

/// A process ran `execve`.
///
/// When a thread other than the leader calls `execve`, the kernel first
/// ends the leader (an [`Exit`] with `pid == tgid`) and then gives the
/// leader's pid to the exec'ing thread: this event, with `pid == tgid`,
/// says the process lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exec {
    /// The thread that exec'd (the leader's pid by now).
    pub(crate) pid: i32,
    /// Its process.
    pub(crate) tgid: i32,
    /// `CLOCK_MONOTONIC` nanoseconds when the kernel sent the event.
    pub(crate) timestamp_ns: u64,
}

/// A thread exited; the thread group leader's exit is normally the
/// process's (see [`Exec`] and `lineage` for when it is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    /// The exiting thread.
    pub(crate) pid: i32,
    /// Its process.
    pub(crate) tgid: i32,
    /// The raw wait status (`exit_code`).
    pub(crate) exit_code: u32,
    /// The signal its parent gets (`SIGCHLD` usually).
    pub(crate) exit_signal: u32,
    /// Its parent process (0 before Linux 4.19 or when already gone).
    pub(crate) parent_tgid: i32,
    /// `CLOCK_MONOTONIC` nanoseconds when the kernel sent the event.
    pub(crate) timestamp_ns: u64,
}

impl Exit {
    /// The thread group leader exited (with a single-threaded process,
    /// the process did).
    pub(crate) fn is_process(&self) -> bool {
        self.pid == self.tgid
    }
}

/// One parsed connector message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    /// A fork.
    Fork(Fork),
    /// An exec.
    Exec(Exec),
    /// An exit.
    Exit(Exit),
    /// The answer to a `LISTEN`: the `ack` we sent plus one, and an errno
    /// (0 for success).
    Ack {
        /// Our `ack` value plus one.
        ack: u32,
        /// 0, or the (positive) errno.
        err: u32,
    },
    /// Another connector event (exec, uid, comm, ...) or another message.
    Other,
}

/// A message that does not fit its own length fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// Offset of the message in the datagram.
    pub(crate) offset: usize,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed connector message at byte {}", self.offset)
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn i32_at(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Parses the message at `offset` of `datagram`. Returns it and the
/// offset of the next one (`None` at the end).
pub(crate) fn parse_at(
    datagram: &[u8],
    offset: usize,
) -> Result<(Message, Option<usize>), Malformed> {
    let malformed = Malformed { offset };
    let rest = datagram.get(offset..).ok_or(malformed)?;
    let len = u32_at(rest, 0).ok_or(malformed)? as usize;
    let kind = u16_at(rest, 4).ok_or(malformed)?;
    if len < NLMSG_HDRLEN || len > rest.len() {
        return Err(malformed);
    }
    // Messages are padded to 4 bytes.
    let next = offset + len.next_multiple_of(4);
    let next = (next < datagram.len()).then_some(next);
    // NLMSG_ERROR, NLMSG_NOOP and the like are netlink's own, never events.
    if kind != NLMSG_DONE {
        return Ok((Message::Other, next));
    }
    Ok((parse_cn(&rest[NLMSG_HDRLEN..len]).ok_or(malformed)?, next))
}

/// Parses a `cn_msg` and its payload. `None` when it is cut short.
fn parse_cn(cn: &[u8]) -> Option<Message> {
    let (idx, val) = (u32_at(cn, 0)?, u32_at(cn, 4)?);
    let ack = u32_at(cn, 12)?;
    let payload_len = usize::from(u16_at(cn, 16)?);
    let event = cn.get(CN_MSG_LEN..CN_MSG_LEN + payload_len)?;
    if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC) {
        return Some(Message::Other);
    }
    let what = u32_at(event, 0)?;
    let timestamp_ns = u64_at(event, 8)?;
    let field = |n: usize| i32_at(event, EVENT_DATA + 4 * n);
    Some(match what {
        PROC_EVENT_FORK => Message::Fork(Fork {
            parent_pid: field(0)?,
            parent_tgid: field(1)?,
            child_pid: field(2)?,
            child_tgid: field(3)?,
            timestamp_ns,
        }),
        PROC_EVENT_EXEC => Message::Exec(Exec {
            pid: field(0)?,
            tgid: field(1)?,
            timestamp_ns,
        }),
        PROC_EVENT_EXIT => Message::Exit(Exit {
            pid: field(0)?,
            tgid: field(1)?,
            exit_code: u32_at(event, EVENT_DATA + 8)?,
            exit_signal: u32_at(event, EVENT_DATA + 12)?,
            parent_tgid: field(5).unwrap_or(0),
            timestamp_ns,
        }),
        PROC_EVENT_NONE => Message::Ack {
            ack,
            err: u32_at(event, EVENT_DATA)?,
        },
        _ => Message::Other,
    })
}

/// A control message to the connector: `payload` (one or two u32) with
/// the given `ack` tag, from netlink port `port`.
pub(crate) fn control(payload: &[u32], ack: u32, port: u32) -> Vec<u8> {
    let payload_len = 4 * payload.len();
    let total = NLMSG_HDRLEN + CN_MSG_LEN + payload_len;
    let mut out = Vec::with_capacity(total);
    // nlmsghdr
    out.extend_from_slice(&(total as u32).to_ne_bytes());
    out.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&port.to_ne_bytes());
    // cn_msg
    out.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    out.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&ack.to_ne_bytes());
    out.extend_from_slice(&(payload_len as u16).to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    for word in payload {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    out
}

/// Builds what the kernel sends, for the parser's tests and timings.
#[cfg(test)]
fn event(what: u32, ack: u32, timestamp_ns: u64, data: &[u32]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&what.to_ne_bytes());
    payload.extend_from_slice(&0u32.to_ne_bytes());
    payload.extend_from_slice(&timestamp_ns.to_ne_bytes());
    for word in data {
        payload.extend_from_slice(&word.to_ne_bytes());
    }
    // The union is 24 bytes or more in every kernel; pad like it does.
    payload.resize(payload.len().max(EVENT_DATA + 24), 0);
    let words: Vec<u32> = payload
        .chunks(4)
        .map(|c| u32::from_ne_bytes(c.try_into().expect("4-byte chunks")))
        .collect();
    control(&words, ack, 0)
}

/// A fork event as the kernel sends it.
#[cfg(test)]
pub(crate) fn fork(parent: i32, child: i32, child_tgid: i32) -> Vec<u8> {
    event(
        PROC_EVENT_FORK,
        0,
        77,
        &[
            parent as u32,
            parent as u32,
            child as u32,
            child_tgid as u32,
        ],
    )
}

/// An exec event as the kernel sends it.
#[cfg(test)]
pub(crate) fn exec(pid: i32, tgid: i32) -> Vec<u8> {
    event(PROC_EVENT_EXEC, 0, 99, &[pid as u32, tgid as u32])
}

/// An exit event as the kernel sends it.
#[cfg(test)]
pub(crate) fn exit(pid: i32, tgid: i32, parent: i32) -> Vec<u8> {
    event(
        PROC_EVENT_EXIT,
        0,
        88,
        &[pid as u32, tgid as u32, 9, 17, parent as u32, parent as u32],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_fork_of_a_process_and_of_a_thread() {
        let (message, next) = parse_at(&fork(10, 11, 11), 0).expect("valid");
        let Message::Fork(fork_) = message else {
            panic!("not a fork: {message:?}")
        };
        assert_eq!(next, None);
        assert_eq!((fork_.parent_tgid, fork_.child_pid), (10, 11));
        assert_eq!(fork_.timestamp_ns, 77);
        assert!(fork_.is_process());
        let (Message::Fork(thread), _) = parse_at(&fork(10, 12, 10), 0).expect("valid") else {
            panic!("not a fork")
        };
        assert!(!thread.is_process());
    }

    #[test]
    fn parses_an_exit_with_its_parent() {
        let (message, _) = parse_at(&exit(11, 11, 10), 0).expect("valid");
        assert_eq!(
            message,
            Message::Exit(Exit {
                pid: 11,
                tgid: 11,
                exit_code: 9,
                exit_signal: 17,
                parent_tgid: 10,
                timestamp_ns: 88,
            })
        );
    }

    #[test]
    fn parses_an_exec() {
        assert_eq!(
            parse_at(&exec(12, 12), 0).expect("valid").0,
            Message::Exec(Exec {
                pid: 12,
                tgid: 12,
                timestamp_ns: 99
            })
        );
    }

    #[test]
    fn parses_an_ack_and_ignores_other_events() {
        let ack = event(PROC_EVENT_NONE, 43, 0, &[1]);
        assert_eq!(
            parse_at(&ack, 0).expect("valid").0,
            Message::Ack { ack: 43, err: 1 }
        );
        let uid = event(0x4, 0, 0, &[5, 5, 0, 0]);
        assert_eq!(parse_at(&uid, 0).expect("valid").0, Message::Other);
    }

    #[test]
    fn walks_several_messages_in_one_datagram() {
        let mut datagram = fork(1, 2, 2);
        let second = datagram.len();
        datagram.extend(exit(2, 2, 1));
        let (_, next) = parse_at(&datagram, 0).expect("first");
        assert_eq!(next, Some(second));
        let (message, next) = parse_at(&datagram, second).expect("second");
        assert!(matches!(message, Message::Exit(_)));
        assert_eq!(next, None);
    }

    #[test]
    fn truncated_or_lying_lengths_are_malformed_not_panics() {
        let whole = fork(1, 2, 2);
        for cut in 0..whole.len() {
            let result = parse_at(&whole[..cut], 0);
            assert!(result.is_err(), "cut at {cut}: {result:?}");
        }
        // A cn_msg claiming more payload than the message holds.
        let mut lying = whole.clone();
        lying[NLMSG_HDRLEN + 16..NLMSG_HDRLEN + 18].copy_from_slice(&500u16.to_ne_bytes());
        assert_eq!(parse_at(&lying, 0), Err(Malformed { offset: 0 }));
        // An nlmsghdr shorter than itself.
        let mut short = whole;
        short[..4].copy_from_slice(&4u32.to_ne_bytes());
        assert!(parse_at(&short, 0).is_err());
    }

    #[test]
    fn another_connector_or_netlink_message_is_other() {
        let mut foreign = fork(1, 2, 2);
        foreign[NLMSG_HDRLEN..NLMSG_HDRLEN + 4].copy_from_slice(&7u32.to_ne_bytes());
        assert_eq!(parse_at(&foreign, 0).expect("valid").0, Message::Other);
        let mut error = fork(1, 2, 2);
        // NLMSG_ERROR
        error[4..6].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(parse_at(&error, 0).expect("valid").0, Message::Other);
    }

    #[test]
    fn a_listen_request_has_the_kernel_layout() {
        let bytes = control(&[MCAST_LISTEN], 42, 9);
        assert_eq!(bytes.len(), NLMSG_HDRLEN + CN_MSG_LEN + 4);
        assert_eq!(u32_at(&bytes, 0), Some(bytes.len() as u32));
        assert_eq!(u16_at(&bytes, 4), Some(NLMSG_DONE));
        assert_eq!(u32_at(&bytes, 12), Some(9));
        assert_eq!(u32_at(&bytes, NLMSG_HDRLEN), Some(CN_IDX_PROC));
        assert_eq!(u32_at(&bytes, NLMSG_HDRLEN + 12), Some(42));
        assert_eq!(u16_at(&bytes, NLMSG_HDRLEN + 16), Some(4));
        assert_eq!(
            u32_at(&bytes, NLMSG_HDRLEN + CN_MSG_LEN),
            Some(MCAST_LISTEN)
        );
    }
}
