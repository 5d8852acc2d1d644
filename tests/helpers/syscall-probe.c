/* Calls the syscalls named on the command line and prints "<name> ok" or
 * "<name> <ERRNO>": lets tests see what a seccomp filter allows from inside
 * a container. Built statically by the tests (cc -static). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>

static long call(const char *name) {
    if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0);
    if (!strcmp(name, "add_key")) return syscall(SYS_add_key, "user", "berth", "v", 1, -3);
    if (!strcmp(name, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, NULL, 0);
    if (!strcmp(name, "unshare_user")) return unshare(CLONE_NEWUSER);
    if (!strcmp(name, "getpid")) return syscall(SYS_getpid);
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
