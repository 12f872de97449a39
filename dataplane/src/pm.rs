//! Path managers: which subflows a connection the gateway opens (the edge role) adds,
//! named like Linux's and multipath-tcp.org's:
//! - `default`: one subflow from each local `subflow` endpoint to the peer's address,
//!   and one to each address the peer announces (within `add_addr_accepted`) from the
//!   local address the routes pick (Linux's in-kernel path manager);
//! - `fullmesh`: a subflow from every local endpoint to every peer address known —
//!   the one connected to and the announced ones;
//! - `ndiffports`: more subflows over the same address pair, on other local ports.
//!
//! A worker's [`PathAgent`] asks for a plan ([`PathManager::plan`]) when a connection
//! it opened is fully established, when its peer announces an address, when it is
//! left without subflows (make-after-break: while the connection waits
//! `close_timeout`, subflows are opened again over the paths that are up, retried
//! every second while none is on its way), and when a port's link comes back. A plan never repeats an address pair the connection has, and stays
//! within the `subflows` limit. Decided from configuration and the connection's own
//! state only, so any worker computes the same.

use crate::mptcp::msk::MskId;
use crate::mptcp::stack::{JoinPath, PmView, Stack};
use crate::port::SharedBuf;
use crate::tcp::{Instant, SegmentSink};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How long a connection the gateway opened may take to become fully established
/// before the path manager gives up adding its subflows (nothing was exchanged yet).
const JOIN_WAIT: Duration = Duration::from_secs(30);

/// How soon the path manager tries again to give a connection left without subflows
/// one (a join was refused, or no path was up); the wait ends with `close_timeout`.
const REJOIN_RETRY: Duration = Duration::from_secs(1);

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
    /// Our addresses whose port's link is down: no subflow starts from them.
    down: Vec<IpAddr>,
    /// Address ids of our other addresses (no endpoint): a subflow the routes start
    /// from one of them (to an announced address) is named by it.
    ids: Vec<(IpAddr, u8)>,
}

impl PathManager {
    /// A path manager of `kind` over the local `endpoints`.
    pub fn new(kind: PathManagerKind, endpoints: Vec<Endpoint>) -> Self {
        PathManager {
            kind,
            endpoints,
            down: Vec::new(),
            ids: Vec::new(),
        }
    }

    /// Names our addresses that are no endpoint with these address ids (distinct
    /// from the endpoints').
    pub fn with_address_ids(mut self, ids: Vec<(IpAddr, u8)>) -> Self {
        self.ids = ids;
        self
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
    /// again; subflows start only from usable addresses.
    pub fn set_down(&mut self, addr: IpAddr, down: bool) {
        self.down.retain(|&a| a != addr);
        if down {
            self.down.push(addr);
        }
    }

    /// The subflows to add to a connection the gateway opened, as `view` shows it:
    /// none unless it is joinable and below its `subflows` limit; never a second
    /// subflow on an address pair it has (`ndiffports`: up to its count on the
    /// initial pair). With `from`, only subflows from those of our addresses (ports
    /// whose link came back). The initial subflow's address pair is opened again when
    /// that subflow is gone (an orphan, or its port came back), from address id 0.
    /// `source` is the address the routes pick towards a destination, `port` hands
    /// out local ports (given our address and the remote end).
    pub fn plan(
        &self,
        view: &PmView,
        from: Option<&[IpAddr]>,
        source: impl Fn(IpAddr) -> Option<IpAddr>,
        mut port: impl FnMut(IpAddr, SocketAddr) -> u16,
    ) -> Vec<JoinPath> {
        if !view.opened || !view.joinable || view.room == 0 {
            return Vec::new();
        }
        let initial = view.local.ip();
        let v4 = view.remote.is_ipv4();
        // The peer's addresses: where the connection went, then those it announced
        // (at the initial subflow's port unless the announcement named one).
        let announced = view
            .peer_addrs
            .iter()
            .filter(|a| a.addr.is_ipv4() == v4)
            .map(|a| match a.addr.port() {
                0 => SocketAddr::new(a.addr.ip(), view.remote.port()),
                _ => a.addr,
            });
        let endpoints = self.endpoints.iter().filter(|e| e.addr.is_ipv4() == v4);
        // The initial subflow's address is id 0, whichever endpoint it is (Linux).
        let from_endpoint = move |e: &Endpoint, remote| {
            let id = if e.addr == initial { 0 } else { e.id };
            (e.addr, remote, id, e.backup)
        };
        let initial_backup = self.endpoints.iter().any(|e| e.addr == initial && e.backup);
        let first = std::iter::once((initial, view.remote, 0, initial_backup));
        let mut wanted: Vec<(IpAddr, SocketAddr, u8, bool)> = match self.kind {
            // Every subflow to the initial address: none if the peer set flag C.
            PathManagerKind::Ndiffports(_) if view.deny_join_initial => return Vec::new(),
            PathManagerKind::Ndiffports(n) => {
                let pair = (initial, view.remote.ip());
                let have = view.pairs.iter().filter(|&&p| p == pair).count();
                let more = usize::from(n).saturating_sub(have);
                return std::iter::repeat_n((initial, view.remote), more)
                    .filter(|(ip, _)| self.usable(*ip, from))
                    .take(view.room)
                    .map(|(ip, remote)| JoinPath {
                        local: SocketAddr::new(ip, port(ip, remote)),
                        remote,
                        local_id: 0,
                        backup: initial_backup,
                    })
                    .collect();
            }
            // Linux's in-kernel rule: each `subflow` endpoint to the peer's initial
            // address, and one subflow to each accepted announced address from the
            // address the routes pick.
            PathManagerKind::Default => first
                .chain(endpoints.map(|e| from_endpoint(e, view.remote)))
                .chain(announced.filter_map(|remote| {
                    if view.pairs.iter().any(|&(_, r)| r == remote.ip()) {
                        return None;
                    }
                    let ip = source(remote.ip())?;
                    let e = self.endpoints.iter().find(|e| e.addr == ip);
                    let id = match e {
                        _ if ip == initial => 0,
                        Some(e) => e.id,
                        None => self.id_of(ip),
                    };
                    Some((ip, remote, id, e.is_some_and(|e| e.backup)))
                }))
                .collect(),
            // Every endpoint to every address of the peer.
            PathManagerKind::Fullmesh => {
                let peers: Vec<SocketAddr> =
                    std::iter::once(view.remote).chain(announced).collect();
                first
                    .chain(
                        peers
                            .iter()
                            .flat_map(|&p| endpoints.clone().map(move |e| from_endpoint(e, p))),
                    )
                    .collect()
            }
        };
        if view.deny_join_initial {
            // The peer set MP_CAPABLE's flag C: only its announced addresses.
            wanted.retain(|&(_, remote, _, _)| remote != view.remote);
        }
        let mut taken: Vec<(IpAddr, IpAddr)> = view.pairs.to_vec();
        wanted.retain(|&(ip, remote, _, _)| {
            let pair = (ip, remote.ip());
            let fresh = !taken.contains(&pair) && self.usable(ip, from);
            if fresh {
                taken.push(pair);
            }
            fresh
        });
        wanted
            .into_iter()
            .take(view.room)
            .map(|(ip, remote, local_id, backup)| JoinPath {
                local: SocketAddr::new(ip, port(ip, remote)),
                remote,
                local_id,
                backup,
            })
            .collect()
    }

    /// Our address id of `ip`, an address that is no endpoint (0 if unknown).
    fn id_of(&self, ip: IpAddr) -> u8 {
        self.ids
            .iter()
            .find(|(a, _)| *a == ip)
            .map_or(0, |&(_, id)| id)
    }

    /// True when subflows may start from our address `ip` (its link is up, and it is
    /// among `from` when given).
    fn usable(&self, ip: IpAddr, from: Option<&[IpAddr]>) -> bool {
        !self.down.contains(&ip) && from.is_none_or(|f| f.contains(&ip))
    }
}

/// Subflows a [`PathAgent`] opened, by reason, and those it could not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// On connections fully established, and to addresses their peers announced.
    pub joins: u64,
    /// Re-created: on connections left without subflows, and after a link came back.
    pub rejoins: u64,
    /// Refused by the stack (not joinable, limit, tuple taken).
    pub failed: u64,
}

/// The path manager at work on the connections one worker opened: it waits for them
/// to be fully established, follows their peers' announcements, and gives subflows
/// back to connections left without any. Bounded by the connections themselves
/// (each is listed at most once per list).
pub struct PathAgent {
    pm: PathManager,
    /// Connections opened, waiting to be fully established, each with when to give
    /// up.
    awaiting: Vec<(MskId, Instant)>,
    /// Connections left without subflows, each with when to try next.
    rejoins: Vec<(MskId, Instant)>,
}

impl PathAgent {
    /// An agent over `pm`.
    pub fn new(pm: PathManager) -> Self {
        PathAgent {
            pm,
            awaiting: Vec::new(),
            rejoins: Vec::new(),
        }
    }

    /// The path manager (to mark addresses down, renumber, replace on reload).
    pub fn manager_mut(&mut self) -> &mut PathManager {
        &mut self.pm
    }

    /// Connection `m` was opened at `now`: its subflows are added once it is fully
    /// established (joins are refused until the peer has our keys).
    pub fn opened(&mut self, m: MskId, now: Instant) {
        self.awaiting.push((m, now + JOIN_WAIT));
    }

    /// Adds the subflows due at `now`: on connections fully established since the
    /// last run, on those whose peer announced an address, and on those left without
    /// subflows (see [`Stack::next_pm_due`]). `source` is the address the routes pick
    /// towards a destination, `port` hands out local ports.
    pub fn run<S: SharedBuf>(
        &mut self,
        stack: &mut Stack<S>,
        source: impl Fn(IpAddr) -> Option<IpAddr>,
        mut port: impl FnMut(IpAddr, SocketAddr) -> u16,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) -> Opened {
        let mut n = Opened::default();
        let mut i = 0;
        while i < self.awaiting.len() {
            let (m, until) = self.awaiting[i];
            match stack.pm_view(m) {
                Some(v) if v.joinable && !v.fully_established && now < until => {
                    i += 1;
                    continue;
                }
                Some(v) if v.fully_established => {
                    let (ok, failed) = self.add(stack, m, &v, None, &source, &mut port, now, out);
                    n.joins += ok;
                    n.failed += failed;
                }
                _ => {}
            }
            self.awaiting.swap_remove(i);
        }
        while let Some(m) = stack.next_pm_due() {
            let Some(v) = stack.pm_view(m) else { continue };
            if v.orphan && v.pairs.is_empty() {
                if !self.rejoins.iter().any(|&(r, _)| r == m) {
                    self.rejoins.push((m, now));
                }
            } else if v.fully_established {
                // The peer announced an address.
                let (ok, failed) = self.add(stack, m, &v, None, &source, &mut port, now, out);
                n.joins += ok;
                n.failed += failed;
            }
        }
        let mut i = 0;
        while i < self.rejoins.len() {
            let (m, due) = self.rejoins[i];
            let Some(v) = stack.pm_view(m).filter(|v| v.orphan && v.joinable) else {
                self.rejoins.swap_remove(i);
                continue;
            };
            // Only while no subflow is on its way.
            if now >= due && v.pairs.is_empty() {
                let (ok, failed) = self.add(stack, m, &v, None, &source, &mut port, now, out);
                n.rejoins += ok;
                n.failed += failed;
                self.rejoins[i].1 = now + REJOIN_RETRY;
            }
            i += 1;
        }
        n
    }

    /// Our addresses `from` are usable again (their port's link came back): the
    /// connections the gateway opened get their subflows from them back (those
    /// fully established, and those left without subflows).
    pub fn link_up<S: SharedBuf>(
        &mut self,
        stack: &mut Stack<S>,
        from: &[IpAddr],
        source: impl Fn(IpAddr) -> Option<IpAddr>,
        mut port: impl FnMut(IpAddr, SocketAddr) -> u16,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) -> Opened {
        for &a in from {
            self.pm.set_down(a, false);
        }
        let mut n = Opened::default();
        for m in stack.connections() {
            let Some(v) = stack.pm_view(m) else { continue };
            if v.fully_established || v.orphan {
                let (ok, failed) = self.add(stack, m, &v, Some(from), &source, &mut port, now, out);
                n.rejoins += ok;
                n.failed += failed;
            }
        }
        n
    }

    /// Opens the subflows the plan for `m` (seen as `view`) names; returns how many
    /// were opened and how many the stack refused.
    #[allow(clippy::too_many_arguments)]
    fn add<S: SharedBuf>(
        &self,
        stack: &mut Stack<S>,
        m: MskId,
        view: &PmView,
        from: Option<&[IpAddr]>,
        source: &impl Fn(IpAddr) -> Option<IpAddr>,
        port: &mut impl FnMut(IpAddr, SocketAddr) -> u16,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) -> (u64, u64) {
        let (mut ok, mut failed) = (0, 0);
        for path in self.pm.plan(view, from, source, port) {
            if stack.join(m, &path, now, out) {
                ok += 1;
            } else {
                failed += 1;
            }
        }
        (ok, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mptcp::msk::PeerAddr;
    use arrayvec::ArrayVec;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0; 4]))
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap_or(SocketAddr::from(([0; 4], 0)))
    }

    /// Endpoints: WAN 1 and WAN 2 (backup) and an IPv6 one.
    fn endpoints() -> Vec<Endpoint> {
        vec![
            Endpoint {
                addr: ip("192.0.2.1"),
                id: 1,
                backup: false,
            },
            Endpoint {
                addr: ip("198.51.100.1"),
                id: 2,
                backup: true,
            },
            Endpoint {
                addr: ip("2001:db8::1"),
                id: 3,
                backup: false,
            },
        ]
    }

    /// A fully established connection from WAN 1 to the server, with its initial
    /// subflow, announcing `announced`.
    fn view(announced: &[(u8, &str)]) -> PmView {
        let (local, remote) = (sock("192.0.2.1:1000"), sock("203.0.113.9:80"));
        let mut pairs = ArrayVec::new();
        pairs.push((local.ip(), remote.ip()));
        PmView {
            local,
            remote,
            opened: true,
            joinable: true,
            fully_established: true,
            orphan: false,
            room: 2,
            pairs,
            peer_addrs: announced
                .iter()
                .map(|&(id, a)| PeerAddr { id, addr: sock(a) })
                .collect(),
            deny_join_initial: false,
        }
    }

    /// The plan's (local address, remote address, local id, backup).
    fn plan(
        pm: &PathManager,
        v: &PmView,
        from: Option<&[IpAddr]>,
    ) -> Vec<(String, String, u8, bool)> {
        let mut next = 40_000;
        let source = |dst: IpAddr| match dst {
            IpAddr::V4(a) if a.octets()[0] == 198 => Some(ip("198.51.100.1")),
            IpAddr::V4(_) => Some(ip("10.0.0.1")),
            IpAddr::V6(_) => None,
        };
        pm.plan(v, from, source, |_, _| {
            next += 2;
            next
        })
        .into_iter()
        .map(|p| {
            (
                p.local.ip().to_string(),
                p.remote.to_string(),
                p.local_id,
                p.backup,
            )
        })
        .collect()
    }

    fn path(local: &str, remote: &str, id: u8, backup: bool) -> (String, String, u8, bool) {
        (local.into(), remote.into(), id, backup)
    }

    #[test]
    fn default_joins_from_every_other_endpoint_of_the_family() {
        let pm = PathManager::new(PathManagerKind::Default, endpoints());
        let mut next = 40_000;
        let paths = pm.plan(
            &view(&[]),
            None,
            |_| None,
            |_, _| {
                next += 2;
                next
            },
        );
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
    fn a_peer_with_flag_c_is_joined_only_at_its_announced_addresses() {
        let announced = [(5, "198.51.100.9:0")];
        for kind in [
            PathManagerKind::Default,
            PathManagerKind::Fullmesh,
            PathManagerKind::Ndiffports(3),
        ] {
            let pm = PathManager::new(kind, endpoints());
            let mut v = view(&announced);
            v.room = 8;
            let all = plan(&pm, &v, None);
            assert!(
                all.iter().any(|p| p.1 == "203.0.113.9:80"),
                "{kind:?}: {all:?}"
            );
            v.deny_join_initial = true;
            let denied = plan(&pm, &v, None);
            assert!(
                denied.iter().all(|p| p.1 != "203.0.113.9:80"),
                "{kind:?}: {denied:?}"
            );
            // The announced address is still joined (ndiffports only uses the initial
            // pair, so it opens nothing).
            let to_announced = all.iter().filter(|p| p.1 == "198.51.100.9:80").count();
            assert_eq!(denied.len(), to_announced, "{kind:?}: {denied:?}");
        }
        // An orphan (its initial subflow gone) does not re-open the initial pair either.
        let pm = PathManager::new(PathManagerKind::Default, endpoints());
        let mut v = view(&[]);
        v.pairs.clear();
        v.orphan = true;
        assert!(!plan(&pm, &v, None).is_empty());
        v.deny_join_initial = true;
        assert!(plan(&pm, &v, None).is_empty());
    }

    #[test]
    fn default_joins_each_announced_address_once_from_the_routes_choice() {
        let pm = PathManager::new(PathManagerKind::Default, endpoints())
            .with_address_ids(vec![(ip("10.0.0.1"), 7)]);
        let mut v = view(&[(5, "198.51.100.9:0"), (6, "203.0.113.10:8080")]);
        v.room = 8;
        assert_eq!(
            plan(&pm, &v, None),
            vec![
                path("198.51.100.1", "203.0.113.9:80", 2, true),
                // None named: the initial subflow's port.
                path("198.51.100.1", "198.51.100.9:80", 2, true),
                // A port named is used; the routes pick an address no endpoint has.
                path("10.0.0.1", "203.0.113.10:8080", 7, false),
            ]
        );
        // An announced address the connection already has a subflow to (from any
        // address) gets no other.
        v.pairs.push((ip("192.0.2.1"), ip("198.51.100.9")));
        assert_eq!(plan(&pm, &v, None).len(), 2);
    }

    #[test]
    fn fullmesh_joins_every_endpoint_to_every_peer_address_within_the_limit() {
        let pm = PathManager::new(PathManagerKind::Fullmesh, endpoints());
        let mut v = view(&[(5, "198.51.100.9:0")]);
        v.room = 8;
        assert_eq!(
            plan(&pm, &v, None),
            vec![
                path("198.51.100.1", "203.0.113.9:80", 2, true),
                // From the initial subflow's address: id 0.
                path("192.0.2.1", "198.51.100.9:80", 0, false),
                path("198.51.100.1", "198.51.100.9:80", 2, true),
            ]
        );
        v.room = 2;
        assert_eq!(plan(&pm, &v, None).len(), 2, "the subflows limit");
        // What the connection has is not opened twice.
        v.room = 8;
        v.pairs.push((ip("192.0.2.1"), ip("198.51.100.9")));
        assert_eq!(plan(&pm, &v, None).len(), 2);
        // IPv6 peer addresses of an IPv4 connection are not used.
        let v6 = view(&[(5, "[2001:db8::9]:80")]);
        assert_eq!(plan(&pm, &v6, None).len(), 1);
    }

    #[test]
    fn an_orphan_gets_its_paths_back_from_usable_addresses_only() {
        let mut pm = PathManager::new(PathManagerKind::Default, endpoints());
        let mut v = view(&[]);
        v.pairs.clear();
        v.orphan = true;
        v.room = 3;
        assert_eq!(
            plan(&pm, &v, None),
            vec![
                path("192.0.2.1", "203.0.113.9:80", 0, false),
                path("198.51.100.1", "203.0.113.9:80", 2, true),
            ],
            "the initial pair again (address id 0), and the other endpoint"
        );
        pm.set_down(ip("192.0.2.1"), true);
        assert_eq!(
            plan(&pm, &v, None),
            vec![path("198.51.100.1", "203.0.113.9:80", 2, true)]
        );
        pm.set_down(ip("198.51.100.1"), true);
        assert!(plan(&pm, &v, None).is_empty(), "no path up");
        // A link back: only subflows from its addresses.
        pm.set_down(ip("192.0.2.1"), false);
        let back = [ip("192.0.2.1")];
        assert_eq!(
            plan(&pm, &v, Some(&back)),
            vec![path("192.0.2.1", "203.0.113.9:80", 0, false)]
        );
        assert!(plan(&pm, &v, Some(&[ip("192.0.2.7")])).is_empty());
    }

    #[test]
    fn nothing_for_accepted_unjoinable_or_full_connections() {
        let pm = PathManager::new(PathManagerKind::Fullmesh, endpoints());
        for change in [
            |v: &mut PmView| v.opened = false,
            |v: &mut PmView| v.joinable = false,
            |v: &mut PmView| v.room = 0,
        ] {
            let mut v = view(&[(5, "198.51.100.9:0")]);
            change(&mut v);
            assert!(plan(&pm, &v, None).is_empty());
        }
    }

    #[test]
    fn ndiffports_adds_subflows_on_the_same_addresses() {
        let pm = PathManager::new(PathManagerKind::Ndiffports(3), endpoints());
        let mut next = 50_000;
        let mut v = view(&[(5, "198.51.100.9:0")]);
        let paths = pm.plan(
            &v,
            None,
            |_| None,
            |_, _| {
                next += 1;
                next
            },
        );
        let locals: Vec<_> = paths.iter().map(|p| p.local).collect();
        assert_eq!(
            locals,
            vec![sock("192.0.2.1:50001"), sock("192.0.2.1:50002")]
        );
        assert!(paths.iter().all(|p| p.remote == sock("203.0.113.9:80")));
        // An orphan gets all three again.
        v.pairs.clear();
        v.orphan = true;
        v.room = 3;
        assert_eq!(plan(&pm, &v, None).len(), 3);
    }
}
