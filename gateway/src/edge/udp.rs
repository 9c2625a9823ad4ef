//! SIP over UDP: one socket, one receive task.

use std::net::SocketAddr;
use std::sync::Arc;

use landline_sip::message::Transport;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{EdgeError, Inbound};

/// The largest datagram SIP over UDP can carry.
const MAX_DATAGRAM: usize = 65_535;

pub(super) async fn start(
    address: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
) -> Result<Arc<UdpSocket>, EdgeError> {
    let socket = UdpSocket::bind(address)
        .await
        .map_err(|source| EdgeError::Bind {
            transport: "SIP over UDP",
            address,
            source,
        })?;
    let socket = Arc::new(socket);
    let receiver = socket.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (len, source) = match receiver.recv_from(&mut buf).await {
                Ok(received) => received,
                // ICMP errors for an earlier send surface here; they end nothing.
                Err(_) => continue,
            };
            let data = &buf[..len];
            // RFC 5626 keep-alives (CRLF) and empty datagrams carry no message.
            if data.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let message = Inbound {
                source,
                transport: Transport::Udp,
                data: data.to_vec(),
            };
            if inbound.send(message).await.is_err() {
                return;
            }
        }
    });
    Ok(socket)
}
