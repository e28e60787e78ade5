//! The client's address behind load balancers and reverse proxies.
//!
//! Sign-in throttling counts failures per client address. Behind a load
//! balancer every connection comes from the balancer, so without help all
//! users would share one address — and twenty wrong passwords from anyone
//! would lock everyone out, on every server of the database. A balancer
//! names the address it received a request from by appending it to
//! `X-Forwarded-For`; the console believes that header only from the
//! proxies it is told to trust (`oathdesk serve --trusted-proxy`), since
//! anybody else can send it.
//!
//! The header is read from the right: the last entry was written by the
//! proxy that connected to us, each entry before it by the hop before. The
//! client is the first address, from the right, that is not a trusted
//! proxy: what a client writes into the header itself stays to the left of
//! what the trusted proxies appended, so it is never believed.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// A proxy whose `X-Forwarded-For` is believed: one address or a network
/// (`10.0.0.7`, `10.0.0.0/8`, `fd00::/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix: u8,
}

impl TrustedProxy {
    /// Whether `address` is this proxy or in its network.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(text: &str) -> Result<TrustedProxy, String> {
        let text = text.trim();
        let wrong = || {
            format!("'{text}' is not an address or network like 10.0.0.7, 10.0.0.0/8 or fd00::/8")
        };
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = address
            .parse::<IpAddr>()
            .map_err(|_| wrong())?
            .to_canonical();
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("'{text}': the prefix length is 0 to {bits}"))?,
            None => bits,
        };
        Ok(TrustedProxy { network, prefix })
    }
}

/// The address a request came from: the peer, or — when the peer is a
/// trusted proxy — the nearest untrusted address in `X-Forwarded-For`.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[TrustedProxy]) -> IpAddr {
    let is_trusted = |address: IpAddr| trusted.iter().any(|proxy| proxy.contains(address));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.into_iter().rev() {
        // A hop we cannot read ends the walk at the last proxy we trust.
        let Some(address) = parse_hop(hop) else {
            break;
        };
        client = address;
        if !is_trusted(address) {
            break;
        }
    }
    client
}

/// `192.0.2.1`, `2001:db8::1`, and the forms with a port some proxies
/// write (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|address| address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks() {
        let lan: TrustedProxy = "10.1.0.0/16".parse().unwrap();
        assert!(lan.contains(ip("10.1.200.3")));
        assert!(!lan.contains(ip("10.2.0.1")));
        assert!(lan.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        assert!(!lan.contains(ip("fd00::1")));
        let one: TrustedProxy = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let any: TrustedProxy = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("203.0.113.9")));
        let v6: TrustedProxy = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12:3456::1")) && !v6.contains(ip("fe80::1")));
        assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err());
        assert!("balancer".parse::<TrustedProxy>().is_err());
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let headers = forwarded(&["203.0.113.5"]);
        assert_eq!(
            client_address(ip("198.51.100.1"), &headers, &trusted),
            ip("198.51.100.1"),
            "an untrusted peer cannot name another address"
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers, &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2"),
            "no header: the proxy is all we know"
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers, &[]),
            ip("10.0.0.2"),
            "no trusted proxies: the header is ignored"
        );
    }

    #[test]
    fn what_a_client_writes_itself_is_not_believed() {
        let trusted = proxies(&["10.0.0.0/8"]);
        // The client sent "1.2.3.4"; two proxies appended what they saw.
        let headers = forwarded(&["1.2.3.4, 203.0.113.5", "10.0.0.9"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers, &trusted),
            ip("203.0.113.5")
        );
        let ported = forwarded(&["garbage, [2001:db8::7]:4711"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &ported, &trusted),
            ip("2001:db8::7")
        );
        let unreadable = forwarded(&["203.0.113.5, not-an-address"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &unreadable, &trusted),
            ip("10.0.0.2"),
            "an unreadable hop stops at the last trusted proxy"
        );
    }
}
