/* wake_floor: what a pacing wake costs on this host with no interpreter at all.
 *
 *     wake_floor QUANTUM_US DURATION_S
 *
 * One timerfd in one epoll set, armed QUANTUM_US ahead (absolute CLOCK_MONOTONIC) at
 * every wake, as the pacers of hammer's core and of its Python hammers arm theirs: each
 * wake is epoll_wait, one read of the timerfd, one clock read and one timerfd_settime.
 * Prints one JSON line (the keys of bench/wake_floor.py, plus how late the wakes came):
 *
 *     {"quantum_us": Q, "wakes": N, "wakes_per_s": W, "cpu_s": C, "cpu_us_per_wake": U,
 *      "late_p50_us": .., "late_p99_us": .., "late_p999_us": .., "late_max_us": ..}
 *
 * cpu_s is this process's user + sys time (getrusage). bench/pyhammers.py runs it pinned
 * beside wake_floor.py each round: the difference between the two is the event loop's
 * and Python's share of a wake; this is the kernel's and the hypervisor's.
 *
 * Build: cc -O2 -Wall -Wextra -o wake_floor wake_floor.c (Linux only: epoll, timerfd).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_WAKES 4000000L

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
           + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int by_value(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void arm_at(int fd, int64_t when_ns)
{
    struct itimerspec spec = {0};
    spec.it_value.tv_sec = when_ns / 1000000000LL;
    spec.it_value.tv_nsec = when_ns % 1000000000LL;
    if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL) != 0) {
        perror("timerfd_settime");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: wake_floor QUANTUM_US DURATION_S\n");
        return 2;
    }
    double quantum_us = atof(argv[1]), duration_s = atof(argv[2]);
    if (quantum_us < 1 || duration_s <= 0 || duration_s > 600) {
        fprintf(stderr, "wake_floor: quantum 1 us or more, duration (0, 600] s\n");
        return 2;
    }
    int64_t quantum_ns = (int64_t)(quantum_us * 1000);
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (fd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        perror("wake_floor");
        return 1;
    }
    int64_t *late_ns = malloc(MAX_WAKES * sizeof(int64_t));
    if (late_ns == NULL) {
        perror("malloc");
        return 1;
    }
    long wakes = 0;
    int64_t start = now_ns(), end = start + (int64_t)(duration_s * 1e9);
    double cpu0 = cpu_s();
    int64_t due = start + quantum_ns;
    arm_at(fd, due);
    for (;;) {
        struct epoll_event got;
        uint64_t expirations;
        if (epoll_wait(ep, &got, 1, -1) != 1)
            continue;
        if (read(fd, &expirations, sizeof(expirations)) < 0)
            continue;
        int64_t now = now_ns();
        if (wakes < MAX_WAKES)
            late_ns[wakes] = now - due;
        wakes++;
        if (now >= end)
            break;
        due = now + quantum_ns;
        arm_at(fd, due);
    }
    double cpu = cpu_s() - cpu0, wall_s = (now_ns() - start) / 1e9;
    long n = wakes < MAX_WAKES ? wakes : MAX_WAKES;
    qsort(late_ns, n, sizeof(int64_t), by_value);
    printf("{\"quantum_us\": %.1f, \"wakes\": %ld, \"wakes_per_s\": %.1f, \"cpu_s\": %.6f, "
           "\"cpu_us_per_wake\": %.3f, \"late_p50_us\": %.1f, \"late_p99_us\": %.1f, "
           "\"late_p999_us\": %.1f, \"late_max_us\": %.1f}\n",
           quantum_us, wakes, wakes / wall_s, cpu, cpu / wakes * 1e6, late_ns[n / 2] / 1e3,
           late_ns[n * 99 / 100] / 1e3, late_ns[n * 999 / 1000] / 1e3, late_ns[n - 1] / 1e3);
    free(late_ns);
    return 0;
}
