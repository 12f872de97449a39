//! Transparent mode: which TCP segments to foreign destinations the gateway takes.
//!
//! mpgw is the next hop of its clients, not a router. A segment that reaches a port
//! addressed to someone else is taken only when the port is named by a transparent
//! listener: a connection to any destination is then terminated by the gateway,
//! which answers *as* that destination (the accepted connection's local address is
//! the one the client asked for), and the relay opens the other leg to the original
//! destination. Everything else to a foreign address is dropped and counted.
//!
//! The ingress port decides which listener takes a new connection, so the decision
//! ([`Addressed`]) is made where the frame arrives and travels with the segment when
//! it is handed to the connection's owner worker.

use crate::tcp::FourTuple;

/// To whom a received TCP segment is addressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Addressed {
    /// One of the gateway's own addresses.
    #[default]
    Us,
    /// A foreign destination that transparent listener `tag` (the relay listener's
    /// index) takes: a SYN opens a connection answered as that destination.
    Transparent(u16),
    /// A foreign destination no transparent listener takes: only segments of a
    /// connection the gateway has and MP_JOINs to a transparent connection's
    /// destination are served; the rest is dropped and counted.
    Foreign,
}

/// One transparent listener's match: the ports (indices) its clients reach the
/// gateway through, and the destination ports it takes (inclusive ranges; empty:
/// every port).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// Indices of the ports it takes segments on.
    pub ports: Vec<u16>,
    /// Destination port ranges `[first, last]` it takes; empty takes all.
    pub dst_ports: Vec<(u16, u16)>,
}

impl Rule {
    /// True when a segment received on port `port` for `tuple` (our side local: the
    /// original destination) falls under the rule.
    pub fn matches(&self, port: u16, tuple: &FourTuple) -> bool {
        let dst = tuple.local.port();
        self.ports.contains(&port)
            && (self.dst_ports.is_empty()
                || self.dst_ports.iter().any(|&(a, b)| (a..=b).contains(&dst)))
    }
}

/// The transparent listeners of a worker, by tag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    rules: Vec<(u16, Rule)>,
}

impl Rules {
    /// Adds the rule of transparent listener `tag`.
    pub fn add(&mut self, tag: u16, rule: Rule) {
        self.rules.push((tag, rule));
    }

    /// True when no transparent listener is configured.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when some transparent listener takes segments on port `port` (the
    /// port's host layer then passes foreign-destination TCP on).
    pub fn on_port(&self, port: u16) -> bool {
        self.rules.iter().any(|(_, r)| r.ports.contains(&port))
    }

    /// What a segment to a foreign destination received on port `port` is: taken
    /// by the first transparent listener that matches, else [`Addressed::Foreign`].
    pub fn classify(&self, port: u16, tuple: &FourTuple) -> Addressed {
        self.rules
            .iter()
            .find(|(_, r)| r.matches(port, tuple))
            .map_or(Addressed::Foreign, |&(tag, _)| Addressed::Transparent(tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(dst_port: u16) -> FourTuple {
        FourTuple {
            local: std::net::SocketAddr::from(([203, 0, 113, 9], dst_port)),
            remote: std::net::SocketAddr::from(([192, 0, 2, 2], 40_000)),
        }
    }

    #[test]
    fn the_first_rule_of_the_port_and_destination_port_takes_the_segment() {
        let mut rules = Rules::default();
        rules.add(
            3,
            Rule {
                ports: vec![0, 1],
                dst_ports: vec![(80, 80), (8000, 8999)],
            },
        );
        rules.add(
            5,
            Rule {
                ports: vec![1],
                dst_ports: Vec::new(),
            },
        );
        assert!(rules.on_port(0) && rules.on_port(1) && !rules.on_port(2));
        assert_eq!(rules.classify(0, &tuple(80)), Addressed::Transparent(3));
        assert_eq!(rules.classify(0, &tuple(8999)), Addressed::Transparent(3));
        assert_eq!(rules.classify(0, &tuple(443)), Addressed::Foreign);
        assert_eq!(rules.classify(1, &tuple(443)), Addressed::Transparent(5));
        assert_eq!(rules.classify(2, &tuple(80)), Addressed::Foreign);
    }
}
