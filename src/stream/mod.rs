//! The stream transport: what a node and the hub exchange when UDP cannot pass. One
//! WebSocket connection (over TLS on the hub's HTTPS port, perhaps through an HTTP proxy)
//! carries a control channel and relay datagrams, each binary message tagged with one
//! byte ([`frame`]).
//!
//! Both ends bridge the datagrams to a UDP socket on loopback ([`link`]): on the hub it
//! talks to the relay's own socket, on a node to the data path's. The relay, the bind
//! and its challenge, the pair checks, the counters and the data path are therefore the
//! same code on both transports: a node on HTTPS is, to the relay, a UDP endpoint on
//! loopback that proved its bind like any other. That is what lets a client on HTTPS
//! reach a target on UDP (and the reverse) with nothing special in the relay, and a node
//! move between the transports by re-pointing its data path socket and binding again.
//!
//! The connecting (TLS, proxies, the HTTP upgrade) is each side's own: `hub::https`
//! and `node::https`.

pub mod frame;
pub mod link;

/// The path of the WebSocket on the hub's HTTPS port.
pub const WS_PATH: &str = "/mcvpn/v1";
