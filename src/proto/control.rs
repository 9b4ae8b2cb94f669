//! Control-plane messages between a node (client or target) and the hub.
//!
//! They travel inside Noise transport messages on one TCP connection per node. Each
//! Noise message is framed by a 2-byte big-endian length ([`frame`]). Inside, a message is
//! JSON: `{"v": 1, "msg": {"type": ...}}`, so that a hub can refuse a version it does not
//! speak with a readable reason instead of a parse error.
//!
//! Pure: encoding and decoding never touch I/O and never panic on bad input.

use std::net::Ipv4Addr;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::relay::NodeId;
use crate::admin::api::{AdminCommand, AdminError, Output as AdminOutput};
use crate::secret::{SecretKey32, SecretString};

/// The control protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Noise prologue: binds both ends to this protocol, so a handshake meant for
/// something else cannot be reused here.
pub const NOISE_PROLOGUE: &[u8] = b"mcvpn control v1";
/// The Noise pattern of the control channel (DESIGN.md, "Control plane").
pub const NOISE_PATTERN: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";

/// Largest Noise message (the length prefix is 16 bits).
pub const MAX_FRAME: usize = 65535;
/// AEAD tag Noise adds to each transport message.
pub const NOISE_TAG: usize = 16;
/// Largest plaintext control message that fits one frame.
pub const MAX_MESSAGE: usize = MAX_FRAME - NOISE_TAG;

/// A 32-byte key (X25519 public key, relay key) carried as base64 in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key32(pub [u8; 32]);

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key32({})", self.to_base64())
    }
}

impl Key32 {
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// Accepts standard or URL-safe base64, padded or not.
    pub fn from_base64(s: &str) -> Option<Key32> {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        let s = s.trim();
        let bytes = [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(s).ok())?;
        Some(Key32(bytes.try_into().ok()?))
    }
}

impl Serialize for Key32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Key32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Key32::from_base64(&s).ok_or_else(|| serde::de::Error::custom("expected a base64 32-byte key"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The PC a user holds (手元端末): runs `mcvpn up`.
    Client,
    /// The office machine (対象機器): runs `mcvpn target run`.
    Target,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Target => "target",
        }
    }
}

/// Carried in the payload of Noise IK message 1. That payload can be replayed by
/// anyone who saw it, so it holds nothing secret: only what the hub needs to pick
/// the right checks before it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u16,
    pub role: Role,
}

/// How a node proves who it is, sent in the first transport message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credential {
    /// Account password (client login, target enrolment).
    Password { password: SecretString },
    /// A token from an earlier password login of this same device key, used to
    /// reconnect without asking the user again.
    Resume { token: SecretString },
    /// The Noise static key alone (an enrolled target).
    DeviceKey,
}

impl Credential {
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Password { .. } => "password",
            Credential::Resume { .. } => "resume",
            Credential::DeviceKey => "device-key",
        }
    }
}

/// Node → hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Start a session. `enroll` registers the device key as a target under the
    /// account (once), after which the target logs in with `Credential::DeviceKey`.
    Login {
        account: Option<String>,
        credential: Credential,
        role: Role,
        hostname: String,
        /// Random per process start: peers reset their WireGuard state for us only
        /// when this changes (we restarted), not when the hub did.
        boot_id: u64,
        #[serde(default)]
        enroll: bool,
    },
    /// Liveness; the hub answers `Pong` and ends sessions that stay silent.
    Ping { seq: u64 },
    /// One administrative command from a contract's account administrator, on a
    /// connection of its own. The command is the typed admin API's (`admin::api`), the
    /// same the command line parses; a hub of another build may not know it and drops
    /// the connection, so `admin --hub` needs hub and command line of one release.
    Admin {
        account: String,
        password: SecretString,
        command: AdminCommand,
    },
    /// A user changes their own password (art. 10).
    ChangePassword {
        account: String,
        old_password: SecretString,
        new_password: SecretString,
    },
    /// One administrative command from an operator-side login (`mcvpn admin operator
    /// add`; `mcvpn admin --operator`, `mcvpn monitor`), on a connection of its own. The
    /// login's role decides the scope: `operator` everything, `monitor` outages only.
    OperatorAdmin {
        operator: String,
        password: SecretString,
        command: AdminCommand,
    },
}

/// Why the hub refused a login. Unknown account and wrong password share one reason
/// so that accounts cannot be enumerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    WrongCredentials,
    AccountLocked,
    ContractSuspended,
    ContractTerminated,
    ContractCancelled,
    DeviceNotAllowed,
    NotEnrolled,
    AlreadyEnrolled,
    ResumeExpired,
    RateLimited,
    QuotaExceeded,
    /// The account has as many client devices as its contract allows.
    TooManyDevices,
    UnsupportedVersion,
    NotAdministrator,
    /// The administrator's logins need a one-time code (TOTP), which this way of logging
    /// in cannot carry: the web console asks for it.
    SecondFactor,
    BadRequest,
    Internal,
}

impl RefuseReason {
    /// What the user should do about it; printed after the hub's message.
    pub fn hint(&self) -> &'static str {
        match self {
            RefuseReason::WrongCredentials => "check the account name and password and try again",
            RefuseReason::AccountLocked => "ask your account administrator to unlock the account",
            RefuseReason::ContractSuspended | RefuseReason::ContractTerminated | RefuseReason::ContractCancelled => {
                "contact your account administrator or the service operator"
            }
            RefuseReason::DeviceNotAllowed => {
                "this device key is not registered for the account; ask your administrator to bind it"
            }
            RefuseReason::NotEnrolled => "run `mcvpn target enroll` on this machine first",
            RefuseReason::AlreadyEnrolled => "this machine is already enrolled; run `mcvpn target run`",
            RefuseReason::ResumeExpired => "log in again with your password",
            RefuseReason::RateLimited => "wait the stated time before trying again",
            RefuseReason::QuotaExceeded => "ask the operator for an additional contract",
            RefuseReason::TooManyDevices => {
                "ask your account administrator to remove a device you no longer use (`mcvpn admin device remove`)"
            }
            RefuseReason::UnsupportedVersion => "update mcvpn on this machine",
            RefuseReason::NotAdministrator => {
                "only the contract's account administrator may do this; the operator names it with `mcvpn admin contract admin`"
            }
            RefuseReason::SecondFactor => {
                "use the web console (https://HUB/console/), which asks for the one-time code; after a lost phone the operator resets it with `mcvpn admin account totp-reset USER`"
            }
            RefuseReason::BadRequest => "this is a bug in mcvpn; please report it",
            RefuseReason::Internal => "try again later; if it persists, tell the operator",
        }
    }

    /// Whether trying again unchanged could succeed (the node keeps reconnecting).
    pub fn is_transient(&self) -> bool {
        matches!(self, RefuseReason::RateLimited | RefuseReason::Internal)
    }
}

/// The longest peer name the hub announces, in characters: names longer than this (which
/// name validation refuses) are cut, so that one peer always fits a frame.
pub const MAX_PEER_NAME: usize = 64;

/// One peer a node may talk to, as the hub announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub node_id: NodeId,
    pub name: String,
    pub role: Role,
    pub overlay_ip: Ipv4Addr,
    pub public_key: Key32,
    /// Whether the peer has a live session with the hub right now.
    pub online: bool,
    /// The peer's process incarnation (see `Request::Login::boot_id`); 0 when offline.
    pub boot_id: u64,
}

/// What a node learns when its login succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginOk {
    pub node_id: NodeId,
    pub account: String,
    pub contract: String,
    pub overlay_ip: Ipv4Addr,
    /// Prefix length of the whole overlay (targets route all of it to the TUN).
    pub overlay_prefix: u8,
    /// Authenticates this session's `Bind` datagrams.
    pub relay_key: SecretKey32,
    pub session_id: u64,
    /// Lets this device reconnect without the password (client logins only).
    pub resume_token: Option<SecretString>,
    /// The peers that fit one control frame (see [`LoginOk::split_to_fit`]).
    pub peers: Vec<PeerInfo>,
    /// How many more peers follow at once as `Event::Peer` pushes, because the whole
    /// list would not fit one frame (a target reachable by hundreds of clients).
    #[serde(default)]
    pub more_peers: u32,
    /// Planned maintenance in progress, or the next within a week (art. 34-2): `mcvpn up`
    /// and `mcvpn status` show it in one line. It changes nothing the hub accepts.
    #[serde(default)]
    pub maintenance: Option<MaintenanceBanner>,
}

/// A maintenance window as nodes are told of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceBanner {
    /// Unix times (UTC).
    pub start: i64,
    pub end: i64,
    pub reason: String,
    pub emergency: bool,
    /// The operator's time zone (IANA name), in which the banner shows the times.
    pub tz: String,
}

impl MaintenanceBanner {
    /// The one line `mcvpn up` and `mcvpn status` print at `now` (Japanese, then English),
    /// or `None` once the window has ended.
    pub fn line(&self, now: i64) -> Option<String> {
        let tz: crate::contract::Tz = self.tz.parse().unwrap_or(chrono_tz::Asia::Tokyo);
        let at = |t: i64| crate::contract::format_unix(tz, t);
        if now >= self.end {
            return None;
        }
        let what = if self.emergency {
            "緊急メンテナンス / emergency maintenance"
        } else {
            "メンテナンス / maintenance"
        };
        Some(if now >= self.start {
            format!("{what} 実施中 / in progress until {}: {}", at(self.end), self.reason)
        } else {
            format!(
                "{what} 予定 / planned {} .. {}: {}",
                at(self.start),
                at(self.end),
                self.reason
            )
        })
    }
}

impl LoginOk {
    /// Keeps the peers that fit one control frame with the rest of the message, in
    /// order, and returns the others, to be sent as `Event::Peer` pushes right after it.
    pub fn split_to_fit(mut self) -> (LoginOk, Vec<PeerInfo>) {
        fn json_len<T: Serialize>(v: &T) -> usize {
            serde_json::to_vec(v).map_or(MAX_MESSAGE, |b| b.len())
        }
        let mut peers = std::mem::take(&mut self.peers);
        // The widest the count can be. serde_json writes a list as `[a,b,...]`: the envelope
        // without peers, plus each peer's own length and a comma, bounds the size from above.
        self.more_peers = u32::MAX;
        let mut used = json_len(&Envelope {
            v: PROTOCOL_VERSION,
            msg: Event::LoginOk(self.clone()),
        });
        let mut fit = 0;
        for p in &peers {
            let add = json_len(p) + 1;
            if used + add > MAX_MESSAGE {
                break;
            }
            used += add;
            fit += 1;
        }
        let rest = peers.split_off(fit);
        self.peers = peers;
        self.more_peers = rest.len() as u32;
        (self, rest)
    }
}

/// Hub → node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    LoginOk(LoginOk),
    /// Answer to an enrolment: the target is registered, with this address.
    Enrolled {
        node_id: NodeId,
        overlay_ip: Ipv4Addr,
        name: String,
    },
    Refused {
        reason: RefuseReason,
        message: String,
        /// Seconds to wait before trying again, for `RateLimited`.
        #[serde(default)]
        retry_after_s: Option<u64>,
    },
    /// A peer was added or changed (came online, went offline, restarted).
    Peer(PeerInfo),
    /// A peer may no longer be reached (access revoked or device removed).
    PeerGone {
        node_id: NodeId,
    },
    /// The hub ends this session; the node must not reconnect unless the reason is transient.
    Kick {
        reason: RefuseReason,
        message: String,
    },
    Pong {
        seq: u64,
    },
    /// Answer to `Admin` or `ChangePassword`: the command's typed answer, or why not
    /// (`AdminError::Forbidden` is a scope violation: another contract, operator-only).
    AdminResult(Result<AdminOutput, AdminError>),
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u16,
    msg: T,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("control message is not valid: {0}")]
    Malformed(String),
    #[error("peer speaks control protocol version {0}, this build speaks {PROTOCOL_VERSION}")]
    Version(u16),
    #[error("control message of {0} bytes exceeds the {MAX_MESSAGE}-byte limit")]
    TooLong(usize),
}

/// Encodes a control message. Fails only if it would not fit one frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, DecodeError> {
    let bytes = serde_json::to_vec(&Envelope {
        v: PROTOCOL_VERSION,
        msg,
    })
    .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE {
        return Err(DecodeError::TooLong(bytes.len()));
    }
    Ok(bytes)
}

/// Decodes a control message, checking the version before the body.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(DecodeError::TooLong(bytes.len()));
    }
    #[derive(Deserialize)]
    struct VersionOnly {
        v: u16,
    }
    let version: VersionOnly = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if version.v != PROTOCOL_VERSION {
        return Err(DecodeError::Version(version.v));
    }
    let env: Envelope<T> = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(env.msg)
}

/// Length-prefix framing of Noise messages on the TCP stream.
pub mod frame {
    use super::MAX_FRAME;

    /// Prefixes `msg` with its 2-byte big-endian length.
    pub fn encode(msg: &[u8]) -> Vec<u8> {
        assert!(msg.len() <= MAX_FRAME, "frame too long");
        let mut out = Vec::with_capacity(2 + msg.len());
        out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        out.extend_from_slice(msg);
        out
    }

    /// Splits one complete frame off the front of `buf`, if there is one.
    /// Returns the frame body and the number of bytes consumed.
    pub fn split(buf: &[u8]) -> Option<(&[u8], usize)> {
        if buf.len() < 2 {
            return None;
        }
        let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
        let body = buf.get(2..2 + len)?;
        Some((body, 2 + len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_peer() -> PeerInfo {
        PeerInfo {
            node_id: 3,
            name: "office-pc".into(),
            role: Role::Target,
            overlay_ip: Ipv4Addr::new(100, 64, 0, 3),
            public_key: Key32([9; 32]),
            online: true,
            boot_id: 77,
        }
    }

    #[test]
    fn requests_round_trip() {
        let reqs = vec![
            Request::Login {
                account: Some("alice".into()),
                credential: Credential::Password { password: "pw".into() },
                role: Role::Client,
                hostname: "laptop".into(),
                boot_id: 5,
                enroll: false,
            },
            Request::Login {
                account: None,
                credential: Credential::DeviceKey,
                role: Role::Target,
                hostname: "pc".into(),
                boot_id: 6,
                enroll: false,
            },
            Request::Ping { seq: 1 },
            Request::Admin {
                account: "alice".into(),
                password: "pw".into(),
                command: AdminCommand::Account(crate::admin::AccountCmd::List { contract: None }),
            },
            Request::ChangePassword {
                account: "alice".into(),
                old_password: "a".into(),
                new_password: "b".into(),
            },
            Request::OperatorAdmin {
                operator: "watch1".into(),
                password: "pw".into(),
                command: AdminCommand::Outage(crate::admin::api::OutageCmd::List),
            },
        ];
        for r in reqs {
            let bytes = encode(&r).unwrap();
            assert_eq!(decode::<Request>(&bytes).unwrap(), r);
        }
    }

    /// C6: however many peers, the LoginOk that goes out fits one frame, and the peers
    /// left out are exactly the ones to push after it.
    #[test]
    fn login_ok_split_fits_a_frame() {
        let peers: Vec<PeerInfo> = (0..400u32)
            .map(|i| PeerInfo {
                node_id: i,
                // The longest names the hub keeps, of characters JSON escapes (6 bytes each).
                name: "\u{7f}".repeat(MAX_PEER_NAME),
                ..sample_peer()
            })
            .collect();
        let login = LoginOk {
            node_id: 1,
            account: "a".repeat(64),
            contract: "c".repeat(64),
            overlay_ip: Ipv4Addr::new(100, 64, 0, 1),
            overlay_prefix: 10,
            relay_key: SecretKey32::new([1; 32]),
            session_id: u64::MAX,
            resume_token: Some("f".repeat(64).into()),
            peers: peers.clone(),
            more_peers: 0,
            maintenance: None,
        };
        assert!(matches!(
            encode(&Event::LoginOk(login.clone())),
            Err(DecodeError::TooLong(_))
        ));
        let (first, rest) = login.split_to_fit();
        let bytes = encode(&Event::LoginOk(first.clone())).expect("fits one frame");
        assert!(bytes.len() <= MAX_MESSAGE);
        assert!(!first.peers.is_empty() && !rest.is_empty());
        assert_eq!(first.more_peers as usize, rest.len());
        let all: Vec<PeerInfo> = first.peers.iter().chain(&rest).cloned().collect();
        assert_eq!(all, peers);
        for p in rest {
            encode(&Event::Peer(p)).expect("a push fits one frame");
        }
    }

    #[test]
    fn events_round_trip() {
        let events = vec![
            Event::LoginOk(LoginOk {
                node_id: 1,
                account: "alice".into(),
                contract: "acme".into(),
                overlay_ip: Ipv4Addr::new(100, 64, 0, 1),
                overlay_prefix: 10,
                relay_key: SecretKey32::new([1; 32]),
                session_id: 12,
                resume_token: Some("tok".into()),
                peers: vec![sample_peer()],
                more_peers: 0,
                maintenance: None,
            }),
            Event::Refused {
                reason: RefuseReason::WrongCredentials,
                message: "account or password is wrong".into(),
                retry_after_s: None,
            },
            Event::Peer(sample_peer()),
            Event::PeerGone { node_id: 3 },
            Event::Kick {
                reason: RefuseReason::ContractSuspended,
                message: "suspended".into(),
            },
            Event::Pong { seq: 4 },
            Event::AdminResult(Err(AdminError::Forbidden("no".into()))),
            Event::AdminResult(Err(AdminError::PasswordPolicy("at least 12 characters".into()))),
            Event::AdminResult(Ok(AdminOutput::message("done"))),
            Event::AdminResult(Ok(AdminOutput::Accounts(vec![crate::admin::api::AccountRow {
                account: "alice".into(),
                contract: "acme".into(),
                state: crate::store::AccountState::Locked,
                device_binding: true,
                totp: true,
                created_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            }]))),
        ];
        for e in events {
            let bytes = encode(&e).unwrap();
            assert_eq!(decode::<Event>(&bytes).unwrap(), e);
        }
    }

    /// Review C13: requests and events reach debug logs through `Debug`; no password,
    /// token or relay key may show there.
    #[test]
    fn debug_never_shows_secrets() {
        let secrets = [
            "hunter2-login",
            "hunter2-admin",
            "hunter2-old",
            "hunter2-new",
            "resume-tok",
        ];
        let shown = format!(
            "{:?} {:?} {:?} {:?}",
            Request::Login {
                account: Some("alice".into()),
                credential: Credential::Password {
                    password: "hunter2-login".into()
                },
                role: Role::Client,
                hostname: "laptop".into(),
                boot_id: 5,
                enroll: false,
            },
            Request::Admin {
                account: "alice".into(),
                password: "hunter2-admin".into(),
                command: AdminCommand::Account(crate::admin::AccountCmd::List { contract: None }),
            },
            Request::ChangePassword {
                account: "alice".into(),
                old_password: "hunter2-old".into(),
                new_password: "hunter2-new".into(),
            },
            Credential::Resume {
                token: "resume-tok".into()
            },
        );
        for s in secrets {
            assert!(!shown.contains(s), "Debug shows {s:?}: {shown}");
        }
        let login_ok = LoginOk {
            node_id: 1,
            account: "alice".into(),
            contract: "acme".into(),
            overlay_ip: Ipv4Addr::new(100, 64, 0, 1),
            overlay_prefix: 10,
            relay_key: SecretKey32::new([0xab; 32]),
            session_id: 12,
            resume_token: Some("resume-tok".into()),
            peers: vec![],
            more_peers: 0,
            maintenance: None,
        };
        let shown = format!("{login_ok:?}");
        assert!(
            !shown.contains(&Key32([0xab; 32]).to_base64()) && !shown.contains("resume-tok"),
            "{shown}"
        );
        // The wire format is the one plain strings had: old and new builds still talk.
        let wire = String::from_utf8(encode(&Event::LoginOk(login_ok)).unwrap()).unwrap();
        assert!(
            wire.contains(&format!(r#""relay_key":"{}""#, Key32([0xab; 32]).to_base64())),
            "{wire}"
        );
        assert!(wire.contains(r#""resume_token":"resume-tok""#), "{wire}");
        let wire = String::from_utf8(
            encode(&Request::ChangePassword {
                account: "alice".into(),
                old_password: "a".into(),
                new_password: "b".into(),
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            wire,
            r#"{"v":1,"msg":{"type":"change_password","account":"alice","old_password":"a","new_password":"b"}}"#
        );
        let login = br#"{"v":1,"msg":{"type":"login","account":"alice","credential":{"kind":"password","password":"pw"},"role":"client","hostname":"h","boot_id":1}}"#;
        match decode::<Request>(login).unwrap() {
            Request::Login {
                credential: Credential::Password { password },
                ..
            } => assert_eq!(password.expose_secret(), "pw"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn version_mismatch_is_reported_as_such() {
        let bytes = br#"{"v":2,"msg":{"type":"ping","seq":1,"new_field":true}}"#;
        assert_eq!(decode::<Request>(bytes), Err(DecodeError::Version(2)));
    }

    #[test]
    fn garbage_and_truncation_are_rejected() {
        let good = encode(&Request::Ping { seq: 1 }).unwrap();
        for cut in 0..good.len() {
            assert!(decode::<Request>(&good[..cut]).is_err());
        }
        assert!(decode::<Request>(b"\xff\x00garbage").is_err());
        assert!(decode::<Request>(br#"{"v":1,"msg":{"type":"launch_missiles"}}"#).is_err());
        let bad_key = br#"{"v":1,"msg":{"type":"peer_gone","node_id":-1}}"#;
        assert!(decode::<Event>(bad_key).is_err());
    }

    #[test]
    fn key32_accepts_both_alphabets() {
        let k = Key32([0xfb; 32]);
        assert_eq!(Key32::from_base64(&k.to_base64()), Some(k));
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.0);
        assert_eq!(Key32::from_base64(&url), Some(k));
        assert_eq!(Key32::from_base64("short"), None);
    }

    #[test]
    fn frame_split() {
        let f = frame::encode(b"hello");
        assert_eq!(frame::split(&f), Some((&b"hello"[..], 7)));
        assert_eq!(frame::split(&f[..6]), None);
        assert_eq!(frame::split(&f[..1]), None);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Request>(&bytes);
            let _ = decode::<Event>(&bytes);
            let _ = frame::split(&bytes);
        }

        #[test]
        fn frames_round_trip(body in proptest::collection::vec(any::<u8>(), 0..2048), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut f = frame::encode(&body);
            let n = f.len();
            f.extend_from_slice(&tail);
            let (got, used) = frame::split(&f).unwrap();
            prop_assert_eq!(got, &body[..]);
            prop_assert_eq!(used, n);
        }
    }
}
