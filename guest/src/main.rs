//! `berth-init`: PID 1 of the berth guest, and the agent that serves the host.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some(berth_guest::container::SHIM_ARG) => {
            berth_guest::container::shim_main(args.get(2).map(String::as_str).unwrap_or(""))
        }
        Some(berth_guest::container::EXEC_SHIM_ARG) => {
            berth_guest::container::exec_shim_main(args.get(2).map(String::as_str).unwrap_or(""))
        }
        Some(berth_guest::container::reaper::INIT_ARG) => {
            berth_guest::container::reaper::main(&args[2..])
        }
        _ => berth_guest::init::main(),
    };
    std::process::exit(code);
}
