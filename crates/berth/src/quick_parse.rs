//! `berth run`'s command line parsed with a tree of `run` alone.
//!
//! clap builds the whole command tree before it parses: every
//! subcommand's arguments, a megabyte of heap (most of the heap a `run`
//! ever has) and about a millisecond of a start, page faults included.
//! A `run` needs one subcommand of it. When the first word after the global
//! options is `run`, the words are parsed against `RunLine` (the same global
//! options, `run`'s own arguments, nothing else); whatever that tree does
//! not accept (a mistake, `--help`, `--version`) is parsed again by the
//! whole tree, so that every answer but a successful `run`'s comes from
//! where it always came from, word for word.

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, Subcommand};

use crate::containers::ContainerCommand;
use crate::run_flags::RunArgs;
use crate::{usage, Cli, Command, RunLine};

/// `Cli`'s commands reduced to `run`, declared as `ContainerCommand::Run`
/// is (a test compares what both parse).
#[derive(Debug, Subcommand)]
pub(crate) enum RunOnly {
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
}

/// The index of the command's word in `args`: the first word that is
/// neither a global option nor the value of one.
fn command_word(args: &[OsString]) -> Option<usize> {
    let mut i = 1;
    while i < args.len() {
        let w = args[i].to_string_lossy();
        if usage::GLOBAL_WITH_VALUE.contains(&w.as_ref()) {
            i += 2;
        } else if w.starts_with('-') {
            i += 1;
        } else {
            return Some(i);
        }
    }
    None
}

/// `args` parsed by `run`'s tree alone, or None when the command is not
/// `run` or that tree refuses the words (the whole tree then parses them
/// and gives its own answer).
pub(crate) fn run_line(args: &[OsString]) -> Option<Cli> {
    let i = command_word(args)?;
    if args[i] != "run" {
        return None;
    }
    let mut tree = RunLine::command();
    let words = usage::end_flags_before_trailing(&tree, args.to_vec());
    let parsed = tree
        .try_get_matches_from_mut(words)
        .and_then(|mut m| RunLine::from_arg_matches_mut(&mut m))
        .ok();
    // The process ends soon after the command: freeing the tree would cost
    // more than it gives back, and after the command's forks every page it
    // wrote would be copied first.
    std::mem::forget(tree);
    let line = parsed?;
    Some(Cli {
        runroot: line.runroot,
        root: line.root,
        max_layer_size: line.max_layer_size,
        log_level: line.log_level,
        debug: line.debug,
        config: line.config,
        daemon: line.daemon,
        command: match line.command {
            RunOnly::Run(a) => Command::Containers(ContainerCommand::Run(a)),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    /// What the whole tree makes of `args`, as main parses them.
    fn whole(args: &[OsString]) -> Option<Cli> {
        let mut tree = Cli::command();
        let words = usage::end_flags_before_trailing(&tree, args.to_vec());
        tree.try_get_matches_from_mut(words)
            .and_then(|mut m| Cli::from_arg_matches_mut(&mut m))
            .ok()
    }

    /// Every `run` the quick tree accepts is parsed into exactly what the
    /// whole tree makes of it: global options before and after `run`,
    /// values that look like commands, flags after the image (the
    /// container's), `--`, repeated and `=` forms.
    #[test]
    fn run_lines_parse_as_the_whole_tree_parses_them() {
        for line in [
            "berth run busybox",
            "berth run --rm --network=none busybox true",
            "berth --root /tmp/r --runroot /tmp/rr run --rm -it busybox sh -c exit",
            "berth -l debug run -e A=1 --env B=2 -v /a:/b:ro -p 8080:80 busybox",
            "berth run --root /tmp/x --name run busybox run --rm",
            "berth --config run run -d --restart=always busybox sleep 1",
            "berth -D run --memory 64m --cpus 1.5 --userns=host busybox -- ls -l",
            "berth -H unix:///var/run/docker.sock run --entrypoint= busybox",
            "berth run --max-layer-size 1g -u 1000:1000 -w /tmp busybox --help",
        ] {
            let args = words(line);
            let quick = run_line(&args).unwrap_or_else(|| panic!("not parsed quickly: {line}"));
            let whole = whole(&args).unwrap_or_else(|| panic!("refused by the whole tree: {line}"));
            assert_eq!(format!("{quick:?}"), format!("{whole:?}"), "{line}");
        }
    }

    #[test]
    fn run_line_is_consistent() {
        RunLine::command().debug_assert();
    }

    /// Not `run`, or not a `run` that parses: left to the whole tree (and
    /// its words for help, version and mistakes).
    #[test]
    fn other_lines_go_to_the_whole_tree() {
        for line in [
            "berth ps",
            "berth",
            "berth --root /tmp/r",
            "berth --root run ps",
            "berth exec c run",
            "berth compose run web",
            "berth container run busybox",
            "berth run",
            "berth run --help",
            "berth run --no-such-flag busybox",
            "berth --version run busybox",
            "berth run --memory",
        ] {
            assert!(run_line(&words(line)).is_none(), "{line}");
        }
    }
}
