//! `build`'s progress as BuildKit's client shows it: a plain log, a live
//! view on a terminal, or quiet until a failure.

use std::io::Write;
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// docker build --progress=plain's log: `#N [stage i/n] STEP`, output
    /// lines with their time into the step, `#N CACHED` or `#N DONE 0.3s`.
    Plain,
    /// On a terminal: one line per step, the running step's last lines of
    /// output redrawn under it, its whole output printed if it fails.
    Live,
    /// Nothing until a failure, then the failed step's last lines.
    Quiet,
}

/// Lines of a running step's output kept (for a failure's report).
const KEPT_LINES: usize = 200;
/// Lines of the running step's output shown live.
const LIVE_LINES: usize = 6;

pub(super) struct Progress {
    mode: Mode,
    started: Vec<Instant>,
    /// Partial output lines per step.
    partial: Vec<Vec<u8>>,
    /// The running step's title and its last lines of output.
    title: String,
    lines: std::collections::VecDeque<String>,
    /// Lines of the live region now on the terminal.
    drawn: usize,
    last_draw: Option<Instant>,
}

impl Progress {
    pub(super) fn new(mode: Mode) -> Progress {
        Progress {
            mode,
            started: Vec::new(),
            partial: Vec::new(),
            title: String::new(),
            lines: Default::default(),
            drawn: 0,
            last_draw: None,
        }
    }

    /// One write per line, so lines of processes sharing stderr never mix.
    fn emit(text: &str) {
        let _ = std::io::stderr()
            .lock()
            .write_all(format!("{text}\n").as_bytes());
    }

    fn slot(&mut self, id: usize) {
        while self.started.len() <= id {
            self.started.push(Instant::now());
            self.partial.push(Vec::new());
        }
    }

    fn output_line(&mut self, id: usize, text: String) {
        if self.lines.len() == KEPT_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(text.clone());
        match self.mode {
            Mode::Plain => {
                let t = self.started[id].elapsed().as_secs_f64();
                Self::emit(&format!("#{} {t:.3} {text}", id + 1));
            }
            Mode::Live => self.draw(false),
            Mode::Quiet => {}
        }
    }

    fn flush_partial(&mut self, id: usize) {
        if self.partial.get(id).is_some_and(|p| !p.is_empty()) {
            let rest = std::mem::take(&mut self.partial[id]);
            self.output_line(id, String::from_utf8_lossy(&rest).into_owned());
        }
    }

    /// Clears the live region.
    fn clear(&mut self) {
        if self.drawn > 0 {
            let _ = std::io::stderr()
                .lock()
                .write_all(format!("\x1b[{}A\x1b[J", self.drawn).as_bytes());
            self.drawn = 0;
        }
    }

    /// Redraws the running step and its last lines (at most every 50 ms
    /// unless `force`).
    fn draw(&mut self, force: bool) {
        if !force
            && self
                .last_draw
                .is_some_and(|t| t.elapsed() < Duration::from_millis(50))
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        self.clear();
        let width = terminal_width();
        let mut out = format!("{}\n", clip(&format!("=> {}", self.title), width));
        let shown: Vec<&String> = self.lines.iter().rev().take(LIVE_LINES).collect();
        for l in shown.iter().rev() {
            out.push_str(&clip(&format!("   {l}"), width));
            out.push('\n');
        }
        self.drawn = 1 + shown.len();
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }

    /// After a failure: what the user needs to see of the failed step
    /// (if a step was running).
    pub(super) fn failed(&mut self) {
        if self.mode == Mode::Plain || self.title.is_empty() {
            return;
        }
        self.clear();
        Self::emit(&format!("=> ERROR {}", self.title));
        for l in &self.lines {
            Self::emit(&format!("   {l}"));
        }
        self.title.clear();
    }
}

fn terminal_width() -> usize {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize we pass and nothing else.
    let rc = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 {
        usize::from(ws.ws_col)
    } else {
        80
    }
}

/// `s` cut to `width` characters (a line of the live view must not wrap).
fn clip(s: &str, width: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(width.saturating_sub(1).max(1))
        .collect()
}

impl berth_engine::build::Reporter for Progress {
    fn failed(&mut self) {
        Progress::failed(self);
    }

    fn concurrent_ok(&self) -> bool {
        self.mode != Mode::Live
    }

    fn start(&mut self, id: usize, title: &str) {
        self.slot(id);
        self.started[id] = Instant::now();
        self.title = title.to_string();
        self.lines.clear();
        match self.mode {
            Mode::Plain => Self::emit(&format!("#{} {title}", id + 1)),
            Mode::Live => self.draw(true),
            Mode::Quiet => {}
        }
    }

    fn output(&mut self, id: usize, data: &[u8]) {
        self.slot(id);
        self.partial[id].extend_from_slice(data);
        while let Some(nl) = self.partial[id].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial[id].drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.output_line(id, text);
        }
    }

    fn cached(&mut self, id: usize) {
        match self.mode {
            Mode::Plain => Self::emit(&format!("#{} CACHED", id + 1)),
            Mode::Live => {
                self.clear();
                Self::emit(&format!("=> CACHED {}", self.title));
            }
            Mode::Quiet => {}
        }
        self.title.clear();
    }

    fn done(&mut self, id: usize, took: Duration) {
        self.slot(id);
        self.flush_partial(id);
        match self.mode {
            Mode::Plain => Self::emit(&format!("#{} DONE {:.1}s", id + 1, took.as_secs_f64())),
            Mode::Live => {
                self.clear();
                Self::emit(&format!("=> {} {:.1}s", self.title, took.as_secs_f64()));
            }
            Mode::Quiet => {}
        }
        self.title.clear();
    }

    fn note(&mut self, text: &str) {
        match self.mode {
            Mode::Plain => Self::emit(&format!("# {text}")),
            Mode::Live => {
                self.clear();
                Self::emit(&format!("=> {text}"));
            }
            Mode::Quiet => {}
        }
    }
}
