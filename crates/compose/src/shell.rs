//! A command line written as one string (`command: sh -c "echo hi"`) split
//! into words as a POSIX shell would, without expansions: what Compose
//! does with the string forms of `command` and `entrypoint`.

/// The words of `line`: blanks separate, single quotes are literal,
/// double quotes keep blanks and honour `\"`, `\\`, `\$`, `` \` ``, a
/// backslash outside quotes escapes the next character.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated single quote in {line:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {line:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated double quote in {line:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => {}
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn words_as_a_shell_splits_them() {
        assert_eq!(
            split("sh -c 'echo  hi; exit 3'").unwrap(),
            ["sh", "-c", "echo  hi; exit 3"]
        );
        assert_eq!(
            split(r#"a "b \"c\" $x" d\ e ''"#).unwrap(),
            ["a", "b \"c\" $x", "d e", ""]
        );
        assert!(split("sh -c 'open").is_err());
        assert_eq!(split("  ").unwrap(), Vec::<String>::new());
    }
}
