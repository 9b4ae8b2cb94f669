//! What every connection task of the hub shares.

use super::cluster::Membership;
use super::login_cost::LoginGuards;
use super::registry::Registry;
use super::store_handle::StoreHandle;
use crate::keys::KeyPair;
use crate::store::OverlayNet;

pub struct HubContext {
    /// The hub's keys: the current one first, then those nodes may still have pinned.
    pub keys: Vec<KeyPair>,
    pub store: StoreHandle,
    pub registry: Registry,
    /// The limiter, hash gate and refusal log every password check goes through.
    pub login: LoginGuards,
    pub overlay: OverlayNet,
    /// This hub among those sharing the store: its name, and whether it runs the jobs.
    pub cluster: Membership,
}
