//! The peers a node may talk to, each with its own WireGuard state (`boringtun::Tunn`).
//!
//! The hub announces peers; nothing else creates one. A datagram from a node id not in
//! this table is dropped before any cryptography, and a decrypted packet is delivered
//! only if its source address is the peer's overlay address (WireGuard's allowed IPs,
//! which `Tunn` does not enforce by itself).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use boringtun::noise::Tunn;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::proto::control::PeerInfo;
use crate::proto::relay::NodeId;

pub struct Peer {
    pub node_id: NodeId,
    pub overlay_ip: Ipv4Addr,
    /// The latest announcement (name, online, boot id); the fields above never change
    /// for a given `Peer` (a change of key or address makes a new one).
    pub info: Mutex<PeerInfo>,
    pub tunn: Mutex<Tunn>,
}

/// What an update did to the table, so the caller can fix routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added(PeerInfo),
    /// WireGuard state was reset: the peer restarted or changed its key.
    Reset(PeerInfo),
    Updated(PeerInfo),
    Removed(PeerInfo),
}

#[derive(Default)]
struct Tables {
    by_id: HashMap<NodeId, Arc<Peer>>,
    by_ip: HashMap<Ipv4Addr, Arc<Peer>>,
    /// Last non-zero boot id seen per peer: a change means the peer process restarted
    /// and its WireGuard sessions are gone, so ours must go too.
    known_boot: HashMap<NodeId, u64>,
}

pub struct PeerTable {
    secret: StaticSecret,
    tables: RwLock<Tables>,
    next_index: AtomicU32,
    /// Moves on every change, so that lookups cached by the packet loops know when
    /// they are stale (a reset peer is a new `Peer` with a new `Tunn`).
    generation: AtomicU64,
}

impl PeerTable {
    pub fn new(secret: StaticSecret) -> PeerTable {
        PeerTable {
            secret,
            tables: RwLock::new(Tables::default()),
            // Only 24 bits of a Tunn index count; start somewhere random-ish.
            next_index: AtomicU32::new(rand::random::<u32>() & 0x00ff_ffff),
            generation: AtomicU64::new(0),
        }
    }

    /// The current generation; see [`PeerCache`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn new_tunn(&self, info: &PeerInfo) -> Tunn {
        let index = self.next_index.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        // No persistent keepalive on either side: the hub keeps NAT mappings open with
        // binds, and two sides both keeping alive fight over rekeys.
        Tunn::new(
            self.secret.clone(),
            PublicKey::from(info.public_key.0),
            None,
            None,
            index,
            None,
        )
    }

    pub fn by_id(&self, id: NodeId) -> Option<Arc<Peer>> {
        self.tables.read().by_id.get(&id).cloned()
    }

    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<Arc<Peer>> {
        self.tables.read().by_ip.get(&ip).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Peer>> {
        let mut v: Vec<_> = self.tables.read().by_id.values().cloned().collect();
        v.sort_by_key(|p| p.node_id);
        v
    }

    /// Adds or updates a peer from the hub's announcement.
    pub fn upsert(&self, info: PeerInfo) -> Change {
        let mut t = self.tables.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let existing = t.by_id.get(&info.node_id).cloned();
        let restarted = info.boot_id != 0 && t.known_boot.get(&info.node_id).is_some_and(|&b| b != info.boot_id);
        if info.boot_id != 0 {
            t.known_boot.insert(info.node_id, info.boot_id);
        }
        match existing {
            Some(old)
                if old.info.lock().public_key == info.public_key && old.overlay_ip == info.overlay_ip && !restarted =>
            {
                // Same peer process: keep its WireGuard session.
                *old.info.lock() = info.clone();
                Change::Updated(info)
            }
            existing => {
                let peer = Arc::new(Peer {
                    node_id: info.node_id,
                    overlay_ip: info.overlay_ip,
                    info: Mutex::new(info.clone()),
                    tunn: Mutex::new(self.new_tunn(&info)),
                });
                if let Some(prev) = &existing {
                    t.by_ip.remove(&prev.overlay_ip);
                }
                t.by_id.insert(info.node_id, peer.clone());
                t.by_ip.insert(info.overlay_ip, peer);
                if existing.is_some() {
                    Change::Reset(info)
                } else {
                    Change::Added(info)
                }
            }
        }
    }

    pub fn remove(&self, id: NodeId) -> Option<Change> {
        let mut t = self.tables.write();
        let old = t.by_id.remove(&id)?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        t.by_ip.remove(&old.overlay_ip);
        t.known_boot.remove(&id);
        let info = old.info.lock().clone();
        Some(Change::Removed(info))
    }

    /// Replaces the whole table with the hub's list (after a login), keeping the
    /// WireGuard state of peers that did not restart.
    pub fn replace_all(&self, peers: Vec<PeerInfo>) -> Vec<Change> {
        let keep: std::collections::HashSet<NodeId> = peers.iter().map(|p| p.node_id).collect();
        let stale: Vec<NodeId> = self
            .tables
            .read()
            .by_id
            .keys()
            .filter(|id| !keep.contains(id))
            .copied()
            .collect();
        let mut changes: Vec<Change> = stale.into_iter().filter_map(|id| self.remove(id)).collect();
        changes.extend(peers.into_iter().map(|p| self.upsert(p)));
        changes
    }
}

/// The last peer a packet loop looked up: a batch is nearly always one flow. Valid
/// only while the table's generation has not moved.
pub struct PeerCache<K> {
    last: Option<(K, u64, Arc<Peer>)>,
}

impl<K: PartialEq + Copy> Default for PeerCache<K> {
    fn default() -> Self {
        PeerCache { last: None }
    }
}

impl<K: PartialEq + Copy> PeerCache<K> {
    pub fn get(&mut self, table: &PeerTable, key: K, lookup: impl FnOnce(K) -> Option<Arc<Peer>>) -> Option<Arc<Peer>> {
        let generation = table.generation();
        if let Some((k, g, p)) = &self.last {
            if *k == key && *g == generation {
                return Some(p.clone());
            }
        }
        let p = lookup(key)?;
        self.last = Some((key, generation, p.clone()));
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;
    use crate::proto::control::{Key32, Role};

    fn info(id: NodeId, boot: u64, key: u8) -> PeerInfo {
        PeerInfo {
            node_id: id,
            name: format!("peer{id}"),
            role: Role::Target,
            overlay_ip: Ipv4Addr::new(100, 64, 0, id as u8),
            public_key: Key32([key; 32]),
            online: boot != 0,
            boot_id: boot,
        }
    }

    #[test]
    fn reset_only_when_the_peer_restarted_or_rekeyed() {
        let t = PeerTable::new(KeyPair::generate().secret);
        assert!(matches!(t.upsert(info(1, 10, 1)), Change::Added(_)));
        assert!(matches!(t.upsert(info(1, 0, 1)), Change::Updated(_)), "went offline");
        assert!(
            matches!(t.upsert(info(1, 10, 1)), Change::Updated(_)),
            "hub restart, same process"
        );
        assert!(matches!(t.upsert(info(1, 11, 1)), Change::Reset(_)), "peer restarted");
        assert!(matches!(t.upsert(info(1, 11, 2)), Change::Reset(_)), "new key");
        assert!(t.by_ip(Ipv4Addr::new(100, 64, 0, 1)).is_some());
    }

    #[test]
    fn the_cache_drops_a_peer_that_was_reset() {
        let t = PeerTable::new(KeyPair::generate().secret);
        t.upsert(info(1, 10, 1));
        let mut cache = PeerCache::default();
        let first = cache.get(&t, 1, |id| t.by_id(id)).unwrap();
        assert!(Arc::ptr_eq(&first, &cache.get(&t, 1, |_| None).unwrap()), "cached");
        t.upsert(info(1, 11, 1)); // restarted: a new Peer
        let again = cache.get(&t, 1, |id| t.by_id(id)).unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
        t.remove(1);
        assert!(cache.get(&t, 1, |id| t.by_id(id)).is_none());
    }

    #[test]
    fn replace_all_removes_peers_no_longer_listed() {
        let t = PeerTable::new(KeyPair::generate().secret);
        t.upsert(info(1, 10, 1));
        t.upsert(info(2, 20, 2));
        let changes = t.replace_all(vec![info(2, 20, 2)]);
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::Removed(p) if p.node_id == 1)));
        assert!(t.by_id(1).is_none());
        assert!(t.by_ip(Ipv4Addr::new(100, 64, 0, 1)).is_none());
        assert!(t.by_id(2).is_some());
    }
}
