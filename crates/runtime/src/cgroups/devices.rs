//! Device access rules: the spec's, plus the ones every container needs for
//! the nodes the runtime itself creates (as runc adds them).

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

/// One rule in the v1 `devices.allow`/`devices.deny` syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// `a`, `c` or `b`.
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl Rule {
    /// `c 1:3 rwm`
    pub fn line(&self) -> String {
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        if self.kind == 'a' {
            return format!("a *:* {}", self.access);
        }
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

fn kind(t: Option<LinuxDeviceType>) -> char {
    match t {
        None | Some(LinuxDeviceType::A) => 'a',
        Some(LinuxDeviceType::B) => 'b',
        Some(_) => 'c',
    }
}

fn allow(kind: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
    Rule {
        allow: true,
        kind,
        major,
        minor,
        access: access.into(),
    }
}

/// The rules to write, in order: the spec's, then the defaults, then the
/// spec's device nodes.
pub fn rules(spec_rules: &[LinuxDeviceCgroup], nodes: &[LinuxDevice]) -> Vec<Rule> {
    let mut out: Vec<Rule> = spec_rules
        .iter()
        .map(|r| Rule {
            allow: r.allow(),
            kind: kind(r.typ()),
            major: r.major(),
            minor: r.minor(),
            access: r.access().clone().unwrap_or_else(|| "rwm".into()),
        })
        .collect();
    let defaults = [
        allow('c', None, None, "m"),
        allow('b', None, None, "m"),
        allow('c', Some(1), Some(3), "rwm"), // null
        allow('c', Some(1), Some(5), "rwm"), // zero
        allow('c', Some(1), Some(7), "rwm"), // full
        allow('c', Some(1), Some(8), "rwm"), // random
        allow('c', Some(1), Some(9), "rwm"), // urandom
        allow('c', Some(5), Some(0), "rwm"), // tty
        allow('c', Some(5), Some(2), "rwm"), // ptmx
        allow('c', Some(136), None, "rwm"),  // pts/*
        // tun/tap: runc and crun allow it (both dropped it once and put it
        // back, because workloads mknod it themselves and Kubernetes has no
        // way to ask for a device rule); CRI specs carry only "deny all".
        allow('c', Some(10), Some(200), "rwm"),
    ];
    // Docker's specs carry these very rules already: a second write of an
    // allow that no deny has narrowed since changes nothing (a dozen
    // writes per container, each a kernel call).
    for d in defaults {
        if !still_allowed(&out, &d) {
            out.push(d);
        }
    }
    // Not /dev/console (5:1): a container's console is a pts (136:*) bound
    // there; 5:1 is the host's console, whose input a container could read
    // after a mknod. runc does not allow it either.
    for d in nodes {
        let k = match d.typ() {
            LinuxDeviceType::B => 'b',
            _ => 'c',
        };
        out.push(allow(k, Some(d.major()), Some(d.minor()), "rwm"));
    }
    out
}

/// Whether `rule` (an allow) is in `rules` with no deny after it.
fn still_allowed(rules: &[Rule], rule: &Rule) -> bool {
    rules
        .iter()
        .rposition(|r| r == rule)
        .is_some_and(|i| rules[i..].iter().all(|r| r.allow))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_use_v1_syntax() {
        let deny_all: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":false,"access":"rwm"}"#).unwrap();
        let r = rules(&[deny_all], &[]);
        assert_eq!(r[0].line(), "a *:* rwm");
        assert!(!r[0].allow);
        assert!(r.iter().any(|x| x.line() == "c 136:* rwm"));
        assert!(r.iter().any(|x| x.line() == "c 1:3 rwm"));
    }

    /// A spec with Docker's rules (deny all, then the defaults and the
    /// console) gets each default once; after a deny of the spec's, the
    /// defaults are written again, as the spec's order requires.
    #[test]
    fn defaults_the_spec_allowed_already_are_not_written_again() {
        let parse = |j: &str| -> LinuxDeviceCgroup { serde_json::from_str(j).unwrap() };
        let mut spec = vec![parse(r#"{"allow":false,"access":"rwm"}"#)];
        for (t, major, minor) in [("c", 1, 3), ("c", 1, 5), ("c", 5, 1), ("c", 136, -1)] {
            let minor = if minor < 0 {
                String::new()
            } else {
                format!(r#","minor":{minor}"#)
            };
            spec.push(parse(&format!(
                r#"{{"allow":true,"type":"{t}","major":{major}{minor},"access":"rwm"}}"#
            )));
        }
        let lines: Vec<String> = rules(&spec, &[]).iter().map(Rule::line).collect();
        let mut unique = lines.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), lines.len(), "a rule written twice: {lines:?}");
        // The deny, the spec's four allows, the eight defaults it lacks.
        assert_eq!(lines.len(), 1 + 4 + 8, "{lines:?}");
        assert_eq!(
            lines[..5],
            [
                "a *:* rwm",
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 5:1 rwm",
                "c 136:* rwm"
            ]
        );

        spec.push(parse(
            r#"{"allow":false,"type":"c","major":1,"minor":5,"access":"w"}"#,
        ));
        let r = rules(&spec, &[]);
        let deny = r
            .iter()
            .position(|x| !x.allow && x.line() == "c 1:5 w")
            .unwrap();
        assert!(
            r[deny..].iter().any(|x| x.allow && x.line() == "c 1:5 rwm"),
            "zero allowed again after the spec's deny: {:?}",
            r.iter().map(Rule::line).collect::<Vec<_>>()
        );
    }

    /// What runc 1.1 allows besides the spec's rules (its devices.list in a
    /// CRI container, whose spec only denies all): the same list here.
    #[test]
    fn defaults_are_runcs() {
        let mut lines: Vec<String> = rules(&[], &[]).iter().map(Rule::line).collect();
        lines.sort();
        let mut runc = [
            "c *:* m",
            "b *:* m",
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 5:0 rwm",
            "c 5:2 rwm",
            "c 10:200 rwm",
            "c 136:* rwm",
        ];
        runc.sort_unstable();
        assert_eq!(lines, runc);
    }
}
