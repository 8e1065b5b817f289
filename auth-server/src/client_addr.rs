//! The client address that per-address rate limits count. Behind an ingress controller every
//! request comes from the controller's pods, so their `X-Forwarded-For` names the client: when
//! the TCP peer is a trusted proxy (`spec.rateLimits.trustedProxies`), the client is the nearest
//! hop in `X-Forwarded-For` that is not a trusted proxy itself. Hops further left are written
//! by the client and never believed.
//!
//! A middleware works the address out once per request and keeps it for the request's task
//! ([`scope`]), where the rate limits and the audit records read it ([`current`]).

use ipnet::IpNet;
use std::future::Future;
use std::net::IpAddr;

tokio::task_local! {
    static CURRENT: IpAddr;
}

/// Runs `fut` (the rest of a request) with `addr` as its client address.
pub async fn scope<F: Future>(addr: IpAddr, fut: F) -> F::Output {
    CURRENT.scope(addr, fut).await
}

/// The client address of the request being served, if inside one.
pub fn current() -> Option<IpAddr> {
    CURRENT.try_with(|a| *a).ok()
}

/// Parses trusted proxy entries: CIDR ranges (`10.0.0.0/8`) or single addresses.
pub fn parse_trusted(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|e| {
            let e = e.trim();
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{e:?} is neither an address nor a CIDR range"))
        })
        .collect()
}

/// The client address for a request from `peer` with the `X-Forwarded-For` header values
/// `forwarded_for` (in order), given the `trusted` proxies.
pub fn client_addr<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&ip.to_canonical()));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // A malformed hop: nothing left of it can be trusted; the last good hop is it.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets() -> Vec<IpNet> {
        parse_trusted(&["10.0.0.0/8".into(), "192.0.2.7".into()]).unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            client_addr(ip("203.0.113.9"), ["198.51.100.1"], &nets()),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_addr(ip("203.0.113.9"), ["198.51.100.1"], &[]),
            ip("203.0.113.9"),
            "no trusted proxies: headers are ignored"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        // The client spoofs a hop; the ingress appends the real address.
        assert_eq!(
            client_addr(ip("10.1.2.3"), ["6.6.6.6, 198.51.100.1"], &nets()),
            ip("198.51.100.1")
        );
        // Two proxies (a load balancer, then the ingress), headers split over two lines.
        assert_eq!(
            client_addr(
                ip("10.1.2.3"),
                ["6.6.6.6, 198.51.100.1", "192.0.2.7"],
                &nets()
            ),
            ip("198.51.100.1")
        );
        // IPv4-mapped IPv6 peers count as their IPv4 address.
        assert_eq!(
            client_addr(ip("::ffff:10.1.2.3"), ["198.51.100.1"], &nets()),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn missing_or_malformed_headers_fall_back_to_the_last_good_hop() {
        assert_eq!(client_addr(ip("10.1.2.3"), [], &nets()), ip("10.1.2.3"));
        assert_eq!(
            client_addr(ip("10.1.2.3"), ["198.51.100.1, garbage"], &nets()),
            ip("10.1.2.3")
        );
        assert_eq!(
            client_addr(ip("10.1.2.3"), ["garbage, 10.9.9.9"], &nets()),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(parse_trusted(&["10.0.0.0/33".into()])
            .unwrap_err()
            .contains("10.0.0.0/33"));
        assert_eq!(parse_trusted(&["::1".into()]).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_current_address_is_seen_inside_the_scope_only() {
        let addr: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(current(), None);
        assert_eq!(scope(addr, async { current() }).await, Some(addr));
        assert_eq!(current(), None);
    }
}
