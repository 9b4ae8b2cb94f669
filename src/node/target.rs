//! `mcvpn target enroll | run | status`: the office machine's side.
//!
//! Enrolment uses the account password once and registers this machine's device key;
//! from then on the target logs in with the key alone, so no password stays on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use super::session::{self, LoginError, SessionEnd, BACKOFF_MAX, BACKOFF_MIN, REFUSED_RETRY};
use super::settings::{TransportMode, TransportOptions};
use super::{ControlSettings, DataPathSettings, Node, NodeSettings};
use crate::exit::{self, Exit};
use crate::keys::KeyPair;
use crate::local_api::{self, LocalRequest};
use crate::proto::control::{Credential, Event, RefuseReason, Role};
use crate::proto::url::HubUrl;

/// `/etc/mcvpn/target.toml`, written by `enroll`, read by `run`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetConfig {
    pub hub: String,
    pub account: String,
    pub name: String,
    /// `--transport` at enrolment (absent: auto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<TransportMode>,
    /// The proxy in force at enrolment (from `--proxy` or `HTTPS_PROXY`), without a
    /// password: a service does not see the enrolling shell's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Where `run` reads the proxy user's password (never the password itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_password_file: Option<PathBuf>,
}

impl TargetConfig {
    pub fn load(path: &Path) -> Result<TargetConfig> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read {}: enrol this machine first with `mcvpn target enroll --hub URL --account NAME`",
                path.display()
            )
        })?;
        toml::from_str(&text).with_context(|| format!("{} is not a valid target config", path.display()))
    }
}

#[derive(Debug, Clone)]
pub struct TargetPaths {
    pub config: PathBuf,
    pub key: PathBuf,
    pub run_dir: PathBuf,
}

impl TargetPaths {
    pub fn socket(&self) -> PathBuf {
        self.run_dir.join("target.sock")
    }
}

pub struct EnrollOptions {
    pub paths: TargetPaths,
    pub hub: String,
    pub account: String,
    pub password_file: Option<PathBuf>,
    pub name: Option<String>,
    pub transport: TransportOptions,
}

pub fn enroll(opts: EnrollOptions) -> Result<Exit> {
    let hub = HubUrl::parse(&opts.hub)?;
    let name = opts.name.clone().unwrap_or_else(crate::util::hostname);
    let key = KeyPair::load_or_create(&opts.paths.key)?;
    let password = crate::password::read(
        opts.password_file.as_deref(),
        &format!("Password for {}: ", opts.account),
    )?;
    let transport = opts.transport.resolve(&hub, None, None, None)?;
    let settings = ControlSettings {
        role: Role::Target,
        hub,
        key,
        account: Some(opts.account.clone()),
        hostname: name,
        transport: transport.transport,
        proxy: transport.proxy.clone(),
    };
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(session::login(
        &settings,
        rand::random(),
        Credential::Password {
            password: password.into(),
        },
        true,
        None,
    ));
    match result {
        Ok((
            Event::Enrolled {
                node_id,
                overlay_ip,
                name,
            },
            _,
        )) => {
            let proxy_password_file = match &opts.transport.proxy_password_file {
                // `run` starts elsewhere (systemd, another directory): keep the path whole.
                Some(f) => Some(std::path::absolute(f).with_context(|| format!("cannot resolve {}", f.display()))?),
                None => None,
            };
            let config = TargetConfig {
                hub: opts.hub.clone(),
                account: opts.account.clone(),
                name: name.clone(),
                transport: opts.transport.transport,
                proxy: transport.proxy_given.clone(),
                proxy_password_file,
            };
            // 0600: it names the proxy and where its password is.
            crate::util::write_atomic(&opts.paths.config, toml::to_string(&config)?.as_bytes(), 0o600)?;
            println!("enrolled {name} under account {} as node {node_id}", opts.account);
            println!("overlay address: {overlay_ip}");
            println!(
                "config: {}   device key: {}",
                opts.paths.config.display(),
                opts.paths.key.display()
            );
            println!("start it with: systemctl enable --now mcvpn-target   (or: mcvpn target run)");
            Ok(Exit::ok())
        }
        Ok(_) => Ok(Exit::fail(exit::FAILURE, "unexpected answer from the hub")),
        Err(e @ LoginError::Refused { .. }) => Ok(Exit::fail(exit::REFUSED, &e.to_string())),
        Err(e) => Ok(Exit::fail(exit::FAILURE, &e.to_string())),
    }
}

pub struct RunOptions {
    pub paths: TargetPaths,
    pub data: DataPathSettings,
    /// Overrides what the config remembered.
    pub transport: TransportOptions,
}

/// Refusals that no amount of waiting fixes on this machine.
fn is_fatal(reason: RefuseReason) -> bool {
    matches!(
        reason,
        RefuseReason::NotEnrolled
            | RefuseReason::DeviceNotAllowed
            | RefuseReason::UnsupportedVersion
            | RefuseReason::BadRequest
    )
}

pub fn run(opts: RunOptions) -> Result<Exit> {
    if !crate::util::is_root() {
        return Ok(Exit::fail(
            exit::NOT_ROOT,
            "mcvpn target run needs root (or CAP_NET_ADMIN) for its TUN interface",
        ));
    }
    let config = TargetConfig::load(&opts.paths.config)?;
    let hub = HubUrl::parse(&config.hub)?;
    let transport = opts.transport.resolve(
        &hub,
        config.transport,
        config.proxy.as_deref(),
        config.proxy_password_file.as_deref(),
    )?;
    let settings = NodeSettings {
        control: ControlSettings {
            role: Role::Target,
            hub,
            key: KeyPair::load(&opts.paths.key).map_err(|e| anyhow!("{e:#}; was this machine enrolled?"))?,
            account: None,
            hostname: config.name.clone(),
            transport: transport.transport,
            proxy: transport.proxy,
        },
        data: opts.data,
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let node = Arc::new(Node::new(settings)?);
        let _socket = {
            let node = node.clone();
            local_api::serve(&opts.paths.socket(), move |req, _| match req {
                LocalRequest::Status => Ok(node.status()),
                other => Err(format!("unknown command {:?}", other.name())),
            })?
        };
        tokio::select! {
            exit = serve(node.clone()) => exit,
            _ = crate::util::shutdown_signal() => {
                tracing::info!("target stopping");
                Ok(Exit::ok())
            }
        }
    })
}

/// Logs in (waiting out an absent hub or a suspended contract) and then stays.
async fn serve(node: Arc<Node>) -> Result<Exit> {
    let mut backoff = BACKOFF_MIN;
    let (login, rd, wr) = loop {
        match session::login_node(&node, Credential::DeviceKey).await {
            Ok((Event::LoginOk(ok), rd, wr)) => break (ok, rd, wr),
            Ok(_) => return Ok(Exit::fail(exit::FAILURE, "unexpected answer from the hub")),
            Err(LoginError::Refused {
                reason,
                message,
                retry_after_s,
            }) => {
                if is_fatal(reason) {
                    return Ok(Exit::fail(
                        exit::REFUSED,
                        &format!("the hub refused: {message} ({})", reason.hint()),
                    ));
                }
                tracing::warn!(?reason, %message, "the hub refused; will ask again");
                node.set_connected(false, Some(format!("refused: {message}")));
                backoff = retry_after_s.map_or(REFUSED_RETRY, Duration::from_secs);
            }
            Err(e) => {
                tracing::warn!(error = %e, "hub not reachable; retrying");
                node.set_connected(false, Some(e.to_string()));
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    };
    node.apply_login(&login)?;
    tracing::info!(ip = %login.overlay_ip, account = %login.account, peers = login.peers.len(), "target is up");
    let manager = tokio::spawn(super::transport::run(node.clone()));
    let end = session::supervise(&node, login, rd, wr, |_| Credential::DeviceKey, true).await;
    manager.abort();
    match end {
        SessionEnd::Kicked { reason, message } => {
            Ok(Exit::fail(exit::REFUSED, &format!("{message} ({})", reason.hint())))
        }
        SessionEnd::Lost(why) => Ok(Exit::fail(exit::FAILURE, &why)),
    }
}
