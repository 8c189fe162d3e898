//! The client's address: the socket peer, or, when the peer is a trusted
//! proxy, the nearest untrusted address in `X-Forwarded-For`.

use std::net::IpAddr;

/// Networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

/// The address as 128 bits and its width, IPv4-mapped addresses as IPv4.
fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (u128::from(u32::from(v4)), 32),
            None => (u128::from(v6), 128),
        },
    }
}

impl TrustedProxies {
    /// Parses addresses and networks (`10.0.0.0/8`, `::1`, `fd00::/8`).
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list {
            let (addr, len) = match item.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (item.as_str(), None),
            };
            let ip: IpAddr = addr
                .trim()
                .parse()
                .map_err(|_| format!("trusted_proxies: {item:?} is not an address or network"))?;
            let width = bits(ip).1;
            let len = match len {
                Some(l) => l
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= width)
                    .ok_or_else(|| format!("trusted_proxies: bad prefix length in {item:?}"))?,
                None => width,
            };
            nets.push((ip, len));
        }
        Ok(Self(nets))
    }

    /// Whether `ip` lies in a trusted network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (addr, width) = bits(ip);
        self.0.iter().any(|(net, len)| {
            let (net, net_width) = bits(*net);
            if net_width != width {
                return false;
            }
            let shift = u32::from(width - len);
            shift >= 128 || (addr >> shift) == (net >> shift)
        })
    }

    /// The client: `peer` itself unless it is trusted; then, walking
    /// `X-Forwarded-For` from the right, the first address that is not trusted
    /// (or the leftmost one, if all are).
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let Some(header) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        if !self.contains(client) {
            return client;
        }
        for hop in header.split(',').rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        break;
                    }
                }
                // A hop we cannot read ends what we can believe.
                Err(_) => break,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_match_by_prefix() {
        let t =
            TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into(), "fd00::/8".into()]).unwrap();
        assert!(t.contains(ip("10.1.2.3")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(t.contains(ip("::1")));
        assert!(t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("fe80::1")));
        assert!(t.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped");
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local".into()]).is_err());
        let all = TrustedProxies::parse(&["0.0.0.0/0".into()]).unwrap();
        assert!(all.contains(ip("8.8.8.8")));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let xff = Some("203.0.113.7, 10.0.0.2");
        // An untrusted peer's header is ignored.
        assert_eq!(t.client_ip(ip("198.51.100.1"), xff), ip("198.51.100.1"));
        // Through two trusted hops to the client.
        assert_eq!(t.client_ip(ip("10.0.0.1"), xff), ip("203.0.113.7"));
        // A client cannot spoof by prepending: the nearest untrusted hop wins.
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), Some("1.1.1.1, 203.0.113.7")),
            ip("203.0.113.7")
        );
        assert_eq!(t.client_ip(ip("10.0.0.1"), Some("garbage")), ip("10.0.0.1"));
        assert_eq!(t.client_ip(ip("10.0.0.1"), None), ip("10.0.0.1"));
        // Nobody trusted: the socket decides.
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(ip("10.0.0.1"), xff), ip("10.0.0.1"));
    }
}
