//! Live sessions: who is online, who may reach whom, and the pushes that keep every
//! node's peer list current. The relay table is updated here, under the same lock, so
//! the control plane and the data plane never disagree for longer than one call.
//!
//! Every change runs inside one call on the store ([`StoreHandle::run`]), so changes
//! are serialised by the store and what one reads (peers, account states) is still
//! true when it applies it. The registry's own lock is held only for in-memory work:
//! store reads happen before it is taken and session records are written after it is
//! released, so `mcvpn hub stats` never waits on SQLite.
//!
//! Lock order: store, then registry, then relay table.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::RngCore;
use tokio::sync::mpsc::UnboundedSender;

use super::auth::state_refusal;
use super::relay::SharedRelayTable;
use super::reply::Refusal;
use super::store_handle::StoreHandle;
use crate::proto::control::{Event, LoginOk, PeerInfo, RefuseReason, Role, MAX_PEER_NAME};
use crate::proto::relay::NodeId;
use crate::store::{AccountRecord, AuditEntry, DeviceRecord, OverlayNet, Store};

/// What a live session's connection task is sent to pass on to its node. Boxed: an
/// [`Event`] is a few hundred bytes (for its largest variants, the login answer and admin
/// results, which are never pushed), and tokio allocates an unbounded channel's first
/// block of 32 slots with the channel, so each idle session held 32 of them (issue 13).
pub type Push = Box<Event>;

struct Session {
    device: DeviceRecord,
    contract_id: i64,
    /// The account's password hash when the session was admitted: a client session ends
    /// when it changes (a password change or reset, C8).
    password_hash: String,
    boot_id: u64,
    relay_session: u64,
    db_session: i64,
    tx: UnboundedSender<Push>,
    /// Devices this session may reach, whether online or not.
    peers: HashMap<NodeId, DeviceRecord>,
}

pub struct Registry {
    store: StoreHandle,
    live: Arc<Live>,
}

/// The live sessions and the relay table they are mirrored into. Its methods run
/// inside a store call and are given the store.
struct Live {
    sessions: Mutex<HashMap<NodeId, Session>>,
    /// Nodes the other hubs hold (locked after `sessions`). Mirrored into the relay
    /// table, which forwards their traffic to their hub.
    remote: Mutex<HashMap<NodeId, RemotePeer>>,
    relay: SharedRelayTable,
    overlay: OverlayNet,
}

/// A session the registry accepted; hand it back to [`Registry::leave`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    pub node: NodeId,
    pub relay_session: u64,
}

/// A live session as `mcvpn hub stats` shows it.
#[derive(Debug, serde::Serialize)]
pub struct SessionSummary {
    pub node_id: NodeId,
    pub name: String,
    pub account: String,
    pub role: &'static str,
    pub overlay_ip: String,
    pub peers_online: usize,
}

/// A node another hub of the mesh holds (issue 15), as the store says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RemotePeer {
    /// The holding hub's relay address: where `Mesh` datagrams for the node go.
    hub: std::net::SocketAddr,
    boot_id: u64,
}

fn peer_info(d: &DeviceRecord, sessions: &HashMap<NodeId, Session>, remote: &HashMap<NodeId, RemotePeer>) -> PeerInfo {
    let live = sessions.get(&d.node_id());
    let boot_id = match live {
        Some(s) => Some(s.boot_id),
        None => remote.get(&d.node_id()).map(|r| r.boot_id),
    };
    PeerInfo {
        node_id: d.node_id(),
        // Bounded so that one peer always fits a control frame, whatever a name grew to.
        name: d.name.chars().take(MAX_PEER_NAME).collect(),
        role: d.role,
        overlay_ip: d.overlay_ip,
        public_key: d.public_key,
        online: boot_id.is_some(),
        boot_id: boot_id.unwrap_or(0),
    }
}

impl Registry {
    pub fn new(store: StoreHandle, relay: SharedRelayTable, overlay: OverlayNet) -> Registry {
        Registry {
            store,
            live: Arc::new(Live {
                sessions: Mutex::new(HashMap::new()),
                remote: Mutex::new(HashMap::new()),
                relay,
                overlay,
            }),
        }
    }

    /// Puts a device online: admits it to the relay, tells its online peers, and
    /// returns what the node needs to know. The account, its contract and the device are
    /// read again first, in the same store call as the admission: a suspension, lock,
    /// password change or device removal applied (and refreshed) after this login was
    /// authenticated refuses it (S2). Peers that do not fit the `LoginOk` are queued on
    /// `tx` as `Peer` pushes, to be sent right after it.
    pub async fn join(
        &self,
        device: DeviceRecord,
        account: &AccountRecord,
        boot_id: u64,
        db_session: i64,
        resume_token: Option<String>,
        tx: UnboundedSender<Push>,
    ) -> Result<(LoginOk, Ticket), Refusal> {
        let (live, account) = (self.live.clone(), account.clone());
        self.store
            .run(move |store| live.join(store, device, &account, boot_id, db_session, resume_token, tx))
            .await
            .map_err(|e| Refusal::new(RefuseReason::Internal, format!("store: {e}")))?
    }

    /// Takes a session offline (connection closed) if it is still the current one.
    pub async fn leave(&self, ticket: Ticket, reason: &str) {
        let (live, reason) = (self.live.clone(), reason.to_string());
        let _ = self.store.run(move |store| live.leave(store, ticket, &reason)).await;
    }

    /// Re-reads every live session's account, contract and peers from the store after
    /// a change: cuts sessions that may no longer run, pushes peer additions and removals.
    pub async fn refresh(&self) {
        let live = self.live.clone();
        let _ = self.store.run(move |store| live.refresh(store)).await;
    }

    /// Ends the live session stored as `db_session` (an administrator's `session end`),
    /// telling the node why; false when it is not live (any more).
    pub async fn end_session(&self, db_session: i64, message: &str) -> bool {
        let (live, message) = (self.live.clone(), message.to_string());
        self.store
            .run(move |store| live.end_session(store, db_session, &message))
            .await
            .unwrap_or(false)
    }

    /// Ends every session (hub shutting down), recording why.
    pub async fn close_all(&self, reason: &str) {
        let (live, reason) = (self.live.clone(), reason.to_string());
        let _ = self.store.run(move |store| live.close_all(store, &reason)).await;
    }

    /// Re-reads which nodes the other hubs sharing the store hold (those whose
    /// heartbeat is at `alive_since` or later) and tells the local sessions what changed.
    pub async fn sync_remote(&self, hub: &str, alive_since: crate::store::UnixTime) {
        let (live, hub) = (self.live.clone(), hub.to_string());
        let _ = self
            .store
            .run(move |store| live.sync_remote(store, &hub, alive_since))
            .await;
    }

    pub fn summaries(&self) -> Vec<SessionSummary> {
        self.live.summaries()
    }
}

/// A session taken offline, to record in the store once the registry's lock is released.
struct Ended {
    session: Session,
    reason: String,
    bytes: (u64, u64),
}

impl Live {
    #[allow(clippy::too_many_arguments)]
    fn join(
        &self,
        store: &mut dyn Store,
        device: DeviceRecord,
        account: &AccountRecord,
        boot_id: u64,
        db_session: i64,
        resume_token: Option<String>,
        tx: UnboundedSender<Push>,
    ) -> Result<(LoginOk, Ticket), Refusal> {
        let node = device.node_id();
        let internal = |e: crate::store::StoreError| Refusal::new(RefuseReason::Internal, format!("store: {e}"));
        // Authentication read these before it hashed the password; the store may have
        // changed since. Refresh runs in a store call too, so either it ran before this
        // and what is read here is current, or it runs after and sees this session.
        let authenticated_hash = &account.password_hash;
        let account = &store.account_by_id(account.id).map_err(internal)?;
        if let Some(r) = state_refusal(account) {
            return Err(r);
        }
        if device.role == Role::Client && account.password_hash != *authenticated_hash {
            return Err(Refusal::new(
                RefuseReason::ResumeExpired,
                format!("the password of {} changed during this login", account.username),
            ));
        }
        let device = match store.device_by_id(device.id) {
            Ok(d) => d,
            Err(crate::store::StoreError::NotFound(_)) => {
                return Err(Refusal::new(RefuseReason::DeviceNotAllowed, "this device was removed"))
            }
            Err(e) => return Err(internal(e)),
        };
        let peers: HashMap<NodeId, DeviceRecord> = store
            .authorised_peers(&device)
            .map_err(|e| Refusal::new(RefuseReason::Internal, format!("store: {e}")))?
            .into_iter()
            .map(|d| (d.node_id(), d))
            .collect();
        // One small read in the same store call; a failure only loses the banner.
        let maintenance = crate::admin::maintenance_banner(store, crate::store::now())
            .ok()
            .flatten();
        let (login, replaced) = self.admit(
            device.clone(),
            account,
            boot_id,
            db_session,
            resume_token,
            tx,
            peers,
            maintenance,
        );
        let ticket = Ticket {
            node,
            relay_session: login.session_id,
        };
        if let Some(ended) = replaced {
            end_in_store(store, &ended);
        }
        let _ = store.audit(&AuditEntry {
            actor: &account.username,
            action: "session.start",
            contract_id: Some(account.contract_id),
            account: Some(&account.username),
            source: None,
            detail: &format!("{} {} at {}", device.role.as_str(), device.name, device.overlay_ip),
        });
        Ok((login, ticket))
    }

    /// The in-memory half of [`join`](Self::join): replaces any older session of the
    /// device, admits it to the relay and tells its online peers.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &self,
        device: DeviceRecord,
        account: &AccountRecord,
        boot_id: u64,
        db_session: i64,
        resume_token: Option<String>,
        tx: UnboundedSender<Push>,
        peers: HashMap<NodeId, DeviceRecord>,
        maintenance: Option<crate::proto::control::MaintenanceBanner>,
    ) -> (LoginOk, Option<Ended>) {
        let node = device.node_id();
        let mut sessions = self.sessions.lock();
        let replaced = sessions.remove(&node).map(|old| {
            let _ = old.tx.send(Box::new(Event::Kick {
                reason: RefuseReason::Internal,
                message: "replaced by a newer login of this device".into(),
            }));
            let bytes = self.relay.write().remove(node, old.relay_session);
            Ended {
                session: old,
                reason: "replaced by a newer login".into(),
                bytes: bytes.unwrap_or_default(),
            }
        });
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let relay_session = rand::rngs::OsRng.next_u64();
        self.relay
            .write()
            .admit(node, relay_session, key, peers.keys().copied().collect());

        let session = Session {
            device: device.clone(),
            contract_id: account.contract_id,
            password_hash: account.password_hash.clone(),
            boot_id,
            relay_session,
            db_session,
            tx,
            peers,
        };
        sessions.insert(node, session);
        // A node that moved here from another hub is this hub's now.
        let mut remote = self.remote.lock();
        if remote.remove(&node).is_some() {
            self.relay.write().forget_remote(node);
        }
        // Tell online peers; a brand-new device was not in their lists yet.
        let me = peer_info(&device, &sessions, &remote);
        let peer_ids: Vec<NodeId> = sessions[&node].peers.keys().copied().collect();
        for p in peer_ids {
            if let Some(ps) = sessions.get_mut(&p) {
                ps.peers.entry(node).or_insert_with(|| device.clone());
                self.relay.write().add_peer(p, node);
                let _ = ps.tx.send(Box::new(Event::Peer(me.clone())));
            }
        }
        let s = &sessions[&node];
        // Online peers first: if the list is split, the ones the node can reach at once
        // come in the first message.
        let mut peers: Vec<PeerInfo> = s.peers.values().map(|d| peer_info(d, &sessions, &remote)).collect();
        peers.sort_by_key(|p| (!p.online, p.node_id));
        let login = LoginOk {
            node_id: node,
            account: account.username.clone(),
            contract: account.contract.clone(),
            overlay_ip: device.overlay_ip,
            overlay_prefix: self.overlay.prefix,
            relay_key: crate::secret::SecretKey32::new(key),
            session_id: relay_session,
            resume_token: resume_token.map(crate::secret::SecretString::new),
            peers,
            more_peers: 0,
            maintenance,
        };
        let (login, rest) = login.split_to_fit();
        if !rest.is_empty() {
            tracing::debug!(
                node,
                first = login.peers.len(),
                more = rest.len(),
                "peer list split over several messages"
            );
        }
        for p in rest {
            let _ = s.tx.send(Box::new(Event::Peer(p)));
        }
        (login, replaced)
    }

    fn leave(&self, store: &mut dyn Store, ticket: Ticket, reason: &str) {
        let ended = {
            let mut sessions = self.sessions.lock();
            if sessions
                .get(&ticket.node)
                .is_some_and(|s| s.relay_session == ticket.relay_session)
            {
                let s = sessions.remove(&ticket.node).expect("checked");
                Some(self.drop_session(&mut sessions, s, reason.to_string()))
            } else {
                None
            }
        };
        if let Some(ended) = ended {
            end_in_store(store, &ended);
        }
    }

    /// Removes a session from the relay and tells its peers it is offline.
    fn drop_session(&self, sessions: &mut HashMap<NodeId, Session>, s: Session, reason: String) -> Ended {
        let node = s.device.node_id();
        let bytes = self.relay.write().remove(node, s.relay_session);
        let gone = peer_info(&s.device, sessions, &self.remote.lock());
        for p in s.peers.keys() {
            if let Some(ps) = sessions.get(p) {
                let _ = ps.tx.send(Box::new(Event::Peer(gone.clone())));
            }
        }
        tracing::info!(node, name = %s.device.name, reason, "session ended");
        Ended {
            session: s,
            reason,
            bytes: bytes.unwrap_or_default(),
        }
    }

    /// Ends a session from the hub's side with a reason the node is told.
    fn kick(&self, sessions: &mut HashMap<NodeId, Session>, node: NodeId, refusal: &Refusal) -> Option<Ended> {
        let s = sessions.remove(&node)?;
        let _ = s.tx.send(Box::new(Event::Kick {
            reason: refusal.reason,
            message: refusal.message.clone(),
        }));
        Some(self.drop_session(sessions, s, format!("kicked: {}", refusal.message)))
    }

    /// Reads every live session's account, device and peers, then applies them. The
    /// store call this runs in keeps other registry changes out until it returns, so
    /// the sessions read are still the sessions changed.
    fn refresh(&self, store: &mut dyn Store) {
        let live: Vec<(NodeId, i64, i64)> = {
            let sessions = self.sessions.lock();
            sessions
                .iter()
                .map(|(&node, s)| (node, s.device.account_id, s.device.id))
                .collect()
        };
        // First the accounts, once each (an account has up to ten devices online), and
        // the sessions whose account or contract may no longer run are cut at once: a
        // suspension must not wait for every other session's peers to be read (issue 13).
        let mut accounts: HashMap<i64, Result<AccountRecord, String>> = HashMap::new();
        for &(_, account_id, _) in &live {
            if accounts.contains_key(&account_id) {
                continue;
            }
            let read = match store.account_by_id(account_id) {
                Ok(a) => Ok(a),
                Err(crate::store::StoreError::NotFound(e)) => Err(e),
                // The store is not answering (a PostgreSQL restart): that says nothing
                // about the sessions, which go on; the next change or poll refreshes.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot refresh the sessions: the store did not answer");
                    return;
                }
            };
            accounts.insert(account_id, read);
        }
        let mut ended = Vec::new();
        {
            let mut sessions = self.sessions.lock();
            for &(node, account_id, _) in &live {
                let r = match &accounts[&account_id] {
                    Ok(account) => state_refusal(account),
                    Err(e) => Some(Refusal::new(
                        RefuseReason::DeviceNotAllowed,
                        format!("this device was removed ({e})"),
                    )),
                };
                if let Some(r) = r {
                    ended.extend(self.kick(&mut sessions, node, &r));
                }
            }
        }
        let looked_up: Vec<_> = live
            .into_iter()
            .filter_map(|(node, account_id, device_id)| {
                let Ok(account) = &accounts[&account_id] else {
                    return None;
                };
                if state_refusal(account).is_some() {
                    return None;
                }
                let found = store
                    .device_by_id(device_id)
                    .and_then(|d| store.authorised_peers(&d).map(|p| (account.clone(), d, p)));
                Some((node, found))
            })
            .collect();
        {
            let mut sessions = self.sessions.lock();
            for (node, found) in looked_up {
                let (account, device, peers) = match found {
                    Ok(x) => x,
                    Err(e) if !matches!(e, crate::store::StoreError::NotFound(_)) => {
                        tracing::warn!(node, error = %e, "cannot refresh a session: the store did not answer");
                        continue;
                    }
                    Err(e) => {
                        let r = Refusal::new(RefuseReason::DeviceNotAllowed, format!("this device was removed ({e})"));
                        ended.extend(self.kick(&mut sessions, node, &r));
                        continue;
                    }
                };
                // A client session proved the password (or a token of it) at login; once
                // the password changed, whoever knew the old one is out (C8). Targets log
                // in with their device key: the password has nothing to do with them.
                let Some(s) = sessions.get_mut(&node) else { continue };
                if s.password_hash != account.password_hash {
                    if device.role == Role::Client {
                        let r = Refusal::new(
                            RefuseReason::ResumeExpired,
                            format!("the password of {} was changed", account.username),
                        );
                        ended.extend(self.kick(&mut sessions, node, &r));
                        continue;
                    }
                    s.password_hash = account.password_hash.clone();
                }
                self.update_peers(&mut sessions, node, device, peers);
            }
        }
        for e in &ended {
            end_in_store(store, e);
        }
    }

    /// Replaces a live session's device record and peers, pushing the differences.
    fn update_peers(
        &self,
        sessions: &mut HashMap<NodeId, Session>,
        node: NodeId,
        device: DeviceRecord,
        peers: Vec<DeviceRecord>,
    ) {
        // Kicked meanwhile, as a peer of a session kicked before it in this refresh.
        let Some(s) = sessions.get(&node) else { return };
        let new: HashMap<NodeId, DeviceRecord> = peers.into_iter().map(|d| (d.node_id(), d)).collect();
        let old: HashSet<NodeId> = s.peers.keys().copied().collect();
        let remote = self.remote.lock();
        let events: Vec<Event> = old
            .iter()
            .filter(|id| !new.contains_key(id))
            .map(|&id| Event::PeerGone { node_id: id })
            .chain(
                new.values()
                    .filter(|d| !old.contains(&d.node_id()))
                    .map(|d| Event::Peer(peer_info(d, sessions, &remote))),
            )
            .collect();
        self.relay.write().set_peers(node, new.keys().copied().collect());
        let s = sessions.get_mut(&node).expect("present");
        s.device = device;
        s.peers = new;
        for e in events {
            let _ = s.tx.send(Box::new(e));
        }
    }

    /// Reads which nodes the other hubs hold, mirrors them into the relay table and
    /// tells the local sessions whose peers came, went or restarted elsewhere.
    fn sync_remote(&self, store: &mut dyn Store, hub: &str, alive_since: crate::store::UnixTime) {
        let rows = match store.remote_sessions(hub, alive_since) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read which hub holds which node");
                return;
            }
        };
        let sessions = self.sessions.lock();
        let mut fresh: HashMap<NodeId, RemotePeer> = HashMap::new();
        for r in rows {
            let node = r.device_id as NodeId;
            // A node this hub holds is this hub's, whatever a dead hub left behind.
            if sessions.contains_key(&node) {
                continue;
            }
            match r.relay_addr.parse() {
                // Oldest first: a node's newest session wins.
                Ok(hub) => {
                    fresh.insert(
                        node,
                        RemotePeer {
                            hub,
                            boot_id: r.boot_id,
                        },
                    );
                }
                Err(_) => tracing::warn!(addr = %r.relay_addr, "a hub announced a relay address that is no address"),
            }
        }
        let mut remote = self.remote.lock();
        let changed: Vec<NodeId> = remote
            .keys()
            .chain(fresh.keys())
            .copied()
            .collect::<HashSet<_>>()
            .into_iter()
            .filter(|n| remote.get(n) != fresh.get(n))
            .collect();
        if changed.is_empty() {
            return;
        }
        *remote = fresh;
        self.relay
            .write()
            .set_remote(remote.iter().map(|(&n, r)| (n, r.hub)).collect());
        for s in sessions.values() {
            for id in &changed {
                if let Some(d) = s.peers.get(id) {
                    let _ = s.tx.send(Box::new(Event::Peer(peer_info(d, &sessions, &remote))));
                }
            }
        }
        tracing::debug!(
            changed = changed.len(),
            remote = remote.len(),
            "nodes on other hubs updated"
        );
    }

    fn end_session(&self, store: &mut dyn Store, db_session: i64, message: &str) -> bool {
        let ended = {
            let mut sessions = self.sessions.lock();
            let Some(node) = sessions
                .iter()
                .find(|(_, s)| s.db_session == db_session)
                .map(|(&node, _)| node)
            else {
                return false;
            };
            // Not transient: the node stops instead of logging straight back in.
            let r = Refusal::new(RefuseReason::ResumeExpired, message);
            self.kick(&mut sessions, node, &r)
        };
        if let Some(e) = &ended {
            end_in_store(store, e);
        }
        ended.is_some()
    }

    fn close_all(&self, store: &mut dyn Store, reason: &str) {
        let ended: Vec<Ended> = {
            let mut sessions = self.sessions.lock();
            sessions
                .drain()
                .map(|(node, s)| {
                    let bytes = self.relay.write().remove(node, s.relay_session);
                    Ended {
                        session: s,
                        reason: reason.to_string(),
                        bytes: bytes.unwrap_or_default(),
                    }
                })
                .collect()
        };
        for e in &ended {
            end_in_store(store, e);
        }
    }

    fn summaries(&self) -> Vec<SessionSummary> {
        let sessions = self.sessions.lock();
        let mut out: Vec<SessionSummary> = sessions
            .values()
            .map(|s| SessionSummary {
                node_id: s.device.node_id(),
                name: s.device.name.clone(),
                account: s.device.account.clone(),
                role: s.device.role.as_str(),
                overlay_ip: s.device.overlay_ip.to_string(),
                peers_online: s.peers.keys().filter(|p| sessions.contains_key(p)).count(),
            })
            .collect();
        out.sort_by_key(|s| s.node_id);
        out
    }
}

/// Records the end of a session, with the bytes relayed, in the sessions table and
/// the audit log.
fn end_in_store(store: &mut dyn Store, e: &Ended) {
    let (s, reason, (bytes_in, bytes_out)) = (&e.session, &e.reason, e.bytes);
    if let Err(e) = store.session_end(s.db_session, reason, bytes_in, bytes_out) {
        tracing::warn!(error = %e, "could not record the end of a session");
    }
    let _ = store.audit(&AuditEntry {
        actor: "hub",
        action: "session.end",
        contract_id: Some(s.contract_id),
        account: Some(&s.device.account),
        source: None,
        detail: &format!(
            "{} {}: {reason}; {bytes_in} bytes in, {bytes_out} bytes out",
            s.device.role.as_str(),
            s.device.name
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::relay::RelayTable;
    use crate::password;
    use crate::proto::control::{Key32, Role};
    use crate::store::prelude::*;
    use crate::store::{AccountState, SqliteStore};
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    struct Fixture {
        reg: Registry,
        store: StoreHandle,
        relay: SharedRelayTable,
        target: DeviceRecord,
        client: DeviceRecord,
        alice: AccountRecord,
    }

    fn fixture() -> Fixture {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.contract_add(&crate::store::NewContract::simple("acme", 10)).unwrap();
        let alice = s.account_add("acme", "alice", &password::hash("x")).unwrap();
        let net = OverlayNet::default();
        let target = s
            .device_register(alice.id, Role::Target, &Key32([1; 32]), "pc", net)
            .unwrap();
        let client = s
            .device_register(alice.id, Role::Client, &Key32([2; 32]), "laptop", net)
            .unwrap();
        let store = StoreHandle::new(s);
        let relay = RelayTable::shared();
        Fixture {
            reg: Registry::new(store.clone(), relay.clone(), net),
            store,
            relay,
            target,
            client,
            alice,
        }
    }

    async fn join(f: &Fixture, d: &DeviceRecord, boot: u64) -> (LoginOk, Ticket, UnboundedReceiver<Push>) {
        let (tx, rx) = unbounded_channel();
        let id = d.id;
        let db = f
            .store
            .run(move |s| s.session_start(id, "test", "test-hub", 0))
            .await
            .unwrap()
            .unwrap();
        let (ok, t) = f.reg.join(d.clone(), &f.alice, boot, db, None, tx).await.unwrap();
        (ok, t, rx)
    }

    #[tokio::test]
    async fn peers_learn_of_each_other_and_of_departures() {
        let f = fixture();
        let (ok_t, t_ticket, mut t_rx) = join(&f, &f.target, 11).await;
        assert_eq!(ok_t.peers.len(), 1);
        assert!(!ok_t.peers[0].online);
        let (ok_c, c_ticket, _c_rx) = join(&f, &f.client, 22).await;
        assert!(ok_c.peers[0].online);
        assert_eq!(ok_c.peers[0].boot_id, 11);
        match *t_rx.try_recv().unwrap() {
            Event::Peer(p) => assert!(p.online && p.boot_id == 22),
            e => panic!("unexpected {e:?}"),
        }
        assert!(f
            .relay
            .read()
            .node(t_ticket.node)
            .unwrap()
            .peers
            .contains(&c_ticket.node));
        f.reg.leave(c_ticket, "logout").await;
        match *t_rx.try_recv().unwrap() {
            Event::Peer(p) => assert!(!p.online),
            e => panic!("unexpected {e:?}"),
        }
        assert!(f.relay.read().node(c_ticket.node).is_none());
        assert_eq!(f.store.run(|s| s.sessions(true, None)).await.unwrap().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_peer_another_hub_holds_is_announced_and_routed_to_that_hub_until_it_goes_silent() {
        let f = fixture();
        let (_ok, _ticket, mut rx) = join(&f, &f.client, 11).await;
        while rx.try_recv().is_ok() {}
        let (target, node) = (f.target.id, f.target.node_id());
        let now = crate::store::now();
        f.store
            .run(move |s| {
                s.hub_heartbeat("hub-b", now, "192.0.2.11:51820").unwrap();
                s.session_start(target, "x", "hub-b", 22).unwrap();
            })
            .await
            .unwrap();
        f.reg.sync_remote("test-hub", now - 10).await;
        match *rx.try_recv().expect("the client is told") {
            Event::Peer(p) => assert!(p.node_id == node && p.online && p.boot_id == 22, "{p:?}"),
            e => panic!("unexpected {e:?}"),
        }
        assert_eq!(
            f.relay.read().remote_hub(node),
            Some("192.0.2.11:51820".parse().unwrap())
        );
        f.reg.sync_remote("test-hub", now - 10).await;
        assert!(rx.try_recv().is_err(), "nothing changed, nothing told");
        // hub-b's heartbeat is too old now: its node is offline and unrouted.
        f.reg.sync_remote("test-hub", now + 100).await;
        match *rx.try_recv().expect("the client is told") {
            Event::Peer(p) => assert!(p.node_id == node && !p.online, "{p:?}"),
            e => panic!("unexpected {e:?}"),
        }
        assert_eq!(f.relay.read().remote_hub(node), None);
    }

    #[tokio::test]
    async fn refresh_kicks_locked_accounts() {
        let f = fixture();
        let (_ok, ticket, mut rx) = join(&f, &f.client, 1).await;
        let alice = f.alice.id;
        f.store
            .run(move |s| s.account_set_state(alice, AccountState::Locked))
            .await
            .unwrap()
            .unwrap();
        f.reg.refresh().await;
        assert!(matches!(
            *rx.try_recv().unwrap(),
            Event::Kick {
                reason: RefuseReason::AccountLocked,
                ..
            }
        ));
        assert!(f.relay.read().node(ticket.node).is_none());
        // The connection task's own leave afterwards changes nothing.
        f.reg.leave(ticket, "closed").await;
        assert!(f.reg.summaries().is_empty());
    }

    /// C6: a target reachable by 400 clients still gets a LoginOk that fits one control
    /// frame; the peers that do not fit follow as `Peer` pushes, and none is lost.
    #[tokio::test]
    async fn four_hundred_peers_fit_in_frames() {
        let f = fixture();
        let contract = f.alice.contract_id;
        let alice = f.alice.id;
        f.store
            .run(move |s| {
                // A large contract may allow this many devices; the registry must cope.
                let _ = s.contract_update(contract, crate::store::ContractField::DeviceLimit, "1000", "test");
                for i in 0..399u32 {
                    let mut key = [7u8; 32];
                    key[..4].copy_from_slice(&i.to_be_bytes());
                    s.device_register(
                        alice,
                        Role::Client,
                        &Key32(key),
                        &format!("a-rather-long-laptop-name-{i:04}-of-the-sales-team"),
                        OverlayNet::default(),
                    )
                    .unwrap();
                }
            })
            .await
            .unwrap();
        let (ok, _t, mut rx) = join(&f, &f.target, 1).await;
        let bytes = crate::proto::control::encode(&Event::LoginOk(ok.clone())).expect("LoginOk fits one frame");
        assert!(bytes.len() <= crate::proto::control::MAX_MESSAGE);
        let mut seen: HashSet<NodeId> = ok.peers.iter().map(|p| p.node_id).collect();
        while let Ok(ev) = rx.try_recv() {
            crate::proto::control::encode(&ev).expect("every push fits one frame");
            match *ev {
                Event::Peer(p) => assert!(seen.insert(p.node_id), "announced twice"),
                e => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(seen.len(), 400, "every client announced once");
    }

    /// C8: a password change or reset ends the account's live client sessions; its
    /// targets, which log in with their device key, stay.
    #[tokio::test]
    async fn a_new_password_ends_live_sessions() {
        let f = fixture();
        let (_ok, target, mut target_rx) = join(&f, &f.target, 2).await;
        let (_ok, ticket, mut rx) = join(&f, &f.client, 1).await;
        let alice = f.alice.id;
        f.store
            .run(move |s| s.account_set_password(alice, &password::hash("a new passphrase")))
            .await
            .unwrap()
            .unwrap();
        f.reg.refresh().await;
        assert!(
            matches!(rx.try_recv().map(|e| *e), Ok(Event::Kick { .. })),
            "the session that knew the old password is cut"
        );
        assert!(f.relay.read().node(ticket.node).is_none());
        assert!(f.relay.read().node(target.node).is_some(), "the target stays");
        while let Ok(ev) = target_rx.try_recv() {
            assert!(matches!(*ev, Event::Peer(_)), "the target is told, not kicked: {ev:?}");
        }
    }

    /// S2: a login authenticated before a suspension, admitted after the refresh that
    /// applied it, is refused.
    #[tokio::test]
    async fn a_join_after_a_suspension_is_refused() {
        let f = fixture();
        let contract = f.alice.contract_id;
        f.store
            .run(move |s| s.contract_set_state(contract, crate::store::ContractState::Suspended, Some("unpaid")))
            .await
            .unwrap()
            .unwrap();
        f.reg.refresh().await;
        let (tx, _rx) = unbounded_channel();
        // f.alice is the account as authentication read it, before the suspension.
        let r = f.reg.join(f.client.clone(), &f.alice, 1, 0, None, tx).await;
        assert_eq!(r.err().map(|r| r.reason), Some(RefuseReason::ContractSuspended));
        assert!(f.reg.summaries().is_empty());
    }

    /// A device removed while online loses its session at the next refresh.
    #[tokio::test]
    async fn a_removed_device_is_cut() {
        let f = fixture();
        let (_ok, ticket, mut rx) = join(&f, &f.client, 1).await;
        let id = f.client.id;
        f.store.run(move |s| s.device_remove(id)).await.unwrap().unwrap();
        f.reg.refresh().await;
        assert!(matches!(rx.try_recv().map(|e| *e), Ok(Event::Kick { .. })));
        assert!(f.relay.read().node(ticket.node).is_none());
    }

    #[tokio::test]
    async fn a_second_login_replaces_the_first() {
        let f = fixture();
        let (_ok, first, mut rx1) = join(&f, &f.client, 1).await;
        let (_ok, second, _rx2) = join(&f, &f.client, 2).await;
        assert!(matches!(*rx1.try_recv().unwrap(), Event::Kick { .. }));
        f.reg.leave(first, "closed").await;
        assert_eq!(f.relay.read().node(second.node).unwrap().session, second.relay_session);
    }
}
