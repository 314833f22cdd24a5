/* launch.c -- run the processes of one measured run and report one line.
 *
 *   bench_launch [--target N] [--timeout SECS] -- CMD ARGS... [--and CMD ARGS...]
 *
 * Makes a stamp file (see stamp.h) holding the target, starts every command
 * with BENCH_STAMP naming it, and waits for all of them. A process that
 * stamps the first message starts the clock; the last exit stops it. When a
 * process exits, the others that nobody has signalled yet get SIGTERM (a host
 * that registered too late to be stopped by the plugin that reached the
 * target). Prints on stdout:
 *
 *   wall_s=<first message .. last exit> cpu_s=<user+system, all processes>
 *   maxrss_kb=<largest peak RSS of one process (the kernel's VmHWM)>
 *
 * and exits 1 when a process failed, no message was stamped, or the timeout
 * (default 600 s) ran out (then everything is killed). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "stamp.h"

enum { MAX_PROCS = BENCH_MAX_PIDS };

static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
}

static void die(const char *msg)
{
    fprintf(stderr, "bench_launch: %s\n", msg);
    exit(1);
}

/* SIGTERM a process unless the plugin already did (it registered and was
 * signalled); mark it signalled so no one sends a second, fatal, signal. */
static void stop_once(bench_stamp_t *st, pid_t pid)
{
    int n = atomic_load(&st->npids);
    for (int i = 0; i < n && i < BENCH_MAX_PIDS; i++) {
        if (atomic_load(&st->pids[i]) == (int32_t)pid) {
            int zero = 0;
            if (atomic_compare_exchange_strong(&st->signalled[i], &zero, 1)) kill(pid, SIGTERM);
            return;
        }
    }
    kill(pid, SIGTERM);
}

int main(int argc, char **argv)
{
    unsigned long long target = 0;
    unsigned timeout = 600;
    char path[] = "/tmp/bench-stamp-XXXXXX";
    pid_t pids[MAX_PROCS];
    const char *names[MAX_PROCS];
    bool exited[MAX_PROCS] = {false};
    int nprocs = 0, alive, failed = 0, i = 1;
    double cpu = 0;
    long maxrss = 0;
    int64_t last_exit = 0;
    bench_stamp_t *st;
    struct sigaction sa;
    int fd;

    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "--target") && i + 1 < argc) target = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            timeout = (unsigned)strtoul(argv[++i], NULL, 10);
        else die("usage: bench_launch [--target N] [--timeout SECS] -- CMD... [--and CMD...]");
    }
    if (i + 1 >= argc) die("no command");

    if ((fd = mkstemp(path)) < 0 || ftruncate(fd, sizeof(bench_stamp_t)) < 0)
        die("cannot make the stamp file");
    close(fd);
    setenv("BENCH_STAMP", path, 1);
    if (!(st = bench_stamp_open())) die("cannot map the stamp file");
    st->target = target;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART: wait4 returns EINTR */
    sigaction(SIGALRM, &sa, NULL);
    alarm(timeout);

    /* argv[i] is "--" or "--and": a command follows, up to the next "--and". */
    while (i < argc) {
        char **cmd = &argv[i + 1];
        int j = i + 1;
        while (j < argc && strcmp(argv[j], "--and")) j++;
        if (j < argc) argv[j] = NULL; /* ends this command; argv[argc] is NULL already */
        if (!cmd[0] || nprocs == MAX_PROCS) die("empty command, or too many");
        pid_t pid = fork();
        if (pid < 0) die("fork failed");
        if (pid == 0) {
            execvp(cmd[0], cmd);
            fprintf(stderr, "bench_launch: cannot run %s: %s\n", cmd[0], strerror(errno));
            _exit(127);
        }
        names[nprocs] = cmd[0];
        pids[nprocs++] = pid;
        i = j;
    }

    for (alive = nprocs; alive > 0;) {
        struct rusage ru;
        int status;
        pid_t pid = wait4(-1, &status, 0, &ru);
        if (pid < 0) {
            if (errno == EINTR && timed_out) {
                fprintf(stderr, "bench_launch: timed out after %u s; killing the run\n", timeout);
                for (int k = 0; k < nprocs; k++)
                    if (!exited[k]) kill(pids[k], SIGKILL);
                failed = 1;
                timed_out = 0;
                continue;
            }
            if (errno == EINTR) continue;
            die("wait4 failed");
        }
        last_exit = bench_now_ns();
        for (int k = 0; k < nprocs; k++) {
            if (pids[k] != pid) continue;
            exited[k] = true;
            alive--;
            cpu += (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
            if (ru.ru_maxrss > maxrss) maxrss = ru.ru_maxrss;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "bench_launch: %s (pid %d) %s %d\n", names[k], (int)pid,
                        WIFEXITED(status) ? "exited with status" : "was killed by signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                failed = 1;
            }
        }
        for (int k = 0; k < nprocs; k++)
            if (!exited[k]) stop_once(st, pids[k]);
    }

    int64_t first = atomic_load(&st->first_ns);
    unlink(path);
    if (!first) {
        fprintf(stderr, "bench_launch: no process saw a message\n");
        failed = 1;
    }
    if (!failed)
        printf("wall_s=%.6f cpu_s=%.3f maxrss_kb=%ld done=%llu\n",
               (double)(last_exit - first) / 1e9, cpu, maxrss,
               (unsigned long long)atomic_load(&st->done));
    bench_stamp_close(st);
    return failed;
}
