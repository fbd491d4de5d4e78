// cuda_emulation.hpp: the CUDA device runtime on the CPU, for tests/cuda_emulation.py.
//
// Each fastconv/cuda/*.cu file is compiled as C++ with this header in front of it. A launch
// runs every block of the grid, one after the other, and every block with its real blockDim
// threads. The threads of a block are cooperative fibers on the calling OS thread: a fiber runs
// until it reaches __syncthreads (a barrier across the block) or a warp intrinsic (a meeting
// point of the lanes its mask names), exits, or fails a check; then the scheduler picks the
// next one. So the emulation is deterministic, needs no locks (atomicAdd is a plain
// read-modify-write: nothing runs between a fiber's switches), and does not oversubscribe
// the cores, yet barriers, 32-lane shuffles and per-block shared memory behave as on a GPU.
//
// Between two sync points the threads of a block run in the order the launch asks for:
// ascending thread index, descending, or a seeded random permutation redrawn at every round
// (the blocks of the grid are permuted the same way). A kernel whose result depends on that
// order has a race; tests run the kernels in several orders and compare the results bit for bit.
//
// What is checked (each check ends the launch with an error message, not a crash):
//   * __syncthreads reached by some threads of a block while others exited, or at different
//     lines (divergent barriers: undefined behaviour on a GPU, usually a hang);
//   * warp intrinsics whose mask does not name the calling lane, whose lanes disagree on the
//     intrinsic, mask, width or line, or that deadlock with a barrier;
//   * a block that can make no progress.
// Shared memory: static __shared__ variables live in the section fc_emu_shared and dynamic
// `extern __shared__` arrays (rewritten by tests/cuda_emulation.py) in fc_emu_dyn_smem; both
// are filled with 0xff bytes (NaN as float, -1 as int) before every block, so a read of
// shared memory not written by the same block shows; bytes past the launch's shared_mem are
// checked after each block (a write past the dynamic size is an error). A shuffle that reads
// a lane outside the mask or an exited lane gets the same 0xff poison.

#pragma once

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
#include <sys/mman.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static __attribute__((section("fc_emu_shared")))
#define warpSize 32

struct uint3 { unsigned int x, y, z; };
typedef uint3 dim3;

namespace fcemu {

constexpr int kWarp = 32;
constexpr size_t kStack = 128 * 1024;        // per fiber; a guard page below each
constexpr size_t kDynSmem = 48 * 1024;       // the default limit of shared memory per block

enum State : unsigned char { kRunnable, kBarrier, kWarpWait, kDone };
enum Op : int { kShflIdx, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kSyncWarp };
static const char* const kOpName[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync",
                                      "__shfl_xor_sync", "__ballot_sync", "__any_sync",
                                      "__all_sync", "__syncwarp"};

// ---- context switching: a hand-rolled switch on x86-64 (no signal-mask syscall per switch,
// which swapcontext makes), ucontext elsewhere.
#if defined(__x86_64__)
struct Ctx { void* sp; };
extern "C" void fc_emu_switch(void** save_sp, void* next_sp);
asm(R"(
    .text
    .p2align 4
    .type fc_emu_switch, @function
fc_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size fc_emu_switch, .-fc_emu_switch
)");
static inline void ctx_switch(Ctx* from, Ctx* to) { fc_emu_switch(&from->sp, to->sp); }
static inline void ctx_init(Ctx* c, char* stack, size_t size, void (*entry)())
{
    void** sp = reinterpret_cast<void**>((reinterpret_cast<uintptr_t>(stack + size)) & ~15ull);
    *--sp = nullptr;                            // entry's return address: it never returns
    *--sp = reinterpret_cast<void*>(entry);     // popped by fc_emu_switch's ret
    for (int i = 0; i < 6; ++i) *--sp = nullptr;    // rbp rbx r12 r13 r14 r15
    --sp;
    uint32_t ctl[2];
    asm volatile("stmxcsr %0" : "=m"(ctl[0]));
    asm volatile("fnstcw %0" : "=m"(ctl[1]));
    std::memcpy(sp, ctl, sizeof ctl);
    c->sp = sp;
}
#else
struct Ctx { ucontext_t uc; };
static inline void ctx_switch(Ctx* from, Ctx* to) { swapcontext(&from->uc, &to->uc); }
static inline void ctx_init(Ctx* c, char* stack, size_t size, void (*entry)())
{
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = nullptr;
    makecontext(&c->uc, entry, 0);
}
#endif

struct Thread {
    Ctx ctx;
    State state;
    int site;                 // line of the barrier / warp intrinsic it waits at
    uint3 idx;
    bool arrived;             // waiting at a warp intrinsic, fields below valid
    unsigned mask;
    int op, arg, width;
    uint64_t val, out;
};

// What tests/cuda_emulation.py passes to fc_emu_launch_<kernel> (same layout as its ctypes
// Structure).
struct Config {
    unsigned grid[3], block[3];
    unsigned long long dyn_smem;
    int order;                      // 0 ascending, 1 descending, 2 random
    unsigned long long seed;
};

struct Runtime {
    std::vector<Thread> th;
    int nthreads = 0;
    Thread* cur = nullptr;
    Ctx sched;
    char* stacks = nullptr;
    int nstacks = 0;
    void (*invoke)(void (*)(), void**) = nullptr;
    void (*fn)() = nullptr;
    void** args = nullptr;
    bool failed = false;
    std::string error;
    uint64_t rng = 0;
    int order = 0;
    size_t dyn_size = 0;
};

static Runtime rt;
alignas(16) static unsigned char fc_emu_dyn_smem[kDynSmem];

}  // namespace fcemu

static uint3 blockIdx, blockDim, gridDim;
#define threadIdx (fcemu::rt.cur->idx)

extern "C" char __start_fc_emu_shared[] __attribute__((weak));
extern "C" char __stop_fc_emu_shared[] __attribute__((weak));

namespace fcemu {

static inline int linear_tid(const uint3& i)
{
    return (int)(i.x + blockDim.x * (i.y + blockDim.y * i.z));
}

static void yield() { ctx_switch(&rt.cur->ctx, &rt.sched); }

static void vset_error(const char* fmt, va_list ap)
{
    char buf[768];
    vsnprintf(buf, sizeof buf, fmt, ap);
    char where[96];
    snprintf(where, sizeof where, " [block (%u, %u, %u)]", blockIdx.x, blockIdx.y, blockIdx.z);
    rt.error = std::string(buf) + where;
    rt.failed = true;
}

// An error found by the scheduler: the launch ends when run_block returns false.
static bool set_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static bool set_error(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_error(fmt, ap);
    va_end(ap);
    return false;
}

// An error found inside a thread: its fiber switches back to the scheduler for good.
[[noreturn]] static void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_error(fmt, ap);
    va_end(ap);
    yield();
    std::abort();   // unreachable: the scheduler never resumes a failed fiber
}

static uint64_t next_random()
{
    uint64_t z = (rt.rng += 0x9E3779B97F4A7C15ull);    // splitmix64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void arrange(std::vector<int>& v)
{
    if (rt.order == 1) {
        for (size_t i = 0, j = v.size(); i + 1 < j; ++i, --j) std::swap(v[i], v[j - 1]);
    } else if (rt.order == 2) {
        for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[next_random() % i]);
    }
}

// ---- warp intrinsics: the lanes named in the mask meet; the last to arrive computes every
// lane's result. Lanes that exited (or do not exist in a partial warp) are skipped and read
// as poison.
static bool participates(int t) { return t < rt.nthreads && rt.th[t].state != kDone; }

static uint64_t lane_value(int base, int src, unsigned mask)
{
    const int t = base + src;
    if (src < 0 || src >= kWarp || !((mask >> src) & 1u) || !participates(t))
        return ~0ull;
    return rt.th[t].val;
}

static void try_complete(int base, int lane)
{
    const Thread& a = rt.th[base + lane];
    for (int j = 0; j < kWarp; ++j) {
        if (!((a.mask >> j) & 1u) || !participates(base + j)) continue;
        const Thread& b = rt.th[base + j];
        if (!b.arrived) return;                 // still running (or at a barrier: deadlock)
        if (b.op != a.op || b.mask != a.mask || b.width != a.width ||
            (a.op != kSyncWarp && b.site != a.site))
            fail("warp %d: lane %d is at %s (mask 0x%08x, width %d, line %d) while lane %d is "
                 "at %s (mask 0x%08x, width %d, line %d): the lanes of a mask must execute the "
                 "same intrinsic with the same mask", base / kWarp, lane, kOpName[a.op], a.mask,
                 a.width, a.site, j, kOpName[b.op], b.mask, b.width, b.site);
    }
    uint64_t vote = 0;
    bool any = false, all = true;
    for (int j = 0; j < kWarp; ++j) {
        if (!((a.mask >> j) & 1u) || !participates(base + j)) continue;
        const bool p = rt.th[base + j].val != 0;
        vote |= (uint64_t)p << j;
        any = any || p;
        all = all && p;
    }
    for (int j = 0; j < kWarp; ++j) {
        if (!((a.mask >> j) & 1u) || !participates(base + j)) continue;
        Thread& b = rt.th[base + j];
        const int w = a.width, seg = j & ~(w - 1), arg = b.arg;
        int src = j;
        switch (a.op) {
        case kShflIdx: src = seg + (arg & (w - 1)); break;
        case kShflUp: src = (j - seg) >= arg ? j - arg : j; break;
        case kShflDown: src = (j - seg) + arg < w ? j + arg : j; break;
        case kShflXor: src = j ^ arg; if (src >= seg + w) src = j; break;
        default: break;
        }
        switch (a.op) {
        case kBallot: b.out = vote; break;
        case kAny: b.out = any; break;
        case kAll: b.out = all; break;
        case kSyncWarp: b.out = 0; break;
        default: b.out = src == j ? b.val : lane_value(base, src, a.mask);
        }
        b.arrived = false;
        b.state = kRunnable;
    }
}

template <class T>
static T warp_op(int site, Op op, unsigned mask, T v, int arg, int width)
{
    static_assert(sizeof(T) <= 8, "warp intrinsics exchange at most 8 bytes here");
    Thread* me = rt.cur;
    const int tid = linear_tid(me->idx);
    const int lane = tid % kWarp, base = tid - lane;
    if (!((mask >> lane) & 1u))
        fail("thread %d (lane %d) calls %s at line %d with mask 0x%08x, which does not name it",
             tid, lane, kOpName[op], site, mask);
    if (width < 1 || width > kWarp || (width & (width - 1)))
        fail("%s at line %d: width %d is not a power of two in [1, 32]", kOpName[op], site, width);
    me->val = 0;
    std::memcpy(&me->val, &v, sizeof(T));
    me->mask = mask;
    me->op = op;
    me->arg = arg;
    me->width = width;
    me->site = site;
    me->arrived = true;
    me->state = kWarpWait;
    try_complete(base, lane);
    yield();                   // even when complete: the scheduler decides who runs next
    T out;
    std::memcpy(&out, &me->out, sizeof(T));
    return out;
}

static void syncthreads(int site)
{
    rt.cur->state = kBarrier;
    rt.cur->site = site;
    yield();
}

// ---- the scheduler

static void fiber_main()
{
    rt.invoke(rt.fn, rt.args);
    Thread* me = rt.cur;
    me->state = kDone;
    const int tid = linear_tid(me->idx), base = tid - tid % kWarp;
    for (int j = 0; j < kWarp && base + j < rt.nthreads; ++j)   // lanes waiting for this one
        if (rt.th[base + j].arrived) try_complete(base, j);
    yield();
    std::abort();
}

static bool ensure_stacks(int n)
{
    if (n <= rt.nstacks) return true;
    const size_t page = 4096, total = (size_t)n * (kStack + page);
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
                   MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return set_error("cannot map %d fiber stacks", n);
    for (int i = 0; i < n; ++i)                 // a guard page below each stack
        mprotect(static_cast<char*>(p) + (size_t)i * (kStack + page), page, PROT_NONE);
    if (rt.stacks != nullptr) munmap(rt.stacks, (size_t)rt.nstacks * (kStack + page));
    rt.stacks = static_cast<char*>(p);
    rt.nstacks = n;
    return true;
}

static std::string describe_block()
{
    std::string s;
    for (int t = 0; t < rt.nthreads && s.size() < 400; ++t) {
        const Thread& h = rt.th[t];
        if (h.state == kDone || h.state == kRunnable) continue;
        char buf[96];
        snprintf(buf, sizeof buf, " thread %d at %s line %d;", t,
                 h.state == kBarrier ? "__syncthreads" : kOpName[h.op], h.site);
        s += buf;
    }
    return s;
}

static bool run_block()
{
    if (__start_fc_emu_shared != nullptr)
        std::memset(__start_fc_emu_shared, 0xff, __stop_fc_emu_shared - __start_fc_emu_shared);
    std::memset(fc_emu_dyn_smem, 0xff, sizeof fc_emu_dyn_smem);
    const size_t page = 4096;
    for (int t = 0; t < rt.nthreads; ++t) {
        Thread& h = rt.th[t];
        h.state = kRunnable;
        h.arrived = false;
        h.site = 0;
        h.idx.x = t % blockDim.x;
        h.idx.y = (t / blockDim.x) % blockDim.y;
        h.idx.z = t / (blockDim.x * blockDim.y);
        ctx_init(&h.ctx, rt.stacks + (size_t)t * (kStack + page) + page, kStack, fiber_main);
    }
    std::vector<int> ready;
    ready.reserve(rt.nthreads);
    for (;;) {
        ready.clear();
        for (int t = 0; t < rt.nthreads; ++t)
            if (rt.th[t].state == kRunnable) ready.push_back(t);
        if (ready.empty()) {
            int waiting = 0, done = 0, site = -1;
            bool same_site = true, warp_wait = false;
            for (const Thread& h : rt.th) {
                if (h.state == kDone) { ++done; continue; }
                if (h.state == kWarpWait) warp_wait = true;
                if (site >= 0 && h.site != site) same_site = false;
                site = h.site;
                ++waiting;
            }
            if (waiting == 0) break;                         // every thread returned
            if (warp_wait)
                return set_error("deadlock: no thread can proceed:%s",
                                 describe_block().c_str());
            if (done > 0)
                return set_error("__syncthreads at line %d reached by %d threads of the block "
                                 "while %d exited: every thread of a block must reach each "
                                 "barrier", site, waiting, done);
            if (!same_site)
                return set_error("divergent __syncthreads: threads of one block wait at "
                                 "different barriers:%s", describe_block().c_str());
            for (Thread& h : rt.th) h.state = kRunnable;
            continue;
        }
        arrange(ready);
        for (int t : ready) {
            if (rt.th[t].state != kRunnable) continue;
            rt.cur = &rt.th[t];
            ctx_switch(&rt.sched, &rt.cur->ctx);
            rt.cur = nullptr;
            if (rt.failed) return false;
        }
    }
    for (size_t i = rt.dyn_size; i < sizeof fc_emu_dyn_smem; ++i)
        if (fc_emu_dyn_smem[i] != 0xff)
            return set_error("a write to dynamic shared memory at byte %zu, past the %zu "
                             "bytes the launch asked for", i, rt.dyn_size);
    return true;
}

// Returns 0, or 1 with the message in err.
static int run_grid(const Config* cfg, char* err, size_t errlen)
{
    if (rt.cur != nullptr) {
        snprintf(err, errlen, "the emulated device runs one launch at a time");
        return 1;
    }
    rt.failed = false;
    rt.error.clear();
    rt.order = cfg->order;
    rt.rng = cfg->seed;
    rt.dyn_size = cfg->dyn_smem;
    gridDim = {cfg->grid[0], cfg->grid[1], cfg->grid[2]};
    blockDim = {cfg->block[0], cfg->block[1], cfg->block[2]};
    rt.nthreads = (int)(blockDim.x * blockDim.y * blockDim.z);
    rt.th.assign(rt.nthreads, Thread());
    std::vector<int> blocks((size_t)gridDim.x * gridDim.y * gridDim.z);
    for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = (int)i;
    arrange(blocks);
    if (!ensure_stacks(rt.nthreads)) blocks.clear();
    for (int b : blocks) {
        blockIdx = {b % gridDim.x, (b / gridDim.x) % gridDim.y, b / (gridDim.x * gridDim.y)};
        if (!run_block()) break;
    }
    rt.invoke = nullptr;
    if (!rt.failed) return 0;
    snprintf(err, errlen, "%s", rt.error.c_str());
    return 1;
}

// ---- typed entry points, instantiated per kernel by the epilogue tests/cuda_emulation.py
// appends: the arguments arrive as an array of pointers to values of the parameters' types.

template <class T>
using Bare = typename std::remove_cv<typename std::remove_reference<T>::type>::type;

template <class... A, size_t... I>
static void invoke_with(void (*k)(A...), void** args, std::index_sequence<I...>)
{
    k(*static_cast<Bare<A>*>(args[I])...);
}

template <class... A>
static void invoke(void (*fn)(), void** args)
{
    invoke_with(reinterpret_cast<void (*)(A...)>(fn), args, std::index_sequence_for<A...>());
}

template <class... A>
static int launch(void (*k)(A...), const Config* cfg, void** args, char* err, size_t errlen)
{
    rt.invoke = &invoke<A...>;
    rt.fn = reinterpret_cast<void (*)()>(k);
    rt.args = args;
    return run_grid(cfg, err, errlen);
}

// A parameter's type as the Python side checks it: f4 (float), i4 (int), i8 (long long),
// u8 (unsigned long long), ...; pointers as p:<pointee>.
template <class T> static std::string code()
{
    using B = Bare<T>;
    if (std::is_pointer<B>::value)
        return "p:" + code<typename std::remove_pointer<B>::type>();
    if (std::is_floating_point<B>::value) return "f" + std::to_string(sizeof(B));
    if (std::is_integral<B>::value)
        return (std::is_signed<B>::value ? "i" : "u") + std::to_string(sizeof(B));
    return "?" + std::to_string(sizeof(B));
}
template <> inline std::string code<void>() { return "v"; }
template <> inline std::string code<const void>() { return "v"; }

template <class... A>
static const char* signature(void (*)(A...))
{
    static const std::string s = [] {
        std::string r;
        const std::string parts[] = {code<A>()..., ""};
        for (size_t i = 0; i < sizeof...(A); ++i) r += (i ? " " : "") + parts[i];
        return r;
    }();
    return s.c_str();
}

}  // namespace fcemu

// ---- the device functions the .cu files use

#define __syncthreads() fcemu::syncthreads(__LINE__)
#define __syncwarp(...) fcemu::syncwarp(__LINE__, ##__VA_ARGS__)
#define __shfl_sync(...) fcemu::shfl(__LINE__, fcemu::kShflIdx, __VA_ARGS__)
#define __shfl_up_sync(...) fcemu::shfl(__LINE__, fcemu::kShflUp, __VA_ARGS__)
#define __shfl_down_sync(...) fcemu::shfl(__LINE__, fcemu::kShflDown, __VA_ARGS__)
#define __shfl_xor_sync(...) fcemu::shfl(__LINE__, fcemu::kShflXor, __VA_ARGS__)
#define __ballot_sync(mask, p) fcemu::vote(__LINE__, fcemu::kBallot, mask, p)
#define __any_sync(mask, p) ((int)fcemu::vote(__LINE__, fcemu::kAny, mask, p))
#define __all_sync(mask, p) ((int)fcemu::vote(__LINE__, fcemu::kAll, mask, p))

namespace fcemu {
template <class T>
static inline T shfl(int site, Op op, unsigned mask, T v, int arg, int width = kWarp)
{
    return warp_op<T>(site, op, mask, v, arg, width);
}
static inline unsigned vote(int site, Op op, unsigned mask, int predicate)
{
    return (unsigned)warp_op<uint64_t>(site, op, mask, predicate != 0, 0, kWarp);
}
static inline void syncwarp(int site, unsigned mask = 0xffffffffu)
{
    warp_op<int>(site, kSyncWarp, mask, 0, 0, kWarp);
}
}  // namespace fcemu

// Fibers switch only at sync points, so a plain read-modify-write is atomic here.
template <class T> static inline T atomicAdd(T* p, T v) { T o = *p; *p = o + v; return o; }
template <class T> static inline T atomicMax(T* p, T v) { T o = *p; *p = o > v ? o : v; return o; }
template <class T> static inline T atomicMin(T* p, T v) { T o = *p; *p = o < v ? o : v; return o; }
template <class T> static inline T atomicExch(T* p, T v) { T o = *p; *p = v; return o; }
template <class T> static inline T atomicCAS(T* p, T c, T v)
{ T o = *p; if (o == c) *p = v; return o; }

static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, sizeof f); return f; }
static inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, sizeof i); return i; }
static inline unsigned int __umulhi(unsigned int a, unsigned int b)
{ return (unsigned int)(((unsigned long long)a * (unsigned long long)b) >> 32); }
static inline float fc_emu_rsqrtf(float x) { return 1.0f / std::sqrt(x); }
#define rsqrtf fc_emu_rsqrtf
template <class T> static inline T min(T a, T b) { return a < b ? a : b; }
template <class T> static inline T max(T a, T b) { return a > b ? a : b; }
