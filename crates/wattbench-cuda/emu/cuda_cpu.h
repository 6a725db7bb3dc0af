// A CPU execution model of CUDA, for running our kernels (kernels/*.cu) as they are written,
// without a GPU, in wattbench-cuda's tests. The Hopper GEMM's instructions (mbarriers, TMA,
// wgmma, clusters) are modelled in sm90_cpu.h on top of this.
//
// What it models, and how it looks for bugs a sequential run would hide:
// - Every CUDA thread of a block is a fiber (ucontext) with its own stack; blocks (or the CTAs
//   of one cluster together) run one at a time. Fibers run until they reach __syncthreads, a
//   collective instruction or a failed mbarrier wait, and are resumed in thread order or, with
//   `reverse`, in reverse order: a read that a missing barrier leaves unordered with another
//   thread's write sees the written value in one order and the old one in the other. Static
//   __shared__ arrays are static locals, one per kernel: the CTAs of a cluster must not use
//   them (ours use dynamic shared memory, one allocation per CTA).
// - __syncthreads releases when every thread of the block waits there; a barrier some threads
//   never reach (they exited, or wait at another barrier or collective) is reported, not hung.
// - ldmatrix and mma.sync are warp-collective: the instruction runs once every lane of the warp
//   has reached it (all lanes must reach the same one), with the fragment layouts of the PTX
//   ISA for m8n8.x4(.trans).b16 and m16n8k16.row.col.f32.{bf16,f16}.
// - cp.async copies (outside warp-serial mode) are queued per thread and land at the latest
//   moment PTX allows: when cp.async.wait_group N would otherwise leave more than N committed
//   groups pending. A read of a stage before its wait sees what was there before (dynamic
//   shared memory starts as 0xFF bytes, NaN in every float format).
// - Addresses: cp.async and ldmatrix rows must be 16-byte aligned (checked); float4/float2
//   accesses are checked by UBSan's alignment check; out-of-bounds accesses to buffers, to
//   dynamic shared memory (allocated with exactly the launch's bytes) and to static __shared__
//   arrays by AddressSanitizer, when built with -fsanitize=address,undefined.
//
// - Warp-serial mode (--warp-serial): the same fibers, scheduled warp by warp within each
//   barrier interval: a warp runs, its warp-collective instructions included, until every lane
//   waits at __syncthreads, barrier.cluster, an mbarrier or a warpgroup-collective instruction
//   (or has exited), before the next warp (in warp order, or reverse) starts; and copies land
//   as EARLY as a GPU may: cp.async at issue, and TMA loads at issue (sm90_cpu.h). So one warp
//   runs ahead of the others as far as the barriers allow: a write (or a copy into a stage)
//   that no barrier orders after another warp's read of the same bytes is seen by that read,
//   which the lockstep orders above, one collective instruction per round with copies landing
//   late, never show. The two modes complement each other: a read of a stage before its
//   cp.async.wait_group or mbarrier wait shows only when copies land late.
//
// What it cannot see: the relative timing of real warps beyond these orders, the memory
// model of atomics (they are sequential here), bank conflicts and performance; and a
// misreading of the PTX fragment layouts shared by a kernel and this model.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>
#include <ucontext.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define WB_EMU_ASAN 1
#else
#define WB_EMU_ASAN 0
#endif

#define WB_CPU_EMULATION 1

// CUDA's declaration keywords. Static __shared__ arrays are static locals: one copy per kernel
// function, shared by the threads of the (one) block running. They live in one section of
// their own, which every block start fills with 0xFF bytes (NaN in every float format), as
// dynamic shared memory: a read before the block's own write sees NaN, not the zeros of a
// first block or the tile a previous block left there.
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static __attribute__((section("wb_static_smem")))
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict
#define __grid_constant__
#define __cluster_dims__(...)

typedef unsigned short u16;
typedef unsigned int u32;

struct uint3 {
    unsigned x, y, z;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline float __expf(float x) { return expf(x); }
inline float __uint_as_float(u32 v) {
    float f;
    std::memcpy(&f, &v, 4);
    return f;
}
inline u32 __float_as_uint(float f) {
    u32 v;
    std::memcpy(&v, &f, 4);
    return v;
}

namespace wbemu {

// Stops the emulator with a message naming the kernel, block and thread.
[[noreturn]] void fail(const std::string& what);

enum class State { Runnable, Spinning, AtBarrier, AtClusterBarrier, AtCollective, Done };
// Warp-collective instructions (32 lanes), then warpgroup-collective ones (128 threads).
enum class Collective { None, Ldmatrix, LdmatrixTrans, MmaBf16, MmaF16, Shfl, Wgmma, WgCommit, WgWait };
inline bool warpgroup_wide(Collective c) { return c >= Collective::Wgmma; }

struct Copy {
    void* dst;
    const void* src;
    int bytes;
};

// What one thread gives a wgmma.mma_async: the descriptors, scale-d, the shape and types
// (identical across the warpgroup, checked), and its accumulators.
struct WgmmaArgs {
    unsigned long long da = 0, db = 0;
    unsigned scale_d = 0;
    int n = 0;  // N of m64nNk16
    bool bf16 = false;
    int trans_a = 0, trans_b = 0;
    bool operator==(const WgmmaArgs& o) const {
        return da == o.da && db == o.db && scale_d == o.scale_d && n == o.n && bf16 == o.bf16 &&
               trans_a == o.trans_a && trans_b == o.trans_b;
    }
};

struct Fiber {
    ucontext_t ctx;
    void* stack = nullptr;
    uint3 tid{};
    int cta = 0;  // index of its CTA in the running cluster
    int lin = 0;  // linear thread index in its CTA
    State state = State::Runnable;
    void* fake_stack = nullptr;  // AddressSanitizer's fiber bookkeeping
    // cp.async: committed groups (oldest first) and the open one.
    std::vector<std::vector<Copy>> committed;
    std::vector<Copy> open;
    // The collective this fiber waits at, and its operands (pointers into its own frame).
    Collective coll = Collective::None;
    const void* in0 = nullptr;
    const void* in1 = nullptr;
    void* out = nullptr;
    WgmmaArgs wg;
    int wait_n = 0;
    // The mbarrier a spinning fiber waits on.
    unsigned spin_bar = 0, spin_parity = 0;
};

// An mbarrier: arrivals expected per phase, arrivals still missing, transaction bytes still
// expected (may go below zero when bytes land before their expect_tx), the phase number.
struct MBar {
    int count = 0, pending = 0;
    long long tx = 0;
    unsigned phase = 0;
};

struct WgmmaOp {
    WgmmaArgs a;
    float* acc[128];
    bool first = false;              // no other wgmma of the warpgroup was in flight at issue
    std::vector<float> snapshot;     // the accumulators at issue (when first)
};

struct Warpgroup {
    std::vector<WgmmaOp> open;
    std::vector<std::vector<WgmmaOp>> committed;  // oldest first
    std::vector<std::vector<float>> expect;       // per thread: accumulators as last written
};

struct Cta {
    uint3 idx{};
    unsigned rank = 0;  // in its cluster
    unsigned char* smem = nullptr;
    std::vector<std::pair<unsigned, MBar>> bars;  // by shared address
    std::vector<Warpgroup> wgs;
};

// A TMA tensor map as the emulator encodes it into WbTensorMap's 128 opaque bytes (the plan
// gives what cuTensorMapEncodeTiled is given: 16-bit elements, 128-byte swizzle, zeros
// outside the matrix).
struct TmaMap {
    unsigned long long magic;
    const u16* base;
    unsigned long long rows, cols, ld, box_cols, box_rows;
};
constexpr unsigned long long kTmaMagic = 0x776274656e736f72ull;

struct TmaOp {
    unsigned mask;  // CTAs (cluster ranks) written
    unsigned dst, bar;
    TmaMap map;
    int c0, c1;
};

struct Machine {
    const char* kernel = "";
    uint3 grid{}, block{};
    unsigned cluster = 1;
    bool reverse = false;
    // Warp by warp, copies landing at issue (see the top of this file).
    bool warp_serial = false;
    std::vector<Fiber> fibers;  // every thread of the running cluster, CTA by CTA
    std::vector<Cta> ctas;
    std::vector<TmaOp> tma;  // issued, not landed
    int cur = -1;
    ucontext_t main_ctx;
    const void* main_stack_bottom = nullptr;
    size_t main_stack_size = 0;
    std::function<void()> body;
    unsigned dyn_bytes = 0;
    long long events = 0;  // anything but a failed mbarrier test (deadlock detection)
    long long collectives = 0, barriers = 0, tma_loads = 0, wgmmas = 0;
};

extern Machine M;
constexpr size_t kStackBytes = 256 * 1024;
// Shared-memory address of a CTA's first dynamic byte: 16 bytes past a 1024-byte boundary,
// so that a kernel's own alignment of its buffers is exercised.
constexpr unsigned kSmemBase = 0x410;

inline Fiber& me() { return M.fibers[M.cur]; }
inline Cta& my_cta() { return M.ctas[me().cta]; }

// Suspend the current fiber (it has set its state) and return to the scheduler.
inline void yield() {
    Fiber& f = me();
    if (f.state != State::Spinning) ++M.events;
#if WB_EMU_ASAN
    __sanitizer_start_switch_fiber(f.state == State::Done ? nullptr : &f.fake_stack,
                                   M.main_stack_bottom, M.main_stack_size);
#endif
    swapcontext(&f.ctx, &M.main_ctx);
#if WB_EMU_ASAN
    __sanitizer_finish_switch_fiber(me().fake_stack, nullptr, nullptr);
#endif
}

void thread_exit();

inline void fiber_entry() {
#if WB_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &M.main_stack_bottom, &M.main_stack_size);
#endif
    M.body();
    thread_exit();
    me().state = State::Done;
    yield();
}

inline void syncthreads() {
    me().state = State::AtBarrier;
    ++M.barriers;
    yield();
}

inline void cluster_sync() {
    me().state = State::AtClusterBarrier;
    ++M.barriers;
    yield();
}

inline void collective(Collective kind, const void* in0, const void* in1, void* out) {
    Fiber& f = me();
    f.coll = kind;
    f.in0 = in0;
    f.in1 = in1;
    f.out = out;
    f.state = State::AtCollective;
    yield();
}

inline void check_aligned(const void* p, unsigned align, const char* what) {
    if ((uintptr_t)p % align != 0) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "%s: address %p is not %u-byte aligned", what, p, align);
        fail(buf);
    }
}

inline void* dynamic_smem() { return my_cta().smem; }

// Whether the `len` bytes at `p` lie in this CTA's dynamic shared memory: the only shared
// memory the kernels' ldmatrix and cp.async address (on a GPU, a generic address outside
// shared memory converts to a meaningless shared address: wrong data or a fault).
inline bool in_dynamic_smem(const void* p, size_t len) {
    const uintptr_t b = (uintptr_t)my_cta().smem, q = (uintptr_t)p;
    return b != 0 && q >= b && q - b <= M.dyn_bytes && len <= M.dyn_bytes - (q - b);
}

// The host pointer of `len` bytes at shared address `addr` of CTA `cta` (checked).
unsigned char* smem_at(int cta, unsigned addr, size_t len, const char* what);

// Runs `body` as the kernel `name` over `grid` x `block` threads in clusters of `cluster`
// CTAs (along x) with `smem` bytes of dynamic shared memory per CTA.
void launch(const char* name, uint3 grid, uint3 block, unsigned cluster, unsigned smem,
            std::function<void()> body);

}  // namespace wbemu

#define threadIdx (wbemu::me().tid)
#define blockIdx (wbemu::my_cta().idx)
#define blockDim (wbemu::M.block)
#define gridDim (wbemu::M.grid)

inline void __syncthreads() { wbemu::syncthreads(); }

// Sequential here: one fiber runs at a time.
inline float atomicAdd(float* p, float v) {
    const float old = *p;
    *p = old + v;
    return old;
}

// ---- The section of kernels/common.cuh that is PTX on a GPU (the same names and meaning). ----

inline float wb_f16_to_f32(u16 v) {
    _Float16 h;
    std::memcpy(&h, &v, 2);
    return (float)h;
}

inline u16 wb_f32_to_bf16(float f) {
    if (std::isnan(f)) return 0x7FFF;
    const u32 u = __float_as_uint(f);
    return (u16)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

inline u16 wb_f32_to_f16(float f) {
    const _Float16 h = (_Float16)f;  // round to nearest even
    u16 v;
    std::memcpy(&v, &h, 2);
    return v;
}

inline void wb_cp_async16(void* smem, const void* gmem, int src_bytes) {
    wbemu::check_aligned(smem, 16, "cp.async destination");
    wbemu::check_aligned(gmem, 16, "cp.async source");
    if (!wbemu::in_dynamic_smem(smem, 16)) wbemu::fail("cp.async destination: 16 bytes outside dynamic shared memory");
    if (wbemu::in_dynamic_smem(gmem, 1)) wbemu::fail("cp.async source in shared memory (cp.async.cg reads global memory)");
    if (src_bytes < 0 || src_bytes > 16) wbemu::fail("cp.async: source size outside 0..16");
    if (wbemu::M.warp_serial) {
        // As early as a GPU may land it: at issue.
        if (src_bytes > 0) std::memcpy(smem, gmem, src_bytes);
        std::memset((char*)smem + src_bytes, 0, 16 - src_bytes);
        return;
    }
    wbemu::me().open.push_back({smem, gmem, src_bytes});
}

inline void wb_cp_async_commit() {
    auto& f = wbemu::me();
    f.committed.push_back(std::move(f.open));
    f.open.clear();
}

template <int N>
inline void wb_cp_async_wait() {
    auto& f = wbemu::me();
    while (f.committed.size() > (size_t)N) {
        for (auto& c : f.committed.front()) {
            if (c.bytes > 0) std::memcpy(c.dst, c.src, c.bytes);
            std::memset((char*)c.dst + c.bytes, 0, 16 - c.bytes);
        }
        f.committed.erase(f.committed.begin());
    }
}

inline void wb_ldmatrix_x4(u32 (&r)[4], const u16* p) {
    wbemu::check_aligned(p, 16, "ldmatrix row");
    if (!wbemu::in_dynamic_smem(p, 16)) wbemu::fail("ldmatrix row: 16 bytes outside dynamic shared memory");
    wbemu::collective(wbemu::Collective::Ldmatrix, p, nullptr, r);
}

inline void wb_ldmatrix_x4_trans(u32 (&r)[4], const u16* p) {
    wbemu::check_aligned(p, 16, "ldmatrix row");
    if (!wbemu::in_dynamic_smem(p, 16)) wbemu::fail("ldmatrix row: 16 bytes outside dynamic shared memory");
    wbemu::collective(wbemu::Collective::LdmatrixTrans, p, nullptr, r);
}

template <bool BF16>
inline void wb_mma_m16n8k16(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    const u32 b[2] = {b0, b1};
    wbemu::collective(BF16 ? wbemu::Collective::MmaBf16 : wbemu::Collective::MmaF16, a, b, d);
}

#define WB_DYNAMIC_SMEM(T, name) T* name = reinterpret_cast<T*>(wbemu::dynamic_smem())

// The shared-memory address of `p`, a byte of this CTA's dynamic shared memory.
inline u32 wb_smem_addr(const void* p) {
    const unsigned char* b = wbemu::my_cta().smem;
    const auto off = (const unsigned char*)p - b;
    if (off < 0 || (size_t)off > wbemu::M.dyn_bytes) wbemu::fail("a shared address of memory outside dynamic shared memory");
    return wbemu::kSmemBase + (u32)off;
}

inline u32 __shfl_xor_sync(unsigned mask, u32 v, int lane_mask) {
    if (mask != 0xffffffffu) wbemu::fail("__shfl_xor_sync with a partial mask (not modelled)");
    u32 out;
    wbemu::collective(wbemu::Collective::Shfl, &v, &lane_mask, &out);
    return out;
}
