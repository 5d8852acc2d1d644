//! `.dockerignore` matching as Docker does it (moby/patternmatcher): Go's
//! `filepath.Match` per pattern plus `**` across directories, `!` exceptions
//! with the last matching pattern winning, a pattern matching a parent
//! directory excluding everything below it, and paths cleaned like Go's
//! `filepath.Clean`.

use std::path::{Path, PathBuf};

/// A bad pattern in an ignore file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: syntax error in pattern {pattern:?}")]
pub struct PatternError {
    pub file: String,
    pub line: usize,
    pub pattern: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    text: String,
    exclusion: bool,
}

/// The patterns of one ignore file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
}

/// Go's `filepath.Clean` on a slash-separated path.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

impl IgnoreMatcher {
    /// Parse an ignore file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<IgnoreMatcher, PatternError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            // Comments are only lines starting with '#', before trimming.
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
            }
            let mut text = if p.is_empty() {
                String::new()
            } else {
                clean_path(p)
            };
            if text.len() > 1 && text.starts_with('/') {
                text.remove(0);
            }
            if !valid(&text) {
                return Err(PatternError {
                    file: file.to_string(),
                    line: n + 1,
                    pattern: raw.to_string(),
                });
            }
            patterns.push(Pattern { text, exclusion });
        }
        Ok(IgnoreMatcher { patterns })
    }

    /// Whether `path` (relative to the context, slash-separated) is excluded
    /// from the build context, itself or through a parent directory.
    pub fn is_excluded(&self, path: &str) -> bool {
        let file = clean_path(path.trim_start_matches('/'));
        let parents: Vec<&str> = file.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            // An inclusion can't change a match, nor an exclusion a non-match.
            if p.exclusion != matched {
                continue;
            }
            let mut m = glob(p.text.as_bytes(), file.as_bytes());
            if !m && parents.len() > 1 {
                m = (1..parents.len())
                    .any(|i| glob(p.text.as_bytes(), parents[..i].join("/").as_bytes()));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether any `!` exception exists (a walker can then not skip an
    /// excluded directory wholesale).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }
}

/// Go's `filepath.Match` of one path component, as COPY matches its source
/// globs: `*`, `?`, `[...]` and `\x`. `None` for a malformed pattern.
pub(crate) fn match_component(pattern: &str, name: &str) -> Option<bool> {
    valid(pattern).then(|| glob(pattern.as_bytes(), name.as_bytes()))
}

/// Whether a path component has glob syntax (`*`, `?`, `[`) that is not
/// escaped with `\`.
pub(crate) fn has_wildcards(component: &str) -> bool {
    let b = component.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'*' | b'?' | b'[' => return true,
            _ => i += 1,
        }
    }
    false
}

/// Checks brackets and trailing escapes, as Go's `filepath.Match` would
/// report `ErrBadPattern`.
fn valid(p: &str) -> bool {
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if i + 1 >= b.len() {
                    return false;
                }
                i += 2;
            }
            b'[' => match class_end(b, i) {
                Some(e) => i = e,
                None => return false,
            },
            _ => i += 1,
        }
    }
    true
}

/// Index just past the `]` of a class starting at `b[start] == '['`.
fn class_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if i < b.len() && b[i] == b'^' {
        i += 1;
    }
    let mut first = true;
    while i < b.len() {
        match b[i] {
            b']' if !first => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
        first = false;
    }
    None
}

fn class_matches(class: &[u8], c: u8) -> bool {
    // class is the text between '[' and ']'.
    let (neg, mut body) = match class.first() {
        Some(b'^') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut hit = false;
    while !body.is_empty() {
        let (lo, rest) = take_class_char(body);
        body = rest;
        let mut hi = lo;
        if body.len() >= 2 && body[0] == b'-' {
            let (h, rest) = take_class_char(&body[1..]);
            hi = h;
            body = rest;
        }
        if lo <= c && c <= hi {
            hit = true;
        }
    }
    hit != neg
}

fn take_class_char(b: &[u8]) -> (u8, &[u8]) {
    if b[0] == b'\\' && b.len() > 1 {
        (b[1], &b[2..])
    } else {
        (b[0], &b[1..])
    }
}

/// Byte-wise glob: `*` within a component, `?`, `[...]`, `\\x`, `**`
/// anything, `**/` zero or more directories. Results are memoised per
/// (pattern, path) position so `**/**/**` stays polynomial.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let mut g = Glob {
        p,
        s,
        memo: vec![0; (p.len() + 1) * (s.len() + 1)],
    };
    g.at(0, 0)
}

struct Glob<'a> {
    p: &'a [u8],
    s: &'a [u8],
    /// 0 unknown, 1 no match, 2 match.
    memo: Vec<u8>,
}

impl Glob<'_> {
    fn at(&mut self, pi: usize, si: usize) -> bool {
        let key = pi * (self.s.len() + 1) + si;
        match self.memo[key] {
            1 => return false,
            2 => return true,
            _ => {}
        }
        let r = self.compute(pi, si);
        self.memo[key] = if r { 2 } else { 1 };
        r
    }

    fn compute(&mut self, pi: usize, si: usize) -> bool {
        let (p, s) = (self.p, self.s);
        if pi >= p.len() {
            return si >= s.len();
        }
        let here = s.get(si).copied();
        match p[pi] {
            b'*' if p.get(pi + 1) == Some(&b'*') => {
                if p.get(pi + 2) == Some(&b'/') {
                    let rest = pi + 3;
                    if self.at(rest, si) {
                        return true;
                    }
                    (si..s.len()).any(|k| s[k] == b'/' && self.at(rest, k + 1))
                } else {
                    (si..=s.len()).any(|k| self.at(pi + 2, k))
                }
            }
            b'*' => {
                for k in si..=s.len() {
                    if self.at(pi + 1, k) {
                        return true;
                    }
                    if k < s.len() && s[k] == b'/' {
                        break;
                    }
                }
                false
            }
            b'?' => here.is_some_and(|c| c != b'/') && self.at(pi + 1, si + 1),
            b'[' => match class_end(p, pi) {
                Some(e) => {
                    here.is_some_and(|c| c != b'/' && class_matches(&p[pi + 1..e - 1], c))
                        && self.at(e, si + 1)
                }
                None => false,
            },
            b'\\' if pi + 1 < p.len() => here == Some(p[pi + 1]) && self.at(pi + 2, si + 1),
            c => here == Some(c) && self.at(pi + 1, si + 1),
        }
    }
}

/// The ignore file for a build, by preference: `<Dockerfile>.dockerignore`
/// next to the Dockerfile (e.g. `Containerfile.dockerignore`), then the
/// context's `.containerignore` (podman), then its `.dockerignore`.
pub fn pick_ignore_file(
    context: &Path,
    dockerfile: &Path,
    exists: &dyn Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(name) = dockerfile.file_name() {
        let mut n = name.to_os_string();
        n.push(".dockerignore");
        let df = if dockerfile.is_absolute() {
            dockerfile.to_path_buf()
        } else {
            context.join(dockerfile)
        };
        candidates.push(df.with_file_name(n));
    }
    candidates.push(context.join(".containerignore"));
    candidates.push(context.join(".dockerignore"));
    candidates.into_iter().find(|c| exists(c))
}

/// [`pick_ignore_file`] against the real file system.
pub fn find_ignore_file(context: &Path, dockerfile: &Path) -> Option<PathBuf> {
    pick_ignore_file(context, dockerfile, &|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> IgnoreMatcher {
        IgnoreMatcher::parse(".dockerignore", text).unwrap()
    }

    #[test]
    fn clean() {
        assert_eq!(clean_path(""), ".");
        assert_eq!(clean_path("./a//b/../c/"), "a/c");
        assert_eq!(clean_path("/../a"), "/a");
        assert_eq!(clean_path("../a"), "../a");
        assert_eq!(clean_path("a/.."), ".");
        assert_eq!(clean_path("/"), "/");
    }

    #[test]
    fn simple_patterns() {
        let i = m("# comment\n*.md\n/tmp\n  build/  \nfile?.txt\n[a-c]x\n");
        assert!(i.is_excluded("README.md"));
        assert!(!i.is_excluded("docs/README.md"));
        assert!(i.is_excluded("tmp"));
        assert!(i.is_excluded("tmp/x/y"));
        assert!(i.is_excluded("build"));
        assert!(i.is_excluded("build/out.o"));
        assert!(i.is_excluded("file1.txt"));
        assert!(!i.is_excluded("file12.txt"));
        assert!(i.is_excluded("bx"));
        assert!(!i.is_excluded("dx"));
        assert!(!i.is_excluded("src/main.rs"));
        assert!(i.is_excluded("./tmp/../tmp/a"));
    }

    #[test]
    fn double_star() {
        let i = m("**/*.go\nvendor/**\na/**/z\n");
        assert!(i.is_excluded("x.go"));
        assert!(i.is_excluded("a/b/c.go"));
        assert!(i.is_excluded("vendor/x/y"));
        assert!(i.is_excluded("a/z"));
        assert!(i.is_excluded("a/b/c/z"));
        assert!(!i.is_excluded("b/z"));
        assert!(!i.is_excluded("x.rs"));
    }

    #[test]
    fn exceptions_last_match_wins() {
        let i = m("*.md\n!README.md\n");
        assert!(i.is_excluded("CHANGES.md"));
        assert!(!i.is_excluded("README.md"));
        let i = m("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(i.is_excluded("README-secret.md"));
        assert!(!i.is_excluded("README-x.md"));
        let i = m("!README.md\n*.md\n");
        assert!(i.is_excluded("README.md"));
        let i = m("docs\n!docs/keep.txt\n");
        assert!(i.is_excluded("docs/a.txt"));
        assert!(!i.is_excluded("docs/keep.txt"));
        assert!(i.has_exceptions());
        // The Dockerfile and .dockerignore can be excluded like anything.
        let i = m("*\n!src\n");
        assert!(i.is_excluded("Dockerfile"));
        assert!(!i.is_excluded("src/a.rs"));
    }

    #[test]
    fn escapes_and_errors() {
        let i = m("a\\*b\n");
        assert!(i.is_excluded("a*b"));
        assert!(!i.is_excluded("axb"));
        assert_eq!(
            IgnoreMatcher::parse(".dockerignore", "ok\n[abc\n")
                .unwrap_err()
                .to_string(),
            ".dockerignore:2: syntax error in pattern \"[abc\""
        );
        assert!(IgnoreMatcher::parse("x", "a\\").is_err());
        let i = m("[^a]b\n[]x]y\n");
        assert!(i.is_excluded("cb"));
        assert!(!i.is_excluded("ab"));
        assert!(i.is_excluded("]y"));
        // Pathological patterns stay fast.
        let i = m("**/**/**/**/**/**/**/**/**/**/*a*a*a*a*a*a*a*b\n");
        assert!(!i.is_excluded(&"a/".repeat(40)));
        for t in ["!", "!!", "[", "[]", "\\", "**", "***", "[\\", "\u{feff}#x"] {
            let _ = IgnoreMatcher::parse("x", t).map(|i| i.is_excluded("a/b"));
        }
    }

    #[test]
    fn picks_the_ignore_file() {
        let ctx = Path::new("/ctx");
        let have = |names: &'static [&'static str]| {
            move |p: &Path| names.iter().any(|n| p == Path::new(n))
        };
        let f = have(&["/ctx/Containerfile.dockerignore", "/ctx/.dockerignore"]);
        assert_eq!(
            pick_ignore_file(ctx, Path::new("Containerfile"), &f),
            Some(PathBuf::from("/ctx/Containerfile.dockerignore"))
        );
        assert_eq!(
            pick_ignore_file(ctx, Path::new("Dockerfile"), &f),
            Some(PathBuf::from("/ctx/.dockerignore"))
        );
        let f = have(&["/elsewhere/Dockerfile.dockerignore", "/ctx/.dockerignore"]);
        assert_eq!(
            pick_ignore_file(ctx, Path::new("/elsewhere/Dockerfile"), &f),
            Some(PathBuf::from("/elsewhere/Dockerfile.dockerignore"))
        );
        let f = have(&["/ctx/.containerignore", "/ctx/.dockerignore"]);
        assert_eq!(
            pick_ignore_file(ctx, Path::new("Dockerfile"), &f),
            Some(PathBuf::from("/ctx/.containerignore"))
        );
        assert_eq!(
            pick_ignore_file(ctx, Path::new("Dockerfile"), &|_| false),
            None
        );
    }
}
