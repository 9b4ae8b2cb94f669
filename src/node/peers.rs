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

use crate::proto::control::{LoginOk, PeerInfo, Role};
use crate::proto::relay::NodeId;

/// The overlay prefixes a hub may give (`mcvpn hub --overlay` accepts 8..=30).
const OVERLAY_PREFIXES: std::ops::RangeInclusive<u8> = 8..=30;

/// Which announced peers a node accepts, from what its login said about itself: a peer
/// must sit inside the overlay, be another host than this node, and have the role this
/// node talks to (a client reaches targets, a target answers clients). A hub that
/// announces anything else (review finding C11: a "target" at 8.8.8.8, for which the
/// client would install a /32 route into the tunnel) is refused and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerScope {
    role: Role,
    node: NodeId,
    me: Ipv4Addr,
    prefix: u8,
}

/// Why an announced peer (or a login) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("overlay prefix /{0} is outside /8../30")]
    Prefix(u8),
    #[error("own overlay address {0} is not a host address of the overlay")]
    OwnAddress(Ipv4Addr),
    #[error("peer {name} (node {node}) at {ip} is outside the overlay {net}/{prefix}")]
    Outside {
        name: String,
        node: NodeId,
        ip: Ipv4Addr,
        net: Ipv4Addr,
        prefix: u8,
    },
    #[error("peer {name} (node {node}) claims {ip}, which is not a peer's address")]
    NotAHost { name: String, node: NodeId, ip: Ipv4Addr },
    #[error("peer {name} (node {node}) is a {role}, but a {me} talks only to {expected}s")]
    Role {
        name: String,
        node: NodeId,
        role: &'static str,
        me: &'static str,
        expected: &'static str,
    },
}

impl PeerScope {
    /// The scope of `role`'s session from its login; refuses a login whose overlay
    /// makes no sense (the target would route it all into its TUN).
    pub fn from_login(role: Role, login: &LoginOk) -> Result<PeerScope, ScopeError> {
        if !OVERLAY_PREFIXES.contains(&login.overlay_prefix) {
            return Err(ScopeError::Prefix(login.overlay_prefix));
        }
        let scope = PeerScope {
            role,
            node: login.node_id,
            me: login.overlay_ip,
            prefix: login.overlay_prefix,
        };
        if !scope.is_host(login.overlay_ip) {
            return Err(ScopeError::OwnAddress(login.overlay_ip));
        }
        Ok(scope)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.me) & self.mask())
    }

    /// Inside the overlay, and neither its network nor its broadcast address.
    fn is_host(&self, ip: Ipv4Addr) -> bool {
        let (ip, mask) = (u32::from(ip), self.mask());
        ip & mask == u32::from(self.me) & mask && ip & !mask != 0 && ip & !mask != !mask
    }

    /// Whether `peer` may be installed (WireGuard state, and for a client a route).
    pub fn check(&self, peer: &PeerInfo) -> Result<(), ScopeError> {
        let (name, node, ip) = (peer.name.clone(), peer.node_id, peer.overlay_ip);
        let expected = match self.role {
            Role::Client => Role::Target,
            Role::Target => Role::Client,
        };
        if peer.role != expected {
            return Err(ScopeError::Role {
                name,
                node,
                role: peer.role.as_str(),
                me: self.role.as_str(),
                expected: expected.as_str(),
            });
        }
        if u32::from(ip) & self.mask() != u32::from(self.me) & self.mask() {
            return Err(ScopeError::Outside {
                name,
                node,
                ip,
                net: self.network(),
                prefix: self.prefix,
            });
        }
        if !self.is_host(ip) || ip == self.me || node == self.node {
            return Err(ScopeError::NotAHost { name, node, ip });
        }
        Ok(())
    }
}

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
    use crate::proto::control::Key32;

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

    fn login(ip: [u8; 4], prefix: u8) -> LoginOk {
        LoginOk {
            node_id: 50,
            account: "alice".into(),
            contract: "acme".into(),
            overlay_ip: Ipv4Addr::from(ip),
            overlay_prefix: prefix,
            relay_key: crate::secret::SecretKey32::new([0; 32]),
            session_id: 1,
            resume_token: None,
            peers: vec![],
            more_peers: 0,
            maintenance: None,
        }
    }

    fn at(role: Role, ip: [u8; 4]) -> PeerInfo {
        PeerInfo {
            role,
            overlay_ip: Ipv4Addr::from(ip),
            ..info(1, 1, 1)
        }
    }

    /// Review finding C11: a lying hub announces a target at 8.8.8.8.
    #[test]
    fn a_client_accepts_only_targets_inside_the_overlay() {
        let scope = PeerScope::from_login(Role::Client, &login([100, 64, 0, 2], 10)).unwrap();
        assert_eq!(scope.check(&at(Role::Target, [100, 64, 0, 1])), Ok(()));
        assert_eq!(scope.check(&at(Role::Target, [100, 127, 255, 254])), Ok(()));
        assert!(matches!(
            scope.check(&at(Role::Target, [8, 8, 8, 8])),
            Err(ScopeError::Outside { .. })
        ));
        assert!(matches!(
            scope.check(&at(Role::Target, [100, 128, 0, 1])),
            Err(ScopeError::Outside { .. })
        ));
        assert!(matches!(
            scope.check(&at(Role::Client, [100, 64, 0, 3])),
            Err(ScopeError::Role { .. })
        ));
        for not_a_peer in [[100, 64, 0, 0], [100, 127, 255, 255], [100, 64, 0, 2]] {
            assert!(
                matches!(
                    scope.check(&at(Role::Target, not_a_peer)),
                    Err(ScopeError::NotAHost { .. })
                ),
                "{not_a_peer:?}"
            );
        }
        let me_again = PeerInfo {
            node_id: 50,
            ..at(Role::Target, [100, 64, 0, 9])
        };
        assert!(scope.check(&me_again).is_err(), "our own node id");
    }

    #[test]
    fn a_target_accepts_only_clients_and_a_sane_overlay() {
        let scope = PeerScope::from_login(Role::Target, &login([10, 9, 0, 1], 16)).unwrap();
        assert_eq!(scope.check(&at(Role::Client, [10, 9, 200, 7])), Ok(()));
        assert!(scope.check(&at(Role::Target, [10, 9, 0, 2])).is_err());
        assert!(scope.check(&at(Role::Client, [10, 10, 0, 2])).is_err());
        // A prefix that would route the world (or nothing) into the TUN, or an own
        // address that is not a host of the overlay: the login is refused.
        assert_eq!(
            PeerScope::from_login(Role::Target, &login([100, 64, 0, 1], 0)),
            Err(ScopeError::Prefix(0))
        );
        assert_eq!(
            PeerScope::from_login(Role::Target, &login([100, 64, 0, 1], 31)),
            Err(ScopeError::Prefix(31))
        );
        assert!(matches!(
            PeerScope::from_login(Role::Client, &login([100, 64, 0, 0], 10)),
            Err(ScopeError::OwnAddress(_))
        ));
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
