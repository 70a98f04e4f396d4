//! `machine rm`: a running machine only with `-f`; a disk that holds volumes only after a
//! yes on a terminal, or with `-f`.

use super::{existing, stop, RmArgs};
use crate::cli::prompt;
use crate::cli::select::Selection;
use crate::paths::Paths;
use crate::Error;

/// `machine rm`: refused while the machine runs unless `-f`; a disk that holds volumes is
/// deleted only after a yes on a terminal, or with `-f`.
pub fn rm(paths: &Paths, sel: &Selection, a: RmArgs) -> Result<i32, Error> {
    let m = existing(paths, sel, a.name.as_deref())?;
    let running = m.daemon_pid().is_some();
    if running && !a.force {
        return Err(Error::Usage(format!(
            "machine {} is running: stop it first (`berth machine stop {}`) or use --force",
            m.name, m.name
        )));
    }
    let volumes = m.volume_names();
    if !volumes.is_empty() && !a.force {
        let what = format!(
            "machine {}'s disk holds {} volume{} ({})",
            m.name,
            volumes.len(),
            if volumes.len() == 1 { "" } else { "s" },
            volumes.join(", ")
        );
        if !prompt::interactive() {
            return Err(Error::Usage(format!(
                "{what}: use --force to delete them with the machine"
            )));
        }
        let them = if volumes.len() == 1 { "it" } else { "them" };
        if !prompt::confirm(&format!("{what}. Delete {them} with the machine?"))? {
            eprintln!("machine {} kept", m.name);
            return Ok(1);
        }
    }
    if running {
        crate::cli::block_on(stop(&m, 0))?;
    }
    std::fs::remove_dir_all(&m.dir)?;
    super::context::remove(&m);
    println!("{}", m.name);
    Ok(0)
}
