//! `[api]`: the HTTP API's address and token.

use std::net::SocketAddr;

use super::reader::{socket_addr, Problems, TableReader};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub token: Option<String>,
}

/// Where the API listens unless `api.listen` says otherwise.
pub(super) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9470);

/// Reads its section; every problem goes to `p`.
pub(super) fn read(root: &mut TableReader, p: &mut Problems) -> Option<ApiConfig> {
    root.table(p, "api").map(|mut t| {
        let listen = t
            .string(p, "listen")
            .and_then(|s| socket_addr(p, &s))
            .unwrap_or(DEFAULT_LISTEN);
        let token = t.string(p, "token").map(|s| s.value);
        t.finish(p);
        ApiConfig { listen, token }
    })
}
