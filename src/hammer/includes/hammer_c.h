/* Small C helpers for the Cython core: atomics and exact 128-bit arithmetic.
 * Cython has no C atomics; these wrap GCC's __atomic builtins on plain integers. */
#ifndef HAMMER_C_H
#define HAMMER_C_H

#include <stdint.h>
#include <time.h>

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

/* floor(a * n / 2**64): maps a uniform 64-bit a onto [0, n) by its high bits. */
static inline uint64_t hm_mulhi64(uint64_t a, uint64_t n) {
    return (uint64_t)(((unsigned __int128)a * n) >> 64);
}

static inline int hm_clz64(uint64_t v) { return v ? __builtin_clzll(v) : 64; }

#endif
