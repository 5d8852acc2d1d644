/* Calls the syscalls named on the command line and prints "<name> ok" or
 * "<name> <ERRNO>": lets tests see what a seccomp filter allows from inside
 * a container. Built statically by the tests (cc -static). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* What a debugger does: a child asks to be traced (PTRACE_TRACEME) and
 * stops, the parent reads its memory (PTRACE_PEEKDATA), then kills it.
 * Fails with the errno of whichever step was refused. */
static long trace_child(void) {
    static long word = 0x6265727468;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0) _exit(errno);
        raise(SIGSTOP);
        _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    if (WIFEXITED(st)) {
        errno = WEXITSTATUS(st);
        return -1;
    }
    errno = 0;
    long got = ptrace(PTRACE_PEEKDATA, pid, &word, NULL);
    int err = errno;
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    if (err) {
        errno = err;
        return -1;
    }
    if (got != word) {
        errno = EIO;
        return -1;
    }
    return 0;
}

/* io_uring_setup with one entry; the ring's descriptor is closed again. */
static long uring(void) {
    unsigned char params[120] = {0}; /* struct io_uring_params, zeroed */
    long fd = syscall(SYS_io_uring_setup, 1, params);
    if (fd >= 0) close((int)fd);
    return fd;
}

static long call(const char *name) {
    if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0);
    if (!strcmp(name, "add_key")) return syscall(SYS_add_key, "user", "berth", "v", 1, -3);
    if (!strcmp(name, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, NULL, 0);
    if (!strcmp(name, "unshare_user")) return unshare(CLONE_NEWUSER);
    if (!strcmp(name, "getpid")) return syscall(SYS_getpid);
    if (!strcmp(name, "ptrace_child")) return trace_child();
    if (!strcmp(name, "io_uring_setup")) return uring();
    if (!strcmp(name, "personality_query")) return syscall(SYS_personality, 0xffffffffUL);
    if (!strcmp(name, "personality_norandom")) return syscall(SYS_personality, ADDR_NO_RANDOMIZE);
    if (!strcmp(name, "personality_linux32")) return syscall(SYS_personality, PER_LINUX32);
    errno = EINVAL;
    return -2;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long r = call(argv[i]);
        if (r == -2) { printf("%s unknown-probe\n", argv[i]); continue; }
        if (r < 0) printf("%s %s\n", argv[i], strerrorname_np(errno));
        else printf("%s ok\n", argv[i]);
    }
    return 0;
}
