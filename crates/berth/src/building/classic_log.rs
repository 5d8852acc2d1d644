//! `build`'s log as Docker 20.10's classic builder prints it
//! (`DOCKER_BUILDKIT=0`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Docker 20.10's classic builder log (`DOCKER_BUILDKIT=0`), on stdout as
/// docker prints it: `Step n/m : INSTRUCTION` numbered over the whole
/// Dockerfile, ` ---> Running in <id>` and `Removing intermediate
/// container <id>` around a RUN (berth makes a container for RUN only),
/// ` ---> Using cache`, ` ---> <id>` after every step (the base image's
/// id for FROM, the step's cache key otherwise), then `Successfully
/// built` and `Successfully tagged` lines. Scripts parse this form.
pub(super) struct Classic {
    /// Every instruction of the Dockerfile: its line and text as written.
    instructions: Vec<(usize, String)>,
    /// The global ARGs (before the first FROM) are shown as steps first.
    meta_shown: bool,
    /// The running RUN's container, short.
    container: Option<String>,
    /// The RUN that failed: its command and exit code.
    pub(super) failure: Option<(String, i32)>,
    /// The last step's ` ---> <id>`, shown when the next step begins: the
    /// build's last one shows the image's id, as docker's last line
    /// before `Successfully built` does.
    made: Option<String>,
    /// With -q: the log kept, shown on stderr only if the build fails.
    kept: Option<Vec<u8>>,
    /// The reader of our stdout left (`build . | head`): the build stops
    /// (SIGPIPE interrupts it) and we end quietly, as docker's client does.
    pub(super) reader_gone: bool,
}

impl Classic {
    pub(super) fn new(quiet: bool) -> Classic {
        Classic {
            instructions: Vec::new(),
            meta_shown: false,
            container: None,
            failure: None,
            made: None,
            kept: quiet.then(Vec::new),
            reader_gone: false,
        }
    }

    /// Reads the Dockerfile as Docker's daemon does before its first
    /// step: its instructions are numbered for the log; what it will not
    /// build is refused in the daemon's words (`Err`, shown after `Error
    /// response from daemon: `).
    pub(super) fn read_dockerfile(
        &mut self,
        name: &str,
        text: &str,
        target: Option<&str>,
        build_args: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        use berth_build::stage::StageError;
        let parsed = berth_build::parser::parse(name, text)
            .map_err(|e| format!("dockerfile parse error line {}: {}", e.line, e.message))?;
        self.instructions = parsed
            .instructions
            .iter()
            .map(|i| (i.line, i.text.clone()))
            .collect();
        let plan = berth_build::stage::split_stages(&parsed);
        match plan.and_then(|p| p.build_order(target, build_args)) {
            Ok(_) => Ok(()),
            Err(StageError::BeforeFrom { .. }) => Err("no build stage in current context".into()),
            Err(StageError::UnknownTarget(t)) => {
                Err(format!("failed to reach build target {t} in Dockerfile"))
            }
            // The engine says the rest, in berth's words.
            Err(_) => Ok(()),
        }
    }

    fn write(&mut self, data: &[u8]) {
        match &mut self.kept {
            Some(k) => k.extend_from_slice(data),
            None => {
                if let Err(e) = std::io::stdout().lock().write_all(data) {
                    self.reader_gone |= e.kind() == std::io::ErrorKind::BrokenPipe;
                }
            }
        }
    }

    /// A failed -q build: what it kept, on stderr, as docker shows it.
    pub(super) fn show_kept(&mut self) {
        if let Some(k) = self.kept.take() {
            let _ = std::io::stderr().lock().write_all(&k);
        }
    }

    fn show_made(&mut self) {
        if let Some(m) = self.made.take() {
            self.emit(&format!(" ---> {m}"));
        }
    }

    /// The end of a build that made `image`.
    pub(super) fn finish(&mut self, image: &str, tags: &[berth_image::reference::Reference]) {
        let hex = image.strip_prefix("sha256:").unwrap_or(image);
        let short = &hex[..hex.len().min(12)];
        if self.made.take().is_some() {
            self.emit(&format!(" ---> {short}"));
        }
        self.emit(&format!("Successfully built {short}"));
        for t in tags {
            self.emit(&format!("Successfully tagged {}", t.familiar()));
        }
    }

    pub(super) fn emit(&mut self, text: &str) {
        self.write(format!("{text}\n").as_bytes());
    }

    fn step(&mut self, index: usize) {
        let text = self.instructions.get(index).map_or("", |(_, t)| t.as_str());
        let line = format!("Step {}/{} : {text}", index + 1, self.instructions.len());
        self.emit(&line);
    }
}

impl berth_engine::build::Reporter for Classic {
    fn concurrent_ok(&self) -> bool {
        // Steps are numbered in one sequence: stages one after another.
        false
    }

    fn start(&mut self, _id: usize, _title: &str) {}

    fn begin(&mut self, _id: usize, _title: &str, line: usize) {
        let Some(index) = self.instructions.iter().position(|(l, _)| *l == line) else {
            return;
        };
        if !self.meta_shown {
            self.meta_shown = true;
            for k in 0..index {
                if self.instructions[k]
                    .1
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.eq_ignore_ascii_case("ARG"))
                {
                    self.step(k);
                }
            }
        }
        self.show_made();
        self.container = None;
        self.step(index);
    }

    fn output(&mut self, _id: usize, data: &[u8]) {
        self.write(data);
    }

    fn cached(&mut self, _id: usize) {
        self.emit(" ---> Using cache");
    }

    fn done(&mut self, _id: usize, _took: Duration) {
        if let Some(c) = self.container.take() {
            self.emit(&format!("Removing intermediate container {c}"));
        }
    }

    fn made(&mut self, _id: usize, made: &str) {
        let hex = made.strip_prefix("sha256:").unwrap_or(made);
        self.show_made();
        self.made = Some(hex[..hex.len().min(12)].to_string());
    }

    fn container(&mut self, _id: usize, container: &str) {
        let hex = container.strip_prefix("build-").unwrap_or(container);
        let short = hex[..hex.len().min(12)].to_string();
        self.emit(&format!(" ---> Running in {short}"));
        self.container = Some(short);
    }

    fn run_failed(&mut self, _id: usize, command: &str, code: i32) {
        self.failure = Some((command.to_string(), code));
    }

    fn note(&mut self, _text: &str) {}
}

/// The size of the context as docker's client sends it (a tar of what
/// .dockerignore keeps: a 512-byte header per entry, file data padded to
/// 512, two zero blocks at the end), for `Sending build context`.
pub(super) fn context_tar_size(
    context: &Path,
    ignore: Option<&berth_build::ignore::IgnoreMatcher>,
) -> u64 {
    fn walk(
        dir: &Path,
        rel: &str,
        ignore: Option<&berth_build::ignore::IgnoreMatcher>,
        total: &mut u64,
    ) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            let excluded = ignore.is_some_and(|i| i.is_excluded(&path));
            if meta.is_dir() {
                if !excluded {
                    *total += 512;
                }
                // Exceptions (`!x`) may keep what is under an excluded
                // directory.
                if !excluded || ignore.is_some_and(|i| i.has_exceptions()) {
                    walk(&e.path(), &path, ignore, total);
                }
            } else if !excluded {
                *total += 512;
                if meta.is_file() {
                    *total += meta.len().div_ceil(512) * 512;
                }
            }
        }
    }
    let mut total = 1024;
    walk(context, "", ignore, &mut total);
    total
}

/// A failed step's message in the classic builder's words, where berth
/// knows them (COPY and ADD's refusals); `None` leaves berth's.
pub(super) fn step_words(e: &berth_engine::Error) -> Option<String> {
    use berth_build::copy::CopyError;
    let (keyword, source) = match e {
        berth_engine::Error::BuildCopy {
            keyword, source, ..
        } => (keyword, source),
        // A RUN's user that the image does not have.
        berth_engine::Error::NoSuchUser(_) => return Some(e.to_string()),
        _ => return None,
    };
    match source.as_ref() {
        CopyError::NoSources { .. } => Some(format!("{keyword} failed: no source files were specified")),
        CopyError::DestNotDirectory { .. } => Some(format!(
            "When using {keyword} with more than one source file, the destination must be a directory and end with a /"
        )),
        CopyError::NotFound { path, place } if *place == "build context" => {
            // Docker cleans the path (as Go's filepath.Clean) relative to
            // the context's root, and names one that leaves the context.
            let mut parts: Vec<&str> = Vec::new();
            let mut escapes = false;
            for c in path.split('/') {
                match c {
                    "" | "." => {}
                    ".." if parts.pop().is_none() && !path.starts_with('/') => escapes = true,
                    ".." => {}
                    c => parts.push(c),
                }
            }
            Some(if escapes {
                format!("{keyword} failed: forbidden path outside the build context: {path} ()")
            } else {
                format!(
                    "{keyword} failed: file not found in build context or excluded by .dockerignore: stat {}: file does not exist",
                    parts.join("/")
                )
            })
        }
        _ => None,
    }
}

/// Whether DOCKER_BUILDKIT turns BuildKit off (Go's ParseBool false), as
/// docker's client reads it: the classic builder's log then.
pub(super) fn classic_log() -> bool {
    std::env::var("DOCKER_BUILDKIT")
        .is_ok_and(|v| matches!(v.as_str(), "0" | "f" | "F" | "false" | "FALSE" | "False"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_size_counts_what_the_tar_holds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::create_dir(dir.path().join("skip")).unwrap();
        std::fs::write(dir.path().join("skip/big"), vec![0u8; 5000]).unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 513]).unwrap();
        // Headers: Dockerfile, skip, skip/big, a; data 512 + 5120 + 1024;
        // two zero blocks.
        assert_eq!(
            context_tar_size(dir.path(), None),
            4 * 512 + 512 + 5120 + 1024 + 1024
        );
        let ignore = berth_build::ignore::IgnoreMatcher::parse(".dockerignore", "skip\n").unwrap();
        assert_eq!(
            context_tar_size(dir.path(), Some(&ignore)),
            2 * 512 + 512 + 1024 + 1024
        );
    }
}
