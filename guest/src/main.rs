//! `berth-init`: PID 1 of the berth guest, and the agent that serves the host.

fn main() {
    std::process::exit(berth_guest::init::main());
}
