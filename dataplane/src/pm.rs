//! Path managers: which subflows a connection the gateway opens (the edge role) adds
//! once it is established, named like Linux's and multipath-tcp.org's:
//! - `default`: one subflow from each local `subflow` endpoint to the peer's address
//!   (Linux's in-kernel path manager with `subflow` endpoints);
//! - `fullmesh`: a subflow from every local endpoint to every peer address known
//!   (today the address connected to; the peer's announced addresses are not yet
//!   recorded);
//! - `ndiffports`: more subflows over the same address pair, on other local ports.
//!
//! Decided per connection from configuration only, so any worker computes the same.

use crate::mptcp::stack::JoinPath;
use std::net::{IpAddr, SocketAddr};

/// The path manager and its parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathManagerKind {
    /// Subflows from `subflow` endpoints to the peer's address.
    Default,
    /// Subflows from every endpoint to every known peer address.
    Fullmesh,
    /// This many subflows in all over the initial address pair.
    Ndiffports(u8),
}

/// A local address subflows may start from (a port address with the `subflow`,
/// `fullmesh` or `backup` flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The address.
    pub addr: IpAddr,
    /// Its MPTCP address id.
    pub id: u8,
    /// Subflows from it are backups (MP_JOIN with the B flag).
    pub backup: bool,
}

/// The subflows to add to connections the gateway opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathManager {
    kind: PathManagerKind,
    endpoints: Vec<Endpoint>,
}

impl PathManager {
    /// A path manager of `kind` over the local `endpoints`.
    pub fn new(kind: PathManagerKind, endpoints: Vec<Endpoint>) -> Self {
        PathManager { kind, endpoints }
    }

    /// The subflows to add to a connection from `local` to `remote` once it is
    /// established; `port` hands out local ports.
    pub fn paths(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        mut port: impl FnMut() -> u16,
    ) -> Vec<JoinPath> {
        match self.kind {
            PathManagerKind::Ndiffports(n) => (1..n)
                .map(|_| JoinPath {
                    local: SocketAddr::new(local.ip(), port()),
                    remote,
                    local_id: 0,
                    backup: false,
                })
                .collect(),
            PathManagerKind::Default | PathManagerKind::Fullmesh => self
                .endpoints
                .iter()
                .filter(|e| e.addr != local.ip() && e.addr.is_ipv4() == remote.is_ipv4())
                .map(|e| JoinPath {
                    local: SocketAddr::new(e.addr, port()),
                    remote,
                    local_id: e.id,
                    backup: e.backup,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Vec<Endpoint> {
        vec![
            Endpoint {
                addr: "192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4])),
                id: 1,
                backup: false,
            },
            Endpoint {
                addr: "198.51.100.1".parse().unwrap_or(IpAddr::from([0; 4])),
                id: 2,
                backup: true,
            },
            Endpoint {
                addr: "2001:db8::1".parse().unwrap_or(IpAddr::from([0; 4])),
                id: 3,
                backup: false,
            },
        ]
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap_or(SocketAddr::from(([0; 4], 0)))
    }

    #[test]
    fn default_joins_from_every_other_endpoint_of_the_family() {
        let pm = PathManager::new(PathManagerKind::Default, endpoints());
        let mut next = 40_000;
        let paths = pm.paths(sock("192.0.2.1:1000"), sock("203.0.113.9:80"), || {
            next += 2;
            next
        });
        assert_eq!(
            paths,
            vec![JoinPath {
                local: sock("198.51.100.1:40002"),
                remote: sock("203.0.113.9:80"),
                local_id: 2,
                backup: true,
            }]
        );
    }

    #[test]
    fn ndiffports_adds_subflows_on_the_same_addresses() {
        let pm = PathManager::new(PathManagerKind::Ndiffports(3), endpoints());
        let mut next = 50_000;
        let paths = pm.paths(sock("192.0.2.1:1000"), sock("203.0.113.9:80"), || {
            next += 1;
            next
        });
        let locals: Vec<_> = paths.iter().map(|p| p.local).collect();
        assert_eq!(
            locals,
            vec![sock("192.0.2.1:50001"), sock("192.0.2.1:50002")]
        );
        assert!(paths.iter().all(|p| p.remote == sock("203.0.113.9:80")));
    }
}
