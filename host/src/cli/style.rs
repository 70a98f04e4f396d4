//! Colour on a terminal, plain text everywhere else: a pipe, a file, or `NO_COLOR` set
//! (<https://no-color.org>) never gets an escape code.

use std::io::IsTerminal;

/// The colours berth uses: green for what passed, red for what failed.
#[derive(Debug, Clone, Copy)]
pub enum Colour {
    Green,
    Red,
}

/// Whether output to stdout (`stderr: false`) or stderr may carry colour.
pub fn enabled(stderr: bool) -> bool {
    let terminal = match stderr {
        true => std::io::stderr().is_terminal(),
        false => std::io::stdout().is_terminal(),
    };
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` in `colour` when `on`; unchanged otherwise.
pub fn paint(text: &str, colour: Colour, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    let code = match colour {
        Colour::Green => 32,
        Colour::Red => 31,
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_wraps_only_when_on() {
        assert_eq!(paint("FAIL", Colour::Red, true), "\x1b[31mFAIL\x1b[0m");
        assert_eq!(paint("pass", Colour::Green, false), "pass");
    }
}
