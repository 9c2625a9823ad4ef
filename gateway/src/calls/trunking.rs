//! Call control's side of the trunks: their addresses resolved and TLS set up at start, OPTIONS
//! probes to every address, registrations, and transport failures turned into failed requests
//! (so a call fails over at once when a carrier cannot be reached).

use std::sync::Arc;
use std::time::Instant;

use landline_sip::message::{Host, SipUri, StatusCode};
use landline_sip::ua::{RegistrarTarget, RequestId};
use tokio::sync::mpsc;

use super::{Signalling, sip_transport};
use crate::config::{Config, TrunkConfig, TrunkKind, TrunkTransport};
use crate::edge::{Edge, TlsPeer, TransportFailure, client_config};
use crate::ops::metrics::Metrics;
use crate::trunks::state::{self, TrunkAddress, TrunkState};

/// Every configured trunk with its addresses resolved; TLS trunks' addresses are given to the
/// edge with their trust roots and server names, so messages to them open TLS connections.
pub(super) fn start_trunks(config: &Config, edge: &Edge, metrics: &Metrics) -> Vec<TrunkState> {
    let now = Instant::now();
    config
        .trunks
        .iter()
        .map(|trunk| {
            let state = TrunkState::new(trunk.clone(), resolve_trunk(trunk, edge), now);
            metrics.set_trunk_up(&trunk.name, state.is_up());
            state
        })
        .collect()
}

/// Resolves a trunk's addresses and, for TLS, tells the edge how to verify each one.
pub(super) fn resolve_trunk(trunk: &TrunkConfig, edge: &Edge) -> Vec<TrunkAddress> {
    let addresses = state::resolve(trunk);
    if trunk.transport == TrunkTransport::Tls {
        // Validated at load (file readable, certificates in it); a failure here is a
        // file changed since, and leaves the trunk's TLS addresses unreachable.
        match client_config(trunk.tls_ca.as_deref()) {
            Ok(tls) => {
                let tls = Arc::new(tls);
                for address in &addresses {
                    let name = trunk.tls_name_for(&address.host);
                    match TlsPeer::new(tls.clone(), name) {
                        Some(peer) => edge.add_tls_peer(address.socket, peer),
                        None => tracing::error!(trunk = %trunk.name, name, "not a TLS server name"),
                    }
                }
            }
            Err(error) => {
                tracing::error!(trunk = %trunk.name, %error, "no TLS to this trunk");
            }
        }
    }
    addresses
}

/// The next transport failure, or never when there is no receiver.
pub(super) async fn next_failure(
    failures: &mut Option<mpsc::Receiver<TransportFailure>>,
) -> Option<TransportFailure> {
    match failures {
        Some(failures) => failures.recv().await,
        None => std::future::pending().await,
    }
}

impl Signalling {
    /// A connection to `failure.destination` could not be opened or written: every request
    /// waiting there fails as a 503, and the calls whose trunk leg it was fail over (recorded
    /// as `transport_failure`, not as the carrier's 503).
    pub(super) fn transport_failure(&mut self, now: Instant, failure: TransportFailure) {
        let TransportFailure {
            destination,
            transport,
        } = failure;
        let legs: Vec<_> = self
            .calls
            .values()
            .filter_map(|c| c.trunk)
            .filter(|leg| self.ua.peer(*leg) == Some((destination, transport.clone())))
            .collect();
        tracing::info!(%destination, %transport, trunk_legs = legs.len(), "transport failure");
        self.transport_failed.extend(legs);
        self.ua.handle_transport_error(now, destination, transport);
        self.flush(now);
        self.transport_failed.clear();
    }

    /// Sends the OPTIONS probes that are due: to every address of a trunk, one in flight per
    /// address (a late failure of an older probe must not undo the answer to a newer one).
    pub(super) fn probe_trunks(&mut self, now: Instant) {
        for index in 0..self.trunks.len() {
            if !self.trunks[index].probe_due(now) {
                continue;
            }
            let transport = sip_transport(self.trunks[index].config.transport);
            let addresses: Vec<_> = self.trunks[index].addresses().cloned().collect();
            for (slot, address) in addresses.into_iter().enumerate() {
                if self.probes.values().any(|&p| p == (index, slot)) {
                    continue;
                }
                let host = Host::parse(&address.host).unwrap_or_else(|| address.socket.ip().into());
                let target = SipUri::new(None, host, Some(address.socket.port()));
                let probe = self
                    .ua
                    .options(now, target, address.socket, transport.clone());
                self.probes.insert(probe, (index, slot));
            }
        }
    }

    pub(super) fn probe_result(&mut self, id: RequestId, status: StatusCode) {
        let Some((index, slot)) = self.probes.remove(&id) else {
            return;
        };
        let Some(trunk) = self.trunks.get_mut(index) else {
            return;
        };
        let was_up = trunk.address_up(slot);
        let changed = trunk.probe_result(slot, status);
        if trunk.address_up(slot) != was_up {
            let address = trunk.address(slot).map(|a| a.socket);
            tracing::warn!(trunk = %trunk.config.name.as_str(), ?address, up = !was_up, status = status.code(), "trunk address state changed");
        }
        if let Some(up) = changed {
            tracing::warn!(trunk = %trunk.config.name.as_str(), up, status = status.code(), "trunk state changed");
            self.metrics.set_trunk_up(&trunk.config.name, up);
        }
    }

    /// Registers every registration trunk at its first address; when that one does not
    /// answer (or fails as a server), at the next at once, and so on (see
    /// `RegisterParams::fallbacks`).
    pub(super) fn start_registrations(&mut self, now: Instant) {
        for index in 0..self.trunks.len() {
            self.register_trunk(now, index);
        }
    }

    /// Registers trunk `index` if it is a registration trunk: at its first address, and when
    /// that one does not answer (or fails as a server), at the next at once, and so on.
    pub(super) fn register_trunk(&mut self, now: Instant, index: usize) {
        let Some(trunk) = self.trunks.get(index) else {
            return;
        };
        if trunk.config.kind != TrunkKind::Registration || trunk.is_retired() {
            return;
        }
        let Some(auth) = trunk.config.auth.as_ref() else {
            return;
        };
        let mut targets = trunk.addresses().filter_map(|address| {
            let host = Host::parse(&address.host)?;
            Some((
                RegistrarTarget {
                    registrar: SipUri::new(None, host.clone(), Some(address.socket.port())),
                    destination: address.socket,
                },
                host,
            ))
        });
        let Some((first, host)) = targets.next() else {
            return;
        };
        let params = landline_sip::ua::RegisterParams {
            registrar: first.registrar,
            aor: SipUri::new(Some(&auth.username), host, None),
            destination: first.destination,
            transport: sip_transport(trunk.config.transport),
            expires: trunk.config.expires.as_secs().min(u64::from(u32::MAX)) as u32,
            credentials: Some(landline_sip::auth::Credentials {
                username: auth.username.clone(),
                password: auth.password.clone(),
            }),
            fallbacks: targets.map(|(target, _)| target).collect(),
        };
        let id = self.ua.register(now, params);
        self.registrations.insert(id, index);
    }

    /// Stops trunk `index`'s registration (REGISTER with Expires: 0); its answer is ignored.
    pub(super) fn unregister_trunk(&mut self, now: Instant, index: usize) {
        let ids: Vec<RequestId> = self
            .registrations
            .iter()
            .filter(|&(_, &i)| i == index)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.registrations.remove(&id);
            self.ua.unregister(now, id);
        }
        if let Some(trunk) = self.trunks.get_mut(index) {
            trunk.set_registered(false);
            self.metrics.set_trunk_registered(&trunk.config.name, false);
        }
    }

    pub(super) fn registration_result(&mut self, id: RequestId, ok: bool) {
        let registrar = self.ua.registration_destination(id);
        if let Some(trunk) = self
            .registrations
            .get(&id)
            .and_then(|&i| self.trunks.get_mut(i))
        {
            match (ok, trunk.is_registered()) {
                (true, false) => {
                    tracing::info!(trunk = %trunk.config.name.as_str(), ?registrar, "trunk registered");
                }
                (false, true) => {
                    tracing::warn!(trunk = %trunk.config.name.as_str(), "trunk registration lost");
                }
                _ => {}
            }
            trunk.set_registered(ok);
            self.metrics.set_trunk_registered(&trunk.config.name, ok);
        }
    }
}
