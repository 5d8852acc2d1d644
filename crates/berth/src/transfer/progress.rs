//! Pull and push progress on stdout, as Docker's: a bar per layer (bytes,
//! rate, ETA) on a terminal, one line per layer event otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use berth_registry::progress::Progress;

/// Bars on a terminal, lines otherwise.
pub struct Reporter {
    bars: Option<(
        indicatif::MultiProgress,
        Mutex<HashMap<String, indicatif::ProgressBar>>,
    )>,
    /// Everything on stderr (a pull for `run`: stdout is the container's).
    stderr: bool,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").finish_non_exhaustive()
    }
}

impl Reporter {
    pub(super) fn new(stderr: bool) -> Reporter {
        // Drawn where the lines around them go (stdout, as Docker does,
        // unless this pull serves `run`).
        let tty = if stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let bars = tty.then(|| {
            let target = if stderr {
                indicatif::ProgressDrawTarget::stderr()
            } else {
                indicatif::ProgressDrawTarget::stdout()
            };
            (
                indicatif::MultiProgress::with_draw_target(target),
                Mutex::new(HashMap::new()),
            )
        });
        Reporter { bars, stderr }
    }

    pub(super) fn line(&self, s: &str) {
        if self.stderr {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }

    /// Ends the bars' block: indicatif leaves the cursor after the last
    /// bar, so what is printed next would join its line.
    pub(super) fn end(&self) {
        if let Some((_, bars)) = &self.bars {
            if !bars.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
                self.line("");
            }
        }
    }

    fn bar(&self, id: &str, total: Option<u64>) -> Option<indicatif::ProgressBar> {
        let (multi, bars) = self.bars.as_ref()?;
        let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            bars.entry(id.to_string())
                .or_insert_with(|| {
                    let b = multi.add(indicatif::ProgressBar::new(total.unwrap_or(0)));
                    b.set_prefix(id.to_string());
                    b
                })
                .clone(),
        )
    }
}

impl Progress for Reporter {
    fn start(&self, id: &str, action: &str, total: u64) {
        match self.bar(id, Some(total)) {
            Some(b) => {
                b.set_length(total);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix}: {msg:<12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_message(action.to_string());
            }
            // Without a terminal docker prints the phases, not the bytes.
            None if action == "Downloading" => self.line(&format!("{id}: Pulling fs layer")),
            // docker's push shows a layer's Preparing and its end only.
            None if action.starts_with("Pushing") => {}
            None => self.line(&format!("{id}: {action}")),
        }
    }

    fn advance(&self, id: &str, n: u64) {
        if let Some(b) = self.bar(id, None) {
            b.inc(n);
        }
    }

    fn finish(&self, id: &str, status: &str) {
        match self.bar(id, None) {
            Some(b) => {
                b.set_style(
                    indicatif::ProgressStyle::with_template("{prefix}: {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b.finish_with_message(status.to_string());
            }
            None => {
                if status == "Pull complete" {
                    // The layer is streamed, checked and unpacked at once:
                    // its end is all three of docker's last phases.
                    self.line(&format!("{id}: Verifying Checksum"));
                    self.line(&format!("{id}: Download complete"));
                }
                self.line(&format!("{id}: {status}"));
            }
        }
    }

    fn message(&self, line: &str) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(line);
            }
            None => self.line(line),
        }
    }
}
