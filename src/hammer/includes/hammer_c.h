/* Small C helpers for the Cython core: atomics and exact 128-bit arithmetic.
 * Cython has no C atomics; these wrap GCC's __atomic builtins on plain integers. */
#ifndef HAMMER_C_H
#define HAMMER_C_H

#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/uio.h>

static inline uint64_t hm_load_acquire(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline uint64_t hm_load_relaxed(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void hm_store_release(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void hm_store_relaxed(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline void hm_add_relaxed(uint64_t *p, uint64_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }

/* floor(a * b / c) without overflow, for a, b >= 0 and c > 0 (pacer slot times). */
static inline int64_t hm_muldiv(int64_t a, int64_t b, int64_t c) {
    return (int64_t)(((__int128)a * (__int128)b) / (__int128)c);
}

static inline int64_t hm_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* CLOCK_REALTIME - CLOCK_MONOTONIC, ns: converts the kernel's receive stamps. */
static inline int64_t hm_realtime_offset_ns(void) {
    struct timespec r, m;
    clock_gettime(CLOCK_REALTIME, &r);
    clock_gettime(CLOCK_MONOTONIC, &m);
    return ((int64_t)r.tv_sec - m.tv_sec) * 1000000000LL + (r.tv_nsec - m.tv_nsec);
}

/* read() that also returns when the kernel received the last bytes read (SO_TIMESTAMPNS,
 * CLOCK_REALTIME ns; 0 when the kernel gave no stamp). */
static inline ssize_t hm_read_stamped(int fd, char *buf, size_t len, int64_t *rx_ns) {
    struct iovec iov = { buf, len };
    union { char space[CMSG_SPACE(sizeof(struct timespec))]; struct cmsghdr align; } control;
    struct msghdr msg;
    struct cmsghdr *cm;
    ssize_t n;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.space;
    msg.msg_controllen = sizeof(control.space);
    *rx_ns = 0;
    n = recvmsg(fd, &msg, 0);
    if (n <= 0)
        return n;
    for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            *rx_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        }
    }
    return n;
}

/* floor(a * n / 2**64): maps a uniform 64-bit a onto [0, n) by its high bits. */
static inline uint64_t hm_mulhi64(uint64_t a, uint64_t n) {
    return (uint64_t)(((unsigned __int128)a * n) >> 64);
}

static inline int hm_clz64(uint64_t v) { return v ? __builtin_clzll(v) : 64; }

static inline int hm_popcount64(uint64_t v) { return __builtin_popcountll(v); }

#endif
