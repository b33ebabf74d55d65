//! A monitor's events: [`EventLog`] timestamps each one as it arrives and
//! waits for a specific one with a deadline.

use std::time::{Duration, Instant};

use monitor_core::{Event, MonitorHandle, ProcessId};
use tokio::sync::{broadcast, mpsc};

/// Waits for the next event matching `pred` on a raw receiver; panics after
/// `timeout`, if events were lost, or if the monitor closed the stream.
pub(crate) async fn recv_matching(
    rx: &mut broadcast::Receiver<Event>,
    timeout: Duration,
    what: &str,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("no {what} event within {timeout:?}"),
            Ok(Err(error)) => panic!("event stream broke while waiting for {what}: {error}"),
            Ok(Ok(event)) if pred(&event) => return event,
            Ok(Ok(_)) => {}
        }
    }
}

enum Stamped {
    Event(Instant, Event),
    Lagged(u64),
}

/// Every event of one monitor, timestamped by a task that does nothing but
/// receive (so a timestamp is within scheduling noise of the emission).
#[derive(Debug)]
pub(crate) struct EventLog {
    rx: mpsc::UnboundedReceiver<Stamped>,
    seen: Vec<(Instant, Event)>,
    lost: u64,
}

impl std::fmt::Debug for Stamped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Event(at, event) => write!(f, "{at:?} {event:?}"),
            Self::Lagged(n) => write!(f, "lagged {n}"),
        }
    }
}

impl EventLog {
    /// Subscribes to `handle` and starts recording.
    pub(crate) async fn subscribe(handle: &MonitorHandle) -> Self {
        Self::new(handle.subscribe().await.expect("subscribe"))
    }

    /// Records everything `rx` receives from now on.
    pub(crate) fn new(mut rx: broadcast::Receiver<Event>) -> Self {
        let (tx, out) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let item = match rx.recv().await {
                    Ok(event) => Stamped::Event(Instant::now(), event),
                    Err(broadcast::error::RecvError::Lagged(n)) => Stamped::Lagged(n),
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if tx.send(item).is_err() {
                    break;
                }
            }
        });
        Self {
            rx: out,
            seen: Vec::new(),
            lost: 0,
        }
    }

    fn push(&mut self, item: Stamped) {
        match item {
            Stamped::Event(at, event) => self.seen.push((at, event)),
            Stamped::Lagged(n) => self.lost += n,
        }
    }

    /// Takes in whatever has arrived.
    fn pump(&mut self) {
        while let Ok(item) = self.rx.try_recv() {
            self.push(item);
        }
    }

    fn assert_complete(&self) {
        assert_eq!(
            self.lost, 0,
            "the event log missed {} events (lagged); negative checks would lie",
            self.lost
        );
    }

    /// The first recorded event matching `pred` (from the start of the
    /// log), waiting up to `timeout` for one. Panics naming `what`.
    pub(crate) async fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Event) -> bool,
    ) -> (Instant, Event) {
        let deadline = tokio::time::Instant::now() + timeout;
        self.pump();
        let mut checked = 0;
        loop {
            if let Some(found) = self.seen[checked..].iter().find(|(_, e)| pred(e)) {
                return found.clone();
            }
            checked = self.seen.len();
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(item)) => self.push(item),
                Ok(None) => panic!("the monitor closed its event stream before {what}"),
                Err(_) => panic!(
                    "no {what} event within {timeout:?}; events so far: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Every recorded event matching `pred` so far.
    pub(crate) fn matching(&mut self, pred: impl Fn(&Event) -> bool) -> Vec<(Instant, Event)> {
        self.pump();
        self.assert_complete();
        self.seen.iter().filter(|(_, e)| pred(e)).cloned().collect()
    }

    /// Panics if any recorded event so far matches `pred`.
    pub(crate) fn assert_none(&mut self, what: &str, pred: impl Fn(&Event) -> bool) {
        let found = self.matching(pred);
        assert!(found.is_empty(), "unexpected {what}: {found:#?}");
    }

    /// Every event recorded so far about `id`.
    pub(crate) fn about(&mut self, id: ProcessId) -> Vec<Event> {
        self.matching(|e| e.id() == Some(id))
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }
}
