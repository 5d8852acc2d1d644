//! Command-line mistakes answered as docker's client answers them: the
//! same first lines and the same exit codes (125 for a bad flag or flag
//! value, 1 for a wrong number of arguments or an unknown command), so
//! that scripts checking `$?` see no difference.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command};

/// The flags of docker's client that name a daemon to talk to. berth has
/// none: it works on this host's store. The local daemon's own names are
/// accepted (scripts spell them out), anything else is refused.
#[derive(Debug, clap::Args)]
pub struct DaemonFlags {
    /// Accepted for docker's local socket only: berth has no daemon
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Accepted for the default context only
    #[arg(short = 'c', long)]
    context: Option<String>,
    /// Refused: berth has no daemon to reach over TLS
    #[arg(long)]
    tls: bool,
    /// Refused: berth has no daemon to reach over TLS
    #[arg(long)]
    tlsverify: bool,
    /// Refused: berth has no daemon to reach over TLS
    #[arg(long)]
    tlscacert: Option<String>,
    /// Refused: berth has no daemon to reach over TLS
    #[arg(long)]
    tlscert: Option<String>,
    /// Refused: berth has no daemon to reach over TLS
    #[arg(long)]
    tlskey: Option<String>,
}

impl DaemonFlags {
    /// Err(exit code) after a one-line error for what cannot be honoured.
    pub fn refuse_remote(&self) -> Result<(), ExitCode> {
        const LOCAL: [&str; 3] = [
            "unix:///var/run/docker.sock",
            "unix:///run/docker.sock",
            "/var/run/docker.sock",
        ];
        if let Some(h) = self.hosts.iter().find(|h| !LOCAL.contains(&h.as_str())) {
            eprintln!("berth has no daemon: it works on this host's store (--root), so -H {h} cannot be reached");
            return Err(ExitCode::from(1));
        }
        if let Some(c) = self.context.as_deref().filter(|c| *c != "default") {
            eprintln!("unable to resolve docker endpoint: context \"{c}\" does not exist");
            return Err(ExitCode::from(1));
        }
        if self.tls
            || self.tlsverify
            || self.tlscacert.is_some()
            || self.tlscert.is_some()
            || self.tlskey.is_some()
        {
            eprintln!(
                "berth has no daemon to reach over TLS: it works on this host's store (--root)"
            );
            return Err(ExitCode::from(1));
        }
        Ok(())
    }
}

/// The options before the command that take a value: the words after
/// them are not the command (kept in step with `Cli` by a test of main's).
pub(crate) const GLOBAL_WITH_VALUE: [&str; 13] = [
    "--root",
    "--runroot",
    "--max-layer-size",
    "--log-level",
    "-l",
    "--config",
    "-H",
    "--host",
    "-c",
    "--context",
    "--tlscacert",
    "--tlscert",
    "--tlskey",
];

/// docker's management-command spellings of top-level commands
/// (`image history`, `image load`, `system info`...): the group's word is
/// dropped so that the one implementation serves both. Global options
/// before the group (`--root DIR`) are stepped over.
pub fn management_aliases(mut args: Vec<OsString>) -> Vec<OsString> {
    const ALIASES: [(&str, &[&str]); 2] = [
        ("image", &["history", "import", "load", "save"]),
        ("system", &["events", "info"]),
    ];
    let mut i = 1;
    while i < args.len() {
        let w = args[i].to_string_lossy();
        if GLOBAL_WITH_VALUE.contains(&w.as_ref()) {
            i += 2;
            continue;
        }
        if w.starts_with('-') {
            i += 1;
            continue;
        }
        let next = args.get(i + 1).map(|a| a.to_string_lossy().into_owned());
        let aliased = ALIASES
            .iter()
            .any(|(group, cmds)| w == *group && next.as_deref().is_some_and(|n| cmds.contains(&n)));
        if aliased {
            args.remove(i);
        }
        break;
    }
    args
}

/// Prints the answer to a command line clap refused and gives the exit
/// code; help and version go to stdout with 0.
pub fn refused(cli: &Command, e: &clap::Error, args: &[OsString]) -> ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let path = command_path(cli, args);
        let cmd = find(cli, &path);
        if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            && path.len() > 1
            && cmd.get_subcommands().next().is_some()
        {
            // docker's client prints it on stderr, and exits 0.
            eprint!("{}", group_usage(cmd, &shown_path(&path)));
        } else {
            let _ = e.print();
        }
        return ExitCode::SUCCESS;
    }
    let invalid = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    // A flag is the command's whose words come before it: `berth
    // --badflag ps` is berth's mistake, not ps's.
    let upto = match (e.kind(), invalid.as_deref()) {
        (ErrorKind::UnknownArgument, Some(a)) if a.starts_with('-') => args
            .iter()
            .position(|w| w.to_string_lossy().split('=').next() == a.split('=').next())
            .unwrap_or(args.len()),
        _ => args.len(),
    };
    let path = command_path(cli, &args[..upto]);
    let cmd = find(cli, &path);
    let shown = shown_path(&path);
    // One write: a reader that takes the first lines and leaves (`| head
    // -2`) must not turn our exit code into SIGPIPE's.
    let (text, code) = match e.kind() {
        ErrorKind::UnknownArgument if invalid.as_deref().is_some_and(|a| a.starts_with('-')) => {
            let arg = invalid.unwrap_or_default();
            let arg = arg.split('=').next().unwrap_or(&arg);
            let first = match arg.strip_prefix("--") {
                Some(long) => format!("unknown flag: --{long}"),
                None => {
                    let c = arg.trim_start_matches('-').chars().next().unwrap_or('?');
                    format!("unknown shorthand flag: '{c}' in {arg}")
                }
            };
            (format!("{first}\nSee '{shown} --help'.\n"), 125)
        }
        // Too many words, or a required one missing.
        ErrorKind::UnknownArgument
        | ErrorKind::MissingRequiredArgument
        | ErrorKind::WrongNumberOfValues
        | ErrorKind::TooManyValues
            if cmd.get_subcommands().next().is_none() =>
        {
            let usage = cmd.clone().bin_name(&shown).render_usage().to_string();
            // cobra's NoArgs words it apart from a count.
            let need = if cmd.get_positionals().next().is_none() {
                "accepts no arguments".to_string()
            } else {
                format!("requires {}", arity(cmd))
            };
            let mut text = format!(
                "\"{shown}\" {need}.\nSee '{shown} --help'.\n\n{}\n",
                usage.replacen("Usage: ", "Usage:  ", 1)
            );
            if let Some(about) = cmd.get_about() {
                text.push_str(&format!("\n{about}\n"));
            }
            (text, 1)
        }
        ErrorKind::InvalidSubcommand | ErrorKind::MissingSubcommand if path.len() == 1 => {
            let word = match e.get(ContextKind::InvalidSubcommand) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => invalid.unwrap_or_default(),
            };
            (
                format!("berth: '{word}' is not a berth command.\nSee 'berth --help'\n"),
                1,
            )
        }
        // `berth volume foo`: the group's usage, as docker shows it.
        ErrorKind::InvalidSubcommand | ErrorKind::MissingSubcommand => {
            (group_usage(cmd, &shown), 1)
        }
        // `info -f` with nothing after it: pflag's words.
        ErrorKind::InvalidValue
            if matches!(e.get(ContextKind::InvalidValue), Some(ContextValue::String(v)) if v.is_empty())
                && args
                    .last()
                    .is_some_and(|a| a.to_string_lossy().starts_with('-')) =>
        {
            let flag = args
                .last()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default();
            let first = match flag.strip_prefix("--") {
                Some(long) => format!("flag needs an argument: --{long}"),
                None => {
                    let c = flag.chars().last().unwrap_or('?');
                    format!("flag needs an argument: '{c}' in {flag}")
                }
            };
            (format!("{first}\nSee '{shown} --help'.\n"), 125)
        }
        // A value its parser refused: pflag's words, naming the flag as
        // docker's help does (`-a, --attach`).
        ErrorKind::ValueValidation => {
            let value = match e.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(v)) => v.clone(),
                _ => String::new(),
            };
            let shown_arg = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(a)) => a.as_str(),
                _ => "",
            };
            let flag = if shown_arg.is_empty() {
                String::new()
            } else {
                pflag_name(cmd, shown_arg)
            };
            let source = std::error::Error::source(e);
            let why = source
                .and_then(|s| go_int_error(s, &value, flag_arg(cmd, shown_arg)))
                .or_else(|| source.map(ToString::to_string))
                .unwrap_or_default();
            (
                format!(
                    "invalid argument {value:?} for \"{flag}\" flag: {why}\nSee '{shown} --help'.\n"
                ),
                125,
            )
        }
        _ => {
            // A bad flag value and the like: clap's own line, docker's code.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid command line");
            (
                format!(
                    "{}\nSee '{shown} --help'.\n",
                    first.trim_start_matches("error: ")
                ),
                125,
            )
        }
    };
    let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
    ExitCode::from(code)
}

/// The flag's name in clap's rendering of it (`--attach <STREAM>`:
/// `attach`).
fn flag_word(shown: &str) -> &str {
    shown
        .split_whitespace()
        .next()
        .unwrap_or(shown)
        .trim_start_matches('-')
}

/// The argument clap rendered as `shown`.
fn flag_arg<'a>(cmd: &'a Command, shown: &str) -> Option<&'a clap::Arg> {
    let word = flag_word(shown);
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(word) || a.get_short().map(String::from).as_deref() == Some(word)
    })
}

/// An integer flag's refused value in Go's words, when `e` is a failed
/// integer parse or a value outside the flag's type: pflag's int flags call
/// strconv.ParseInt, its unsigned ones (docker's `--blkio-weight uint16`)
/// strconv.ParseUint: `strconv.ParseInt: parsing "x": invalid syntax`.
fn go_int_error(
    e: &(dyn std::error::Error + 'static),
    value: &str,
    arg: Option<&clap::Arg>,
) -> Option<String> {
    /// The flags docker declares unsigned (berth's types say nothing of
    /// docker's: `stop -t` is a u32 here, an int there).
    const DOCKER_UNSIGNED: &[&str] = &["blkio-weight"];
    /// clap's words for a value outside an integer type's whole range.
    const TYPE_RANGES: &[&str] = &[
        "0..=255",
        "0..=65535",
        "0..=4294967295",
        "-128..=127",
        "-32768..=32767",
        "-2147483648..=2147483647",
    ];
    let why = if let Some(int) = e.downcast_ref::<std::num::ParseIntError>() {
        match int.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        }
    } else {
        let text = e.to_string();
        let outside = text
            .rsplit_once(" is not in ")
            .is_some_and(|(_, range)| TYPE_RANGES.contains(&range));
        if !outside {
            return None;
        }
        "value out of range"
    };
    let unsigned = arg
        .and_then(clap::Arg::get_long)
        .is_some_and(|l| DOCKER_UNSIGNED.contains(&l));
    let func = if unsigned { "ParseUint" } else { "ParseInt" };
    Some(format!("strconv.{func}: parsing {value:?}: {why}"))
}

/// A flag as pflag names it in its errors: `-a, --attach`, or `--long`.
/// `shown` is clap's rendering (`--attach <STREAM>`).
fn pflag_name(cmd: &Command, shown: &str) -> String {
    let long = flag_word(shown);
    match flag_arg(cmd, shown) {
        Some(a) => match (a.get_short(), a.get_long()) {
            (Some(s), Some(l)) => format!("-{s}, --{l}"),
            (None, Some(l)) => format!("--{l}"),
            (Some(s), None) => format!("-{s}"),
            (None, None) => long.to_string(),
        },
        None => format!("--{long}"),
    }
}

/// A command group's usage as docker's client prints it (`docker volume`):
/// usage line, what it is for, its commands, where to learn more.
pub fn group_usage(cmd: &Command, shown: &str) -> String {
    let mut text = format!("\nUsage:  {shown} COMMAND\n\n");
    if let Some(about) = cmd.get_about() {
        text.push_str(&format!("{about}\n\n"));
    }
    text.push_str("Commands:\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        text.push_str(&format!("  {:<11} {about}\n", sub.get_name()));
    }
    text.push_str(&format!(
        "\nRun '{shown} COMMAND --help' for more information on a command.\n"
    ));
    text
}

/// Flags end at the first word that is not one, as in docker's client: in
/// `run [OPTIONS] IMAGE [COMMAND] [ARG...]` whatever follows the image is
/// the command's, `-c` included (`run img sh -c 'echo hi'`, `run
/// --entrypoint sh img -c 'echo hi'`). Clap's trailing arguments begin
/// only at the second positional word, so a `--` goes after the words
/// that precede a command's trailing arguments (run and create's image,
/// exec and top's container).
pub fn end_flags_before_trailing(cli: &Command, args: Vec<OsString>) -> Vec<OsString> {
    let Descent {
        cmd,
        next: mut i,
        ended,
        ..
    } = descend(cli, &args);
    if ended {
        return args;
    }
    let positional: Vec<&Arg> = cmd.get_positionals().collect();
    let Some(last) = positional.last() else {
        return args;
    };
    if !last.is_trailing_var_arg_set() || positional.len() < 2 {
        return args;
    }
    let before = positional.len() - 1;
    let mut seen = 0;
    while i < args.len() {
        let w = args[i].to_string_lossy();
        if w == "--" {
            return args;
        }
        if let Some(skip) = flag_words(cmd, &w) {
            i += skip;
            continue;
        }
        seen += 1;
        i += 1;
        if seen == before {
            break;
        }
    }
    if seen == before && i < args.len() && args[i] != "--" {
        let mut args = args;
        args.insert(i, OsString::from("--"));
        return args;
    }
    args
}

/// How many words the flag `w` takes with its value (1 or 2), or None
/// when `w` is not a flag.
fn flag_words(cmd: &Command, w: &str) -> Option<usize> {
    if w == "-" || !w.starts_with('-') {
        return None;
    }
    if let Some(long) = w.strip_prefix("--") {
        let takes = !long.contains('=') && takes_value(cmd, |a| a.get_long() == Some(long));
        return Some(1 + usize::from(takes));
    }
    // -it, -e X, -eX, -p80:80: the value is the next word only when the
    // last short flag of a cluster takes one and nothing follows it.
    let shorts: Vec<char> = w[1..].chars().collect();
    for (n, c) in shorts.iter().enumerate() {
        if takes_value(cmd, |a| a.get_short() == Some(*c)) {
            return Some(1 + usize::from(n + 1 == shorts.len()));
        }
    }
    Some(1)
}

/// "exactly 1 argument", "at least 2 arguments": docker's words for what
/// the command's positional arguments need.
fn arity(cmd: &Command) -> String {
    let positional: Vec<&Arg> = cmd.get_positionals().collect();
    let required = positional
        .iter()
        .filter(|a| a.is_required_set())
        .count()
        // A required list takes at least one value.
        .max(usize::from(positional.iter().any(|a| a.is_required_set())));
    let open = positional
        .iter()
        .any(|a| !a.is_required_set() || a.get_num_args().is_some_and(|n| n.max_values() > 1));
    // How many values each takes at most: a list without a bound (or
    // one whose bound clap has not set yet) takes any number.
    let most_of = |a: &&Arg| match a.get_num_args() {
        Some(n) => n.max_values(),
        None if matches!(a.get_action(), clap::ArgAction::Append) => usize::MAX,
        None => 1,
    };
    let unbounded = positional.iter().any(|a| most_of(a) == usize::MAX);
    let noun = |n: usize| if n == 1 { "argument" } else { "arguments" };
    if !open {
        format!("exactly {required} {}", noun(required))
    } else if unbounded {
        format!("at least {required} {}", noun(required))
    } else {
        let most: usize = positional.iter().map(most_of).sum();
        format!("at least {required} and at most {most} {}", noun(most))
    }
}

/// The subcommand names the command line reached: ["berth", "network", "rm"].
fn command_path(cli: &Command, args: &[OsString]) -> Vec<String> {
    descend(cli, args).path
}

/// Where a command line's words lead down the subcommands.
struct Descent<'a> {
    /// The subcommand reached.
    cmd: &'a Command,
    /// Its name and its parents': ["berth", "network", "rm"].
    path: Vec<String>,
    /// The index of the first word after it (and its flags), or where a
    /// `--` stopped the walk (`ended`).
    next: usize,
    ended: bool,
}

/// Walks the words past flags (and their values) and subcommand names.
fn descend<'a>(cli: &'a Command, args: &[OsString]) -> Descent<'a> {
    let mut d = Descent {
        cmd: cli,
        path: vec![cli.get_name().to_string()],
        next: 1,
        ended: false,
    };
    while d.next < args.len() {
        let w = args[d.next].to_string_lossy();
        if w == "--" {
            d.ended = true;
            break;
        }
        if let Some(skip) = flag_words(d.cmd, &w) {
            d.next += skip;
            continue;
        }
        match d.cmd.find_subcommand(w.as_ref()) {
            Some(sub) => {
                d.path.push(sub.get_name().to_string());
                d.cmd = sub;
                d.next += 1;
            }
            None => break,
        }
    }
    d
}

fn takes_value(cmd: &Command, which: impl Fn(&Arg) -> bool) -> bool {
    cmd.get_arguments()
        .find(|a| which(a))
        .is_some_and(|a| a.get_action().takes_values())
}

fn find<'a>(cli: &'a Command, path: &[String]) -> &'a Command {
    let mut cmd = cli;
    for name in &path[1..] {
        match cmd.find_subcommand(name) {
            Some(sub) => cmd = sub,
            None => break,
        }
    }
    cmd
}

fn shown_path(path: &[String]) -> String {
    path.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn management_spellings_drop_their_group_word() {
        for (given, want) in [
            ("berth image history x", "berth history x"),
            (
                "berth --root /r --runroot /u image history -H x",
                "berth --root /r --runroot /u history -H x",
            ),
            (
                "berth --config /c -D image load -i f",
                "berth --config /c -D load -i f",
            ),
            ("berth system info", "berth info"),
            ("berth image ls", "berth image ls"),
            ("berth run image history", "berth run image history"),
            ("berth --root image image save", "berth --root image save"),
        ] {
            assert_eq!(management_aliases(words(given)), words(want), "{given}");
        }
    }
}
