//! What `info` reports of the host and the store: the numbers of
//! containers and images, what the cgroups let berth limit, the kernel,
//! the operating system, the CPUs and memory as docker's daemon reads them
//! (affinity CPUs, /proc/meminfo, /etc/os-release). Cheap: two queries of
//! the store and a few small files, nothing that walks layers.

use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::{Engine, Result, Status};

/// `info`'s facts; front ends lay them out (docker's `types.Info`).
#[derive(Debug)]
pub struct SystemInfo {
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
    pub images: usize,
    /// cgroup v2 (else v1).
    pub cgroup_unified: bool,
    pub cgroups: CgroupSupport,
    pub ip_forward: bool,
    pub bridge_nf_iptables: bool,
    pub bridge_nf_ip6tables: bool,
    /// uname -r and uname -m.
    pub kernel_version: String,
    pub architecture: String,
    /// docker's "Operating System" and os-release's VERSION_ID.
    pub operating_system: String,
    pub os_version: String,
    pub ncpu: usize,
    /// Bytes.
    pub mem_total: i64,
    pub hostname: String,
    /// The store's directory, its links resolved.
    pub root: PathBuf,
    /// The file system holding the store, in docker's graphdriver's words.
    pub backing_fs: String,
    /// A stable id of this store on this machine (docker 20.10's form).
    pub id: String,
    /// Now, as Go's RFC3339Nano prints it.
    pub system_time: String,
    /// Open descriptors and threads of this process.
    pub fds: usize,
    pub threads: usize,
    /// docker's warnings for what the host lacks, in its words.
    pub warnings: Vec<String>,
}

impl Engine {
    /// `info`: the host and the store as docker's daemon reports them.
    pub fn system_info(&self) -> Result<SystemInfo> {
        let images = self.images().list()?.len();
        let (mut running, mut paused, mut stopped) = (0, 0, 0);
        for r in self.list()? {
            // docker's three states; a restarting or starting container
            // is neither running nor paused.
            match r.status {
                Status::Running => running += 1,
                Status::Paused => paused += 1,
                _ => stopped += 1,
            }
        }
        let root = std::fs::canonicalize(self.root()).unwrap_or_else(|_| self.root().to_path_buf());
        let unified =
            berth_runtime::cgroups::host_layout() == berth_runtime::cgroups::Layout::Unified;
        let cgroups = cgroup_support(unified);
        let ip_forward = sysctl_on("/proc/sys/net/ipv4/ip_forward");
        let bridge_nf_iptables = sysctl_on("/proc/sys/net/bridge/bridge-nf-call-iptables");
        let bridge_nf_ip6tables = sysctl_on("/proc/sys/net/bridge/bridge-nf-call-ip6tables");
        let (kernel_version, architecture) = uname();
        let (fds, threads) = process_counts();
        let warnings = warnings(
            &cgroups,
            ip_forward,
            bridge_nf_iptables,
            bridge_nf_ip6tables,
        );
        Ok(SystemInfo {
            running,
            paused,
            stopped,
            images,
            cgroup_unified: unified,
            cgroups,
            ip_forward,
            bridge_nf_iptables,
            bridge_nf_ip6tables,
            kernel_version,
            architecture,
            operating_system: operating_system(),
            os_version: os_release("VERSION_ID").unwrap_or_default(),
            ncpu: ncpu(),
            mem_total: mem_total(),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            backing_fs: backing_fs(&root),
            id: engine_id(&root),
            root,
            system_time: system_time(),
            fds,
            threads,
            warnings,
        })
    }
}

/// What the host lets berth limit, as docker's sysinfo asks the cgroup
/// files; only limits berth has flags for (no kernel memory, no
/// --oom-kill-disable: those stay false).
#[derive(Debug, Default)]
pub struct CgroupSupport {
    pub memory: bool,
    pub swap: bool,
    pub cfs_period: bool,
    pub cfs_quota: bool,
    pub shares: bool,
    pub cpuset: bool,
    pub pids: bool,
}

fn cgroup_support(unified: bool) -> CgroupSupport {
    use berth_runtime::cgroups::{v1, ROOT};
    if unified {
        let controllers =
            std::fs::read_to_string(Path::new(ROOT).join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        // Swap is limited below the root only: asked of our own cgroup,
        // as docker asks of its daemon's.
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_string))
            .unwrap_or_default();
        let own = Path::new(ROOT).join(own.trim_start_matches('/'));
        return CgroupSupport {
            memory: has("memory"),
            swap: has("memory") && own.join("memory.swap.max").exists(),
            cfs_period: has("cpu"),
            cfs_quota: has("cpu"),
            shares: has("cpu"),
            cpuset: has("cpuset"),
            pids: has("pids"),
        };
    }
    let hierarchies = v1::host_hierarchies();
    let file = |controller: &str, name: &str| {
        hierarchies
            .iter()
            .find(|h| h.has(controller))
            .is_some_and(|h| Path::new(&h.mount_point).join(name).exists())
    };
    let mounted = |controller: &str| hierarchies.iter().any(|h| h.has(controller));
    CgroupSupport {
        memory: mounted("memory"),
        swap: file("memory", "memory.memsw.limit_in_bytes"),
        cfs_period: file("cpu", "cpu.cfs_period_us"),
        cfs_quota: file("cpu", "cpu.cfs_quota_us"),
        shares: file("cpu", "cpu.shares"),
        cpuset: mounted("cpuset"),
        pids: mounted("pids"),
    }
}

/// A sysctl that reads `1`.
fn sysctl_on(path: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1")
}

/// docker's warnings for what the host lacks, in its words; only for
/// what berth offers.
fn warnings(
    c: &CgroupSupport,
    ip_forward: bool,
    nf_iptables: bool,
    nf_ip6tables: bool,
) -> Vec<String> {
    let mut w = Vec::new();
    for (ok, text) in [
        (c.memory, "WARNING: No memory limit support"),
        (c.swap, "WARNING: No swap limit support"),
        (c.cfs_quota, "WARNING: No cpu cfs quota support"),
        (c.cfs_period, "WARNING: No cpu cfs period support"),
        (c.shares, "WARNING: No cpu shares support"),
        (c.cpuset, "WARNING: No cpuset support"),
        (ip_forward, "WARNING: IPv4 forwarding is disabled"),
        (nf_iptables, "WARNING: bridge-nf-call-iptables is disabled"),
        (
            nf_ip6tables,
            "WARNING: bridge-nf-call-ip6tables is disabled",
        ),
    ] {
        if !ok {
            w.push(text.to_string());
        }
    }
    w
}

/// A key of /etc/os-release (or /usr/lib/os-release), unquoted.
fn os_release(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .ok()?;
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

/// docker's "Operating System": PRETTY_NAME (`Linux` without one), with
/// " (containerized)" when PID 1 is in a cgroup other than the root or
/// init.scope, which is how docker tells that it runs in a container.
fn operating_system() -> String {
    let mut name = os_release("PRETTY_NAME")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Linux".into());
    let containerized = std::fs::read_to_string("/proc/1/cgroup").is_ok_and(|t| {
        t.lines().any(|l| {
            let path = l.rsplit(':').next().unwrap_or("/");
            path != "/" && path != "/init.scope"
        })
    });
    if containerized {
        name.push_str(" (containerized)");
    }
    name
}

/// The CPUs this process may run on (Go's runtime.NumCPU, which docker
/// reports): the affinity mask, not the machine's count.
fn ncpu() -> usize {
    use nix::sched::{sched_getaffinity, CpuSet};
    match sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .count(),
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// MemTotal of /proc/meminfo, in bytes.
fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let kib = l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
                kib.trim().parse::<i64>().ok()
            })
        })
        .map_or(0, |k| k.saturating_mul(1024))
}

/// The kernel's release and machine (uname -r, uname -m).
fn uname() -> (String, String) {
    // SAFETY: utsname is plain old data; uname fills it and its fields
    // are NUL-terminated strings within the struct.
    let (release, machine) = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return (String::new(), std::env::consts::ARCH.to_string());
        }
        (
            std::ffi::CStr::from_ptr(u.release.as_ptr())
                .to_string_lossy()
                .into_owned(),
            std::ffi::CStr::from_ptr(u.machine.as_ptr())
                .to_string_lossy()
                .into_owned(),
        )
    };
    (release, machine)
}

/// The file system holding the store, named as docker's graphdriver names
/// a backing file system.
fn backing_fs(root: &Path) -> String {
    let Ok(st) = nix::sys::statfs::statfs(root) else {
        return "<unknown>".into();
    };
    // The f_type magic numbers of linux/magic.h that docker names.
    #[allow(clippy::cast_sign_loss)]
    let magic = st.filesystem_type().0 as u64 & 0xffff_ffff;
    match magic {
        0xEF53 => "extfs",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0x6969 => "nfs",
        0x8584_58F6 => "ramfs",
        0x7371_7368 => "squashfs",
        0xF2F5_2010 => "f2fs",
        _ => "<unknown>",
    }
    .into()
}

/// A stable id for this store on this machine, in docker 20.10's form
/// (twelve groups of four base32 characters): the hash of the machine id
/// and the store's path, so nothing has to be written to answer.
fn engine_id(root: &Path) -> String {
    let machine = std::fs::read_to_string("/etc/machine-id")
        .or_else(|_| std::fs::read_to_string("/var/lib/dbus/machine-id"))
        .unwrap_or_default();
    let mut h = sha2::Sha256::new();
    h.update(machine.trim().as_bytes());
    h.update([0]);
    h.update(root.as_os_str().as_encoded_bytes());
    let digest = h.finalize();
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    // 30 bytes are 240 bits: 48 characters of five bits, in fours.
    let mut chars = String::with_capacity(59);
    let (mut acc, mut bits, mut in_group) = (0u64, 0, 0);
    for &b in &digest[..30] {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            if in_group == 4 {
                chars.push(':');
                in_group = 0;
            }
            let i = usize::try_from((acc >> bits) & 31).unwrap_or(0);
            chars.push(char::from(ALPHABET[i]));
            in_group += 1;
        }
    }
    chars
}

/// Now as Go's RFC3339Nano prints it (the fraction without its trailing
/// zeros), in UTC.
fn system_time() -> String {
    let t = time::OffsetDateTime::now_utc();
    let frac = format!("{:09}", t.nanosecond());
    let frac = frac.trim_end_matches('0');
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        if frac.is_empty() { "" } else { "." },
        frac
    )
}

/// Open descriptors and threads of this process (docker reports its
/// daemon's file descriptors and goroutines).
fn process_counts() -> (usize, usize) {
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(1);
    (fds, threads)
}
