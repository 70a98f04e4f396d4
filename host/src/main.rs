//! `berth`: parse, run, print the whole error chain, map it to Docker's exit codes.

fn main() {
    let code = match berth::cli::parse() {
        Ok(cli) => match berth::cli::run(cli) {
            Ok(code) => code,
            Err(e) => {
                let on = berth::cli::style::enabled(true);
                let prefix = berth::cli::style::paint("berth:", berth::cli::style::Colour::Red, on);
                eprintln!("{prefix} {}", berth::error::chain(&e));
                e.exit_code()
            }
        },
        Err(code) => code,
    };
    std::process::exit(code);
}
