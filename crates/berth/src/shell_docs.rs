//! What shells and `man` learn about berth, generated from the same clap
//! definitions that parse its command lines, so they cannot drift from
//! them: `berth completion bash|zsh|fish` prints a completion script (as
//! `podman completion` does), and the hidden `berth __man DIR` writes one
//! man page per command (`berth.1`, `berth-run.1`, `berth-network-create.1`
//! ...), which scripts/install.sh puts under /usr/share/man/man1.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Command;
use clap_complete::Shell;

/// The shells `berth completion` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the completion script for `shell` to `out`.
pub fn completion(cli: &mut Command, shell: CompletionShell, out: &mut impl Write) {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    clap_complete::generate(shell, cli, "berth", out);
}

/// Writes a page for `cli` and one for each of its visible subcommands,
/// at every depth, into `dir`; gives the number of pages written.
pub fn man_pages(cli: &Command, dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    // Built, so that global flags (--root, --runroot) are on every page
    // and the subcommands carry their final names.
    let mut cli = cli.clone();
    cli.build();
    write_pages(&cli, "berth", dir)
}

fn write_pages(cmd: &Command, name: &str, dir: &Path) -> Result<usize> {
    // A page's name is what `man` is asked for: `man berth-network-create`;
    // its title and synopsis keep it.
    let page = cmd
        .clone()
        .display_name(name.to_string())
        .bin_name(name.replace('-', " "));
    let mut text = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut text)
        .with_context(|| format!("render the man page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    let mut written = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // clap's own `help` subcommand has nothing to document.
        if sub.get_name() == "help" {
            continue;
        }
        written += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
