//! openraft's state machine for baton: a thin adapter that hands every job to the
//! chain's own thread (`applier`) and waits for it, so executing blocks never runs
//! on the async runtime Raft's core and heartbeats use (DESIGN §6).
//!
//! ```text
//!  openraft SM worker ──jobs──▶ "apply" thread: Chain (apply, checkpoint, install)
//!  build_snapshot (spawned) ──▶ manifest of the checkpoint, off both
//! ```

use std::{io, path::PathBuf};

use baton_primitives::ChainSpec;
use baton_storage::Store;
use futures::{Stream, TryStreamExt};
use openraft::{
    OptionalSend, RaftSnapshotBuilder, storage::EntryResponder, storage::RaftStateMachine,
};
use tokio::sync::{oneshot, watch};

use crate::{
    Storage,
    applier::{Applied, Chain, ChainView},
    executed::Executed,
    snapshot::{Manifest, SnapshotDir, Snapshots},
    types::{Entry, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig},
};

/// A job for the chain's thread.
enum Job {
    Apply(Vec<Entry>, oneshot::Sender<io::Result<()>>),
    Applied(oneshot::Sender<Applied>),
    Checkpoint(PathBuf, oneshot::Sender<io::Result<Applied>>),
    Install(PathBuf, oneshot::Sender<io::Result<Applied>>),
}

/// openraft's state machine, backed by the chain's thread.
#[derive(Debug)]
pub struct StateMachine {
    jobs: std::sync::mpsc::Sender<Job>,
    snapshots: Snapshots,
    chain: Store,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Apply(..) => "Apply",
            Self::Applied(..) => "Applied",
            Self::Checkpoint(..) => "Checkpoint",
            Self::Install(..) => "Install",
        })
    }
}

impl StateMachine {
    /// Loads the applied chain from `storage.chain` (writing the genesis block on
    /// first start) and starts its thread. With `history_blocks`, state older than
    /// that many blocks is pruned as blocks are sealed.
    pub fn open(
        storage: &Storage,
        spec: &ChainSpec,
        history_blocks: Option<u64>,
        executed: Executed,
    ) -> io::Result<(Self, watch::Receiver<ChainView>)> {
        let store = storage.chain.clone();
        let snapshots = Snapshots::new(storage.snapshots.clone(), storage.raft.clone())?;
        let (mut chain, view) = Chain::open(store.clone(), spec, history_blocks, executed)?;
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("apply".into())
            .spawn(move || {
                // Ends when the state machine (the only sender) is dropped.
                for job in queue {
                    match job {
                        Job::Apply(entries, done) => {
                            let _ = done.send(chain.apply(entries));
                        }
                        Job::Applied(done) => {
                            let _ = done.send(chain.applied.clone());
                        }
                        Job::Checkpoint(dir, done) => {
                            let _ = done.send(chain.checkpoint(&dir));
                        }
                        Job::Install(dir, done) => {
                            let _ = done.send(chain.install(&dir));
                        }
                    }
                }
            })?;
        Ok((
            Self {
                jobs,
                snapshots,
                chain: store,
            },
            view,
        ))
    }

    /// Where this state machine's snapshots live.
    pub(crate) fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    /// Runs `job` on the chain's thread and waits for its answer.
    async fn run<T>(&self, job: impl FnOnce(oneshot::Sender<T>) -> Job) -> io::Result<T> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(job(done))
            .map_err(|_| io::Error::other("the apply thread has stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the apply thread has stopped"))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotDir;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let applied = self.run(Job::Applied).await?;
        Ok((applied.last_applied, applied.membership))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        let mut batch = Vec::new();
        let mut responders = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            batch.push(entry);
            responders.extend(responder);
        }
        self.run(|done| Job::Apply(batch, done)).await??;
        // Answer clients only once the batch is in the store: an answer means applied.
        for responder in responders {
            responder.send(());
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        let dir = self.snapshots.next_dir();
        // The checkpoint is taken between two applies: exactly the applied state.
        match self.run(|done| Job::Checkpoint(dir.clone(), done)).await {
            Ok(Ok(applied)) => Some(SnapshotBuilder {
                dir,
                applied,
                snapshots: self.snapshots.clone(),
            }),
            Ok(Err(e)) | Err(e) if !force => {
                tracing::warn!(error = %e, "cannot checkpoint the chain now; the snapshot waits");
                let _ = std::fs::remove_dir_all(&dir);
                None
            }
            Ok(Err(e)) | Err(e) => {
                tracing::error!(error = %e, "cannot checkpoint the chain for a needed snapshot");
                Some(SnapshotBuilder {
                    dir,
                    applied: Applied::default(),
                    snapshots: self.snapshots.clone(),
                })
            }
        }
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        match self.try_create_snapshot_builder(true).await {
            Some(builder) => builder,
            None => unreachable!("a forced snapshot builder is always made"),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotDir,
    ) -> io::Result<()> {
        let dir = snapshot.dir.clone();
        let applied = self.run(|done| Job::Install(dir, done)).await??;
        if applied.last_applied != meta.last_log_id {
            return Err(io::Error::other(format!(
                "snapshot claims {:?} but holds state as of {:?}",
                meta.last_log_id, applied.last_applied
            )));
        }
        // The received files are the live chain now; the current snapshot is a
        // fresh checkpoint of it (hard links), for members behind this one.
        let copy = self.snapshots.next_dir();
        self.chain.checkpoint(&copy).map_err(io::Error::other)?;
        let manifest = tokio::task::spawn_blocking({
            let copy = copy.clone();
            move || Manifest::of_dir(&copy)
        })
        .await
        .map_err(io::Error::other)??;
        self.snapshots.adopt(meta, &copy, manifest)?;
        self.snapshots.clear_incoming(None);
        tracing::info!(upto = ?meta.last_log_id, "installed a snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        Ok(self
            .snapshots
            .current()?
            .map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}

/// Describes a checkpoint taken for a snapshot and makes it the current one.
#[derive(Debug)]
pub struct SnapshotBuilder {
    dir: PathBuf,
    applied: Applied,
    snapshots: Snapshots,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotDir;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let dir = self.dir.clone();
        let manifest = tokio::task::spawn_blocking(move || Manifest::of_dir(&dir))
            .await
            .map_err(io::Error::other)??;
        let meta = SnapshotMeta {
            last_log_id: self.applied.last_applied,
            last_membership: self.applied.membership.clone(),
        };
        let bytes = manifest.bytes();
        let files = manifest.files.len();
        let snapshot = self.snapshots.adopt(&meta, &self.dir, manifest)?;
        metrics::counter!("baton_snapshots_built_total").increment(1);
        metrics::gauge!("baton_snapshot_bytes").set(bytes as f64);
        tracing::info!(upto = ?meta.last_log_id, bytes, files, "built a snapshot");
        Ok(Snapshot { meta, snapshot })
    }
}
