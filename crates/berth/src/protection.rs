//! Which commands must run from a read-only view of berth's own binary
//! before they fork into a container (CVE-2019-5736, see
//! berth_runtime::exe), decided on the raw arguments and again on the
//! parsed command.

use crate::containers;
use crate::images::ImageCommand;
use crate::{Command, ContainerGroup};

/// The commands that start processes inside a container (and so must run
/// from a protected binary); the runtime library refuses the others if
/// they try.
pub(crate) fn starts_container_processes(cmd: &Command) -> bool {
    use containers::ContainerCommand as C;
    match cmd {
        Command::Containers(c) | Command::Container(ContainerGroup::Commands(c)) => match c {
            // -d and -t start the container under a monitor, executed
            // from a read-only view of our binary itself.
            // A container with a user namespace of its own is protected
            // by it (see RunArgs::own_user_namespace_protects); exec
            // decides once it knows its container (exec.rs).
            C::Run(a) => a.forks_here() && !a.own_user_namespace_protects(),
            C::Exec(_) => false,
            C::Start { .. } | C::Restart { .. } => true,
            _ => false,
        },
        Command::Build(_) | Command::Image(ImageCommand::Build(_)) => true,
        // up and create may build images (build steps run containers).
        Command::Compose(c) => matches!(
            c.command,
            crate::compose::ComposeCommand::Up(_)
                | crate::compose::ComposeCommand::Create(_)
                | crate::compose::ComposeCommand::Run(_)
                | crate::compose::ComposeCommand::Exec(_)
                | crate::compose::ComposeCommand::Build { .. }
        ),
        _ => false,
    }
}

/// A look at the raw arguments, before clap: the commands that surely
/// start container processes in this process (exec, build, start,
/// restart, a foreground run). Wrong either way is only slower or caught:
/// [`starts_container_processes`] decides again on the parsed command,
/// and the runtime refuses an unprotected binary.
pub(crate) fn early_protection(args: &[std::ffi::OsString]) -> bool {
    let mut words = args.iter().skip(1).map(|a| a.to_string_lossy());
    let mut cmd = None;
    while let Some(w) = words.next() {
        match w.as_ref() {
            "--root" | "--runroot" | "--max-layer-size" => {
                words.next();
            }
            w if w.starts_with("--root=")
                || w.starts_with("--runroot=")
                || w.starts_with("--max-layer-size=") => {}
            w if w.starts_with('-') => return false,
            "container" | "image" => {}
            w => {
                cmd = Some(w.to_string());
                break;
            }
        }
    }
    // As root, run and exec decide after the parse, from the container's
    // user namespace: in the default one of its own, no re-execution at
    // all. Rootless, they always execute once more (see rootless.md), and
    // better before the parse.
    let rootless = !berth_runtime::exe::in_initial_user_namespace();
    match cmd.as_deref() {
        Some("build" | "start" | "restart") => true,
        Some("exec") => rootless,
        Some("run") => {
            rootless
                && !words
                    .take_while(|w| w.starts_with('-') && w.as_ref() != "--")
                    .any(|w| {
                        w == "--detach"
                            || w == "--tty"
                            || (!w.starts_with("--")
                                && w[1..].chars().all(|c| "dit".contains(c))
                                && w[1..].chars().any(|c| c == 'd' || c == 't'))
                    })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_protection_knows_the_commands_that_fork_into_containers() {
        let yes = |line: &str| {
            let args: Vec<std::ffi::OsString> = line.split_whitespace().map(Into::into).collect();
            early_protection(&args)
        };
        // As root, run and exec decide after the parse (the container's
        // own user namespace may protect the binary).
        let rootless = !berth_runtime::exe::in_initial_user_namespace();
        assert_eq!(yes("berth run --rm busybox true"), rootless);
        assert_eq!(yes("berth --root /x run -e A=1 busybox true"), rootless);
        assert_eq!(yes("berth container exec c sh"), rootless);
        assert!(yes("berth image build ."));
        assert!(yes("berth --runroot=/r start c"));
        // A monitor of their own starts these containers.
        assert!(!yes("berth run -d busybox true"));
        assert!(!yes("berth run -it busybox sh"));
        assert!(!yes("berth run --detach --rm busybox true"));
        // Nothing to protect, or for clap to judge.
        assert!(!yes("berth ps -a"));
        assert!(!yes("berth --help run"));
        assert!(!yes("berth images"));
    }
}
