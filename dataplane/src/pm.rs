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
    /// Endpoints whose port's link is down: no subflow starts from them.
    down: Vec<IpAddr>,
}

impl PathManager {
    /// A path manager of `kind` over the local `endpoints`.
    pub fn new(kind: PathManagerKind, endpoints: Vec<Endpoint>) -> Self {
        PathManager {
            kind,
            endpoints,
            down: Vec::new(),
        }
    }

    /// The local endpoints.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Gives each endpoint the address id `id_of` names for its address, if any.
    pub fn renumber(&mut self, mut id_of: impl FnMut(IpAddr) -> Option<u8>) {
        for e in &mut self.endpoints {
            if let Some(id) = id_of(e.addr) {
                e.id = id;
            }
        }
    }

    /// Marks our address `addr` unusable (`down`: its port's link is down) or usable
    /// again; subflows start only from usable endpoints.
    pub fn set_down(&mut self, addr: IpAddr, down: bool) {
        self.down.retain(|&a| a != addr);
        if down && self.endpoints.iter().any(|e| e.addr == addr) {
            self.down.push(addr);
        }
    }

    /// The subflows to add to an established connection from `local` to `remote`
    /// from the endpoints among `from` only (addresses whose path recovered); none
    /// for `ndiffports`, whose subflows share the initial subflow's addresses.
    pub fn paths_from(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        from: &[IpAddr],
        port: impl FnMut() -> u16,
    ) -> Vec<JoinPath> {
        if let PathManagerKind::Ndiffports(_) = self.kind {
            return Vec::new();
        }
        let mut paths = self.paths(local, remote, port);
        paths.retain(|p| from.contains(&p.local.ip()));
        paths
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
                .filter(|e| {
                    e.addr != local.ip()
                        && e.addr.is_ipv4() == remote.is_ipv4()
                        && !self.down.contains(&e.addr)
                })
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
    fn endpoints_down_start_no_subflow_until_they_recover() {
        let mut pm = PathManager::new(PathManagerKind::Default, endpoints());
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0; 4]));
        let (local, remote) = (sock("192.0.2.1:1000"), sock("203.0.113.9:80"));
        pm.set_down(v4("198.51.100.1"), true);
        assert!(pm.paths(local, remote, || 40_000).is_empty());
        pm.set_down(v4("198.51.100.1"), false);
        let back = pm.paths_from(local, remote, &[v4("198.51.100.1")], || 40_000);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].local, sock("198.51.100.1:40000"));
        assert!(pm
            .paths_from(local, remote, &[v4("192.0.2.7")], || 40_000)
            .is_empty());
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
