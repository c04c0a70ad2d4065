//! RPC execution, isolated: `eth_call`, gas estimates, logs and fee history run on
//! a few threads of their own, at low CPU priority, each call within a time limit,
//! a bounded number waiting and a few per connection. No RPC load reaches the
//! threads Raft, apply and the sequencer run on, so no stranger can stretch a
//! block or move leadership with expensive calls.
//!
//! ```text
//!  RPC worker ──try_send──▶ queue (≤ queue) ──▶ rpc-exec-N threads (nice +10)
//!      ▲                         full: "busy"          │ job(deadline)
//!      └──────────── oneshot ◀─────────────────────────┘
//! ```

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use jsonrpsee::{ConnectionId, Extensions, core::RpcResult, types::ErrorObjectOwned};
use parking_lot::Mutex;

use crate::internal;

/// JSON-RPC code for a request refused by a limit (EIP-1474 "limit exceeded").
pub const LIMIT_EXCEEDED: i32 = -32005;

/// How RPC execution is bounded.
#[derive(Debug, Clone)]
pub struct ExecLimits {
    /// Threads executing calls.
    pub threads: usize,
    /// Calls that may wait for a thread; more are refused as busy.
    pub queue: usize,
    /// Calls one connection may have executing or waiting at once.
    pub per_connection: usize,
    /// Wall-clock limit of one call, waiting included (geth's `--rpc.evmtimeout`).
    pub timeout: Duration,
    /// Most gas one `eth_call` or estimate may use (geth's `--rpc.gascap`).
    pub gas_cap: u64,
}

impl Default for ExecLimits {
    fn default() -> Self {
        Self {
            threads: 2,
            queue: 64,
            per_connection: 4,
            timeout: Duration::from_secs(5),
            gas_cap: 50_000_000,
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The execution threads, and who has calls on them.
#[derive(Debug, Clone)]
pub struct ExecPool {
    jobs: mpsc::SyncSender<Job>,
    limits: ExecLimits,
    /// Calls executing or waiting, by connection.
    busy: Arc<Mutex<HashMap<ConnectionId, usize>>>,
}

/// Releases a connection's slot when its call ends, however it ends.
struct Slot {
    busy: Arc<Mutex<HashMap<ConnectionId, usize>>>,
    connection: ConnectionId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut busy = self.busy.lock();
        if let Some(count) = busy.get_mut(&self.connection) {
            *count -= 1;
            if *count == 0 {
                busy.remove(&self.connection);
            }
        }
    }
}

impl ExecPool {
    /// Starts `limits.threads` threads named `rpc-exec-N`.
    pub fn start(limits: ExecLimits) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(limits.queue);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..limits.threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("rpc-exec-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = queue.lock().recv();
                        match job {
                            // A panicking call must not take the thread with it.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Self {
            jobs,
            limits,
            busy: Arc::default(),
        })
    }

    pub fn limits(&self) -> &ExecLimits {
        &self.limits
    }

    /// Runs `job` on an execution thread and returns its answer. `job` gets the
    /// call's deadline and must give up once it passes (see [`timed_out`]).
    pub async fn run<T, F>(&self, extensions: &Extensions, job: F) -> RpcResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Instant) -> RpcResult<T> + Send + 'static,
    {
        let connection = extensions
            .get::<ConnectionId>()
            .copied()
            .unwrap_or(ConnectionId(usize::MAX));
        let slot = {
            let mut busy = self.busy.lock();
            let count = busy.entry(connection).or_default();
            if *count >= self.limits.per_connection {
                return Err(limit_exceeded(format!(
                    "too many calls executing on this connection (limit {})",
                    self.limits.per_connection
                )));
            }
            *count += 1;
            Slot {
                busy: self.busy.clone(),
                connection,
            }
        };
        let deadline = Instant::now() + self.limits.timeout;
        let (done, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _slot = slot;
            let answer = if Instant::now() >= deadline {
                Err(timed_out_error())
            } else {
                job(deadline)
            };
            let _ = done.send(answer);
        });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => {
                metrics::counter!("baton_rpc_exec_refused_total", "why" => "busy").increment(1);
                limit_exceeded("server busy: too many calls waiting to execute; retry later")
            }
            mpsc::TrySendError::Disconnected(_) => internal("RPC execution stopped"),
        })?;
        answer
            .await
            .map_err(|_| internal("the call failed while executing"))?
    }
}

pub(crate) fn limit_exceeded(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(LIMIT_EXCEEDED, message.into(), None::<()>)
}

/// Whether `deadline` passed.
pub(crate) fn timed_out(deadline: Instant) -> bool {
    Instant::now() >= deadline
}

/// What a call that ran out of time answers (geth's words).
pub(crate) fn timed_out_error() -> ErrorObjectOwned {
    metrics::counter!("baton_rpc_exec_refused_total", "why" => "timeout").increment(1);
    ErrorObjectOwned::owned(-32000, "execution aborted (timeout exceeded)", None::<()>)
}

/// Makes the calling thread yield the CPU to everything else in the node (nice
/// +10): on a small machine, Raft and apply get it first.
fn lower_priority() {
    // SAFETY: setpriority(2) with PRIO_PROCESS and 0 changes only the calling
    // thread's nice value on Linux; it touches no memory of ours.
    let changed = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if changed != 0 {
        tracing::debug!("cannot lower the RPC execution threads' priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize, queue: usize, per_connection: usize) -> ExecPool {
        ExecPool::start(ExecLimits {
            threads,
            queue,
            per_connection,
            timeout: Duration::from_secs(5),
            gas_cap: 1,
        })
        .expect("pool")
    }

    fn on(connection: usize) -> Extensions {
        let mut extensions = Extensions::new();
        extensions.insert(ConnectionId(connection));
        extensions
    }

    #[tokio::test]
    async fn a_call_runs_off_the_caller_thread_and_answers() {
        let pool = pool(1, 4, 4);
        let caller = std::thread::current().id();
        let ran_on = pool
            .run(&on(1), |_| Ok(std::thread::current().id()))
            .await
            .expect("answer");
        assert_ne!(ran_on, caller);
    }

    #[tokio::test]
    async fn a_connection_with_too_many_calls_is_refused_others_are_not() {
        let pool = pool(1, 16, 2);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let blocked = |pool: &ExecPool, connection| {
            let pool = pool.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                pool.run(&on(connection), move |_| {
                    let _ = gate.lock().recv();
                    Ok(())
                })
                .await
            })
        };
        let first = blocked(&pool, 1);
        let second = blocked(&pool, 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = pool.run(&on(1), |_| Ok(())).await.expect_err("third call");
        assert_eq!(refused.code(), LIMIT_EXCEEDED);
        let other = blocked(&pool, 2);
        release.send(()).expect("release");
        release.send(()).expect("release");
        release.send(()).expect("release");
        for task in [first, second, other] {
            task.await.expect("task").expect("answered");
        }
        pool.run(&on(1), |_| Ok(()))
            .await
            .expect("slots are released");
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let pool = pool(1, 1, 100);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let mut held = Vec::new();
        for connection in 0..2 {
            let pool = pool.clone();
            let gate = gate.clone();
            held.push(tokio::spawn(async move {
                pool.run(&on(connection), move |_| {
                    let _ = gate.lock().recv();
                    Ok(())
                })
                .await
            }));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let busy = pool.run(&on(9), |_| Ok(())).await.expect_err("busy");
        assert_eq!(busy.code(), LIMIT_EXCEEDED);
        assert!(busy.message().contains("busy"), "{}", busy.message());
        for _ in 0..2 {
            release.send(()).expect("release");
        }
        for task in held {
            task.await.expect("task").expect("answered");
        }
    }

    #[tokio::test]
    async fn a_panicking_call_leaves_the_thread_serving() {
        let pool = pool(1, 4, 4);
        let failed = pool
            .run::<(), _>(&on(1), |_| panic!("a bug in one call"))
            .await;
        assert!(failed.is_err());
        pool.run(&on(1), |_| Ok(())).await.expect("still serving");
    }
}
