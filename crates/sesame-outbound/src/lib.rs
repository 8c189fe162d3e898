//! The one HTTP client Sesame uses to call other servers (webhook receivers,
//! identity providers): redirects are never followed, every request has a
//! timeout, and targets on private or loopback addresses are refused unless
//! allowed, checked on the URL and on every address its host resolves to, so
//! DNS cannot point a public name inward.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Whether an address is one an outbound request may not reach unless allowed:
/// loopback, private, link-local, shared, unspecified, multicast or
/// broadcast (IPv4-mapped IPv6 judged as IPv4).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Resolves names, dropping the addresses an outbound request may not reach.
#[derive(Debug)]
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| !is_private(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{} resolves only to private addresses", name.as_str()).into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The one HTTP client outbound requests go through.
#[derive(Debug, Clone)]
pub struct OutboundClient {
    http: reqwest::Client,
    allow_private: bool,
}

impl OutboundClient {
    /// A client with `timeout` per attempt; private targets only when allowed.
    pub fn new(user_agent: &str, timeout: Duration, allow_private: bool) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(user_agent);
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let http = builder.build().map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            allow_private,
        })
    }

    /// The underlying client, for building requests to checked URLs.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether private and loopback targets are allowed.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Checks a target URL: http or https, and not a private address unless allowed.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{url}: only http and https targets"));
        }
        let private = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => return Err(format!("{url}: no host")),
        };
        if private && !self.allow_private {
            return Err(format!(
                "{url}: a private or loopback target (not allowed here)"
            ));
        }
        Ok(parsed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn private_targets_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_on_private_addresses_are_refused_unless_allowed() {
        let strict = OutboundClient::new("test", Duration::from_secs(1), false).unwrap();
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]/",
            "http://localhost/",
            "http://10.0.0.1/",
        ] {
            assert!(strict.check_url(url).is_err(), "{url}");
        }
        assert!(strict.check_url("ftp://example.com/").is_err());
        assert!(strict.check_url("https://example.com/hook").is_ok());
        let open = OutboundClient::new("test", Duration::from_secs(1), true).unwrap();
        assert!(open.check_url("http://127.0.0.1:9/x").is_ok());
    }
}
