//! How ENTRYPOINT and CMD combine into the command a container runs, after
//! the table in Docker's Dockerfile reference ("Understand how CMD and
//! ENTRYPOINT interact").

use crate::parser::Command;

/// The shell Docker uses for shell forms when no SHELL was given.
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".to_string(), "-c".to_string()]
}

/// A command as the argv stored in an image config: exec form as is, shell
/// form wrapped in `shell` (`/bin/sh -c "<line>"`).
pub fn to_argv(command: &Command, shell: &[String]) -> Vec<String> {
    match command {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut v = shell.to_vec();
            v.push(s.clone());
            v
        }
    }
}

/// The process a container runs for `entrypoint` and `cmd`, shell forms run
/// by `/bin/sh -c`. An ENTRYPOINT in shell form ignores CMD; empty when
/// neither is set.
pub fn final_command(entrypoint: Option<&Command>, cmd: Option<&Command>) -> Vec<String> {
    final_command_with_shell(entrypoint, cmd, &default_shell())
}

/// [`final_command`] with the shell of the SHELL instruction.
pub fn final_command_with_shell(
    entrypoint: Option<&Command>,
    cmd: Option<&Command>,
    shell: &[String],
) -> Vec<String> {
    match entrypoint {
        Some(e @ Command::Shell(_)) => to_argv(e, shell),
        Some(Command::Exec(e)) => {
            let mut v = e.clone();
            if let Some(c) = cmd {
                v.extend(to_argv(c, shell));
            }
            v
        }
        None => cmd.map(|c| to_argv(c, shell)).unwrap_or_default(),
    }
}

/// The same combination on argv already stored in an image config
/// (`Entrypoint` + `Cmd`).
pub fn combine_config(entrypoint: &[String], cmd: &[String]) -> Vec<String> {
    let mut v = entrypoint.to_vec();
    v.extend_from_slice(cmd);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(v: &[&str]) -> Command {
        Command::Exec(v.iter().map(|s| s.to_string()).collect())
    }

    fn shell(s: &str) -> Command {
        Command::Shell(s.to_string())
    }

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    // Docker's table, row by row (columns: no ENTRYPOINT, ENTRYPOINT
    // exec_entry p1_entry, ENTRYPOINT ["exec_entry", "p1_entry"]).
    #[test]
    fn table_no_cmd() {
        assert_eq!(final_command(None, None), Vec::<String>::new());
        assert_eq!(
            final_command(Some(&shell("exec_entry p1_entry")), None),
            argv(&["/bin/sh", "-c", "exec_entry p1_entry"])
        );
        assert_eq!(
            final_command(Some(&exec(&["exec_entry", "p1_entry"])), None),
            argv(&["exec_entry", "p1_entry"])
        );
    }

    #[test]
    fn table_cmd_exec() {
        let cmd = exec(&["exec_cmd", "p1_cmd"]);
        assert_eq!(
            final_command(None, Some(&cmd)),
            argv(&["exec_cmd", "p1_cmd"])
        );
        assert_eq!(
            final_command(Some(&shell("exec_entry p1_entry")), Some(&cmd)),
            argv(&["/bin/sh", "-c", "exec_entry p1_entry"])
        );
        assert_eq!(
            final_command(Some(&exec(&["exec_entry", "p1_entry"])), Some(&cmd)),
            argv(&["exec_entry", "p1_entry", "exec_cmd", "p1_cmd"])
        );
    }

    #[test]
    fn table_cmd_params_only() {
        let cmd = exec(&["p1_cmd", "p2_cmd"]);
        assert_eq!(final_command(None, Some(&cmd)), argv(&["p1_cmd", "p2_cmd"]));
        assert_eq!(
            final_command(Some(&shell("exec_entry p1_entry")), Some(&cmd)),
            argv(&["/bin/sh", "-c", "exec_entry p1_entry"])
        );
        assert_eq!(
            final_command(Some(&exec(&["exec_entry", "p1_entry"])), Some(&cmd)),
            argv(&["exec_entry", "p1_entry", "p1_cmd", "p2_cmd"])
        );
    }

    #[test]
    fn table_cmd_shell() {
        let cmd = shell("exec_cmd p1_cmd");
        assert_eq!(
            final_command(None, Some(&cmd)),
            argv(&["/bin/sh", "-c", "exec_cmd p1_cmd"])
        );
        assert_eq!(
            final_command(Some(&shell("exec_entry p1_entry")), Some(&cmd)),
            argv(&["/bin/sh", "-c", "exec_entry p1_entry"])
        );
        assert_eq!(
            final_command(Some(&exec(&["exec_entry", "p1_entry"])), Some(&cmd)),
            argv(&["exec_entry", "p1_entry", "/bin/sh", "-c", "exec_cmd p1_cmd"])
        );
    }

    #[test]
    fn custom_shell_and_config_form() {
        let ps = argv(&["powershell", "-command"]);
        assert_eq!(
            final_command_with_shell(None, Some(&shell("dir")), &ps),
            argv(&["powershell", "-command", "dir"])
        );
        assert_eq!(
            combine_config(&argv(&["a"]), &argv(&["b", "c"])),
            argv(&["a", "b", "c"])
        );
    }
}
