//! `berth pull` and `berth push`: on the host's image store directly (no machine needed),
//! with progress bars on a terminal (indicatif) and plain lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::image::registry::{self, Event, LayerState, Platform, Progress, PullOptions};
use crate::image::{ImageStore, Reference};
use crate::paths::Paths;
use crate::Error;

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Pull this platform's image from a multi-platform index (default linux/amd64,
    /// the machines' platform, whatever the host is).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Print only the image's name at the end.
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Print only the pushed digest's line.
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG]
    name: String,
}

/// Where progress goes: bars on a terminal, one line per step otherwise.
pub struct Display {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    stderr: bool,
    quiet: bool,
}

impl Display {
    /// Progress on stdout (`pull`, `push`) or stderr (`run`'s pull of a missing image).
    pub fn new(stderr: bool, quiet: bool) -> Display {
        let terminal = if stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let multi = (terminal && !quiet).then(|| {
            let target = if stderr {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::stdout()
            };
            MultiProgress::with_draw_target(target)
        });
        Display {
            multi,
            bars: Mutex::new(HashMap::new()),
            stderr,
            quiet,
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None if self.stderr => eprintln!("{text}"),
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
            }
        }
    }

    fn layer(&self, id: &str, state: &LayerState, status: &str) {
        let Some(multi) = &self.multi else {
            if !matches!(
                state,
                LayerState::Downloading { .. } | LayerState::Pushing { .. }
            ) {
                self.line(&format!("{id}: {status}"));
            }
            return;
        };
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let bar = bars.entry(id.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{prefix}: {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(id.to_string());
            bar
        });
        match state {
            LayerState::Downloading { current, total } | LayerState::Pushing { current, total } => {
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix}: {msg:<12} [{bar:40}] {bytes}/{total_bytes}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_length(*total);
                bar.set_position(*current);
            }
            _ => {
                bar.set_style(
                    ProgressStyle::with_template("{prefix}: {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            }
        }
        bar.set_message(status.to_string());
        // A finished layer leaves the live bars for a plain line above them, so lines read
        // in order once everything is done.
        if matches!(
            state,
            LayerState::Complete | LayerState::Exists | LayerState::Pushed | LayerState::Mounted
        ) {
            if let Some(bar) = bars.remove(id) {
                bar.finish_and_clear();
            }
            let _ = multi.println(format!("{id}: {status}"));
        }
    }
}

impl Progress for Display {
    fn report(&self, event: Event) {
        match &event {
            Event::Layer { id, state } => {
                let json = event.docker_json();
                let status = json[0]["status"].as_str().unwrap_or_default().to_string();
                self.layer(id, state, &status);
            }
            Event::Pulling { repository, tag } => {
                self.line(&format!("{tag}: Pulling from {repository}"))
            }
            other => {
                for msg in other.docker_json() {
                    if let Some(s) = msg["status"].as_str() {
                        self.line(s);
                    }
                }
            }
        }
    }
}

fn store_and_settings() -> Result<(ImageStore, registry::Settings), Error> {
    let paths = Paths::from_env()?;
    let store = ImageStore::open(&ImageStore::root_for(&paths))?;
    let settings = registry::Settings::load(&paths.home)?;
    Ok((store, settings))
}

/// The platform `--platform` names (default: the machines').
pub fn platform(arg: Option<&str>) -> Result<Platform, Error> {
    Ok(match arg {
        Some(p) => Platform::parse(p)?,
        None => Platform::default(),
    })
}

/// Pulls `name` with progress on stdout or stderr; the store is left as it was on error.
pub async fn pull_image(
    name: &str,
    platform: Platform,
    stderr: bool,
    quiet: bool,
) -> Result<Reference, Error> {
    let (store, settings) = store_and_settings()?;
    let reference = Reference::parse(name)?;
    let display = Display::new(stderr, quiet);
    if !name.contains(['@']) && !name.rsplit('/').next().unwrap_or(name).contains(':') {
        display.line("Using default tag: latest");
    }
    let opts = PullOptions {
        platform,
        credentials: None,
    };
    registry::pull(&store, &settings, &reference, &opts, &display).await?;
    Ok(reference)
}

pub fn pull(args: PullArgs) -> Result<i32, Error> {
    let platform = platform(args.platform.as_deref())?;
    super::block_on(async move {
        let reference = pull_image(&args.name, platform, false, args.quiet).await?;
        println!("{reference}");
        Ok(0)
    })
}

pub fn push(args: PushArgs) -> Result<i32, Error> {
    let (store, settings) = store_and_settings()?;
    let display = Display::new(false, args.quiet);
    super::block_on(async move {
        let pushed = registry::push(&store, &settings, &args.name, None, &display).await?;
        if args.quiet {
            println!("{}", pushed.reference.familiar());
        }
        Ok(0)
    })
}
