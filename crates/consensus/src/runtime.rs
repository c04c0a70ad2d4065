//! The runtime Raft runs on: its core, replication and heartbeats, the handling of
//! members' RPCs, and the p2p transport, on threads of their own (named "raft").
//! JSON-RPC load and the sequencer's execution run elsewhere, so they cannot
//! delay a heartbeat (DESIGN §6: nothing heavy on the consensus runtime).

use std::{future::Future, pin::Pin};

use tokio::runtime::{Builder, Handle, Runtime};

/// Threads of the Raft runtime: Raft's work is light but must never wait.
const THREADS: usize = 2;

/// The Raft runtime. Dropping it stops its tasks without blocking.
#[derive(Debug)]
pub struct RaftRuntime(Option<Runtime>);

impl RaftRuntime {
    pub fn new() -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("raft")
            .enable_all()
            .build()?;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> &Handle {
        match &self.0 {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the runtime is taken only when dropped"),
        }
    }

    /// Runs `future` on the Raft runtime and waits for it, from any runtime.
    pub async fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.handle().spawn(future).await {
            Ok(output) => output,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a task of the Raft runtime was cancelled: {e}"),
        }
    }

    /// Spawns a long-lived task on the Raft runtime; the returned future ends when
    /// it does (and panics if it panicked), for the node's supervisor to watch.
    pub(crate) fn task<F>(&self, future: F) -> Pin<Box<dyn Future<Output = ()> + Send>>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let task = self.handle().spawn(future);
        Box::pin(async move {
            if let Err(e) = task.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        })
    }
}

impl Drop for RaftRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            // Dropping a runtime from async code would panic; this never blocks.
            runtime.shutdown_background();
        }
    }
}
