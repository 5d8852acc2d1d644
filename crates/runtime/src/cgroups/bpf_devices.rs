//! Device rules on cgroup v2: an eBPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE attached to the container's cgroup. The
//! kernel runs it on every open or mknod of a device node and allows the
//! access when it returns 1.
//!
//! The program is assembled here from the rules. They are walked in
//! reverse, so the last rule that matches decides, which is how the v1
//! allow and deny lists behave; an access no rule matches is denied.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::devices::Rule;
use crate::error::{Error, Result};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes (linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const MOV64_REG: u8 = 0xbf; // dst = src
const MOV64_IMM: u8 = 0xb7; // dst = imm
const AND32_IMM: u8 = 0x54; // dst &= imm
const RSH32_IMM: u8 = 0x74; // dst >>= imm
const JNE_IMM: u8 = 0x55; // if dst != imm: pc += off
const EXIT: u8 = 0x95;

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }:
// access_type = access << 16 | type.
const TYPE_BLOCK: i32 = 1;
const TYPE_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

// Registers: r1 the context; r2 type, r3 access, r4 major, r5 minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;

fn access_mask(access: &str) -> i32 {
    access.chars().fold(0, |m, c| match c {
        'r' => m | ACC_READ,
        'w' => m | ACC_WRITE,
        'm' => m | ACC_MKNOD,
        _ => m,
    })
}

/// Assembles the program for `rules`.
pub fn assemble(rules: &[Rule]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(MOV64_REG, R3, R2, 0, 0),
        insn(AND32_IMM, R2, 0, 0, 0xffff),
        insn(RSH32_IMM, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        // The checks of one rule; each jumps past the rule when it fails.
        let mut checks: Vec<(u8, u8, i32)> = Vec::new(); // (register, scratch?, value)
        match rule.kind {
            'c' => checks.push((R2, 0, TYPE_CHAR)),
            'b' => checks.push((R2, 0, TYPE_BLOCK)),
            _ => {}
        }
        let mask = access_mask(&rule.access);
        let all = ACC_READ | ACC_WRITE | ACC_MKNOD;
        if let Some(m) = rule.major {
            checks.push((R4, 0, i32::try_from(m).unwrap_or(-1)));
        }
        if let Some(m) = rule.minor {
            checks.push((R5, 0, i32::try_from(m).unwrap_or(-1)));
        }
        // Instructions of the block: 1 per check, 3 for the access check
        // when the rule does not cover all accesses, and 2 to return.
        let access_len = if mask & all == all { 0 } else { 3 };
        let len = checks.len() + access_len + 2;
        let mut pos = 0usize;
        let skip = |pos: usize| i16::try_from(len - pos - 1).unwrap_or(i16::MAX);
        if access_len > 0 {
            // The requested accesses must all be in the rule's:
            // (access & !mask) == 0.
            prog.push(insn(MOV64_REG, R6, R3, 0, 0));
            prog.push(insn(AND32_IMM, R6, 0, 0, !mask & all));
            pos += 2;
            prog.push(insn(JNE_IMM, R6, 0, skip(pos), 0));
            pos += 1;
        }
        for (reg, _, value) in &checks {
            prog.push(insn(JNE_IMM, *reg, 0, skip(pos), *value));
            pos += 1;
        }
        prog.push(insn(MOV64_IMM, R0, 0, 0, i32::from(rule.allow)));
        prog.push(insn(EXIT, 0, 0, 0, 0));
        if len == 2 {
            // A rule that matches everything decides for all that is left;
            // the verifier refuses the unreachable code after it.
            return prog;
        }
    }
    prog.push(insn(MOV64_IMM, R0, 0, 0, 0));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    prog
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

/// BPF_PROG_LOAD of a device program, with the verifier's log in `log`.
fn load(prog: &[Insn], log: Option<&mut Vec<u8>>) -> std::io::Result<OwnedFd> {
    let license = b"Apache-2.0\0";
    // union bpf_attr, the BPF_PROG_LOAD part: prog_type, insn_cnt, insns,
    // license, log_level, log_size, log_buf (then zeros).
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
    attr[4..8].copy_from_slice(&u32::try_from(prog.len()).unwrap_or(u32::MAX).to_ne_bytes());
    attr[8..16].copy_from_slice(&(prog.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    if let Some(log) = log {
        attr[24..28].copy_from_slice(&1u32.to_ne_bytes());
        attr[28..32].copy_from_slice(&u32::try_from(log.len()).unwrap_or(0).to_ne_bytes());
        attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
    }
    // SAFETY: bpf(2) reads `attr` (128 bytes, the size passed) and, through
    // it, the instructions, license and log buffer, all alive until it
    // returns.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, attr.as_ptr(), attr.len()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor from bpf(2).
    Ok(unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).unwrap_or(-1)) })
}

/// Loads the program for `rules` and attaches it to the cgroup `dir`.
pub fn attach(dir: &std::path::Path, rules: &[Rule]) -> Result<()> {
    let prog = assemble(rules);
    // Without a log first: a verifier log that overflows its buffer fails
    // the load. Only a refused program is loaded again, with a log to say
    // why.
    let fd = match load(&prog, None) {
        Ok(fd) => fd,
        Err(e) => {
            let mut log = vec![0u8; 1 << 20];
            let _ = load(&prog, Some(&mut log));
            let msg = String::from_utf8_lossy(&log)
                .trim_end_matches('\0')
                .trim()
                .to_string();
            let tail: String = msg.lines().rev().take(3).collect::<Vec<_>>().join("; ");
            return Err(Error::Security(format!(
                "load the device cgroup program: {e}: {tail}"
            )));
        }
    };
    let prog_fd = fd;
    let cg = super::super::process::fork::open_cgroup(dir)?;
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&cg.as_raw_fd().unsigned_abs().to_ne_bytes());
    attr[4..8].copy_from_slice(&prog_fd.as_raw_fd().unsigned_abs().to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    // SAFETY: as above; the attach part: target_fd, attach_bpf_fd,
    // attach_type, flags 0 (the container's cgroup has no program yet).
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_ATTACH, attr.as_ptr(), attr.len()) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::Security(format!(
            "attach the device cgroup program to {}: {e}",
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on one access, as the kernel would: a tiny
    /// interpreter of exactly the instructions `assemble` emits.
    fn eval(prog: &[Insn], kind: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [((access << 16) | kind) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            match i.code {
                LDX_MEM_W => r[dst] = i64::from(ctx[(i.off / 4) as usize]),
                MOV64_REG => r[dst] = r[src],
                MOV64_IMM => r[dst] = i64::from(i.imm),
                AND32_IMM => r[dst] = i64::from((r[dst] as u32) & (i.imm as u32)),
                RSH32_IMM => r[dst] = i64::from((r[dst] as u32) >> i.imm),
                JNE_IMM => {
                    if (r[dst] as u32) != (i.imm as u32) {
                        pc =
                            usize::try_from(i64::try_from(pc).unwrap() + i64::from(i.off)).unwrap();
                    }
                }
                EXIT => return r[0],
                other => panic!("unknown opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn last_matching_rule_decides() {
        let deny_all: oci_spec::runtime::LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":false,"access":"rwm"}"#).unwrap();
        let rules = super::super::devices::rules(&[deny_all], &[]);
        let prog = assemble(&rules);
        let (r, w, m) = (ACC_READ, ACC_WRITE, ACC_MKNOD);
        assert_eq!(eval(&prog, TYPE_CHAR, r | w, 1, 3), 1, "/dev/null rw");
        assert_eq!(eval(&prog, TYPE_CHAR, r, 136, 7), 1, "pts wildcard minor");
        assert_eq!(eval(&prog, TYPE_BLOCK, r, 8, 0), 0, "a disk");
        assert_eq!(eval(&prog, TYPE_BLOCK, m, 8, 0), 1, "mknod of anything");
        assert_eq!(eval(&prog, TYPE_BLOCK, m | r, 8, 0), 0, "mknod plus read");
        assert_eq!(eval(&prog, TYPE_CHAR, r, 1, 11), 0, "kmsg");
        let allow_all: oci_spec::runtime::LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"access":"rwm"}"#).unwrap();
        let prog = assemble(&super::super::devices::rules(&[allow_all], &[]));
        assert_eq!(eval(&prog, TYPE_BLOCK, r | w, 8, 0), 1, "privileged");
    }
}
