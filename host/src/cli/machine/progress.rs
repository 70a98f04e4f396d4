//! What a starting machine is doing, from the phase its daemon writes (`daemon.phase`).

use std::time::{Duration, Instant};

use crate::machine::{MachineDir, Phase};

/// What a starting machine is doing, on stderr: a spinner with the phase on a terminal,
/// a line per phase otherwise.
pub struct StartProgress {
    name: String,
    started: Instant,
    phase: Option<Phase>,
    spinner: Option<indicatif::ProgressBar>,
    quiet: bool,
}

impl StartProgress {
    pub fn new(m: &MachineDir) -> StartProgress {
        let spinner = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let s = indicatif::ProgressBar::new_spinner();
            s.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            s.set_message(format!("machine {}: starting the daemon", m.name));
            s.enable_steady_tick(Duration::from_millis(120));
            s
        });
        StartProgress {
            name: m.name.clone(),
            started: Instant::now(),
            phase: None,
            spinner,
            quiet: false,
        }
    }

    /// For a machine that is already starting (another command started it): no output.
    pub fn quiet(m: &MachineDir) -> StartProgress {
        StartProgress {
            name: m.name.clone(),
            started: Instant::now(),
            phase: None,
            spinner: None,
            quiet: true,
        }
    }

    pub fn update(&mut self, phase: Option<Phase>) {
        if self.quiet || phase.is_none() || phase == self.phase {
            return;
        }
        self.phase = phase;
        let Some(p) = phase else { return };
        let text = format!("machine {}: {}", self.name, p.describe());
        match &self.spinner {
            Some(s) => s.set_message(text),
            None => eprintln!("{text}"),
        }
    }

    pub fn finish(&mut self, ok: bool) {
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
        if ok && !self.quiet {
            eprintln!(
                "machine {} started in {:.1}s",
                self.name,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}
