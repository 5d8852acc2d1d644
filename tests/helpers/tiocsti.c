/* Pushes its argument into the input queue of the terminal on fd 0 with
 * TIOCSTI, as a container would to type commands into the user's shell.
 * Prints "TIOCSTI ok" or "TIOCSTI refused: <reason>"; exits 0. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

int main(int argc, char **argv) {
  const char *s = argc > 1 ? argv[1] : "x";
  for (; *s; s++) {
    if (ioctl(0, TIOCSTI, s) < 0) {
      printf("TIOCSTI refused: %s\n", strerror(errno));
      return 0;
    }
  }
  printf("TIOCSTI ok\n");
  return 0;
}
