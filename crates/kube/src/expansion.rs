//! Kubernetes' `$(VAR)` references in a container's command, args and
//! env values: the kubelet replaces them with the container's variables
//! before the container starts (no shell involved), so YAML written for a
//! cluster says `command: ["echo", "$(GREETING)"]` and expects the value.
//!
//! The rules are the API's (core/v1 Container.command): `$(NAME)` is
//! replaced when NAME is defined and left as written when it is not;
//! `$$` is one literal `$` (so `$$(NAME)` stays `$(NAME)`); any other `$`
//! is kept, as is a `$(` that is never closed.

/// `input` with its references replaced through `lookup`.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(open) = after.strip_prefix('(') {
            match open.find(')') {
                Some(close) => {
                    let name = &open[..close];
                    match lookup(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &open[close + 1..];
                }
                // Never closed: kept, and what follows is read as text
                // (a later `$$` still collapses, as the kubelet's does).
                None => {
                    out.push_str("$(");
                    rest = open;
                }
            }
        } else {
            // A lone `$`, or `$` before any other character: as written.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of `name` in `KEY=VALUE` entries, the last one winning.
pub fn lookup_env<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.split_once('=').filter(|(k, _)| *k == name))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(env: &[&str], input: &str) -> String {
        let env: Vec<String> = env.iter().map(|s| (*s).to_string()).collect();
        expand(input, |n| lookup_env(&env, n))
    }

    #[test]
    fn defined_names_are_replaced_and_unknown_ones_kept() {
        assert_eq!(with(&["A=1", "B=two"], "x$(A)y $(B) $(C)"), "x1y two $(C)");
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        assert_eq!(with(&["A=1"], "$$(A) $$ $$$(A)"), "$(A) $ $1");
    }

    #[test]
    fn other_dollars_and_unclosed_references_stay() {
        assert_eq!(with(&["A=1"], "$A ${A} $ end$"), "$A ${A} $ end$");
        assert_eq!(with(&["A=1"], "$(A $$"), "$(A $");
    }

    #[test]
    fn empty_and_later_values_follow_the_environment() {
        assert_eq!(with(&["A=", "B=1", "B=2"], "[$(A)] $(B)"), "[] 2");
        // An empty name is a name nobody defines.
        assert_eq!(with(&["A=1"], "$()"), "$()");
    }
}
