//! The docker CLI context of each machine (see `docker_context`): written when it starts,
//! offered as the docker CLI's current context the first time, removed with the machine.

use crate::cli::prompt;
use crate::docker_context::{self, DockerConfig, Written};
use crate::machine::MachineDir;

/// Writes the machine's docker CLI context and, the first time, offers to make it the
/// docker CLI's current one: asks when `ask` and a person is at a terminal, else says how.
pub fn offer(m: &MachineDir, ask: bool) {
    let Some(docker) = DockerConfig::from_env() else {
        return;
    };
    let name = docker_context::context_name(&m.name);
    match docker.write(&name, &m.name, &m.socket()) {
        Ok(Written::Created) => {}
        Ok(Written::Updated | Written::Unchanged) => return,
        Ok(Written::Foreign) => {
            eprintln!(
                "berth: the docker CLI has a context named {name} that berth did not write; left it alone"
            );
            return;
        }
        Err(e) => {
            eprintln!("berth: writing the docker CLI context {name}: {e}");
            return;
        }
    }
    if docker.current().as_deref() == Some(name.as_str()) {
        return;
    }
    let question = format!(
        "Wrote the docker CLI context {name} (machine {}). Make it the docker CLI's current context?",
        m.name
    );
    if ask && prompt::interactive() {
        match prompt::confirm(&question) {
            Ok(true) => match docker.set_current(Some(&name)) {
                Ok(()) => eprintln!("the docker CLI now uses {name}"),
                Err(e) => eprintln!("berth: setting the docker CLI context: {e}"),
            },
            Ok(false) => eprintln!("`docker context use {name}` makes it current later"),
            Err(e) => eprintln!("berth: {e}"),
        }
    } else {
        eprintln!(
            "wrote the docker CLI context {name}: `docker --context {name} ps`, or `docker context use {name}` to make it current"
        );
    }
}

/// Removes the machine's docker CLI context, if berth wrote one.
pub fn remove(m: &MachineDir) {
    let Some(docker) = DockerConfig::from_env() else {
        return;
    };
    let name = docker_context::context_name(&m.name);
    match docker.remove(&name) {
        Ok(true) => eprintln!("removed the docker CLI context {name}"),
        Ok(false) => {}
        Err(e) => eprintln!("berth: removing the docker CLI context {name}: {e}"),
    }
}
