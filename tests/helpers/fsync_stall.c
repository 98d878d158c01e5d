/* LD_PRELOAD shim that makes every fsync slow, to show which thread waits for the disk.
 *
 * fsync, fdatasync and sync_file_range sleep FSYNC_STALL_MS milliseconds
 * (default 200) and then call the real function. With FSYNC_STALL_LOG set to
 * a path, each call appends "tid pid fd ms" to it with one O_APPEND write (no
 * fsync of its own), so a test can tell the audio thread (tid == pid for the
 * main thread) from a writer thread.
 *
 * Built at test time: cc -shared -fPIC -O2 -o fsync_stall.so fsync_stall.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void stall(int fd)
{
    const char *env = getenv("FSYNC_STALL_MS");
    long ms = env && *env ? strtol(env, NULL, 10) : 200;
    int saved = errno;
    if (ms > 0) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
            ;
    }
    const char *log = getenv("FSYNC_STALL_LOG");
    if (log && *log) {
        char line[96];
        int n = snprintf(line, sizeof line, "%ld %ld %d %ld\n",
                         (long)syscall(SYS_gettid), (long)getpid(), fd, ms);
        int lfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (lfd >= 0) {
            if (write(lfd, line, (size_t)n) < 0) { /* a lost log line is no reason to fail the fsync */ }
            close(lfd);
        }
    }
    errno = saved;
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    stall(fd);
    return real(fd);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    stall(fd);
    return real(fd);
}

int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags)
{
    static int (*real)(int, off64_t, off64_t, unsigned int);
    if (!real)
        real = (int (*)(int, off64_t, off64_t, unsigned int))dlsym(RTLD_NEXT, "sync_file_range");
    stall(fd);
    return real(fd, offset, nbytes, flags);
}
