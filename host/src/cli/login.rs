//! `berth login` / `berth logout`: credentials checked against the registry and kept
//! where the docker CLI keeps them (`$DOCKER_CONFIG/config.json` or its credential
//! helper), so berth, the docker CLI and docker-py share one login.

use std::io::{IsTerminal, Read};

use crate::image::registry::{self, auth_store, Settings};
use crate::image::DEFAULT_DOMAIN;
use crate::paths::Paths;
use crate::Error;

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[arg(short, long)]
    username: Option<String>,
    /// The password (visible to other users in the process list: prefer --password-stdin).
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    password_stdin: bool,
    /// The registry (default: Docker Hub).
    server: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    server: Option<String>,
}

/// The registry a `login`/`logout` SERVER names (default: Docker Hub).
fn domain(server: Option<&str>) -> String {
    registry::server_domain(server.unwrap_or(DEFAULT_DOMAIN))
}

pub fn login(args: LoginArgs) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    let settings = Settings::load(&paths.home)?;
    let domain = domain(args.server.as_deref());
    let interactive = super::prompt::interactive();
    let username = match args.username {
        Some(u) => u,
        None if interactive && !args.password_stdin => prompt_line("Username: ", true)?,
        None => return Err(Error::Usage("give the username with -u".into())),
    };
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => {
            return Err(Error::Usage(
                "--password and --password-stdin are mutually exclusive".into(),
            ))
        }
        (Some(p), false) => p.clone(),
        (None, true) => {
            if std::io::stdin().is_terminal() {
                return Err(Error::Usage(
                    "--password-stdin: stdin is a terminal; pipe the password in".into(),
                ));
            }
            let mut p = String::new();
            std::io::stdin().read_to_string(&mut p)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if interactive => prompt_line("Password: ", false)?,
        (None, false) => return Err(Error::Usage(
            "give the password with --password-stdin (or -p): stdin is not a terminal to ask on"
                .into(),
        )),
    };
    if password.is_empty() {
        return Err(Error::Usage("the password is empty".into()));
    }
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    super::block_on(async {
        registry::login(&settings, &domain, &username, &password).await?;
        Ok(())
    })?;
    let kept = auth_store::save(&domain, &username, &password)?;
    eprintln!("Credentials kept in {kept}");
    println!("Login Succeeded");
    Ok(0)
}

/// Asks on stderr and reads a line from the terminal; without `echo`, typing is hidden
/// (the terminal's echo is off while the line is read).
fn prompt_line(question: &str, echo: bool) -> Result<String, Error> {
    use std::io::{BufRead, Write};
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    if echo {
        std::io::stdin().lock().read_line(&mut line)?;
    } else {
        let mut bytes = Vec::new();
        crossterm::terminal::enable_raw_mode()?;
        let read = (|| -> std::io::Result<()> {
            let mut byte = [0u8; 1];
            let mut stdin = std::io::stdin().lock();
            loop {
                if stdin.read(&mut byte)? == 0 {
                    return Ok(());
                }
                match byte[0] {
                    b'\r' | b'\n' => return Ok(()),
                    3 => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::Interrupted,
                            "interrupted",
                        ))
                    }
                    127 | 8 => {
                        bytes.pop();
                    }
                    b => bytes.push(b),
                }
            }
        })();
        crossterm::terminal::disable_raw_mode()?;
        eprintln!();
        read?;
        line = String::from_utf8_lossy(&bytes).into_owned();
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn logout(args: LogoutArgs) -> Result<i32, Error> {
    let domain = domain(args.server.as_deref());
    let key = registry::config_key(&domain);
    if auth_store::remove(&domain)? {
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_named_by_domain() {
        assert_eq!(domain(None), "docker.io");
        assert_eq!(domain(Some("https://index.docker.io/v1/")), "docker.io");
        assert_eq!(domain(Some("localhost:5000")), "localhost:5000");
        assert_eq!(domain(Some("http://127.0.0.1:5000/")), "127.0.0.1:5000");
    }
}
