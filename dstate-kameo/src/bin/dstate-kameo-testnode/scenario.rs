//! Scenario mode: a dstate node on kameo answering the core's process-scenario protocol.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dstate::test_support::process::serve_commands;
use dstate::{
    Age, BoxFuture, Incarnation, Node, PersistError, PersistedShard, StateConfig, StatePersistence,
    SyncStrategy,
};
use dstate_kameo::KameoRuntime;

use crate::{start_cluster, Args};

/// Sync period of the periodic strategies in the scenarios.
const PERIOD: Duration = Duration::from_millis(500);

/// A dstate node with the test states, over the kameo cluster.
pub(crate) async fn run(args: Args) -> Result<(), String> {
    let strategy = match args.scenario.as_deref() {
        Some("push") => SyncStrategy::active_push(),
        Some("feed") => SyncStrategy::feed_with_periodic_sync(PERIOD),
        Some("feed-only") => SyncStrategy::feed_lazy_pull(),
        Some("periodic") => SyncStrategy::periodic_only(PERIOD),
        other => return Err(format!("unknown strategy {other:?}")),
    };
    let data_dir = args.data_dir.clone().ok_or("--data-dir is required")?;
    let runtime = KameoRuntime::new();
    let cluster = start_cluster(&args, &runtime).await?;
    let mut builder = dstate::Node::builder(dstate::NodeId(args.node), runtime.clone())
        .transport(cluster.transport());
    if !args.no_persist {
        builder = builder.persistence(Arc::new(FilePersistence::new(&data_dir)?));
    }
    if let Some(incarnation) = args.incarnation {
        builder = builder.incarnation(Incarnation(incarnation));
    }
    let node: Node<KameoRuntime> = builder.start();
    cluster.join_node(&node).await.map_err(|e| e.to_string())?;
    let address = cluster.local_addr().to_string();
    serve_commands(node, StateConfig::new(strategy), &address).await;
    cluster.shutdown().await;
    Ok(())
}

/// One file per state type: `incarnation age storage_version` then the state bytes.
/// Written to a temporary file and renamed, so a killed process leaves the old or the new
/// shard, never a torn one.
struct FilePersistence {
    dir: PathBuf,
}

impl FilePersistence {
    fn new(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(FilePersistence {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, state: &str) -> PathBuf {
        let name: String = state.bytes().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{name}.shard"))
    }
}

const HEADER: usize = 8 + 8 + 4;

impl StatePersistence for FilePersistence {
    fn load<'a>(
        &'a self,
        state: &'a str,
    ) -> BoxFuture<'a, Result<Option<PersistedShard>, PersistError>> {
        Box::pin(async move {
            let path = self.path(state);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(err.into()),
            };
            let corrupt = || PersistError::Corrupt {
                path: path.display().to_string(),
                offset: 0,
                reason: "short header".to_owned(),
            };
            let header = bytes.get(..HEADER).ok_or_else(corrupt)?;
            let word = |range: std::ops::Range<usize>| {
                header
                    .get(range)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
            };
            let incarnation = word(0..8).ok_or_else(corrupt)?;
            let age = word(8..16).ok_or_else(corrupt)?;
            let version = header
                .get(16..20)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(corrupt)?;
            Ok(Some(PersistedShard {
                incarnation: Incarnation(incarnation),
                age: Age(age),
                storage_version: version,
                state: bytes[HEADER..].to_vec(),
            }))
        })
    }

    fn save<'a>(
        &'a self,
        state: &'a str,
        shard: &'a PersistedShard,
    ) -> BoxFuture<'a, Result<(), PersistError>> {
        Box::pin(async move {
            let mut bytes = Vec::with_capacity(HEADER + shard.state.len());
            bytes.extend_from_slice(&shard.incarnation.0.to_be_bytes());
            bytes.extend_from_slice(&shard.age.0.to_be_bytes());
            bytes.extend_from_slice(&shard.storage_version.to_be_bytes());
            bytes.extend_from_slice(&shard.state);
            let path = self.path(state);
            let temp = path.with_extension("tmp");
            std::fs::write(&temp, &bytes)?;
            std::fs::rename(&temp, &path)?;
            Ok(())
        })
    }
}
