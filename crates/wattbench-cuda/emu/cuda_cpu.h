// A CPU execution model of CUDA, for running our kernels (gemm.cu, conv.cu, rnn.cu,
// elementwise.cu) as they are written, without a GPU, in wattbench-cuda's tests.
//
// What it models, and how it looks for bugs a sequential run would hide:
// - Every CUDA thread of a block is a fiber (ucontext) with its own stack; blocks run one at a
//   time. Fibers run until they reach __syncthreads or a warp-collective instruction, and are
//   resumed in thread order or, with `reverse`, in reverse order: a read that a missing barrier
//   leaves unordered with another thread's write sees the written value in one order and the
//   old one in the other.
// - __syncthreads releases when every thread of the block waits there; a barrier some threads
//   never reach (they exited, or wait at another barrier or collective) is reported, not hung.
// - ldmatrix and mma.sync are warp-collective: the instruction runs once every lane of the warp
//   has reached it (all lanes must reach the same one), with the fragment layouts of the PTX
//   ISA for m8n8.x4(.trans).b16 and m16n8k16.row.col.f32.{bf16,f16}.
// - cp.async copies are queued per thread and land at the latest moment PTX allows: when
//   cp.async.wait_group N leaves fewer than N newer committed groups pending. A read of a stage
//   before its wait sees what was there before (dynamic shared memory starts as 0xFF bytes,
//   NaN in every float format).
// - Addresses: cp.async and ldmatrix rows must be 16-byte aligned (checked); float4/float2
//   accesses are checked by UBSan's alignment check; out-of-bounds accesses to buffers, to
//   dynamic shared memory (allocated with exactly the launch's bytes) and to static __shared__
//   arrays by AddressSanitizer, when built with -fsanitize=address,undefined.
//
// What it cannot see: the relative timing of real warps beyond the two orders, the memory
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
// function, shared by the threads of the (one) block running.
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict

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

enum class State { Runnable, AtBarrier, AtCollective, Done };
enum class Collective { None, Ldmatrix, LdmatrixTrans, MmaBf16, MmaF16 };

struct Copy {
    void* dst;
    const void* src;
    int bytes;
};

struct Fiber {
    ucontext_t ctx;
    void* stack = nullptr;
    uint3 tid{};
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
};

struct Machine {
    const char* kernel = "";
    uint3 grid{}, block{}, block_idx{};
    bool reverse = false;
    std::vector<Fiber> fibers;
    int cur = -1;
    ucontext_t main_ctx;
    const void* main_stack_bottom = nullptr;
    size_t main_stack_size = 0;
    std::function<void()> body;
    unsigned char* dyn_smem = nullptr;
    unsigned dyn_bytes = 0;
    long long collectives = 0, barriers = 0;
};

extern Machine M;
constexpr size_t kStackBytes = 256 * 1024;

inline Fiber& me() { return M.fibers[M.cur]; }

// Suspend the current fiber (it has set its state) and return to the scheduler.
inline void yield() {
    Fiber& f = me();
#if WB_EMU_ASAN
    __sanitizer_start_switch_fiber(f.state == State::Done ? nullptr : &f.fake_stack,
                                   M.main_stack_bottom, M.main_stack_size);
#endif
    swapcontext(&f.ctx, &M.main_ctx);
#if WB_EMU_ASAN
    __sanitizer_finish_switch_fiber(me().fake_stack, nullptr, nullptr);
#endif
}

inline void fiber_entry() {
#if WB_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &M.main_stack_bottom, &M.main_stack_size);
#endif
    M.body();
    Fiber& f = me();
    // A thread's copies still in flight land before the block ends.
    for (auto& g : f.committed)
        for (auto& c : g) {
            std::memcpy(c.dst, c.src, c.bytes);
            std::memset((char*)c.dst + c.bytes, 0, 16 - c.bytes);
        }
    f.committed.clear();
    f.state = State::Done;
    yield();
}

inline void syncthreads() {
    me().state = State::AtBarrier;
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

inline void* dynamic_smem() { return M.dyn_smem; }

// Runs `body` as the kernel `name` over `grid` x `block` threads with `smem` bytes of dynamic
// shared memory.
void launch(const char* name, uint3 grid, uint3 block, unsigned smem, std::function<void()> body);

}  // namespace wbemu

#define threadIdx (wbemu::me().tid)
#define blockIdx (wbemu::M.block_idx)
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
    if (src_bytes < 0 || src_bytes > 16) wbemu::fail("cp.async: source size outside 0..16");
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
    wbemu::collective(wbemu::Collective::Ldmatrix, p, nullptr, r);
}

inline void wb_ldmatrix_x4_trans(u32 (&r)[4], const u16* p) {
    wbemu::check_aligned(p, 16, "ldmatrix row");
    wbemu::collective(wbemu::Collective::LdmatrixTrans, p, nullptr, r);
}

template <bool BF16>
inline void wb_mma_m16n8k16(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    const u32 b[2] = {b0, b1};
    wbemu::collective(BF16 ? wbemu::Collective::MmaBf16 : wbemu::Collective::MmaF16, a, b, d);
}

#define WB_DYNAMIC_SMEM(T, name) T* name = reinterpret_cast<T*>(wbemu::dynamic_smem())
