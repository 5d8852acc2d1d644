//! The CVE-2019-5736 attacker (tests/helpers/exe-attacker.c) and the
//! judgement of what it reports, shared by the runtime's and berth's
//! attack tests.

use std::path::Path;

/// What the script holds: executed by the runtime, it makes the kernel run
/// the runtime's own binary (whatever `/proc/self/exe` is then) inside
/// the container.
pub const SCRIPT: &str = "#!/proc/self/exe\n";

/// Builds the attacker, static, at `dest`.
pub fn build_attacker(dest: &Path) {
    crate::build_helper("exe-attacker", dest);
}

/// Judges an attack on the binary at `bin` (which held `original`): the
/// attacker's `verdict` must be a refusal by a read-only or sealed binary,
/// or by one whose owner, mode and ACL let no process of the container's
/// user namespace write it (EACCES is no passing state, as ETXTBSY is:
/// permissions do not change when the host stops executing the binary);
/// or, when it caught nothing, `ran` (what the exec of the script
/// printed) must show that the interpreter could not be executed at all.
pub fn judge(bin: &Path, original: &[u8], verdict: &str, ran: &str) {
    let verdict = verdict.trim();
    assert!(
        std::fs::read(bin).unwrap() == original,
        "the attack wrote the runtime's binary on the host ({verdict})"
    );
    match verdict.split_once(' ').map_or(verdict, |(w, _)| w) {
        "REFUSED" => assert!(
            verdict.contains("Read-only file system")
                || verdict.contains("Operation not permitted")
                || verdict.contains("Permission denied"),
            "the binary was refused only for now (it would be writable later): {verdict}"
        ),
        "MISSED" => assert!(
            ran.contains("no such file or directory"),
            "the attacker caught nothing, yet the script ran: {ran}"
        ),
        _ => panic!("the attack succeeded: {verdict}"),
    }
}
