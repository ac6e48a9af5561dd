//! Sets of (protocol, port) that a rule allows, and the arithmetic the checks need:
//! union, intersection and difference.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::api::{PortSpec, Protocol};

/// Lowest port a connection can use.
pub const MIN_PORT: u16 = 1;
/// Highest port a connection can use.
pub const MAX_PORT: u16 = 65535;

const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

fn slot(protocol: Protocol) -> usize {
    match protocol {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Sctp => 2,
    }
}

/// A set of ports per protocol (TCP, UDP, SCTP), as sorted, disjoint, inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet {
    ranges: [Vec<(u16, u16)>; 3],
}

impl PortSet {
    /// No port at all.
    pub fn none() -> Self {
        PortSet::default()
    }

    /// Every port of every protocol.
    pub fn all() -> Self {
        let mut set = PortSet::none();
        for protocol in PROTOCOLS {
            set.add(protocol, MIN_PORT, MAX_PORT);
        }
        set
    }

    /// One port of one protocol.
    pub fn single(protocol: Protocol, port: u16) -> Self {
        let mut set = PortSet::none();
        set.add(protocol, port, port);
        set
    }

    /// The ports a list of `PortSpec`s names; an empty list means every port.
    pub fn from_specs(specs: &[PortSpec]) -> Self {
        if specs.is_empty() {
            return PortSet::all();
        }
        let mut set = PortSet::none();
        for spec in specs {
            let clamp = |p: i32| p.clamp(MIN_PORT.into(), MAX_PORT.into()) as u16;
            let first = clamp(spec.port);
            let last = clamp(spec.end_port.unwrap_or(spec.port).max(spec.port));
            set.add(spec.protocol.unwrap_or(Protocol::Tcp), first, last);
        }
        set
    }

    /// Adds the ports `first..=last` of `protocol`.
    pub fn add(&mut self, protocol: Protocol, first: u16, last: u16) {
        if first > last {
            return;
        }
        let ranges = &mut self.ranges[slot(protocol)];
        ranges.push((first, last));
        normalize(ranges);
    }

    /// Adds every port of `protocol`.
    pub fn add_protocol(&mut self, protocol: Protocol) {
        self.add(protocol, MIN_PORT, MAX_PORT);
    }

    /// Whether the set holds no port.
    pub fn is_empty(&self) -> bool {
        self.ranges.iter().all(Vec::is_empty)
    }

    /// Whether the set holds every port of every protocol.
    pub fn is_all(&self) -> bool {
        PROTOCOLS.iter().all(|&p| self.is_all_of(p))
    }

    fn is_all_of(&self, protocol: Protocol) -> bool {
        self.ranges[slot(protocol)] == [(MIN_PORT, MAX_PORT)]
    }

    /// Whether `port` of `protocol` is in the set.
    pub fn contains(&self, protocol: Protocol, port: u16) -> bool {
        self.ranges[slot(protocol)]
            .iter()
            .any(|&(first, last)| first <= port && port <= last)
    }

    /// Adds every port of `other`.
    pub fn union_with(&mut self, other: &PortSet) {
        for (mine, theirs) in self.ranges.iter_mut().zip(&other.ranges) {
            mine.extend_from_slice(theirs);
            normalize(mine);
        }
    }

    /// The ports in both sets.
    pub fn intersect(&self, other: &PortSet) -> PortSet {
        let mut out = PortSet::none();
        for (i, mine) in self.ranges.iter().enumerate() {
            for &(a1, a2) in mine {
                for &(b1, b2) in &other.ranges[i] {
                    let (first, last) = (a1.max(b1), a2.min(b2));
                    if first <= last {
                        out.ranges[i].push((first, last));
                    }
                }
            }
            normalize(&mut out.ranges[i]);
        }
        out
    }

    /// The ports of this set that are not in `other`.
    pub fn minus(&self, other: &PortSet) -> PortSet {
        let mut out = PortSet::none();
        for (i, mine) in self.ranges.iter().enumerate() {
            for &(first, last) in mine {
                let mut next = u32::from(first);
                for &(b1, b2) in &other.ranges[i] {
                    if u32::from(b2) < next || b1 > last {
                        continue;
                    }
                    if u32::from(b1) > next {
                        out.ranges[i].push((next as u16, b1 - 1));
                    }
                    next = u32::from(b2) + 1;
                }
                if next <= u32::from(last) {
                    out.ranges[i].push((next as u16, last));
                }
            }
        }
        out
    }
}

/// Sorts and merges overlapping or adjacent ranges.
fn normalize(ranges: &mut Vec<(u16, u16)>) {
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for &(first, last) in ranges.iter() {
        match merged.last_mut() {
            Some(prev) if u32::from(first) <= u32::from(prev.1) + 1 => prev.1 = prev.1.max(last),
            _ => merged.push((first, last)),
        }
    }
    *ranges = merged;
}

/// `all ports`, `none`, or a list such as `TCP 443, TCP 8000-8080, all UDP`.
impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("all ports");
        }
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut parts = Vec::new();
        for protocol in PROTOCOLS {
            let name = protocol.as_str();
            if self.is_all_of(protocol) {
                parts.push(format!("all {name}"));
                continue;
            }
            for &(first, last) in &self.ranges[slot(protocol)] {
                parts.push(if first == last {
                    format!("{name} {first}")
                } else {
                    format!("{name} {first}-{last}")
                });
            }
        }
        f.write_str(&parts.join(", "))
    }
}

/// Serialized as its text, as in the table.
impl Serialize for PortSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        let mut a = PortSet::none();
        a.add(Protocol::Tcp, 80, 90);
        a.add(Protocol::Tcp, 91, 100);
        a.add(Protocol::Udp, 53, 53);
        assert_eq!(a.to_string(), "TCP 80-100, UDP 53");
        let b = PortSet::single(Protocol::Tcp, 85);
        assert_eq!(a.minus(&b).to_string(), "TCP 80-84, TCP 86-100, UDP 53");
        assert_eq!(a.intersect(&b), b);
        assert!(PortSet::all().minus(&PortSet::all()).is_empty());
        let mut tcp = PortSet::none();
        tcp.add_protocol(Protocol::Tcp);
        assert_eq!(PortSet::all().minus(&tcp).to_string(), "all UDP, all SCTP");
        let mut c = b.clone();
        c.union_with(&PortSet::all());
        assert!(c.is_all());
        assert_eq!(PortSet::all().minus(&PortSet::single(Protocol::Tcp, 1)), {
            let mut s = PortSet::none();
            s.add(Protocol::Tcp, 2, MAX_PORT);
            s.add_protocol(Protocol::Udp);
            s.add_protocol(Protocol::Sctp);
            s
        });
    }
}
