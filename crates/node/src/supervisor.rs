//! Critical tasks, fail-stop: every long-lived task of a node runs under a name;
//! if one panics or ends while the node runs, [`Supervisor::failed`] says which,
//! and the node stops and exits non-zero so an orchestrator restarts it (a node
//! whose Raft died must not keep serving a frozen head).

use std::{collections::BTreeMap, future::Future, sync::Arc};

use parking_lot::Mutex;
use tokio::{sync::mpsc, task::AbortHandle};

/// How a critical task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It returned, though it should run as long as the node.
    Ended,
    Panicked(String),
    /// It was stopped from outside (the `baton_faultStopTask` test hook).
    Stopped,
}

/// A critical task that ended while the node was running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub task: &'static str,
    pub exit: Exit,
}

impl std::fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.exit {
            Exit::Ended => write!(f, "critical task {} ended", self.task),
            Exit::Panicked(why) => write!(f, "critical task {} panicked: {why}", self.task),
            Exit::Stopped => write!(f, "critical task {} was stopped", self.task),
        }
    }
}

/// Runs a node's critical tasks and reports the first that fails.
#[derive(Debug)]
pub struct Supervisor {
    tasks: Arc<Mutex<BTreeMap<&'static str, AbortHandle>>>,
    failures: mpsc::UnboundedSender<TaskFailure>,
    failed: mpsc::UnboundedReceiver<TaskFailure>,
}

impl Default for Supervisor {
    fn default() -> Self {
        let (failures, failed) = mpsc::unbounded_channel();
        Self {
            tasks: Default::default(),
            failures,
            failed,
        }
    }
}

impl Supervisor {
    /// Spawns `task` as critical under `name` (names are unique).
    pub fn spawn_critical<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task);
        self.watch(
            name,
            handle.abort_handle(),
            async move { exit_of(handle.await) },
        );
    }

    /// Spawns `task` as critical under `name` on a thread of its own (with a
    /// runtime of its own), for work that must neither wait behind nor delay the
    /// node's other tasks.
    pub fn spawn_critical_thread<F>(&self, name: &'static str, task: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.spawn(task);
        let abort = handle.abort_handle();
        let (ended, exit) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _ = ended.send(exit_of(runtime.block_on(handle)));
            })?;
        self.watch(
            name,
            abort,
            async move { exit.await.unwrap_or(Exit::Ended) },
        );
        Ok(())
    }

    fn watch(
        &self,
        name: &'static str,
        abort: AbortHandle,
        exit: impl Future<Output = Exit> + Send + 'static,
    ) {
        let previous = self.tasks.lock().insert(name, abort);
        debug_assert!(previous.is_none(), "critical task {name} spawned twice");
        let failures = self.failures.clone();
        tokio::spawn(async move {
            let exit = exit.await;
            // The receiver is gone only once the node has stopped.
            let _ = failures.send(TaskFailure { task: name, exit });
        });
    }

    /// Resolves with the first critical task to end.
    pub async fn failed(&mut self) -> TaskFailure {
        match self.failed.recv().await {
            Some(failure) => failure,
            // We hold a sender ourselves, so the channel never closes.
            None => unreachable!("the supervisor holds a sender"),
        }
    }

    /// A hook that stops task `name` as a crash would (tests only).
    pub fn stopper(&self) -> impl Fn(&str) -> Result<(), String> + Send + Sync + 'static {
        let tasks = self.tasks.clone();
        move |name| {
            let tasks = tasks.lock();
            let task = tasks.get(name).ok_or_else(|| {
                let known: Vec<&str> = tasks.keys().copied().collect();
                format!("no critical task {name:?}; there are {known:?}")
            })?;
            task.abort();
            Ok(())
        }
    }

    /// Stops every task (the node is shutting down; their ends are not failures).
    pub fn abort_all(&self) {
        for task in self.tasks.lock().values() {
            task.abort();
        }
    }
}

fn exit_of(joined: Result<(), tokio::task::JoinError>) -> Exit {
    match joined {
        Ok(()) => Exit::Ended,
        Err(e) if e.is_panic() => Exit::Panicked(panic_message(e.into_panic())),
        Err(_) => Exit::Stopped,
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_or_ends_or_is_stopped_is_reported_by_name() {
        let mut supervisor = Supervisor::default();
        supervisor.spawn_critical("ends", async {});
        let failure = supervisor.failed().await;
        assert_eq!(failure.task, "ends");
        assert_eq!(failure.exit, Exit::Ended);

        supervisor.spawn_critical("panics", async { panic!("boom") });
        let failure = supervisor.failed().await;
        assert_eq!(failure.exit, Exit::Panicked("boom".into()));

        supervisor.spawn_critical("runs", std::future::pending());
        let stop = supervisor.stopper();
        assert!(stop("nonexistent").is_err());
        stop("runs").expect("known task");
        let failure = supervisor.failed().await;
        assert_eq!((failure.task, failure.exit), ("runs", Exit::Stopped));

        supervisor
            .spawn_critical_thread("thread", async { panic!("on its thread") })
            .expect("thread");
        let failure = supervisor.failed().await;
        assert_eq!(failure.exit, Exit::Panicked("on its thread".into()));
        supervisor
            .spawn_critical_thread("stoppable", std::future::pending())
            .expect("thread");
        stop("stoppable").expect("known task");
        let failure = supervisor.failed().await;
        assert_eq!((failure.task, failure.exit), ("stoppable", Exit::Stopped));
    }
}
