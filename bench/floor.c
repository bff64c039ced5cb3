/* floor: the cheapest closed-loop HTTP/1.1 client we can write, as a floor for hammer.
 *
 *     floor HOST PORT PATH CONNECTIONS DURATION_S
 *
 * CONNECTIONS keep-alive connections to HOST:PORT, each with one GET PATH in flight.
 * Every socket is registered once with one epoll set (level-triggered EPOLLIN) and never
 * touched again (no epoll_ctl per request). A readable socket gets one read(); once a
 * whole response has arrived, one write() sends the next request. For a small response
 * (nginx's `return 200 "hello\n"`) that is one read and one write per request.
 *
 * No HTTP parsing in the loop: nginx's response to the same GET is the same size every
 * time (its Date header has a fixed width), so the size is learnt once from a probe
 * request on the first connection (header end + Content-Length) and the loop counts
 * bytes. The deadline is a timerfd in the same epoll set, so the loop reads no clock.
 *
 * After DURATION_S no new request is sent, and the run ends when every in-flight
 * response has arrived (or DRAIN_S later), so nginx's count and ours agree exactly.
 * Output on stdout (bench/run.py, parse_floor):
 *
 *     requests N      responses received (the probe included)
 *     errors N        connections that failed (closed, reset) during the run
 *     seconds S       wall time of the load phase (from the first request after the
 *                     probe to the last response)
 *
 * Exit status: 0, or 1 when it could not start or lost any connection.
 *
 * Build: cc -O2 -Wall -Wextra -o floor floor.c (Linux only: epoll, timerfd).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define RECV_BUF (256 * 1024)   /* shared; what is read is thrown away */
#define DRAIN_S 10              /* wait this long for in-flight responses after the deadline */
#define TIMER_TAG UINT32_MAX    /* epoll data of the timerfd (connections are 0..n-1) */

struct conn {
    int fd;
    size_t got;                 /* bytes of the current response received so far */
};

static char rbuf[RECV_BUF];

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_to(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) != 0)
        die("connect");
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        die("setsockopt TCP_NODELAY");
    return fd;
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("write");
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* One request on a blocking socket; returns the size of the whole response. */
static size_t probe(int fd, const char *req, size_t req_len)
{
    write_all(fd, req, req_len);
    size_t have = 0, total = 0;
    for (;;) {
        ssize_t n = read(fd, rbuf + have, sizeof rbuf - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "floor: the probe response ended early (%zu bytes)\n", have);
            exit(1);
        }
        have += (size_t)n;
        rbuf[have] = '\0';
        if (total == 0) {
            char *end = strstr(rbuf, "\r\n\r\n");
            if (end == NULL) {
                if (have >= sizeof rbuf - 1) {
                    fprintf(stderr, "floor: no header end in %zu bytes\n", have);
                    exit(1);
                }
                continue;
            }
            size_t head = (size_t)(end - rbuf) + 4;
            const char *cl = NULL;
            for (const char *p = rbuf; p < end; p = strstr(p, "\r\n") + 2) {
                if (strncasecmp(p, "content-length:", 15) == 0) {
                    cl = p + 15;
                    break;
                }
            }
            if (strncmp(rbuf, "HTTP/1.1 200 ", 13) != 0 || cl == NULL) {
                fprintf(stderr, "floor: need a 200 response with a Content-Length, got: "
                        "%.200s\n", rbuf);
                exit(1);
            }
            total = head + (size_t)strtoull(cl, NULL, 10);
            if (total >= sizeof rbuf) {
                fprintf(stderr, "floor: response of %zu bytes is too large\n", total);
                exit(1);
            }
        }
        if (have >= total)
            break;
    }
    if (have != total) {
        fprintf(stderr, "floor: %zu bytes after a %zu-byte response\n", have - total, total);
        exit(1);
    }
    return total;
}

static void raise_nofile(long need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit");
    if ((rlim_t)need > rl.rlim_cur) {
        rl.rlim_cur = (rlim_t)need > rl.rlim_max ? rl.rlim_max : (rlim_t)need;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            die("setrlimit");
    }
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT PATH CONNECTIONS DURATION_S\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *port = argv[2], *path = argv[3];
    long nconn = strtol(argv[4], NULL, 10);
    long duration_s = strtol(argv[5], NULL, 10);
    if (nconn < 1 || nconn > 1000000 || duration_s < 1) {
        fprintf(stderr, "floor: CONNECTIONS and DURATION_S must be >= 1\n");
        return 2;
    }

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)strtoul(port, NULL, 10));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "floor: HOST must be an IPv4 address, got %s\n", host);
        return 2;
    }

    char req[1024];
    int req_len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n",
                           path, host, port);
    if (req_len < 0 || (size_t)req_len >= sizeof req) {
        fprintf(stderr, "floor: PATH too long\n");
        return 2;
    }

    raise_nofile(nconn + 16);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    if (conns == NULL)
        die("calloc");

    for (long i = 0; i < nconn; i++)
        conns[i].fd = connect_to(&addr);
    uint64_t completed = 1;
    size_t resp_len = probe(conns[0].fd, req, (size_t)req_len);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (tfd < 0)
        die("timerfd_create");
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = TIMER_TAG};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) != 0)
        die("epoll_ctl timerfd");
    for (long i = 0; i < nconn; i++) {
        if (fcntl(conns[i].fd, F_SETFL, O_NONBLOCK) != 0)
            die("fcntl O_NONBLOCK");
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) != 0)
            die("epoll_ctl");
    }
    double t0 = now_s();
    struct itimerspec its = {.it_value = {.tv_sec = duration_s}};
    if (timerfd_settime(tfd, 0, &its, NULL) != 0)
        die("timerfd_settime");
    for (long i = 0; i < nconn; i++)
        write_all(conns[i].fd, req, (size_t)req_len);

    long in_flight = nconn;     /* connections waiting for a response */
    uint64_t errors = 0;
    int stopping = 0;
    struct epoll_event events[MAX_EVENTS];
    while (in_flight > 0) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            uint32_t id = events[k].data.u32;
            if (id == TIMER_TAG) {
                if (stopping)
                    goto done;              /* the drain timed out */
                stopping = 1;
                its.it_value.tv_sec = DRAIN_S;
                if (timerfd_settime(tfd, 0, &its, NULL) != 0)
                    die("timerfd_settime");
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
                    die("read timerfd");
                continue;
            }
            struct conn *c = &conns[id];
            ssize_t got = read(c->fd, rbuf, sizeof rbuf);
            if (got <= 0) {
                if (got < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                errors++;                   /* closed or reset: drop the connection */
                close(c->fd);               /* also removes it from the epoll set */
                c->fd = -1;
                in_flight--;
                continue;
            }
            c->got += (size_t)got;
            if (c->got < resp_len)
                continue;
            completed += c->got / resp_len;  /* 1: one request in flight per connection */
            c->got %= resp_len;
            if (stopping) {
                in_flight--;
                continue;
            }
            if (write(c->fd, req, (size_t)req_len) != req_len) {
                errors++;                   /* a small write into an idle socket: never partial */
                close(c->fd);
                c->fd = -1;
                in_flight--;
            }
        }
    }
done:;
    double elapsed = now_s() - t0;
    printf("requests %llu\nerrors %llu\nseconds %.6f\n", (unsigned long long)completed,
           (unsigned long long)errors, elapsed);
    return errors ? 1 : 0;
}
