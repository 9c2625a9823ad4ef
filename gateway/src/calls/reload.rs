//! A configuration reload (SIGHUP) applied to running call control: new users, passwords,
//! DIDs, trunks, routes and built-in numbers take effect for the next request, while calls in
//! progress go on untouched on the settings they started with.
//!
//! Trunks keep their slot (calls refer to a trunk by index): one with the same addresses and
//! transport keeps its probe state and takes the new per-call settings; one whose addresses,
//! transport or TLS settings changed starts afresh; one no longer configured is retired (no
//! new calls, probes or registration; its calls end as they would have); a new one is added.
//! A registration trunk whose account, lifetime or addresses changed registers again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use landline_sip::auth::{Algorithm, DigestServer};
use landline_sip::ua::Authenticator;

use super::Signalling;
use super::trunking::resolve_trunk;
use crate::config::{Config, TrunkConfig, TrunkKind};
use crate::trunks::routes::RouteTable;
use crate::trunks::state::TrunkState;

/// The accounts that may authenticate to us: users by password, trunks by address (or, with
/// `challenge_inbound`, by their own account), challenging with `server`.
pub(crate) fn authenticator(config: &Config, server: DigestServer) -> Authenticator {
    let users = config
        .users
        .iter()
        .map(|u| (u.username.as_str().to_owned(), u.password.clone()))
        .collect();
    let mut authenticator = Authenticator::new(server, users);
    authenticator.set_ban_policy(config.sip.ban_policy());
    // Calls from trunks are admitted by their address, not by a password; a trunk with
    // `challenge_inbound` must also answer a challenge with its own account.
    for trunk in &config.trunks {
        for cidr in &trunk.allow {
            match trunk.auth.as_ref().filter(|a| a.challenge_inbound) {
                Some(auth) => authenticator.require(
                    cidr.range(),
                    auth.username.clone(),
                    auth.password.clone(),
                ),
                None => authenticator.trust(cidr.range()),
            }
        }
    }
    authenticator
}

/// How a reload changed the trunks, for the log line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TrunkChanges {
    /// Trunks new in the configuration.
    pub added: usize,
    /// Trunks whose settings changed.
    pub changed: usize,
    /// Trunks no longer configured.
    pub retired: usize,
}

impl Signalling {
    /// Runs `config` from now on (see the module comment for what changes when).
    pub(crate) fn reload(&mut self, now: Instant, config: Arc<Config>) -> TrunkChanges {
        let mut changes = TrunkChanges::default();
        let mut configured = vec![false; self.trunks.len()];
        for trunk in &config.trunks {
            match self.trunks.iter().position(|t| t.config.name == trunk.name) {
                Some(index) => {
                    configured[index] = true;
                    if self.update_trunk(now, index, trunk) {
                        changes.changed += 1;
                    }
                }
                None => {
                    let state =
                        TrunkState::new(trunk.clone(), resolve_trunk(trunk, &self.edge), now);
                    self.metrics.add_trunk(&trunk.name);
                    self.metrics.set_trunk_up(&trunk.name, state.is_up());
                    self.trunks.push(state);
                    configured.push(true);
                    self.register_trunk(now, self.trunks.len() - 1);
                    changes.added += 1;
                }
            }
        }
        for (index, configured) in configured.into_iter().enumerate() {
            if configured || self.trunks[index].is_retired() {
                continue;
            }
            self.unregister_trunk(now, index);
            self.probes.retain(|_, (trunk, _)| *trunk != index);
            self.trunks[index].retire();
            self.metrics
                .set_trunk_up(&self.trunks[index].config.name, false);
            changes.retired += 1;
        }
        self.routes = RouteTable::new(&config.routes);
        // A throwaway server: adopting keeps the running one, and the nonces it handed out.
        let server = DigestServer::new(
            config.sip.realm(),
            Algorithm::Md5,
            &[],
            Duration::from_secs(1),
        );
        if let Some(running) = self.ua.authenticator_mut() {
            running.adopt_accounts(authenticator(&config, server));
        }
        self.config = config;
        changes
    }

    /// Gives trunk `index` its reloaded configuration; whether anything changed.
    fn update_trunk(&mut self, now: Instant, index: usize, trunk: &TrunkConfig) -> bool {
        let current = &self.trunks[index];
        if !current.is_retired() && current.config == *trunk {
            return false;
        }
        let moved = current.is_retired()
            || current.config.addresses != trunk.addresses
            || current.config.transport != trunk.transport
            || current.config.tls_ca != trunk.tls_ca
            || current.config.tls_server_name != trunk.tls_server_name;
        let reregister = moved
            || current.config.kind != trunk.kind
            || current.config.auth != trunk.auth
            || current.config.expires != trunk.expires;
        if reregister {
            self.unregister_trunk(now, index);
        }
        if moved {
            self.probes.retain(|_, (t, _)| *t != index);
            let addresses = resolve_trunk(trunk, &self.edge);
            let next = self.trunks[index].succeed(trunk.clone(), addresses, now);
            self.metrics.set_trunk_up(&trunk.name, next.is_up());
            self.trunks[index] = next;
        } else {
            self.trunks[index].reconfigure(trunk.clone(), now);
        }
        if reregister && trunk.kind == TrunkKind::Registration {
            self.register_trunk(now, index);
        }
        true
    }
}
