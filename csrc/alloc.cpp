/* Memory for the kernels: a cache of freed output blocks, and the per-thread
 * scratch buffers (common.h: Scratch, Slot).
 *
 * What: every kernel returns new arrays, and a training step allocates the
 * same large activations and gradients (tens to hundreds of MB) again and
 * again. Fresh memory from the OS arrives as untouched pages that the kernel
 * zero-fills on first write, a large share of a training step (BENCHMARKS.md,
 * "Why the CPU kernels are tuned as they are"). Blocks freed by NumPy (when the last array using them dies)
 * therefore go back to a cache here and are handed out again for the next
 * request of the same size, already mapped. scratch(slot) hands out the
 * calling thread's working buffer of that slot; they only grow, for the same
 * reason.
 * Layout: each block starts with a 64-byte header holding its size; the array
 * data follows, 64-byte aligned. Blocks of 4 MB and more are 2 MB aligned and
 * advised as transparent huge pages (as NumPy does for its own large arrays).
 * Bounds: only arrays of at least kMinBytes use the cache; the free blocks it
 * keeps total at most kMaxCachedBytes (an older block is released to make
 * room); empty_cache() returns them all to the OS, together with the scratch
 * buffers (common.h) of the calling thread and of every thread in the OpenMP
 * pool.
 * Blocks in use are reported to Python's tracemalloc (in NumPy's domain), as
 * NumPy does for its own data, so memory accounting sees these arrays too.
 * Threads: one mutex; the deleter runs when NumPy drops the array (GIL held).
 * Gradients: none.
 */
#include <dlfcn.h>
#include <sys/mman.h>

#include <cstring>
#include <list>
#include <mutex>

#include "common.h"
#include "kernels.h"

namespace fc {

namespace {

constexpr size_t kHeader = 64;
constexpr size_t kMinBytes = 1 << 20;            // smaller arrays: NumPy's own allocator
constexpr size_t kHugeBytes = 4 << 20;           // from here on: 2 MB aligned, huge pages
constexpr size_t kMaxCachedBytes = size_t(4) << 30;  // free memory kept for reuse
constexpr unsigned int kTraceDomain = 389047;        // NumPy's tracemalloc domain

// PyTraceMalloc_Track / _Untrack, looked up in the running interpreter: some
// Python versions declare them without extern "C", so a direct call would link
// against a C++-mangled name that does not exist.
struct TraceHooks {
    using track_t = int (*)(unsigned int, std::uintptr_t, size_t);
    using untrack_t = int (*)(unsigned int, std::uintptr_t);
    track_t track = reinterpret_cast<track_t>(dlsym(RTLD_DEFAULT, "PyTraceMalloc_Track"));
    untrack_t untrack = reinterpret_cast<untrack_t>(dlsym(RTLD_DEFAULT, "PyTraceMalloc_Untrack"));
};

const TraceHooks& trace_hooks() {
    static const TraceHooks hooks;
    return hooks;
}

struct Cache {
    std::mutex mu;
    std::list<std::pair<size_t, void*>> free_blocks;  // most recently freed first
    size_t cached = 0;
    size_t hits = 0, misses = 0;
};

Cache& cache() {
    static Cache* c = new Cache();  // never destroyed: arrays may outlive static teardown
    return *c;
}

size_t round_size(size_t bytes) {
    const size_t unit = bytes >= kHugeBytes ? (size_t(2) << 20) : 4096;
    return (bytes + kHeader + unit - 1) / unit * unit;
}

void* os_alloc(size_t size) {
    void* p = nullptr;
    const size_t align = size >= kHugeBytes ? (size_t(2) << 20) : 4096;
    if (posix_memalign(&p, align, size) != 0) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    if (size >= kHugeBytes) madvise(p, size, MADV_HUGEPAGE);  // a hint; failure is harmless
#endif
    return p;
}

// Block start from the data pointer handed to NumPy, and back.
inline char* block_of(void* data) { return static_cast<char*>(data) - kHeader; }
inline void* data_of(void* block) { return static_cast<char*>(block) + kHeader; }

void release(void* data) {
    if (trace_hooks().untrack) trace_hooks().untrack(kTraceDomain, reinterpret_cast<std::uintptr_t>(data));
    char* block = block_of(data);
    size_t size;
    std::memcpy(&size, block, sizeof(size));
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    c.free_blocks.emplace_front(size, block);
    c.cached += size;
    while (c.cached > kMaxCachedBytes && !c.free_blocks.empty()) {  // drop the oldest
        c.cached -= c.free_blocks.back().first;
        std::free(c.free_blocks.back().second);
        c.free_blocks.pop_back();
    }
}

}  // namespace

Scratch& scratch(Slot slot) {
    thread_local Scratch buffers[kScratchSlots];
    return buffers[static_cast<int>(slot)];
}

std::atomic<size_t>& scratch_bytes() {
    static std::atomic<size_t> bytes{0};
    return bytes;
}

namespace {

template <typename T>
py::array_t<T> new_cached(const std::vector<index_t>& shape) {
    size_t count = 1;
    for (index_t s : shape) count *= static_cast<size_t>(s);
    const std::vector<py::ssize_t> dims(shape.begin(), shape.end());
    if (count * sizeof(T) < kMinBytes) return py::array_t<T>(dims);

    const size_t size = round_size(count * sizeof(T));
    void* block = nullptr;
    {
        Cache& c = cache();
        std::lock_guard<std::mutex> lock(c.mu);
        for (auto it = c.free_blocks.begin(); it != c.free_blocks.end(); ++it)
            if (it->first == size) {
                block = it->second;
                c.cached -= size;
                c.free_blocks.erase(it);
                break;
            }
        ++(block ? c.hits : c.misses);
    }
    if (!block) {
        block = os_alloc(size);
        std::memcpy(block, &size, sizeof(size));
    }
    void* data = data_of(block);
    if (trace_hooks().track)
        trace_hooks().track(kTraceDomain, reinterpret_cast<std::uintptr_t>(data), count * sizeof(T));
    py::capsule owner(data, [](void* p) { release(p); });
    return py::array_t<T>(dims, static_cast<T*>(data), owner);
}

}  // namespace

py::array_t<float> new_float(const std::vector<index_t>& shape) { return new_cached<float>(shape); }

py::array_t<std::int32_t> new_int32(const std::vector<index_t>& shape) {
    return new_cached<std::int32_t>(shape);
}

py::dict cache_info() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    py::dict d;
    d["cached_bytes"] = c.cached;
    d["cached_blocks"] = c.free_blocks.size();
    d["hits"] = c.hits;
    d["misses"] = c.misses;
    d["max_cached_bytes"] = kMaxCachedBytes;
    d["min_block_bytes"] = kMinBytes;
    d["scratch_bytes"] = scratch_bytes().load();
    return d;
}

void empty_cache() {
    {
        Cache& c = cache();
        std::lock_guard<std::mutex> lock(c.mu);
        for (auto& b : c.free_blocks) std::free(b.second);
        c.free_blocks.clear();
        c.cached = 0;
    }
    auto release = [] {
        for (int slot = 0; slot < kScratchSlots; ++slot) scratch(static_cast<Slot>(slot)).release();
    };
    release();  // the calling thread's (it need not be in the pool)
#pragma omp parallel num_threads(largest_team())
    release();  // each pool thread's own (the kernels' panels, bands and planes)
}

}  // namespace fc
