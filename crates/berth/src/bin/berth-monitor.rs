//! `berth-monitor`: what stays with a detached container while it runs.
//!
//! berth's monitor (`berth __monitor`) starts the container, then, when
//! nothing else needs it (no healthcheck, no client attached yet), execs
//! this small program in its own process: the same pid (still the
//! container's parent), the streams, the attach socket and the container's
//! stdin handed over as descriptors. It relays the output to the json-file
//! log and to attached clients until the container exits, then execs berth
//! again (`__monitor ... exited CODE`) to record the exit and apply the
//! restart policy. A berth-sized process (SQLite, serde, the runtime) per
//! idle container would cost several times the memory.
//!
//! Usage (berth's, not a user's):
//! `berth-monitor BERTH ROOT RUNROOT ID PID LOG MAX_SIZE MAX_FILE TTY OUT ERR IN ATTACH`
//! with TTY 0 or 1 and descriptors as numbers (-1: none).

// Started by glibc's start code directly (`main` below), not by std's:
// std's start would ask glibc for the main thread's stack bounds (which
// reads /proc/self/maps through stdio and malloc), map an alternate signal
// stack and name the thread, writing heap and stack pages that every idle
// monitor would then keep (bench/engine-memory.sh). What it does that
// matters here is done by the code that needs it: the relay ignores
// SIGPIPE itself, and berth's monitor hands us fds 0 to 2 open. Built as a
// test (cargo test --bins) it keeps the harness's main, and tests nothing.
#![cfg_attr(not(test), no_main)]
#![cfg_attr(test, allow(dead_code))]

use std::ffi::{CStr, OsStr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use berth_relay::frames::{socket_path, Server};
use berth_relay::jsonlog::Writer;
use berth_relay::relay::{relay, Clients, Hooks};

/// An argument as the path or text it is.
fn os(c: &CStr) -> &OsStr {
    OsStr::from_bytes(c.to_bytes())
}

/// How many arguments berth's monitor passes (the program's name first).
const ARGS: usize = 14;

/// The program: relays, then execs berth to record the exit code.
///
/// # Safety
/// Called once by the C start code with the process's `argc` and `argv`.
#[cfg(not(test))]
#[unsafe(no_mangle)]
unsafe extern "C" fn main(
    argc: std::ffi::c_int,
    argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    if usize::try_from(argc).ok() != Some(ARGS) {
        eprintln!(
            "berth-monitor: expected {} arguments, got {}",
            ARGS - 1,
            argc.saturating_sub(1)
        );
        return 1;
    }
    // Borrowed in place: the kernel's copy of the arguments lives as long
    // as the process, and nothing here needs them owned.
    let args: [&CStr; ARGS] = std::array::from_fn(|i| {
        // SAFETY: argv holds argc (checked above) pointers to NUL-terminated
        // strings that stay valid until the process ends.
        unsafe { CStr::from_ptr(*argv.add(i)) }
    });
    let code = match run(&std::array::from_fn(|i| os(args[i + 1]))) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            return 1;
        }
    };
    let berth = args[1];
    let code_text = format!("{code}\0");
    let Ok(code_c) = CStr::from_bytes_with_nul(code_text.as_bytes()) else {
        return 1;
    };
    let argv = [
        c"berth-monitor",
        c"__monitor",
        args[2],
        args[3],
        args[4],
        c"exited",
        code_c,
    ];
    let e = nix::unistd::execv(berth, &argv);
    eprintln!(
        "berth-monitor: exec {} to record exit code {code}: {e:?}",
        Path::new(os(berth)).display()
    );
    1
}

/// The relay's hooks here: none of the engine's (no healthcheck), but the
/// code let go of when the loop first waits (see [`unmap_code`]).
#[derive(Debug, Default)]
struct LetGoOfCode {
    done: std::cell::Cell<bool>,
}

impl Hooks for LetGoOfCode {
    fn timeout(&self) -> Option<std::time::Duration> {
        None
    }
    fn tick(&mut self) {}
    fn reaped(&mut self, _pid: i32, _code: i32) {}
    fn waiting(&self) {
        // Once: a container that prints wakes the loop, which maps back
        // what it runs; dropping that at every wait would fault it in
        // again each time.
        if !self.done.replace(true) {
            unmap_code();
        }
    }
}

/// Drops this process's mappings of its own code and read-only data; what
/// runs afterwards (the return into the loop's wait, and what a wake-up
/// runs) is mapped back from the page cache as it runs.
///
/// Why: the kernel maps a program's cached file pages 64 KiB at a time
/// around each fault (fault-around), so starting (glibc's init, parsing,
/// opening the log) leaves nearly all of the binary's 0.7 MB mapped in
/// every monitor, though an idle one never runs most of it again; PSS
/// charges each monitor its share of every page it maps (12 of its 66 KiB
/// among 50 idle monitors; 4 once dropped). The pages stay in the page
/// cache, clean and shared: what changes is what each monitor holds
/// mapped, and what the kernel may reclaim without touching a page table.
#[cfg(target_pointer_width = "64")]
fn unmap_code() {
    // SAFETY: getauxval reads the auxiliary vector the kernel gave us.
    let (phdr, phnum, page) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR),
            libc::getauxval(libc::AT_PHNUM),
            libc::getauxval(libc::AT_PAGESZ),
        )
    };
    let (Ok(phdr), Ok(phnum), Ok(page)) = (
        usize::try_from(phdr),
        usize::try_from(phnum),
        usize::try_from(page),
    ) else {
        return;
    };
    if phdr == 0 || page == 0 {
        return;
    }
    // SAFETY: AT_PHDR and AT_PHNUM locate our own program headers, mapped
    // (read-only, never written) for the life of the process; they are
    // read here before any page is dropped.
    let headers = unsafe { std::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum) };
    // Where the headers are against where they say they are: the load
    // bias (0 for the release build, linked without PIE).
    let Some(bias) = headers
        .iter()
        .find(|h| h.p_type == libc::PT_PHDR)
        .and_then(|h| usize::try_from(h.p_vaddr).ok())
        .map(|at| phdr.wrapping_sub(at))
    else {
        return;
    };
    // Whole pages inside the segments that are never written (not RELRO,
    // which is written before it is made read-only: its pages are private).
    // Collected first, on the stack: the headers sit in the first segment,
    // and nothing allocated is freed after the drop (free's code would be
    // mapped back for it).
    let mut ranges = [(0usize, 0usize); 16];
    let mut n = 0;
    for h in headers
        .iter()
        .filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W == 0)
    {
        let whole_pages = || {
            let at = bias.wrapping_add(usize::try_from(h.p_vaddr).ok()?);
            let start = at.checked_next_multiple_of(page)?;
            let end = at.checked_add(usize::try_from(h.p_memsz).ok()?)? / page * page;
            (end > start).then_some((start, end - start))
        };
        if let (Some(r), Some(slot)) = (whole_pages(), ranges.get_mut(n)) {
            *slot = r;
            n += 1;
        }
    }
    for &(start, len) in &ranges[..n] {
        // SAFETY: whole pages of a read-only, file-backed segment of our
        // own binary: MADV_DONTNEED only drops their page table entries,
        // and the next access maps the same file page again, as after the
        // kernel reclaims it. Nothing ever wrote them, so nothing is lost.
        unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    }
}

#[cfg(not(target_pointer_width = "64"))]
fn unmap_code() {}

fn fd_arg(s: &OsStr) -> Result<Option<RawFd>, String> {
    let n: RawFd = s
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad descriptor {s:?}"))?;
    Ok((n >= 0).then_some(n))
}

fn num<T: std::str::FromStr>(s: &OsStr, what: &str) -> Result<T, String> {
    s.to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad {what} {s:?}"))
}

/// Relays until the container exits; its exit code.
fn run(args: &[&OsStr; ARGS - 1]) -> Result<i32, String> {
    let [_berth, _root, runroot, id, pid, log, max_size, max_file, tty, out, err, input, attach] =
        *args;
    let pid = nix::unistd::Pid::from_raw(num(pid, "pid")?);
    let tty = tty == OsStr::new("1");
    let own = |fd: Option<RawFd>| {
        fd.map(|fd| {
            // SAFETY: berth's monitor put this descriptor here for us, open
            // and owned by nothing else.
            unsafe { OwnedFd::from_raw_fd(fd) }
        })
    };
    let mut streams = Vec::new();
    if let Some(o) = own(fd_arg(out)?) {
        streams.push((o, 0));
    }
    if let Some(e) = own(fd_arg(err)?) {
        streams.push((e, 1));
    }
    let input = own(fd_arg(input)?);
    let socket = socket_path(Path::new(runroot), &id.to_string_lossy());
    let mut server = fd_arg(attach)?.map(|fd| {
        // SAFETY: as above; a listening unix socket.
        unsafe { Server::from_fd(fd, socket) }
    });
    let mut log = Writer::open(
        Path::new(log),
        num(max_size, "max size")?,
        num(max_file, "max file")?,
    )
    .map_err(|e| format!("open log {}: {e}", Path::new(log).display()))?;
    let code = relay(
        pid,
        streams,
        None,
        Some(&mut log),
        &mut LetGoOfCode::default(),
        Clients {
            server: server.as_mut(),
            input,
            tty,
        },
    )
    .map_err(|e| format!("relay: {e}"))?;
    log.flush();
    if let Some(s) = &mut server {
        s.finish(code);
    }
    Ok(code)
}
