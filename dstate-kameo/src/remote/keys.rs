//! Cluster key and node identity.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use libp2p::identity::Keypair;
use libp2p::PeerId;
use sha2::{Digest, Sha256};

use crate::error::KeyError;

/// Domain separation for keys derived from a passphrase.
const PASSPHRASE_CONTEXT: &[u8] = b"dstate-kameo cluster key v1\0";

/// The secret every node of one cluster shares.
///
/// It keys libp2p's private-network layer (`pnet`, a pre-shared key under the noise
/// handshake): a process without it cannot even complete a connection, so it never gets or
/// delivers a frame. Keep it as secret as the data the cluster replicates.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; 32]);

impl ClusterKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ClusterKey(bytes)
    }

    /// A key derived from a passphrase (SHA-256 with a fixed context). Convenient for
    /// development; prefer [`ClusterKey::generate`] and a secret store in production.
    pub fn from_passphrase(passphrase: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(PASSPHRASE_CONTEXT);
        hasher.update(passphrase.as_bytes());
        ClusterKey(hasher.finalize().into())
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        ClusterKey(rand::random())
    }

    /// The key as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key from 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(KeyError::MalformedClusterKey {
                reason: format!("{} characters", text.len()),
            });
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = text.get(2 * i..2 * i + 2).unwrap_or("");
            *byte = u8::from_str_radix(pair, 16).map_err(|err| KeyError::MalformedClusterKey {
                reason: err.to_string(),
            })?;
        }
        Ok(ClusterKey(bytes))
    }

    /// A short public fingerprint of the key, safe to log.
    pub fn fingerprint(&self) -> String {
        libp2p::pnet::PreSharedKey::new(self.0)
            .fingerprint()
            .to_string()
    }

    pub(crate) fn to_psk(&self) -> libp2p::pnet::PreSharedKey {
        libp2p::pnet::PreSharedKey::new(self.0)
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterKey({})", self.fingerprint())
    }
}

/// The private key a node authenticates its connections with (ed25519; libp2p noise).
///
/// Its public half, [`PeerIdentity`], is what an allow-list names. A node that loads the
/// same identity after a restart keeps its peer identity; one that generates a new one
/// looks like a new peer with the same dstate `NodeId` (and a newer incarnation).
#[derive(Clone)]
pub struct NodeIdentity {
    keypair: Keypair,
}

impl NodeIdentity {
    /// A fresh random identity.
    pub fn generate() -> Self {
        NodeIdentity {
            keypair: Keypair::generate_ed25519(),
        }
    }

    /// An identity from [`NodeIdentity::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        Keypair::from_protobuf_encoding(bytes)
            .map(|keypair| NodeIdentity { keypair })
            .map_err(|err| KeyError::MalformedIdentity {
                reason: err.to_string(),
            })
    }

    /// The identity as bytes (libp2p protobuf keypair encoding). Secret.
    pub fn to_bytes(&self) -> Result<Vec<u8>, KeyError> {
        self.keypair
            .to_protobuf_encoding()
            .map_err(|err| KeyError::MalformedIdentity {
                reason: err.to_string(),
            })
    }

    /// Loads the identity stored at `path`, or generates one and stores it there
    /// (readable by the owner only on Unix).
    pub fn load_or_generate(path: &Path) -> Result<Self, KeyError> {
        let io_error = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => NodeIdentity::from_bytes(&bytes),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let identity = NodeIdentity::generate();
                write_private(path, &identity.to_bytes()?).map_err(io_error)?;
                Ok(identity)
            }
            Err(err) => Err(io_error(err)),
        }
    }

    /// The public identity of this key.
    pub fn peer(&self) -> PeerIdentity {
        PeerIdentity(self.keypair.public().to_peer_id())
    }

    pub(crate) fn keypair(&self) -> &Keypair {
        &self.keypair
    }
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeIdentity({})", self.peer())
    }
}

/// The public identity of a node's connections (a libp2p peer id), as an allow-list
/// names it. Text form: base58, as libp2p prints it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerIdentity(pub(crate) PeerId);

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerIdentity({})", self.0)
    }
}

impl FromStr for PeerIdentity {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        PeerId::from_str(text.trim())
            .map(PeerIdentity)
            .map_err(|err| KeyError::MalformedPeer {
                text: text.to_owned(),
                reason: err.to_string(),
            })
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_key_hex_round_trip_and_errors() {
        let key = ClusterKey::generate();
        assert_eq!(ClusterKey::from_hex(&key.to_hex()).unwrap(), key);
        assert!(ClusterKey::from_hex("abc").is_err());
        assert!(ClusterKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(ClusterKey::from_hex(&"é".repeat(32)).is_err());
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }

    #[test]
    fn passphrase_keys_are_stable_and_distinct() {
        assert_eq!(
            ClusterKey::from_passphrase("a"),
            ClusterKey::from_passphrase("a")
        );
        assert_ne!(
            ClusterKey::from_passphrase("a"),
            ClusterKey::from_passphrase("b")
        );
    }

    #[test]
    fn identity_round_trips_and_persists() {
        let identity = NodeIdentity::generate();
        let again = NodeIdentity::from_bytes(&identity.to_bytes().unwrap()).unwrap();
        assert_eq!(identity.peer(), again.peer());
        assert!(NodeIdentity::from_bytes(b"junk").is_err());

        let dir = std::env::temp_dir().join(format!("dstate-kameo-key-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.key");
        let first = NodeIdentity::load_or_generate(&path).unwrap();
        let second = NodeIdentity::load_or_generate(&path).unwrap();
        assert_eq!(first.peer(), second.peer());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn peer_identity_parses_its_display() {
        let peer = NodeIdentity::generate().peer();
        assert_eq!(peer.to_string().parse::<PeerIdentity>().unwrap(), peer);
        assert!("nope".parse::<PeerIdentity>().is_err());
    }
}
