//! `berth bench`: the container-vs-VM report on this computer (see `crate::bench`).

use std::path::PathBuf;

use crate::bench::{self, report, Plan};
use crate::paths::Paths;
use crate::{kernels, Error};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kernels to measure, comma-separated (default: the default kernel).
    #[arg(long)]
    kernel: Option<String>,
    /// A short run: fewer repetitions, fewer containers, a small density budget.
    #[arg(long)]
    quick: bool,
    /// Where the JSON and the SVG charts go.
    #[arg(long, value_name = "DIR", default_value = "berth-bench")]
    out: PathBuf,
    /// A `docker save` archive of busybox to run (default: the test image in the assets).
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// Print the report as JSON instead of the table.
    #[arg(long, value_enum, default_value_t)]
    format: super::Format,
}

pub fn run(a: Args) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    let names = kernels::names(&paths.assets, a.kernel.as_deref())?;
    for n in &names {
        kernels::resolve(&paths.assets, Some(n))?;
    }
    let image = a
        .image
        .unwrap_or_else(|| paths.assets.join("images/busybox.tar"));
    if !image.is_file() {
        return Err(Error::Usage(format!(
            "{}: no busybox image to run (cargo xtask images builds it; or give --image FILE, a docker save archive)",
            image.display()
        )));
    }
    let plan = Plan::new(
        std::env::current_exe()?,
        paths.assets.clone(),
        image,
        a.quick,
    );
    let mut reports = Vec::new();
    for k in &names {
        let progress = |what: &str| eprintln!("== {k}: {what} ...");
        reports.push(bench::run_kernel(&plan, k, &progress));
    }
    let files = report::write(&a.out, &reports).map_err(Error::Usage)?;
    match a.format {
        super::Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        ),
        super::Format::Table => print!("{}", report::table(&reports)),
    }
    eprintln!(
        "wrote {}",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(0)
}
