//! Address ranges (`10.0.0.0/8`, `fc00::/7`) as intervals, and the two questions an
//! `ipBlock` or a ClusterNetworkPolicy's `networks` pose for pod-to-pod traffic: may a
//! pod have an address in it, and must it?

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 range, as the first and last address of the interval it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    v6: bool,
    first: u128,
    last: u128,
}

impl Cidr {
    /// Every IPv4 address.
    pub const ALL_V4: Cidr = Cidr {
        v6: false,
        first: 0,
        last: u32::MAX as u128,
    };
    /// Every IPv6 address.
    pub const ALL_V6: Cidr = Cidr {
        v6: true,
        first: 0,
        last: u128::MAX,
    };

    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v6, value) = numeric(ip);
        v6 == self.v6 && self.first <= value && value <= self.last
    }
}

fn numeric(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (false, u32::from(v4).into()),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    }
}

/// Parses `address/prefix`, or a bare address (a range of one). Host bits are ignored,
/// as the apiserver's own parser does.
impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let ip: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a CIDR"))?;
        let (v6, value) = numeric(ip);
        let bits: u32 = if v6 { 128 } else { 32 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("{text:?} is not a CIDR"))?,
        };
        let host_bits = bits - prefix;
        let host_mask: u128 = if host_bits == 0 {
            0
        } else {
            u128::MAX >> (128 - host_bits)
        };
        Ok(Cidr {
            v6,
            first: value & !host_mask,
            last: value | host_mask,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits: u32 = if self.v6 { 128 } else { 32 };
        let prefix = bits - (self.last - self.first).count_ones();
        if self.v6 {
            write!(f, "{}/{prefix}", std::net::Ipv6Addr::from(self.first))
        } else {
            write!(
                f,
                "{}/{prefix}",
                std::net::Ipv4Addr::from(self.first as u32)
            )
        }
    }
}

/// Parses a list of CIDRs, naming the first that is not one.
pub fn parse_all(texts: &[String]) -> Result<Vec<Cidr>, String> {
    texts.iter().map(|t| t.parse()).collect()
}

/// Whether some address of `block`, outside every range of `except`, lies in one of
/// `within`: whether a pod whose address is only known to lie in `within` may be in
/// the block.
pub fn overlaps_outside(block: &Cidr, except: &[Cidr], within: &[Cidr]) -> bool {
    within.iter().filter(|w| w.v6 == block.v6).any(|w| {
        let (first, last) = (block.first.max(w.first), block.last.min(w.last));
        if first > last {
            return false;
        }
        let mut holes: Vec<(u128, u128)> = except
            .iter()
            .filter(|e| e.v6 == block.v6 && e.last >= first && e.first <= last)
            .map(|e| (e.first, e.last))
            .collect();
        holes.sort_unstable();
        let mut next = first;
        for (hole_first, hole_last) in holes {
            if hole_first > next {
                return true;
            }
            match hole_last.checked_add(1) {
                Some(after) => next = next.max(after),
                None => return false,
            }
            if next > last {
                return false;
            }
        }
        next <= last
    })
}

/// Whether every address of every range of `within` lies in some range of `blocks`:
/// whether a pod whose address is only known to lie in `within` must be in them.
pub fn covers(blocks: &[Cidr], within: &[Cidr]) -> bool {
    within.iter().all(|w| {
        let mut parts: Vec<(u128, u128)> = blocks
            .iter()
            .filter(|b| b.v6 == w.v6 && b.last >= w.first && b.first <= w.last)
            .map(|b| (b.first, b.last))
            .collect();
        parts.sort_unstable();
        let mut next = w.first;
        for (first, last) in parts {
            if first > next {
                return false;
            }
            if last >= w.last {
                return true;
            }
            next = next.max(last + 1);
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(c("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(c("0.0.0.0/0"), Cidr::ALL_V4);
        assert_eq!(c("::/0"), Cidr::ALL_V6);
        assert_eq!(c("fd00::1").to_string(), "fd00::1/128");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("ten/8".parse::<Cidr>().is_err());
        assert!(c("192.168.0.0/16").contains("192.168.4.5".parse().unwrap()));
        assert!(!c("192.168.0.0/16").contains("::1".parse().unwrap()));
    }

    #[test]
    fn overlap_outside_exceptions() {
        let pods = [c("10.244.0.0/16")];
        assert!(overlaps_outside(&c("10.0.0.0/8"), &[], &pods));
        assert!(!overlaps_outside(
            &c("10.0.0.0/8"),
            &[c("10.244.0.0/16")],
            &pods
        ));
        assert!(overlaps_outside(
            &c("10.0.0.0/8"),
            &[c("10.244.0.0/17")],
            &pods
        ));
        assert!(!overlaps_outside(
            &c("0.0.0.0/0"),
            &[c("10.0.0.0/8")],
            &pods
        ));
        assert!(!overlaps_outside(&c("::/0"), &[], &pods));
        assert!(!overlaps_outside(
            &Cidr::ALL_V6,
            &[c("::/1"), c("8000::/1")],
            &[Cidr::ALL_V6]
        ));
    }

    #[test]
    fn covering() {
        let pods = [c("10.244.0.0/16")];
        assert!(covers(&[c("10.0.0.0/8")], &pods));
        assert!(covers(&[c("10.244.0.0/17"), c("10.244.128.0/17")], &pods));
        assert!(!covers(&[c("10.244.0.0/17")], &pods));
        assert!(!covers(&[c("10.244.0.0/17"), c("10.244.129.0/24")], &pods));
        assert!(!covers(&[Cidr::ALL_V4], &[Cidr::ALL_V4, Cidr::ALL_V6]));
        assert!(covers(
            &[Cidr::ALL_V4, Cidr::ALL_V6],
            &[Cidr::ALL_V4, Cidr::ALL_V6]
        ));
        assert!(covers(&[c("::/1"), c("8000::/1")], &[Cidr::ALL_V6]));
        assert!(!covers(&[], &pods));
        assert!(covers(&[], &[]));
    }
}
