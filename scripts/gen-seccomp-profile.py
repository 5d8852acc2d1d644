#!/usr/bin/env python3
"""Writes crates/runtime/profiles/seccomp-default.json: berth's default
seccomp profile, in Docker's profile format (names, actions, args, and
includes/excludes by capability and architecture).

Policy, the same as Docker's: every syscall is allowed except those that
are not namespaced or let a container reach the host; those are denied with
EPERM, some allowed again for a container that holds the capability that
already grants the power. The syscall names come from the kernel's uapi
headers (x86_64, i386, and the generic table arm64 and riscv use), so the
list follows the kernel instead of being typed by hand; each denied group
carries its reason as a "comment" beside it.

Where it follows Docker's current profile (moby master, 2023 on) rather
than 20.10's:
- ptrace, process_vm_readv and process_vm_writev are allowed, as Docker
  allows them on kernels >= 4.8 (before 4.8 a tracer could change a syscall
  after seccomp had checked it). berth needs 5.6 anyway (openat2), so no
  kernel condition is written. Debuggers and strace work in a container;
  ptrace still stops at the container's own processes (pid namespace,
  Yama, same-uid rules), and kcmp and pidfd_getfd stay behind
  CAP_SYS_PTRACE as in Docker.
- io_uring stays denied: Docker 20.10 allowed it, and its current profile
  no longer does (removed in 2023): the operations an io_uring performs are not
  syscalls, so the filter never sees them, and io_uring has had a long run
  of kernel CVEs.

Run it after a kernel-headers update and commit the result."""

import json
import re
import sys
from pathlib import Path

HEADERS = [
    "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
    "/usr/include/x86_64-linux-gnu/asm/unistd_32.h",
    "/usr/include/asm-generic/unistd.h",
]

# Denied unless the container holds the capability: (caps, reason, names).
GATED = [
    (["CAP_SYS_ADMIN"], "mounts, namespaces and filesystem admin: these need CAP_SYS_ADMIN anyway, and the filter keeps them out even if a capability leaks",
     ["mount", "umount", "umount2", "pivot_root", "setns", "unshare", "fsconfig", "fsmount", "fsopen",
      "fspick", "move_mount", "open_tree", "mount_setattr", "quotactl", "quotactl_fd", "swapon",
      "swapoff", "lookup_dcookie", "fanotify_init", "name_to_handle_at", "clone3"]),
    (["CAP_SYS_ADMIN"], "bpf and perf give kernel-wide visibility and code loading", ["bpf", "perf_event_open"]),
    (["CAP_SYS_BOOT"], "reboot and kexec act on the host kernel", ["reboot", "kexec_load", "kexec_file_load"]),
    (["CAP_SYS_MODULE"], "kernel modules are host-wide", ["init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms"]),
    (["CAP_SYS_PTRACE"], "another process's descriptors (pidfd_getfd) and kernel pointers' order (kcmp); userfaultfd stalls the kernel at will, a tool of many exploits (ptrace itself is allowed: see above)", ["kcmp", "pidfd_getfd", "process_madvise", "userfaultfd"]),
    (["CAP_SYS_TIME"], "the clock is not namespaced", ["settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64", "adjtimex"]),
    (["CAP_SYS_NICE"], "NUMA memory policy of the host", ["mbind", "set_mempolicy", "get_mempolicy", "move_pages", "migrate_pages", "set_mempolicy_home_node"]),
    (["CAP_SYS_RAWIO"], "direct I/O port access", ["iopl", "ioperm"]),
    (["CAP_SYS_PACCT"], "process accounting is host-wide", ["acct"]),
    (["CAP_SYS_TTY_CONFIG"], "hangs up the host's terminal", ["vhangup"]),
    (["CAP_SYSLOG"], "the kernel log is not namespaced", ["syslog"]),
    (["CAP_DAC_READ_SEARCH"], "opens files by handle, around path permissions (the 'shocker' escape)", ["open_by_handle_at"]),
]

# Denied for every container.
DENIED = [
    ("the kernel keyring is not namespaced", ["keyctl", "add_key", "request_key"]),
    ("obsolete or old-ABI calls with a history of bugs", ["uselib", "ustat", "sysfs", "_sysctl", "nfsservctl", "vm86", "vm86old", "afs_syscall", "tuxcall", "security", "vserver", "putpmsg", "getpmsg", "lock", "mpx", "prof", "profil", "break", "ftime", "gtty", "stty", "ulimit", "idle", "modify_ldt"]),
    ("io_uring bypasses this filter: its operations are not syscalls (Docker's current profile denies it; 20.10 allowed it)", ["io_uring_setup", "io_uring_enter", "io_uring_register"]),
]

# Allowed only with these argument values: (names, reason, args, caps excluded).
CONDITIONAL = [
    (["personality"], "only the personalities programs really use; others turn off ASLR and more",
     [[{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}] for v in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)]),
    (["clone"], "threads and processes, but no new namespaces (CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP)",
     [[{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]]),
]


def syscall_names():
    names = set()
    for h in HEADERS:
        for m in re.finditer(r"#define __NR3?2?_([a-z0-9_]+)\s", Path(h).read_text()):
            names.add(m.group(1))
    names.discard("syscalls")
    return names


def main():
    names = syscall_names()
    gated = {n for _, _, ns in GATED for n in ns}
    denied = {n for _, ns in DENIED for n in ns}
    conditional = {n for ns, _, _ in CONDITIONAL for n in ns}
    allowed = sorted(names - gated - denied - conditional)
    syscalls = [{
        "comment": "everything that is namespaced or harmless: all syscalls the kernel headers name, less the groups below",
        "names": allowed,
        "action": "SCMP_ACT_ALLOW",
    }]
    for ns, reason, arg_sets in CONDITIONAL:
        for args in arg_sets:
            syscalls.append({"comment": reason, "names": ns, "action": "SCMP_ACT_ALLOW", "args": args,
                             "excludes": {"caps": ["CAP_SYS_ADMIN"]} if ns == ["clone"] else {}})
    syscalls.append({"comment": "with CAP_SYS_ADMIN clone may make namespaces",
                     "names": ["clone", "personality"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}})
    syscalls.append({"comment": "clone3 passes its flags in memory the filter cannot read: ENOSYS makes libc fall back to clone, which is checked",
                     "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}})
    for caps, reason, ns in GATED:
        present = sorted(n for n in ns if n in names)
        if present:
            syscalls.append({"comment": f"denied unless {', '.join(caps)}: {reason}", "names": present,
                             "action": "SCMP_ACT_ALLOW", "includes": {"caps": caps}})
    for reason, ns in DENIED:
        syscalls.append({"comment": f"denied (default action): {reason}",
                         "names": sorted(n for n in ns if n in names), "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    profile = {
        "comment": "berth's default seccomp profile, written by scripts/gen-seccomp-profile.py; Docker's policy",
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
            {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": []},
            {"architecture": "SCMP_ARCH_PPC64LE", "subArchitectures": []},
            {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
        ],
        "syscalls": syscalls,
    }
    out = Path(__file__).resolve().parent.parent / "crates/runtime/profiles/seccomp-default.json"
    out.write_text(json.dumps(profile, indent=1) + "\n")
    print(f"{out}: {len(allowed)} allowed, {len(gated)} gated by capability, {len(denied)} denied", file=sys.stderr)


if __name__ == "__main__":
    main()
