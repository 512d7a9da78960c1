/* pyconv_pool.h: the NumPy memory handler (NEP 49) that pyconv's public functions run
   under (_pool.pyx).  Arrays a call allocates -- its output, its workspaces -- come from
   here, and when one of at least PYCONV_POOL_MIN bytes is freed (by the call, or by the
   user dropping the output) its memory is kept, mapped, for the next call, up to
   ``budget`` bytes in at most PYCONV_POOL_SLOTS blocks (the oldest go back to the C
   library first).
   Why: a large array is a fresh mapping whenever the C library has returned the last
   one to the system (glibc does so as soon as any other code's allocations move its
   thresholds, and always under MALLOC_TRIM_THRESHOLD_ as dask's nanny sets it), and each
   of its pages then faults and is zeroed by the kernel at first touch.  Measured on an
   AMD EPYC (2 vCPUs), the depthwise 8x256x56x56 input gradient, float32, 1 thread:
   3.2-3.5 ms per call alone, 6.0-6.2 ms when a PyTorch call ran between two calls (619
   page faults per call), 3.5 with the memory kept.
   Each block carries its capacity in a 16-byte header (NumPy's own allocator gives
   16-byte alignment too), so a block may serve any request of at least 3/4 of it.
   Blocks of 4 MiB or more are marked for transparent huge pages, as NumPy does.
   The handler runs with the GIL held (NumPy allocates and frees array data under it);
   a spin lock still guards the pool, and a forked child starts with it open. */
#ifndef PYCONV_POOL_H
#define PYCONV_POOL_H
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <pthread.h>
#endif

#define PYCONV_POOL_HDR 16
#define PYCONV_POOL_SLOTS 8
#define PYCONV_POOL_MIN ((size_t)1 << 18)

typedef struct { char *base; size_t cap; } pyconv_pool_blk;
static struct {
    pyconv_pool_blk blk[PYCONV_POOL_SLOTS];   /* oldest first */
    int n;
    size_t held, budget;
    unsigned long long hits, misses;
    int lock;
} pyconv_pool;

static void pyconv_pool_lock(void) {
    while (__atomic_exchange_n(&pyconv_pool.lock, 1, __ATOMIC_ACQUIRE)) { }
}
static void pyconv_pool_unlock(void) { __atomic_store_n(&pyconv_pool.lock, 0, __ATOMIC_RELEASE); }
static void pyconv_pool_child(void) { pyconv_pool.lock = 0; }

static void *pyconv_pool_new(size_t size, int zero) {
    if (size > SIZE_MAX - PYCONV_POOL_HDR) return NULL;
    char *base = zero ? (char *)calloc(1, size + PYCONV_POOL_HDR) : (char *)malloc(size + PYCONV_POOL_HDR);
    if (!base) return NULL;
    memcpy(base, &size, sizeof size);
    char *p = base + PYCONV_POOL_HDR;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (size >= ((size_t)1 << 22)) {
        uintptr_t off = 4096u - (uintptr_t)p % 4096u;
        madvise(p + off, size - off, MADV_HUGEPAGE);
    }
#endif
    return p;
}

/* a kept block of size..4/3 size bytes (the smallest), or NULL */
static void *pyconv_pool_take(size_t size) {
    if (size < PYCONV_POOL_MIN || !__atomic_load_n(&pyconv_pool.budget, __ATOMIC_RELAXED)) return NULL;
    char *got = NULL;
    pyconv_pool_lock();
    int best = -1;
    for (int i = 0; i < pyconv_pool.n; i++) {
        size_t c = pyconv_pool.blk[i].cap;
        if (c >= size && c - size <= size / 3 && (best < 0 || c < pyconv_pool.blk[best].cap)) best = i;
    }
    if (best >= 0) {
        got = pyconv_pool.blk[best].base;
        pyconv_pool.held -= pyconv_pool.blk[best].cap;
        for (int i = best + 1; i < pyconv_pool.n; i++) pyconv_pool.blk[i - 1] = pyconv_pool.blk[i];
        pyconv_pool.n--;
        pyconv_pool.hits++;
    } else {
        pyconv_pool.misses++;
    }
    pyconv_pool_unlock();
    return got ? got + PYCONV_POOL_HDR : NULL;
}

static void *pyconv_pool_malloc(void *ctx, size_t size) {
    (void)ctx;
    void *p = pyconv_pool_take(size);
    return p ? p : pyconv_pool_new(size, 0);
}

static void *pyconv_pool_calloc(void *ctx, size_t nelem, size_t elsize) {
    (void)ctx;
    if (elsize && nelem > SIZE_MAX / elsize) return NULL;
    size_t size = nelem * elsize;
    void *p = pyconv_pool_take(size);
    if (p) { memset(p, 0, size); return p; }
    return pyconv_pool_new(size, 1);   /* calloc: fresh pages are zero already */
}

static size_t pyconv_pool_cap(void *p) {
    size_t cap;
    memcpy(&cap, (char *)p - PYCONV_POOL_HDR, sizeof cap);
    return cap;
}

static void pyconv_pool_free(void *ctx, void *p, size_t size) {
    (void)ctx; (void)size;
    if (!p) return;
    char *base = (char *)p - PYCONV_POOL_HDR;
    size_t cap = pyconv_pool_cap(p);
    size_t budget = __atomic_load_n(&pyconv_pool.budget, __ATOMIC_RELAXED);
    if (cap < PYCONV_POOL_MIN || cap > budget) { free(base); return; }
    char *out[PYCONV_POOL_SLOTS + 1];
    int nout = 0;
    pyconv_pool_lock();
    if (pyconv_pool.n == PYCONV_POOL_SLOTS) {
        out[nout++] = pyconv_pool.blk[0].base;
        pyconv_pool.held -= pyconv_pool.blk[0].cap;
        for (int i = 1; i < pyconv_pool.n; i++) pyconv_pool.blk[i - 1] = pyconv_pool.blk[i];
        pyconv_pool.n--;
    }
    pyconv_pool.blk[pyconv_pool.n].base = base;
    pyconv_pool.blk[pyconv_pool.n].cap = cap;
    pyconv_pool.n++;
    pyconv_pool.held += cap;
    while (pyconv_pool.held > budget) {
        out[nout++] = pyconv_pool.blk[0].base;
        pyconv_pool.held -= pyconv_pool.blk[0].cap;
        for (int i = 1; i < pyconv_pool.n; i++) pyconv_pool.blk[i - 1] = pyconv_pool.blk[i];
        pyconv_pool.n--;
    }
    pyconv_pool_unlock();
    for (int i = 0; i < nout; i++) free(out[i]);
}

static void *pyconv_pool_realloc(void *ctx, void *p, size_t size) {
    if (!p) return pyconv_pool_malloc(ctx, size);
    size_t cap = pyconv_pool_cap(p);
    if (size <= cap) return p;
    void *q = pyconv_pool_malloc(ctx, size);
    if (!q) return NULL;
    memcpy(q, p, cap);
    pyconv_pool_free(ctx, p, cap);
    return q;
}

/* every kept block back to the C library; the new budget (0: keep none) */
static void pyconv_pool_set_budget(size_t budget) {
    char *out[PYCONV_POOL_SLOTS];
    int nout = 0;
    pyconv_pool_lock();
    __atomic_store_n(&pyconv_pool.budget, budget, __ATOMIC_RELAXED);
    for (int i = 0; i < pyconv_pool.n; i++) out[nout++] = pyconv_pool.blk[i].base;
    pyconv_pool.n = 0;
    pyconv_pool.held = 0;
    pyconv_pool_unlock();
    for (int i = 0; i < nout; i++) free(out[i]);
}

static void pyconv_pool_stats(size_t *held, int *blocks, size_t *budget, unsigned long long *hits,
                              unsigned long long *misses) {
    pyconv_pool_lock();
    *held = pyconv_pool.held;
    *blocks = pyconv_pool.n;
    *budget = pyconv_pool.budget;
    *hits = pyconv_pool.hits;
    *misses = pyconv_pool.misses;
    pyconv_pool_unlock();
}

#include <numpy/ndarraytypes.h>
static PyDataMem_Handler pyconv_pool_handler = {
    "pyconv_pool", 1,
    {NULL, pyconv_pool_malloc, pyconv_pool_calloc, pyconv_pool_realloc, pyconv_pool_free}
};

static void pyconv_pool_init(void) {
#if defined(__linux__)
    pthread_atfork(NULL, NULL, pyconv_pool_child);
#endif
}
#endif  /* PYCONV_POOL_H */
