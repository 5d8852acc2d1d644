/* A SysV shared memory probe for the pod tests (crates/berth/tests/pods.rs):
 *   sysv-shm put KEY TEXT   makes segment KEY (decimal) holding TEXT
 *   sysv-shm get KEY        prints what segment KEY holds; exit 2 if the
 *                           IPC namespace has no such segment
 * Two containers sharing a pod's IPC namespace see each other's segments;
 * containers with namespaces of their own do not. busybox has no ipcmk. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: sysv-shm put KEY TEXT | get KEY\n");
        return 64;
    }
    key_t key = (key_t)strtol(argv[2], NULL, 10);
    if (strcmp(argv[1], "put") == 0 && argc == 4) {
        int id = shmget(key, 4096, IPC_CREAT | 0600);
        if (id < 0) {
            perror("shmget");
            return 1;
        }
        char *p = shmat(id, NULL, 0);
        if (p == (void *)-1) {
            perror("shmat");
            return 1;
        }
        strncpy(p, argv[3], 4095);
        return 0;
    }
    if (strcmp(argv[1], "get") == 0) {
        int id = shmget(key, 0, 0);
        if (id < 0) {
            if (errno == ENOENT) {
                fprintf(stderr, "no segment %s\n", argv[2]);
                return 2;
            }
            perror("shmget");
            return 1;
        }
        char *p = shmat(id, NULL, SHM_RDONLY);
        if (p == (void *)-1) {
            perror("shmat");
            return 1;
        }
        printf("%s\n", p);
        return 0;
    }
    fprintf(stderr, "usage: sysv-shm put KEY TEXT | get KEY\n");
    return 64;
}
