//! Starting a monitor inside the caller's runtime, and stopping it.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::actor::{Actor, Inputs, Mechanisms};
use crate::cgroup::{Hierarchy, Subtree};
use crate::counters::Published;
use crate::event::EventBus;
use crate::os::{LinuxOs, Os};
use crate::supervisor::spawn_watched;
use crate::{
    Config, Error, LiveCounters, MonitorHandle, OrphanAction, ReapPolicy, ShutdownPolicy, Signal,
};
use crate::{Containment, reap, scan};

/// A running monitor: its tasks, its cancellation token and a handle.
///
/// Dropping it does not stop the tasks (they end when every handle is gone
/// or the token is cancelled); call [`Monitor::shutdown`] to stop and wait.
#[derive(Debug)]
pub struct Monitor {
    handle: MonitorHandle,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// What the actor's last sweep cost (its empty walk of the children
    /// list), in nanoseconds: the SIGCHLD forwarder spaces sweeps by it
    /// (see `reap.rs`).
    sweep_cost: Arc<AtomicU64>,
    /// The counters as the actor last published them.
    counters: Arc<Published>,
}

impl Monitor {
    /// A builder over [`Config`].
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder::default()
    }

    /// Spawns the monitor's tasks on the current Tokio runtime
    /// (`current_thread` or `multi_thread`, with I/O and time enabled).
    pub fn spawn(config: Config) -> Result<Self, Error> {
        Self::spawn_with_token(config, &CancellationToken::new())
    }

    /// Like [`Monitor::spawn`], tied to the caller's token: cancelling
    /// `parent` stops the monitor (it runs on a child token, so stopping the
    /// monitor does not cancel `parent`).
    ///
    /// The stop is immediate: the actor applies the shutdown policy to what
    /// it owns (by default its units are terminated: signal, grace period,
    /// `SIGKILL`) and ends; commands still queued are not answered
    /// ([`Error::MonitorGone`]), and an [`crate::OwnedChild`] whose child
    /// has not ended by then gets `MonitorGone` from `wait`. To end the
    /// processes first with a timeout of your own and learn what was left,
    /// call [`MonitorHandle::drain`](crate::MonitorHandle::drain) before
    /// cancelling.
    pub fn spawn_with_token(config: Config, parent: &CancellationToken) -> Result<Self, Error> {
        config.validate()?;
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let os: Arc<dyn Os> = Arc::new(LinuxOs::new());
        // Register for SIGCHLD before anything could be reaped (see reap.rs).
        let sigchld = if config.enabled {
            Some(reap::listen()?)
        } else {
            None
        };
        let (sweeps_tx, sweeps_rx) = mpsc::channel(1);
        // Made on the first spawn that needs a leaf, not here: a monitor
        // that never spawns leaves no trace in the cgroup tree. Likewise
        // the fork-event socket, opened by the first unit that wants it.
        let allowed = |mechanism| config.enabled && config.containment.allows(mechanism);
        let mechanisms = Mechanisms {
            cgroups: allowed(Containment::Cgroup)
                .then_some(cgroup_subtree as fn() -> Option<Subtree>),
            fork_events: allowed(Containment::ForkEvents).then(crate::connector::connector),
        };
        let monitor = Self::start(config, os, parent.child_token(), sweeps_rx, mechanisms)?;
        if let Some(sigchld) = sigchld {
            let cancel = monitor.cancel.clone();
            let cost = Arc::clone(&monitor.sweep_cost);
            spawn_watched(
                &monitor.tasks,
                "sigchld",
                &cancel,
                reap::forward(sigchld, sweeps_tx, cost, cancel.clone()),
            );
        }
        Ok(monitor)
    }

    /// Starts the actor and the scanner; SIGCHLD wake-ups come in on
    /// `sweeps` (the real forwarder, or a test), and units may use the
    /// kernel `mechanisms` given (real ones, a test's, or none).
    pub(crate) fn start(
        config: Config,
        os: Arc<dyn Os>,
        cancel: CancellationToken,
        sweeps: mpsc::Receiver<()>,
        mechanisms: Mechanisms,
    ) -> Result<Self, Error> {
        let mut subreaper = false;
        if config.enabled && config.subreaper {
            os.set_subreaper().map_err(|source| Error::Os {
                syscall: "prctl(PR_SET_CHILD_SUBREAPER)",
                pid: os.my_pid(),
                source,
            })?;
            subreaper = true;
            tracing::info!(pid = os.my_pid(), "this process is now a child subreaper");
        }
        let (commands_tx, commands_rx) = mpsc::channel(config.command_capacity);
        // One scan is in flight at a time, so one slot is enough.
        let (scans_tx, scans_rx) = mpsc::channel(1);
        // Allocated for the first subscriber (see `EventBus`).
        let events = EventBus::new(config.event_capacity);
        let tasks = TaskTracker::new();
        let unit_rescan = Arc::new(Notify::new());
        if config.enabled {
            spawn_watched(
                &tasks,
                "scanner",
                &cancel,
                scan::run(
                    Arc::clone(&os),
                    scan::Periods {
                        check: config.check_interval,
                        full: config.full_scan_interval,
                        unit: config.unit_scan_interval,
                    },
                    Arc::clone(&unit_rescan),
                    scans_tx,
                    cancel.clone(),
                ),
            );
        }
        // Unbounded because wakers cannot wait; see `watch.rs`.
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        let sweep_cost = Arc::new(AtomicU64::new(0));
        let counters = Arc::new(Published::default());
        let actor = Actor::new(
            os,
            config,
            events,
            subreaper,
            ready_tx,
            unit_rescan,
            cancel.clone(),
        )
        .measuring_sweeps(Arc::clone(&sweep_cost))
        .with_mechanisms(mechanisms)
        .publishing(Arc::clone(&counters));
        let inputs = Inputs {
            commands: commands_rx,
            scans: scans_rx,
            sigchld: sweeps,
            ready: ready_rx,
        };
        spawn_watched(&tasks, "actor", &cancel, actor.run(inputs));
        tasks.close();
        Ok(Self {
            handle: MonitorHandle::new(commands_tx),
            cancel,
            tasks,
            sweep_cost,
            counters,
        })
    }

    /// A handle to the monitor.
    pub fn handle(&self) -> MonitorHandle {
        self.handle.clone()
    }

    /// A live view of the monitor's counters, for metrics: reading it never
    /// waits for the actor (see [`LiveCounters`]).
    pub fn counters(&self) -> LiveCounters {
        LiveCounters::new(Arc::clone(&self.counters))
    }

    /// The monitor's token; cancelling it stops the monitor. The monitor
    /// cancels it too whenever it stops, including when one of its tasks
    /// died (logged as an error): await `cancelled()` on it to learn that
    /// the monitor is gone.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops the monitor (applying the shutdown policy) and waits for every
    /// task to finish.
    pub async fn shutdown(self) {
        // Going through the actor applies the shutdown policy before the
        // tasks stop; a monitor that is already gone needs nothing more.
        let _ = self.handle.shutdown().await;
        self.cancel.cancel();
        self.tasks.wait().await;
    }

    /// Waits until the monitor stops on its own: its token is cancelled, a
    /// handle asks for shutdown, or every handle is dropped.
    pub async fn join(self) {
        drop(self.handle);
        self.tasks.wait().await;
    }
}

/// Builds a [`Config`] and spawns a [`Monitor`] from it.
#[derive(Debug, Clone, Default)]
pub struct MonitorBuilder {
    config: Config,
}

impl MonitorBuilder {
    /// Starts from an existing config.
    pub fn from_config(config: Config) -> Self {
        Self { config }
    }

    /// Enables or disables the monitor.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }

    /// Sets the scan interval.
    pub fn check_interval(mut self, interval: Duration) -> Self {
        self.config.check_interval = interval;
        self
    }

    /// Sets how often every tracked process is read, watched or not.
    pub fn full_scan_interval(mut self, interval: Duration) -> Self {
        self.config.full_scan_interval = interval;
        self
    }

    /// Sets how often units contained by scanning read their members'
    /// children lists ([`Config::unit_scan_interval`]).
    pub fn unit_scan_interval(mut self, interval: Duration) -> Self {
        self.config.unit_scan_interval = interval;
        self
    }

    /// Sets the default grace period.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.config.grace = grace;
        self
    }

    /// Sets the bounded wait after `SIGKILL`.
    pub fn kill_timeout(mut self, timeout: Duration) -> Self {
        self.config.kill_timeout = timeout;
        self
    }

    /// Sets the default orphan action.
    pub fn orphan_action(mut self, action: OrphanAction) -> Self {
        self.config.orphan_action = action;
        self
    }

    /// Sets the default termination signal.
    pub fn term_signal(mut self, signal: Signal) -> Self {
        self.config.term_signal = signal;
        self
    }

    /// Sets the reap policy.
    pub fn reap_policy(mut self, policy: ReapPolicy) -> Self {
        self.config.reap_policy = policy;
        self
    }

    /// Makes the process a child subreaper when the monitor starts.
    pub fn subreaper(mut self, subreaper: bool) -> Self {
        self.config.subreaper = subreaper;
        self
    }

    /// Sets the strongest containment units may use
    /// ([`Config::containment`]).
    pub fn containment(mut self, containment: Containment) -> Self {
        self.config.containment = containment;
        self
    }

    /// Sets the shutdown policy.
    pub fn shutdown(mut self, policy: ShutdownPolicy) -> Self {
        self.config.shutdown = policy;
        self
    }

    /// The config built so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Spawns the monitor; see [`Monitor::spawn`].
    pub fn spawn(self) -> Result<Monitor, Error> {
        Monitor::spawn(self.config)
    }

    /// Spawns the monitor tied to a token; see [`Monitor::spawn_with_token`].
    pub fn spawn_with_token(self, parent: &CancellationToken) -> Result<Monitor, Error> {
        Monitor::spawn_with_token(self.config, parent)
    }
}

impl From<MonitorBuilder> for Config {
    /// The config built.
    fn from(builder: MonitorBuilder) -> Self {
        builder.config
    }
}

/// The monitor's own cgroup subtree, where it may make one: units of the
/// children it spawns then live in leaves of it. Where it may not (not
/// root, no delegation, no cgroup v2), units fall back to weaker
/// containment, and the log says why once.
fn cgroup_subtree() -> Option<Subtree> {
    match Hierarchy::discover().and_then(|hierarchy| hierarchy.create_subtree()) {
        Ok(subtree) => {
            tracing::info!(path = %subtree.path().display(), "units of spawned children live in cgroups");
            Some(subtree)
        }
        Err(error) if error.is_unavailable() => {
            tracing::info!(%error, "no cgroup containment for units; they fall back to scanning");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "no cgroup containment for units; they fall back to scanning");
            None
        }
    }
}
