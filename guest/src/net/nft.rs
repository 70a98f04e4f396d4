//! The guest's nftables ruleset, over netlink with `rustables`: one table, `ip berth`,
//! replaced whole (in one atomic batch) whenever a change of bridges changes what it holds.
//!
//! ```text
//! table ip berth {
//!   chain postrouting { type nat hook postrouting priority 100; oifname "eth0" masquerade }
//!   chain forward { type filter hook forward priority 0; policy accept;
//!     iifname "A" oifname "B" drop   # for every two bridges A != B: networks are isolated
//!     iifname "I" drop; oifname "I" drop   # an --internal bridge I forwards nothing
//!   }
//! }
//! ```

use std::io;

use rustables::{
    Batch, Chain, ChainPolicy, ChainType, Hook, HookClass, MsgType, ProtocolFamily, Rule, Table,
};

const TABLE: &str = "berth";

fn err(what: &str) -> impl Fn(rustables::error::BuilderError) -> io::Error + '_ {
    move |e| io::Error::other(format!("nftables {what}: {e:?}"))
}

/// What the ruleset holds, and all it depends on: two equal values make the same rules,
/// so a change of bridges that leaves it equal (the first bridge, which is not internal
/// and has no other bridge to be kept from) sends nothing to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// The interface whose outgoing traffic is masqueraded.
    uplink: Option<String>,
    /// Bridges that forward nothing at all.
    internal: Vec<String>,
    /// (from, to) bridge pairs whose forwarding is dropped.
    isolated: Vec<(String, String)>,
}

impl Ruleset {
    /// The rules for `bridges`, (name, internal), with `uplink` masqueraded.
    pub fn new(uplink: Option<&str>, bridges: &[(String, bool)]) -> Ruleset {
        let mut names: Vec<&String> = bridges.iter().map(|(n, _)| n).collect();
        names.sort();
        names.dedup();
        let mut internal: Vec<String> = bridges
            .iter()
            .filter(|(_, internal)| *internal)
            .map(|(n, _)| n.clone())
            .collect();
        internal.sort();
        internal.dedup();
        let isolated = names
            .iter()
            .flat_map(|from| {
                names
                    .iter()
                    .filter(move |to| *to != from)
                    .map(move |to| (from.to_string(), to.to_string()))
            })
            .collect();
        Ruleset {
            uplink: uplink.map(str::to_string),
            internal,
            isolated,
        }
    }
}

/// Replaces the ruleset with `rules` (in one atomic batch): masquerade what leaves
/// through the uplink (when there is one), drop what one bridge forwards to another, and
/// anything an internal bridge would forward at all.
pub fn apply(rules: &Ruleset) -> io::Result<()> {
    let mut batch = Batch::new();
    let table = Table::new(ProtocolFamily::Ipv4).with_name(TABLE);
    // Add then delete makes the delete succeed whether or not the table existed.
    batch.add(&table, MsgType::Add);
    batch.add(&table, MsgType::Del);
    batch.add(&table, MsgType::Add);

    let mut nat = Chain::new(&table).with_name("postrouting");
    nat.set_hook(Hook::new(HookClass::PostRouting, 100));
    nat.set_type(ChainType::Nat);
    nat.set_policy(ChainPolicy::Accept);
    let nat = nat.add_to_batch(&mut batch);
    if let Some(uplink) = &rules.uplink {
        Rule::new(&nat)
            .map_err(err("rule"))?
            .oiface(uplink)
            .map_err(err("oifname"))?
            .masquerade()
            .add_to_batch(&mut batch);
    }

    let mut forward = Chain::new(&table).with_name("forward");
    forward.set_hook(Hook::new(HookClass::Forward, 0));
    forward.set_type(ChainType::Filter);
    forward.set_policy(ChainPolicy::Accept);
    let forward = forward.add_to_batch(&mut batch);
    for name in &rules.internal {
        for rule in [
            Rule::new(&forward).map_err(err("rule"))?.iiface(name),
            Rule::new(&forward).map_err(err("rule"))?.oiface(name),
        ] {
            rule.map_err(err("iface"))?.drop().add_to_batch(&mut batch);
        }
    }
    for (from, to) in &rules.isolated {
        Rule::new(&forward)
            .map_err(err("rule"))?
            .iiface(from)
            .map_err(err("iifname"))?
            .oiface(to)
            .map_err(err("oifname"))?
            .drop()
            .add_to_batch(&mut batch);
    }
    batch
        .send()
        .map_err(|e| io::Error::other(format!("applying the nftables ruleset: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridges(list: &[(&str, bool)]) -> Vec<(String, bool)> {
        list.iter().map(|(n, i)| (n.to_string(), *i)).collect()
    }

    #[test]
    fn one_plain_bridge_makes_the_rules_of_none() {
        let none = Ruleset::new(Some("eth0"), &[]);
        assert_eq!(
            Ruleset::new(Some("eth0"), &bridges(&[("berth0", false)])),
            none
        );
        assert_ne!(Ruleset::new(None, &[]), none, "the uplink's masquerade");
    }

    #[test]
    fn internal_bridges_and_pairs_change_the_rules() {
        let one = Ruleset::new(Some("eth0"), &bridges(&[("berth0", false)]));
        let internal = Ruleset::new(Some("eth0"), &bridges(&[("berth0", true)]));
        assert_ne!(internal, one);
        assert_eq!(internal.internal, ["berth0"]);
        let two = Ruleset::new(
            Some("eth0"),
            &bridges(&[("br-b", false), ("berth0", false)]),
        );
        assert_eq!(
            two.isolated,
            [
                ("berth0".to_string(), "br-b".to_string()),
                ("br-b".to_string(), "berth0".to_string())
            ]
        );
    }
}
