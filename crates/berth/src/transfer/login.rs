//! `login` and `logout`: the auth file's credentials for a registry.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_registry::auth::{self, Credentials};
use berth_registry::{Client, Endpoint};

use super::RegistryArgs;

/// `berth login`
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// User name
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (visible to other users in the process list: prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry (default: docker.io)
    pub server: Option<String>,
}

/// `berth logout`
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// Auth file to remove the credentials from
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Remove the credentials of every registry
    #[arg(short, long)]
    pub all: bool,
    /// Registry (default: docker.io)
    pub server: Option<String>,
}

/// A registry as `login` takes it: `https://r.example:5000/v2/` is
/// `r.example:5000`; Docker Hub's names are `docker.io`.
fn registry_name(server: Option<&str>) -> Result<String> {
    let s = server.unwrap_or("docker.io").trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("").to_ascii_lowercase();
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
        bail!("{s:?} is not a registry name (host or host:port)");
    }
    Ok(match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => host,
    })
}

/// Reads a line from the terminal, echo off when `secret`.
fn prompt(label: &str, secret: bool) -> Result<String> {
    use nix::sys::termios;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("no terminal to ask for the {label}: give --username and --password-stdin");
    }
    eprint!("{label}: ");
    let _ = std::io::stderr().flush();
    let saved = if secret {
        let t = termios::tcgetattr(&stdin).context("read terminal settings")?;
        let mut quiet = t.clone();
        quiet.local_flags.remove(termios::LocalFlags::ECHO);
        termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &quiet)
            .context("turn terminal echo off")?;
        Some(t)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    if let Some(t) = saved {
        let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &t);
        eprintln!();
    }
    read.context("read from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn login(a: &LoginArgs) -> Result<()> {
    let registry = registry_name(a.server.as_deref())?;
    if a.registry.creds.is_some() {
        bail!("login takes --username and --password (or --password-stdin), not --creds");
    }
    if a.password.is_some() && a.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let username = match &a.username {
        Some(u) if !u.is_empty() => u.clone(),
        Some(_) => bail!("the user name is empty"),
        None if a.password_stdin => bail!("--password-stdin needs --username"),
        None => prompt("Username", false)?,
    };
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("read the password from stdin")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = &a.password {
        p.clone()
    } else {
        prompt("Password", true)?
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let creds = Credentials { username, password };
    let insecure = a.registry.insecure(&registry)?;
    let endpoint = Endpoint::new(&registry, insecure, a.registry.cert_dir.clone());
    let client = Client::new(endpoint, Some(creds.clone()), Vec::new())?;
    client
        .check_login()
        .with_context(|| format!("log in to {registry}"))?;
    let file = a
        .registry
        .authfile
        .clone()
        .unwrap_or_else(auth::default_auth_file);
    auth::store(&file, &registry, &creds)?;
    println!("Login Succeeded!");
    Ok(())
}

pub fn logout(a: &LogoutArgs) -> Result<()> {
    let file = a.authfile.clone().unwrap_or_else(auth::default_auth_file);
    if a.all {
        if a.server.is_some() {
            bail!("--all removes every registry's credentials: give no registry with it");
        }
        auth::remove(&file, None)?;
        println!("Removed login credentials for all registries");
        return Ok(());
    }
    let registry = registry_name(a.server.as_deref())?;
    if auth::remove(&file, Some(&registry))? {
        println!("Removed login credentials for {registry}");
        return Ok(());
    }
    if let Some(docker) = auth::docker_config_file() {
        if auth::lookup(&registry, std::slice::from_ref(&docker))?.is_some() {
            bail!(
                "not logged in to {registry} in {}; the credentials in {} were written by docker: use `docker logout`",
                file.display(),
                docker.display()
            );
        }
    }
    bail!("not logged in to {registry}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_servers_are_normalized() {
        assert_eq!(registry_name(None).unwrap(), "docker.io");
        assert_eq!(
            registry_name(Some("https://index.docker.io/v1/")).unwrap(),
            "docker.io"
        );
        assert_eq!(
            registry_name(Some("http://LOCALHOST:5000/v2/")).unwrap(),
            "localhost:5000"
        );
        assert!(registry_name(Some("")).is_err());
    }
}
