# All foreign C the core uses, declared once, nogil.
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint16_t, uint8_t


cdef extern from "hammer_c.h" nogil:
    uint64_t hm_load_acquire(const uint64_t *p)
    uint64_t hm_load_relaxed(const uint64_t *p)
    void hm_store_release(uint64_t *p, uint64_t v)
    void hm_store_relaxed(uint64_t *p, uint64_t v)
    void hm_add_relaxed(uint64_t *p, uint64_t v)
    int64_t hm_muldiv(int64_t a, int64_t b, int64_t c)
    uint64_t hm_mulhi64(uint64_t a, uint64_t n)
    int64_t hm_now_ns()
    int64_t hm_realtime_offset_ns()
    ssize_t hm_read_stamped(int fd, char *buf, size_t len, int64_t *rx_ns)
    int hm_clz64(uint64_t v)
    int hm_popcount64(uint64_t v)


cdef extern from "<errno.h>" nogil:
    int errno
    enum:
        EAGAIN
        EINTR
        EINPROGRESS
        ECONNREFUSED
        ECONNRESET
        EPIPE
        ETIMEDOUT


cdef extern from "<time.h>" nogil:
    struct timespec:
        long tv_sec
        long tv_nsec
    int nanosleep(const timespec *req, timespec *rem)
    int clock_nanosleep(int clockid, int flags, const timespec *request, timespec *remain)
    enum:
        TIMER_ABSTIME
    struct itimerspec:
        timespec it_interval
        timespec it_value
    enum:
        CLOCK_MONOTONIC

cdef extern from "<sys/timerfd.h>" nogil:
    int timerfd_create(int clockid, int flags)
    int timerfd_settime(int fd, int flags, const itimerspec *new_value, itimerspec *old_value)
    enum:
        TFD_NONBLOCK
        TFD_CLOEXEC
        TFD_TIMER_ABSTIME


cdef extern from "<unistd.h>" nogil:
    ssize_t read(int fd, void *buf, size_t count)
    int close(int fd)


cdef extern from "<sys/eventfd.h>" nogil:
    ctypedef uint64_t eventfd_t
    int eventfd(unsigned int initval, int flags)
    int eventfd_write(int fd, eventfd_t value)
    enum:
        EFD_NONBLOCK
        EFD_CLOEXEC


cdef extern from "<sched.h>" nogil:
    int sched_yield()
    struct sched_param:
        int sched_priority
    int sched_setscheduler(int pid, int policy, const sched_param *param)
    enum:
        SCHED_BATCH


cdef extern from "<sys/prctl.h>" nogil:
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
              unsigned long arg5)
    enum:
        PR_SET_TIMERSLACK


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    int socket(int domain, int type, int protocol)
    int connect(int fd, const sockaddr *addr, socklen_t addrlen)
    int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
    int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
    ssize_t send(int fd, const void *buf, size_t len, int flags)
    enum:
        AF_INET
        AF_INET6
        AF_UNIX
        SOCK_STREAM
        SOCK_NONBLOCK
        SOCK_CLOEXEC
        SOL_SOCKET
        SO_ERROR
        SO_TIMESTAMPNS
        MSG_NOSIGNAL


cdef extern from "<netinet/in.h>" nogil:
    enum:
        IPPROTO_TCP
    struct in_addr:
        uint32_t s_addr
    struct sockaddr_in:
        sa_family_t sin_family
        uint16_t sin_port
        in_addr sin_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in6:
        sa_family_t sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id


cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char *src, void *dst)
    uint16_t htons(uint16_t v)


cdef extern from "<sys/un.h>" nogil:
    struct sockaddr_un:
        sa_family_t sun_family
        char sun_path[108]


cdef extern from "<netinet/tcp.h>" nogil:
    enum:
        TCP_NODELAY


cdef extern from "<sys/epoll.h>" nogil:
    union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_pwait2(int epfd, epoll_event *events, int maxevents,
                     const timespec *timeout, const void *sigmask)
    enum:
        EPOLL_CLOEXEC
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLLIN
        EPOLLOUT
        EPOLLERR
        EPOLLHUP
