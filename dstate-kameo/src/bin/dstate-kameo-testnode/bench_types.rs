//! Types shared by the benchmark (`benches/replication.rs` includes this file) and the test
//! node's bench-echo mode: the replicated states and the raw kameo echo actor.

use dstate::{DeserializeError, DistributedState};
use kameo::actor::ActorRef;
use kameo::message::{Context, Message};
use kameo::{remote_message, Actor, RemoteActor, Reply};
use serde::{Deserialize, Serialize};

/// Wall-clock nanoseconds: the same clock in every process of one machine, so a sender's
/// stamp and a receiver's reading give a one-way latency.
pub(crate) fn wall_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Which one-way latency series a sample belongs to.
pub(crate) const SERIES_DSTATE_SMALL: usize = 0;
/// dstate, 16 KiB view.
pub(crate) const SERIES_DSTATE_LARGE: usize = 1;
/// Raw kameo `tell` acknowledged, 8-byte body.
pub(crate) const SERIES_RAW_SMALL: usize = 2;
/// Raw kameo `tell` acknowledged, 16 KiB body.
pub(crate) const SERIES_RAW_LARGE: usize = 3;

/// One-way latency samples (nanoseconds) per series, recorded on the receiving node.
pub(crate) type Samples = std::sync::Arc<std::sync::Mutex<[Vec<u64>; 4]>>;

/// Records `now - sent_at` in `series`.
pub(crate) fn record(samples: &Samples, series: usize, sent_at: u64) {
    let took = wall_nanos().saturating_sub(sent_at);
    if let Ok(mut all) = samples.lock() {
        if let Some(list) = all.get_mut(series) {
            list.push(took);
        }
    }
}

/// A u64 counter, stamped with the time of its mutation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BenchSmall {
    pub(crate) seq: u64,
    pub(crate) sent_at: u64,
}

impl DistributedState for BenchSmall {
    fn name() -> &'static str {
        "bench_small"
    }
    const WIRE_VERSION: u32 = 1;
    const STORAGE_VERSION: u32 = 1;

    fn serialize_state(&self) -> Vec<u8> {
        let mut bytes = self.seq.to_le_bytes().to_vec();
        bytes.extend_from_slice(&self.sent_at.to_le_bytes());
        bytes
    }

    fn deserialize_state(bytes: &[u8], _version: u32) -> Result<Self, DeserializeError> {
        let raw: [u8; 16] = bytes.try_into().map_err(DeserializeError::malformed_len)?;
        let (seq, sent_at) = raw.split_at(8);
        Ok(BenchSmall {
            seq: u64::from_le_bytes(seq.try_into().map_err(DeserializeError::malformed_len)?),
            sent_at: u64::from_le_bytes(
                sent_at
                    .try_into()
                    .map_err(DeserializeError::malformed_len)?,
            ),
        })
    }
}

/// A counter with a 16 KiB body, stamped with the time of its mutation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BenchLarge {
    pub(crate) seq: u64,
    pub(crate) sent_at: u64,
    pub(crate) body: Vec<u8>,
}

impl DistributedState for BenchLarge {
    fn name() -> &'static str {
        "bench_large"
    }
    const WIRE_VERSION: u32 = 1;
    const STORAGE_VERSION: u32 = 1;

    fn serialize_state(&self) -> Vec<u8> {
        let mut bytes = self.seq.to_le_bytes().to_vec();
        bytes.extend_from_slice(&self.sent_at.to_le_bytes());
        bytes.extend_from_slice(&self.body);
        bytes
    }

    fn deserialize_state(bytes: &[u8], _version: u32) -> Result<Self, DeserializeError> {
        let word = |at: usize| {
            bytes
                .get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| DeserializeError::Malformed("short".to_owned()))
        };
        Ok(BenchLarge {
            seq: word(0)?,
            sent_at: word(8)?,
            body: bytes[16..].to_vec(),
        })
    }
}

/// The registry name of node `node`'s echo actor.
pub(crate) fn echo_name(node: u64) -> String {
    format!("dstate-kameo-bench-echo/{node}")
}

/// Answers every ping with itself: the raw kameo baseline. `inspect` describes the echo
/// node's state for diagnostics.
#[derive(RemoteActor)]
#[remote_actor(id = "dstate_kameo_bench::Echo")]
pub(crate) struct BenchEcho {
    pub(crate) inspect: Option<Box<dyn Fn() -> String + Send>>,
    pub(crate) samples: Samples,
}

impl Actor for BenchEcho {
    type Args = Self;
    type Error = std::convert::Infallible;

    async fn on_start(args: Self::Args, _actor_ref: ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(args)
    }
}

/// A raw message of a given size.
#[derive(Debug, Clone, Serialize, Deserialize, Reply)]
pub(crate) struct Ping {
    pub(crate) seq: u64,
    #[serde(with = "serde_bytes")]
    pub(crate) body: Vec<u8>,
}

#[remote_message("dstate_kameo_bench::Ping")]
impl Message<Ping> for BenchEcho {
    type Reply = Ping;

    async fn handle(&mut self, ping: Ping, _ctx: &mut Context<Self, Self::Reply>) -> Ping {
        ping
    }
}

/// A one-way raw message (acknowledged on arrival, no payload back), stamped when sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Push {
    pub(crate) sent_at: u64,
    #[serde(with = "serde_bytes")]
    pub(crate) body: Vec<u8>,
}

#[remote_message("dstate_kameo_bench::Push")]
impl Message<Push> for BenchEcho {
    type Reply = ();

    async fn handle(&mut self, push: Push, _ctx: &mut Context<Self, Self::Reply>) {
        let series = if push.body.len() > 64 {
            SERIES_RAW_LARGE
        } else {
            SERIES_RAW_SMALL
        };
        record(&self.samples, series, push.sent_at);
    }
}

/// Takes (and clears) the one-way samples of a series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TakeSamples {
    pub(crate) series: usize,
}

#[remote_message("dstate_kameo_bench::TakeSamples")]
impl Message<TakeSamples> for BenchEcho {
    type Reply = Vec<u64>;

    async fn handle(
        &mut self,
        take: TakeSamples,
        _ctx: &mut Context<Self, Self::Reply>,
    ) -> Vec<u64> {
        self.samples
            .lock()
            .ok()
            .and_then(|mut all| all.get_mut(take.series).map(std::mem::take))
            .unwrap_or_default()
    }
}

/// Asks the echo node to describe its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Inspect;

#[remote_message("dstate_kameo_bench::Inspect")]
impl Message<Inspect> for BenchEcho {
    type Reply = String;

    async fn handle(&mut self, _: Inspect, _ctx: &mut Context<Self, Self::Reply>) -> String {
        self.inspect.as_ref().map(|f| f()).unwrap_or_default()
    }
}
