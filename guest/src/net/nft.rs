//! The guest's nftables ruleset, over netlink with `rustables`: one table, `ip berth`,
//! replaced whole (in one atomic batch) whenever the set of bridges changes.
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

/// Replaces the ruleset: masquerade what leaves through `uplink` (when there is one),
/// drop what one bridge forwards to another, and anything an internal bridge would
/// forward at all. `bridges` are (name, internal).
pub fn apply(uplink: Option<&str>, bridges: &[(String, bool)]) -> io::Result<()> {
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
    if let Some(uplink) = uplink {
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
    for (name, _) in bridges.iter().filter(|(_, internal)| *internal) {
        for rule in [
            Rule::new(&forward).map_err(err("rule"))?.iiface(name),
            Rule::new(&forward).map_err(err("rule"))?.oiface(name),
        ] {
            rule.map_err(err("iface"))?.drop().add_to_batch(&mut batch);
        }
    }
    let names: Vec<&String> = bridges.iter().map(|(n, _)| n).collect();
    for from in &names {
        for to in names.iter().filter(|b| *b != from) {
            Rule::new(&forward)
                .map_err(err("rule"))?
                .iiface(from)
                .map_err(err("iifname"))?
                .oiface(to)
                .map_err(err("oifname"))?
                .drop()
                .add_to_batch(&mut batch);
        }
    }
    batch
        .send()
        .map_err(|e| io::Error::other(format!("applying the nftables ruleset: {e:?}")))
}
