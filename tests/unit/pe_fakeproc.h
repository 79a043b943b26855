/*
 * pe_fakeproc.h: start and stop the Python test doubles of tests/fakes from a unit test.
 *
 * A fake prints one line "READY <port> [control=<port>] ..." once it listens; pe_fake_start runs
 * it with its stdout on a pipe, waits for that line (at most 15 s) and returns the ports. The
 * unit test binary runs from the top of the tree (make test-unit), where tests/fakes lives.
 * Header-only (static functions) so a test file needs no extra build rule.
 */
#ifndef PE_FAKEPROC_H
#define PE_FAKEPROC_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/** A running fake. */
typedef struct pe_fake_t {
    pid_t pid;
    int port;
    int control_port;
    char line[256];
} pe_fake_t;

/* Milliseconds on the monotonic clock. */
static inline long long pe_fake_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Start argv (argv[0] is run through python3) and wait for its READY line; 0 or -1. */
static inline int pe_fake_start(pe_fake_t *f, const char *const *argv)
{
    int fds[2], n = 0, i;
    long long end = pe_fake_now_ms() + 15000;
    const char *args[32];
    char *ctl;

    memset(f, 0, sizeof(*f));
    if (pipe(fds) != 0)
        return -1;
    args[0] = "python3";
    for (i = 0; argv[i] && i < 30; i++)
        args[i + 1] = argv[i];
    args[i + 1] = NULL;
    f->pid = fork();
    if (f->pid < 0)
        return -1;
    if (f->pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);

        dup2(fds[1], 1);
        if (devnull >= 0 && !getenv("PE_TEST_VERBOSE"))
            dup2(devnull, 2);
        close(fds[0]);
        close(fds[1]);
        execvp("python3", (char *const *)args);
        _exit(127);
    }
    close(fds[1]);
    while (n < (int)sizeof(f->line) - 1 && pe_fake_now_ms() < end) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        ssize_t r;

        if (poll(&pfd, 1, 200) <= 0)
            continue;
        r = read(fds[0], f->line + n, 1);
        if (r <= 0)
            break;
        if (f->line[n] == '\n') {
            f->line[n] = '\0';
            break;
        }
        n++;
    }
    close(fds[0]);
    if (sscanf(f->line, "READY %d", &f->port) != 1 || f->port <= 0) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
        return -1;
    }
    ctl = strstr(f->line, "control=");
    if (ctl)
        f->control_port = atoi(ctl + 8);
    return 0;
}

/* Stop a fake (SIGTERM, then SIGKILL after 5 s) and reap it. */
static inline void pe_fake_stop(pe_fake_t *f)
{
    long long end = pe_fake_now_ms() + 5000;

    if (f->pid <= 0)
        return;
    kill(f->pid, SIGTERM);
    while (pe_fake_now_ms() < end) {
        if (waitpid(f->pid, NULL, WNOHANG) == f->pid) {
            f->pid = 0;
            return;
        }
        usleep(20000);
    }
    kill(f->pid, SIGKILL);
    waitpid(f->pid, NULL, 0);
    f->pid = 0;
}

/* The integer in a small text file (the canary's --count-file), or -1. */
static inline long pe_fake_read_count(const char *path)
{
    FILE *fp = fopen(path, "r");
    long v = -1;

    if (!fp)
        return -1;
    if (fscanf(fp, "%ld", &v) != 1)
        v = -1;
    fclose(fp);
    return v;
}

/* Whether the tests run under valgrind (timing assertions are then only loose). */
static inline int pe_fake_slow_env(void)
{
    const char *pre = getenv("LD_PRELOAD");

    return (pre && strstr(pre, "vgpreload")) || getenv("PE_TEST_SLOW") != NULL;
}

/** The research fakes: canary on 127.0.0.1, web pages on 127.0.0.2 (redirecting to the canary), search. */
typedef struct pe_fakeset_t {
    pe_fake_t canary, web, search;
    int ok;                /* all three started */
    char dir[64];          /* temporary directory of the canary's count file */
    char count_file[128];  /* the canary's connection count */
} pe_fakeset_t;

/* Start the three fakes; fs->ok says whether all started. */
static inline void pe_fakeset_start(pe_fakeset_t *fs)
{
    char cport[16], wbase[64];

    memset(fs, 0, sizeof(*fs));
    snprintf(fs->dir, sizeof(fs->dir), "/tmp/pe-fakes-XXXXXX");
    if (!mkdtemp(fs->dir))
        return;
    snprintf(fs->count_file, sizeof(fs->count_file), "%s/canary.count", fs->dir);
    {
        const char *a[] = {"tests/fakes/canary.py", "--host", "127.0.0.1", "--port", "0", "--count-file",
                           fs->count_file, NULL};
        if (pe_fake_start(&fs->canary, a) != 0)
            return;
    }
    snprintf(cport, sizeof(cport), "%d", fs->canary.port);
    {
        const char *a[] = {"tests/fakes/fake_web.py", "--host", "127.0.0.2", "--canary-port", cport, NULL};
        if (pe_fake_start(&fs->web, a) != 0)
            return;
    }
    snprintf(wbase, sizeof(wbase), "http://127.0.0.2:%d", fs->web.port);
    {
        const char *a[] = {"tests/fakes/fake_search.py", "--host", "127.0.0.1", "--web-base", wbase, NULL};
        if (pe_fake_start(&fs->search, a) != 0)
            return;
    }
    fs->ok = 1;
}

/* Stop them and remove the count file. */
static inline void pe_fakeset_stop(pe_fakeset_t *fs)
{
    pe_fake_stop(&fs->search);
    pe_fake_stop(&fs->web);
    pe_fake_stop(&fs->canary);
    unlink(fs->count_file);
    rmdir(fs->dir);
}

#endif
