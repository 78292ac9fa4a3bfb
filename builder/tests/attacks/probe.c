/* Attack probe for kiln's sandbox tests: each sub-command tries one attack from inside a
 * build and prints one line "<attack>: blocked (<reason>)" or "<attack>: SUCCEEDED", or for
 * the "show" commands the value read. Built static (cc -static) so it runs in an empty root. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int result(const char *attack, long rc) {
    if (rc < 0) {
        printf("%s: blocked (%s)\n", attack, strerror(errno));
    } else {
        printf("%s: SUCCEEDED\n", attack);
    }
    return 0;
}

static int open_for(const char *attack, const char *path, int flags) {
    int fd = open(path, flags);
    result(attack, fd);
    if (fd >= 0) close(fd);
    return 0;
}

static int child_fn(void *arg) {
    (void)arg;
    _exit(0);
}

static int clone_newuser(void) {
    static char stack[64 * 1024];
    pid_t pid = clone(child_fn, stack + sizeof stack, CLONE_NEWUSER | SIGCHLD, NULL);
    if (pid > 0) waitpid(pid, NULL, 0);
    return result("clone-newuser", pid);
}

static int show_status(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    if (!f) { perror("status"); return 1; }
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs:", 11) ||
            !strncmp(line, "Seccomp:", 8) || !strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4))
            fputs(line, stdout);
    }
    fclose(f);
    return 0;
}

static int show_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (!d) { perror("opendir"); return 1; }
    printf("fds:");
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d)) continue;
        printf(" %s", e->d_name);
    }
    printf("\n");
    closedir(d);
    return 0;
}

static int show_uid_map(void) {
    char buf[256];
    int fd = open("/proc/self/uid_map", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (n < 0) { perror("uid_map"); return 1; }
    buf[n] = 0;
    printf("uid_map: %s", buf);
    return 0;
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "";
    if (!strcmp(cmd, "ptrace-init")) {
        result("ptrace-attach", ptrace(PTRACE_ATTACH, 1, 0, 0));
        return result("ptrace-seize", ptrace(PTRACE_SEIZE, 1, 0, 0));
    }
    if (!strcmp(cmd, "core-pattern"))
        return open_for("core-pattern", "/proc/sys/kernel/core_pattern", O_WRONLY);
    if (!strcmp(cmd, "sysrq"))
        return open_for("sysrq-trigger", "/proc/sysrq-trigger", O_WRONLY);
    if (!strcmp(cmd, "unshare-user")) return result("unshare-newuser", unshare(CLONE_NEWUSER));
    if (!strcmp(cmd, "clone-user")) return clone_newuser();
    if (!strcmp(cmd, "clone3")) {
        errno = 0;
        long rc = syscall(SYS_clone3, NULL, 0);
        printf("clone3: %s\n", rc < 0 && errno == ENOSYS ? "ENOSYS" : strerror(errno));
        return 0;
    }
    if (!strcmp(cmd, "mount-cgroup2")) {
        mkdir("/tmp/cg", 0755);
        return result("mount-cgroup2", mount("none", "/tmp/cg", "cgroup2", 0, NULL));
    }
    if (!strcmp(cmd, "mount-tmpfs")) {
        mkdir("/tmp/t", 0755);
        return result("mount-tmpfs", mount("none", "/tmp/t", "tmpfs", 0, NULL));
    }
    if (!strcmp(cmd, "keys")) {
        result("add_key", syscall(SYS_add_key, "user", "kiln-probe", "x", 1,
                                  KEY_SPEC_PROCESS_KEYRING));
        return result("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID,
                                        KEY_SPEC_SESSION_KEYRING, 1));
    }
    if (!strcmp(cmd, "perf")) {
        struct perf_event_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.size = sizeof attr;
        attr.type = PERF_TYPE_SOFTWARE;
        attr.config = PERF_COUNT_SW_CPU_CLOCK;
        attr.exclude_kernel = 1;
        return result("perf_event_open", syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
    }
    if (!strcmp(cmd, "packet")) return result("af_packet", socket(AF_PACKET, SOCK_RAW, 0));
    if (!strcmp(cmd, "init-environ"))
        return open_for("init-environ", "/proc/1/environ", O_RDONLY);
    if (!strcmp(cmd, "init-fd")) return open_for("init-fd3", "/proc/1/fd/3", O_WRONLY);
    if (!strcmp(cmd, "kcore")) {
        /* Masked: the sandbox's /dev/null is bound over it, so it reads as empty. */
        char c;
        int fd = open("/proc/kcore", O_RDONLY);
        ssize_t n = fd < 0 ? -1 : read(fd, &c, 1);
        printf("kcore: %s\n", fd < 0 ? "unopenable" : n == 0 ? "empty" : "READABLE");
        return 0;
    }
    if (!strcmp(cmd, "status")) return show_status();
    if (!strcmp(cmd, "fds")) return show_fds();
    if (!strcmp(cmd, "uid-map")) return show_uid_map();
    fprintf(stderr, "usage: probe <attack>\n");
    return 2;
}
