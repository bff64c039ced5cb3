# Latency histograms with the HdrHistogram bucket layout (unit_magnitude 0: values in ns,
# lowest discernible value 1). Recording never allocates. Counts can be copied into an
# `hdrh` histogram created with the same (lowest, highest, significant figures).

cdef struct Hist:
    int64_t highest_trackable
    int32_t sub_bucket_half_count_magnitude
    int32_t sub_bucket_half_count
    int64_t sub_bucket_mask
    int32_t sub_bucket_count
    int32_t bucket_count
    int32_t counts_len
    int64_t total_count
    int64_t min_value
    int64_t max_value
    double sum_value
    int64_t clamped          # values above highest_trackable, recorded as highest_trackable
    int64_t *counts


cdef int hist_init(Hist *h, int64_t highest_trackable, int significant_figures) noexcept nogil:
    cdef int64_t largest_single_unit = 2
    cdef int i
    for i in range(significant_figures):
        largest_single_unit *= 10
    cdef int32_t sub_bucket_count_magnitude = 0
    while (<int64_t>1 << sub_bucket_count_magnitude) < largest_single_unit:
        sub_bucket_count_magnitude += 1
    h.sub_bucket_half_count_magnitude = (sub_bucket_count_magnitude - 1) if sub_bucket_count_magnitude > 1 else 0
    h.sub_bucket_count = <int32_t>1 << (h.sub_bucket_half_count_magnitude + 1)
    h.sub_bucket_half_count = h.sub_bucket_count // 2
    h.sub_bucket_mask = <int64_t>h.sub_bucket_count - 1
    h.highest_trackable = highest_trackable
    cdef int64_t smallest_untrackable = <int64_t>h.sub_bucket_count
    cdef int32_t buckets = 1
    while smallest_untrackable <= highest_trackable:
        if smallest_untrackable > (<int64_t>0x7FFFFFFFFFFFFFFF) // 2:
            buckets += 1
            break
        smallest_untrackable <<= 1
        buckets += 1
    h.bucket_count = buckets
    h.counts_len = (buckets + 1) * h.sub_bucket_half_count
    h.counts = <int64_t *>calloc(h.counts_len, sizeof(int64_t))
    if h.counts == NULL:
        return -1
    hist_reset(h)
    return 0


cdef void hist_free(Hist *h) noexcept nogil:
    free(h.counts)
    h.counts = NULL


cdef void hist_reset(Hist *h) noexcept nogil:
    memset(h.counts, 0, h.counts_len * sizeof(int64_t))
    h.total_count = 0
    h.min_value = 0x7FFFFFFFFFFFFFFF
    h.max_value = 0
    h.sum_value = 0
    h.clamped = 0


cdef inline int32_t hist_bucket_index(const Hist *h, int64_t value) noexcept nogil:
    cdef int32_t pow2ceiling = 64 - hm_clz64(<uint64_t>(value | h.sub_bucket_mask))
    return pow2ceiling - (h.sub_bucket_half_count_magnitude + 1)


cdef inline int32_t hist_index(const Hist *h, int64_t value) noexcept nogil:
    cdef int32_t bucket_index = hist_bucket_index(h, value)
    cdef int32_t sub_bucket_index = <int32_t>(value >> bucket_index)
    return ((bucket_index + 1) << h.sub_bucket_half_count_magnitude) + (
        sub_bucket_index - h.sub_bucket_half_count)


cdef inline void hist_record(Hist *h, int64_t value) noexcept nogil:
    if value < 0:
        value = 0
    if value > h.highest_trackable:
        value = h.highest_trackable
        h.clamped += 1
    h.counts[hist_index(h, value)] += 1
    h.total_count += 1
    h.sum_value += <double>value
    if value < h.min_value:
        h.min_value = value
    if value > h.max_value:
        h.max_value = value


cdef inline int64_t hist_value_from_index(const Hist *h, int32_t index) noexcept nogil:
    cdef int32_t bucket_index = (index >> h.sub_bucket_half_count_magnitude) - 1
    cdef int32_t sub_bucket_index = (index & (h.sub_bucket_half_count - 1)) + h.sub_bucket_half_count
    if bucket_index < 0:
        sub_bucket_index -= h.sub_bucket_half_count
        bucket_index = 0
    return (<int64_t>sub_bucket_index) << bucket_index


cdef inline int64_t hist_highest_equivalent(const Hist *h, int64_t value) noexcept nogil:
    cdef int32_t bucket_index = hist_bucket_index(h, value)
    cdef int32_t sub_bucket_index = <int32_t>(value >> bucket_index)
    cdef int32_t adjusted = bucket_index + 1 if sub_bucket_index >= h.sub_bucket_count else bucket_index
    cdef int64_t lowest = (<int64_t>sub_bucket_index) << bucket_index
    return lowest + ((<int64_t>1) << adjusted) - 1


cdef int64_t hist_value_at_percentile(const Hist *h, double percentile) noexcept nogil:
    """HdrHistogram's rule: the highest value equivalent to the bucket holding the
    ceil-rounded count at `percentile`; exact min and max at the ends."""
    if h.total_count == 0:
        return 0
    if percentile >= 100.0:
        return h.max_value
    if percentile <= 0.0:
        return h.min_value
    cdef int64_t wanted = <int64_t>((percentile / 100.0) * h.total_count + 0.5)
    if wanted < 1:
        wanted = 1
    cdef int64_t seen = 0
    cdef int32_t i
    cdef int64_t v
    for i in range(h.counts_len):
        seen += h.counts[i]
        if seen >= wanted:
            v = hist_highest_equivalent(h, hist_value_from_index(h, i))
            return v if v < h.max_value else h.max_value
    return h.max_value


cdef void hist_add(Hist *dst, const Hist *src) noexcept nogil:
    cdef int32_t i
    for i in range(src.counts_len):
        dst.counts[i] += src.counts[i]
    dst.total_count += src.total_count
    dst.sum_value += src.sum_value
    dst.clamped += src.clamped
    if src.total_count:
        if src.min_value < dst.min_value:
            dst.min_value = src.min_value
        if src.max_value > dst.max_value:
            dst.max_value = src.max_value


cdef list hist_nonzero(const Hist *h):
    """[(lowest value of bucket, count)] for every non-empty bucket."""
    cdef int32_t i
    out = []
    for i in range(h.counts_len):
        if h.counts[i]:
            out.append((hist_value_from_index(h, i), h.counts[i]))
    return out


cdef dict hist_state(const Hist *h):
    """What a saved report keeps of a histogram to rebuild it exactly: the counts array
    as bytes (int64, HdrHistogram's layout: Histogram.add_counts takes it back), the exact
    min, max, sum and clamped count."""
    return {"raw": (<const char *>h.counts)[:h.counts_len * 8],
            "total": h.total_count, "min_ns": h.min_value if h.total_count else 0,
            "max_ns": h.max_value, "sum_ns": h.sum_value, "clamped": h.clamped}


cdef dict hist_summary_ms(const Hist *h):
    """min, mean, p50, p90, p99, p99.9, max in milliseconds (None when empty)."""
    keys = ("min", "mean", "p50", "p90", "p99", "p99.9", "max")
    if h.total_count == 0:
        return dict.fromkeys(keys)
    return {
        "min": h.min_value / 1e6,
        "mean": h.sum_value / h.total_count / 1e6,
        "p50": hist_value_at_percentile(h, 50.0) / 1e6,
        "p90": hist_value_at_percentile(h, 90.0) / 1e6,
        "p99": hist_value_at_percentile(h, 99.0) / 1e6,
        "p99.9": hist_value_at_percentile(h, 99.9) / 1e6,
        "max": h.max_value / 1e6,
    }


cdef class Histogram:
    """A Python view of one core histogram (values in ns)."""

    cdef Hist h

    def __cinit__(self, int64_t highest_trackable=HIST_HIGHEST_NS,
                  int significant_figures=HIST_SIGNIFICANT_FIGURES):
        if hist_init(&self.h, highest_trackable, significant_figures) != 0:
            raise MemoryError()

    def __dealloc__(self):
        hist_free(&self.h)

    def record(self, int64_t value_ns) -> None:
        hist_record(&self.h, value_ns)

    def add_counts(self, const unsigned char[::1] raw, int64_t min_ns, int64_t max_ns,
                   double sum_ns, int64_t clamped=0) -> None:
        """Add a whole counts array of the same layout (an hdrh histogram's `counts`, made
        with the same lowest, highest and significant figures, as bytes of uint64), and
        merge the exact min, max, sum and clamped count saved beside it."""
        cdef const int64_t *src
        cdef int32_t i
        cdef int64_t added = 0
        if raw.shape[0] != <Py_ssize_t>self.h.counts_len * 8:
            raise ValueError(f"counts of {raw.shape[0] // 8} buckets, not "
                             f"{self.h.counts_len}: another histogram layout")
        src = <const int64_t *>&raw[0]
        for i in range(self.h.counts_len):
            if src[i] < 0:
                raise ValueError("negative count")
            self.h.counts[i] += src[i]
            added += src[i]
        if added == 0:
            return
        self.h.total_count += added
        self.h.sum_value += sum_ns
        self.h.clamped += clamped
        if min_ns < self.h.min_value:
            self.h.min_value = min_ns
        if max_ns > self.h.max_value:
            self.h.max_value = max_ns

    @property
    def sum(self) -> float:
        return self.h.sum_value

    def value_at_percentile(self, double percentile) -> int:
        return hist_value_at_percentile(&self.h, percentile)

    @property
    def total_count(self) -> int:
        return self.h.total_count

    @property
    def min(self) -> int:
        return self.h.min_value if self.h.total_count else 0

    @property
    def max(self) -> int:
        return self.h.max_value

    @property
    def mean(self) -> float:
        return self.h.sum_value / self.h.total_count if self.h.total_count else 0.0

    @property
    def clamped(self) -> int:
        return self.h.clamped

    def nonzero_counts(self) -> list:
        """[(lowest value of bucket, count)] for every non-empty bucket."""
        return hist_nonzero(&self.h)

    def state(self) -> dict:
        """raw (the counts array as bytes), total, min_ns, max_ns, sum_ns, clamped."""
        return hist_state(&self.h)

    def summary_ms(self) -> dict:
        """min, mean, p50, p90, p99, p99.9, max in milliseconds (None when empty)."""
        return hist_summary_ms(&self.h)
