//! The name-resolution files of a container: its /etc/hosts and its resolv.conf.

/// A container's /etc/hosts, as Docker writes it: localhost, the container's own
/// address (or 127.0.1.1) with its hostname, then `extra` (address, names) lines.
pub fn hosts_file(hostname: &str, address: Option<&str>, extra: &[(String, String)]) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str(&format!("{}\t{hostname}\n", address.unwrap_or("127.0.1.1")));
    for (ip, names) in extra {
        out.push_str(&format!("{ip}\t{names}\n"));
    }
    out
}

/// A container's resolv.conf with `--dns`, `--dns-search` and `--dns-option` applied:
/// the given servers replace the network's, except on a user network, where berth's
/// own resolver stays the only one (so container names still resolve) and forwards to
/// them what it cannot answer, named in an `# ExtServers:` line as Docker writes it.
pub fn with_dns_options(
    base: &str,
    o: &berth_protocol::ProcessOptions,
    keep_resolver: bool,
) -> String {
    if o.dns.is_empty() && o.dns_search.is_empty() && o.dns_options.is_empty() {
        return base.to_string();
    }
    let mut servers: Vec<String> = base
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(|s| s.trim().to_string())
        .collect();
    let mut options: Vec<String> = base
        .lines()
        .filter_map(|l| l.strip_prefix("options "))
        .flat_map(|o| o.split_whitespace().map(String::from))
        .collect();
    let mut external = None;
    if !o.dns.is_empty() {
        match keep_resolver {
            true => {
                servers.truncate(1);
                external = Some(format!("# ExtServers: [{}]\n", o.dns.join(" ")));
            }
            false => servers = o.dns.clone(),
        }
    }
    for opt in &o.dns_options {
        let key = opt.split(':').next().unwrap_or_default();
        options.retain(|x| x.split(':').next() != Some(key));
        options.push(opt.clone());
    }
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !o.dns_search.is_empty() {
        out.push_str(&format!("search {}\n", o.dns_search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out.extend(external);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::HOST_NAMES;

    #[test]
    fn dns_options_shape_resolv_conf() {
        let o = berth_protocol::ProcessOptions {
            dns: vec!["10.0.0.53".into()],
            dns_search: vec!["example.com".into()],
            dns_options: vec!["ndots:2".into()],
            ..Default::default()
        };
        let user = with_dns_options("nameserver 172.18.0.1\noptions ndots:0\n", &o, true);
        assert_eq!(
            user,
            "nameserver 172.18.0.1\nsearch example.com\noptions ndots:2\n# ExtServers: [10.0.0.53]\n"
        );
        let bridge = with_dns_options("nameserver 10.0.2.3\n", &o, false);
        assert!(
            bridge.starts_with("nameserver 10.0.0.53\nsearch"),
            "{bridge}"
        );
        let none = berth_protocol::ProcessOptions::default();
        assert_eq!(with_dns_options("x\n", &none, false), "x\n");
    }

    #[test]
    fn hosts_files_name_the_container_and_extras() {
        let h = hosts_file(
            "web",
            Some("172.18.0.2"),
            &[("172.18.0.1".into(), HOST_NAMES.into())],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("172.18.0.2\tweb\n"));
        assert!(h.ends_with("172.18.0.1\thost.berth.internal host.docker.internal\n"));
        assert!(hosts_file("x", None, &[]).contains("127.0.1.1\tx\n"));
    }
}
