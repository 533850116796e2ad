//! Mixed-version rolling upgrade (DESIGN §5), on engines of four builds of one state type
//! exchanging frames in one cluster:
//!
//! | build    | reads  | sends |
//! |----------|--------|-------|
//! | `V1`     | v1     | v1    |
//! | `V1V2`   | v1, v2 | v1    |
//! | `V2`     | v1, v2 | v2    |
//! | `V2Only` | v2     | v2    |
//!
//! The three phases (read v1+v2 send v1 -> send v2 -> drop v1) each run a mixed cluster
//! node by node, and every view converges after every step. A v1-only reader given v2 follows
//! its `VersionMismatchPolicy`.
//!
//! The simulated cluster is generic over one state type, so this is a small hand-wired
//! harness: an in-order lossless network between engines of different types.
#![allow(missing_docs)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use dstate::engine::{Engine, EngineLimits, Start};
use dstate::wire::{self, FrameKind};
use dstate::{
    Age, DeltaDistributedState, DeserializeError, Generation, Incarnation, NodeId, StateConfig,
    VersionMismatchPolicy,
};

/// The state (and view) of every build. v1 only knows `value`; v2 added `label`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Board {
    value: u64,
    label: String,
}

/// A change, also the delta.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum BoardDelta {
    Add(u64),
    /// Only expressible in v2: a build sending v1 never uses it.
    Label(String),
}

fn apply(board: &mut Board, delta: &BoardDelta) {
    match delta {
        BoardDelta::Add(n) => board.value += n,
        BoardDelta::Label(label) => board.label.clone_from(label),
    }
}

/// v1: the value as 8 little-endian bytes; v2: postcard of the whole board.
fn encode_view(board: &Board, version: u32) -> Vec<u8> {
    if version == 1 {
        board.value.to_le_bytes().to_vec()
    } else {
        postcard::to_allocvec(board).expect("boards serialise")
    }
}

fn decode_view(bytes: &[u8], version: u32) -> Result<Board, DeserializeError> {
    if version == 1 {
        let raw: [u8; 8] = bytes.try_into().map_err(DeserializeError::malformed_len)?;
        Ok(Board {
            value: u64::from_le_bytes(raw),
            label: String::new(),
        })
    } else {
        postcard::from_bytes(bytes).map_err(DeserializeError::malformed)
    }
}

/// v1: the amount as 8 bytes (a label cannot be written in v1); v2: postcard.
fn encode_delta(delta: &BoardDelta, version: u32) -> Vec<u8> {
    match (version, delta) {
        (1, BoardDelta::Add(n)) => n.to_le_bytes().to_vec(),
        (1, BoardDelta::Label(_)) => 0u64.to_le_bytes().to_vec(),
        _ => postcard::to_allocvec(delta).expect("deltas serialise"),
    }
}

fn decode_delta(bytes: &[u8], version: u32) -> Result<BoardDelta, DeserializeError> {
    if version == 1 {
        let raw: [u8; 8] = bytes.try_into().map_err(DeserializeError::malformed_len)?;
        Ok(BoardDelta::Add(u64::from_le_bytes(raw)))
    } else {
        postcard::from_bytes(bytes).map_err(DeserializeError::malformed)
    }
}

/// One build of the `versioned` state type.
struct Versioned<const READS_V1: bool, const READS_V2: bool, const SENDS: u32>;

type V1 = Versioned<true, false, 1>;
type V1V2 = Versioned<true, true, 1>;
type V2 = Versioned<true, true, 2>;
type V2Only = Versioned<false, true, 2>;

impl<const READS_V1: bool, const READS_V2: bool, const SENDS: u32>
    Versioned<READS_V1, READS_V2, SENDS>
{
    fn reads(version: u32) -> Result<(), DeserializeError> {
        match version {
            1 if READS_V1 => Ok(()),
            2 if READS_V2 => Ok(()),
            _ => Err(DeserializeError::UnsupportedVersion { version }),
        }
    }
}

impl<const READS_V1: bool, const READS_V2: bool, const SENDS: u32> DeltaDistributedState
    for Versioned<READS_V1, READS_V2, SENDS>
{
    type State = Board;
    type View = Board;
    type ViewDelta = BoardDelta;
    type StateDeltaChange = BoardDelta;

    fn name() -> &'static str {
        "versioned"
    }
    const WIRE_VERSION: u32 = SENDS;
    const STORAGE_VERSION: u32 = 1;

    fn project_view(state: &Board) -> Board {
        state.clone()
    }
    fn project_delta(change: &BoardDelta) -> BoardDelta {
        change.clone()
    }
    fn apply_delta(view: &Board, delta: &BoardDelta) -> Board {
        let mut next = view.clone();
        apply(&mut next, delta);
        next
    }
    fn serialize_view(view: &Board) -> Vec<u8> {
        encode_view(view, SENDS)
    }
    fn deserialize_view(bytes: &[u8], version: u32) -> Result<Board, DeserializeError> {
        Self::reads(version)?;
        decode_view(bytes, version)
    }
    fn serialize_delta(delta: &BoardDelta) -> Vec<u8> {
        encode_delta(delta, SENDS)
    }
    fn deserialize_delta(bytes: &[u8], version: u32) -> Result<BoardDelta, DeserializeError> {
        Self::reads(version)?;
        decode_delta(bytes, version)
    }
    fn serialize_state(state: &Board) -> Vec<u8> {
        postcard::to_allocvec(state).expect("boards serialise")
    }
    fn deserialize_state(bytes: &[u8], _version: u32) -> Result<Board, DeserializeError> {
        postcard::from_bytes(bytes).map_err(DeserializeError::malformed)
    }
    /// A build can answer a peer asking for an older version it still knows how to write.
    fn serialize_view_at(view: &Board, version: u32) -> Option<Vec<u8>> {
        Self::reads(version)
            .ok()
            .map(|()| encode_view(view, version))
    }
}

/// What the harness needs of an engine, whatever its build.
trait Member {
    fn build(&self) -> &'static str;
    fn engine_frame(&mut self, now: Instant, from: NodeId, bytes: &[u8]);
    fn peer_up(&mut self, now: Instant, node: NodeId, incarnation: Incarnation);
    fn next_transmit(&mut self) -> Option<(NodeId, Vec<u8>)>;
    fn mutate(&mut self, now: Instant, change: BoardDelta);
    fn shard(&self) -> (Generation, Board);
    /// The view held of `node`: generation, value and pending mark.
    fn held(&mut self, node: NodeId) -> Option<(Generation, Board, bool)>;
    fn version_mismatches(&self, now: Instant, of: NodeId) -> u64;
}

impl<const R1: bool, const R2: bool, const S: u32> Member for Engine<Versioned<R1, R2, S>, ()> {
    fn build(&self) -> &'static str {
        match (R1, R2, S) {
            (true, false, 1) => "V1",
            (true, true, 1) => "V1V2",
            (true, true, 2) => "V2",
            _ => "V2Only",
        }
    }
    fn engine_frame(&mut self, now: Instant, from: NodeId, bytes: &[u8]) {
        let frame = wire::decode(bytes, usize::MAX).expect("lossless harness network");
        self.handle_frame(now, from, frame);
    }
    fn peer_up(&mut self, now: Instant, node: NodeId, incarnation: Incarnation) {
        self.handle_peer_up(now, node, incarnation);
    }
    fn next_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
        self.poll_transmit().map(|t| (t.to, t.frame.to_vec()))
    }
    fn mutate(&mut self, now: Instant, change: BoardDelta) {
        self.handle_mutation(now, move |board: &mut Board| {
            apply(board, &change);
            (change, ())
        });
        while self.poll_event().is_some() {}
    }
    fn shard(&self) -> (Generation, Board) {
        let shard = Engine::shard(self);
        (shard.generation, shard.state.clone())
    }
    fn held(&mut self, node: NodeId) -> Option<(Generation, Board, bool)> {
        let views = self.views();
        let view = views.get(node)?;
        Some((
            view.generation,
            (*view.view).clone(),
            view.pending.is_some(),
        ))
    }
    fn version_mismatches(&self, now: Instant, of: NodeId) -> u64 {
        self.diagnostics(now)
            .peers
            .get(&of)
            .map_or(0, |p| p.counters.version_mismatches)
    }
}

/// A build to start a node with.
type Build = fn(NodeId, StateConfig, Start<Board>, Instant) -> Box<dyn Member>;

fn build<D>(node: NodeId, config: StateConfig, start: Start<Board>, now: Instant) -> Box<dyn Member>
where
    D: DeltaDistributedState<State = Board, View = Board, StateDeltaChange = BoardDelta>,
    Engine<D, ()>: Member,
{
    Box::new(Engine::<D, ()>::new(
        node,
        config,
        EngineLimits::default(),
        start,
        now,
    ))
}

/// Engines of mixed builds on an in-order lossless network.
struct Cluster {
    now: Instant,
    config: StateConfig,
    nodes: Vec<(NodeId, Incarnation, Box<dyn Member>)>,
    /// Frames in flight, in send order.
    wire: VecDeque<(NodeId, NodeId, Vec<u8>)>,
}

impl Cluster {
    fn new(builds: &[Build], config: StateConfig) -> Self {
        let now = Instant::now();
        let nodes = builds
            .iter()
            .enumerate()
            .map(|(i, make)| {
                let id = NodeId(i as u64 + 1);
                let start = Start {
                    state: Board::default(),
                    generation: Generation::new(Incarnation(100 + i as u64), Age(0)),
                    persistent: false,
                };
                (id, Incarnation(1), make(id, config.clone(), start, now))
            })
            .collect();
        let mut cluster = Cluster {
            now,
            config,
            nodes,
            wire: VecDeque::new(),
        };
        for i in 0..cluster.nodes.len() {
            cluster.join(i);
        }
        cluster.pump();
        cluster
    }

    fn id(&self, index: usize) -> NodeId {
        self.nodes[index].0
    }

    /// Node `index` learns every peer.
    fn join(&mut self, index: usize) {
        let peers: Vec<(NodeId, Incarnation)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, (id, inc, _))| (*id, *inc))
            .collect();
        let now = self.now;
        for (peer, incarnation) in peers {
            self.nodes[index].2.peer_up(now, peer, incarnation);
        }
    }

    /// Restart node `index` on `make`, keeping its persisted shard (same generation): the
    /// membership layer announces the new process to every peer.
    fn upgrade(&mut self, index: usize, make: Build) {
        let (id, incarnation, old) = &self.nodes[index];
        let (generation, state) = old.shard();
        let (id, incarnation) = (*id, Incarnation(incarnation.0 + 1));
        // As if loaded from disk (same generation); the harness carries out no saves.
        let start = Start {
            state,
            generation,
            persistent: false,
        };
        self.nodes[index] = (
            id,
            incarnation,
            make(id, self.config.clone(), start, self.now),
        );
        let now = self.now;
        for (i, (_, _, member)) in self.nodes.iter_mut().enumerate() {
            if i != index {
                member.peer_up(now, id, incarnation);
            }
        }
        self.join(index);
        self.pump();
    }

    fn mutate(&mut self, index: usize, change: BoardDelta) {
        let now = self.now;
        self.nodes[index].2.mutate(now, change);
        self.pump();
    }

    /// Deliver every frame, in order, until nothing is in flight.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            for (from, _, member) in &mut self.nodes {
                while let Some((to, bytes)) = member.next_transmit() {
                    self.wire.push_back((*from, to, bytes));
                }
            }
            let Some((from, to, bytes)) = self.wire.pop_front() else {
                return;
            };
            self.now += Duration::from_millis(1);
            if let Some((_, _, member)) = self.nodes.iter_mut().find(|(id, _, _)| *id == to) {
                let node_level = matches!(
                    wire::decode(&bytes, usize::MAX).map(|f| f.kind),
                    Ok(FrameKind::Feed | FrameKind::Heartbeat | FrameKind::Goodbye)
                );
                if !node_level {
                    member.engine_frame(self.now, from, &bytes);
                }
            }
        }
        panic!("the harness network never went quiet");
    }

    /// Every node holds, for every peer, a non-pending view equal to the peer's state.
    fn assert_converged(&mut self, when: &str) {
        let truth: Vec<(NodeId, Generation, Board)> = self
            .nodes
            .iter()
            .map(|(id, _, m)| {
                let (generation, board) = m.shard();
                (*id, generation, board)
            })
            .collect();
        let builds: Vec<&str> = self.nodes.iter().map(|(_, _, m)| m.build()).collect();
        for (observer, _, member) in &mut self.nodes {
            for (source, generation, board) in &truth {
                if source == observer {
                    continue;
                }
                let held = member.held(*source);
                assert_eq!(
                    held,
                    Some((*generation, board.clone(), false)),
                    "{when} {builds:?}: {observer} ({}) holds {source}",
                    member.build()
                );
            }
        }
    }
}

fn v1() -> Build {
    build::<V1>
}
fn v1v2() -> Build {
    build::<V1V2>
}
fn v2() -> Build {
    build::<V2>
}
fn v2only() -> Build {
    build::<V2Only>
}

#[test]
fn a_rolling_upgrade_converges_in_every_phase_and_every_mixed_step() {
    let mut cluster = Cluster::new(&[v1(), v1(), v1()], StateConfig::default());
    for i in 0..3 {
        cluster.mutate(i, BoardDelta::Add(i as u64 + 1));
    }
    cluster.assert_converged("all v1");
    let phases: [(&str, Build, bool); 3] = [
        ("phase 1: read v1+v2, send v1", v1v2(), false),
        ("phase 2: send v2", v2(), true),
        ("phase 3: drop v1", v2only(), true),
    ];
    for (phase, next, labels) in phases {
        for i in 0..3 {
            cluster.upgrade(i, next);
            cluster.assert_converged(&format!("{phase}, node {i} upgraded"));
            // Every node changes its shard in the mixed cluster; only nodes that already
            // send v2 use the v2-only field.
            for j in 0..3 {
                cluster.mutate(j, BoardDelta::Add(10));
                if labels && j <= i {
                    cluster.mutate(j, BoardDelta::Label(format!("{phase} by {j}")));
                }
            }
            cluster.assert_converged(&format!("{phase}, after changes with node {i} upgraded"));
        }
    }
    let (generation, board) = cluster.nodes[0].2.shard();
    assert_eq!(board.value, 1 + 9 * 10);
    assert!(generation.age.0 > 9);
}

/// A v1-only reader next to a node that already sends v2 (phase 1 skipped): the v2 change
/// cannot be read, and the reader's policy decides.
fn skipped_phase(policy: VersionMismatchPolicy, sender: Build) -> Cluster {
    let config = StateConfig::default().with_mismatch_policy(policy);
    let mut cluster = Cluster::new(&[v1(), v1()], config);
    cluster.mutate(1, BoardDelta::Add(5));
    cluster.assert_converged("all v1");
    cluster.upgrade(1, sender);
    cluster.mutate(1, BoardDelta::Add(2));
    cluster
}

#[test]
fn a_v1_reader_given_v2_keeps_the_last_good_view_marked_stale() {
    let mut cluster = skipped_phase(VersionMismatchPolicy::KeepStale, v2());
    let (reader, sender) = (cluster.id(0), cluster.id(1));
    let (generation, board, pending) = cluster.nodes[0].2.held(sender).expect("kept");
    assert_eq!(board.value, 5, "last good view kept");
    assert!(pending, "marked as having newer data it could not read");
    assert!(generation < cluster.nodes[1].2.shard().0);
    assert!(cluster.nodes[0].2.version_mismatches(cluster.now, sender) > 0);
    // The v2 sender reads the v1 reader's shard fine.
    let (_, seen, _) = cluster.nodes[1].2.held(reader).expect("held");
    assert_eq!(seen, cluster.nodes[0].2.shard().1);
}

#[test]
fn a_v1_reader_given_v2_drops_and_waits() {
    let mut cluster = skipped_phase(VersionMismatchPolicy::DropAndWait, v2());
    let sender = cluster.id(1);
    let (_, board, pending) = cluster.nodes[0].2.held(sender).expect("kept");
    assert_eq!(board.value, 5, "view unchanged");
    assert!(
        !pending,
        "nothing marked: it waits for the next compatible message"
    );
    assert!(cluster.nodes[0].2.version_mismatches(cluster.now, sender) > 0);
}

#[test]
fn a_v1_reader_given_v2_asks_for_a_v1_snapshot_which_a_v2_build_can_write() {
    let mut cluster = skipped_phase(VersionMismatchPolicy::RequestSnapshot, v2());
    let sender = cluster.id(1);
    let (generation, board, pending) = cluster.nodes[0].2.held(sender).expect("held");
    assert_eq!(board.value, 7, "the v1 snapshot carried the change");
    assert!(!pending);
    assert_eq!(generation, cluster.nodes[1].2.shard().0);
    assert!(cluster.nodes[0].2.version_mismatches(cluster.now, sender) > 0);
}

#[test]
fn a_v1_reader_asking_a_v2_only_build_for_v1_keeps_its_last_good_view() {
    let mut cluster = skipped_phase(VersionMismatchPolicy::RequestSnapshot, v2only());
    let sender = cluster.id(1);
    let (_, board, _) = cluster.nodes[0].2.held(sender).expect("kept");
    assert_eq!(
        board.value, 5,
        "a v2-only build cannot write v1: nothing readable arrives"
    );
    assert!(cluster.nodes[0].2.version_mismatches(cluster.now, sender) >= 2);
}

#[test]
fn the_build_table_is_what_the_docs_say() {
    let start = || Start {
        state: Board::default(),
        generation: Generation::new(Incarnation(1), Age(0)),
        persistent: false,
    };
    let now = Instant::now();
    let builds: Vec<&str> = [v1(), v1v2(), v2(), v2only()]
        .iter()
        .map(|make| make(NodeId(1), StateConfig::default(), start(), now).build())
        .collect();
    assert_eq!(builds, ["V1", "V1V2", "V2", "V2Only"]);
    assert!(V1::deserialize_view(&encode_view(&Board::default(), 2), 2).is_err());
    assert!(V1V2::deserialize_view(&encode_view(&Board::default(), 2), 2).is_ok());
    assert!(V2Only::deserialize_view(&encode_view(&Board::default(), 1), 1).is_err());
    assert_eq!(<V2 as DeltaDistributedState>::WIRE_VERSION, 2);
}
