// Shared helpers for every kernel file. Header-free on purpose: NVRTC then needs no CUDA
// include directory, and 16-bit floats travel as raw `unsigned short` bits.
//
// This file is pasted in front of each kernel source by the loader (wattbench-cuda's
// `KernelId::source`), not included with #include, so that one NVRTC program is one string.
#pragma once

typedef unsigned short u16;
typedef unsigned int u32;

#define WB_RESTRICT __restrict__

__device__ __forceinline__ float wb_bf16_to_f32(u16 v) {
    return __uint_as_float(((u32)v) << 16);
}

__device__ __forceinline__ float wb_sigmoid(float x) {
    return 1.0f / (1.0f + __expf(-x));
}

// tanh with full fp32 accuracy (the fast `tanh.approx` has ~2^-11 relative error, above the
// f32 tolerance once errors compound over recurrent steps).
__device__ __forceinline__ float wb_tanh(float x) {
    return tanhf(x);
}

// ---------------------------------------------------------------------------------------------
// The instructions written in PTX, and dynamic shared memory. Everything PTX-specific the
// kernels of gemm.cu, conv.cu, rnn.cu and elementwise.cu use is here, so that the CPU emulator
// of wattbench-cuda's tests (crates/wattbench-cuda/emu) can replace exactly this section with
// its own definitions (it defines WB_CPU_EMULATION); NVRTC compiles it as it stands.
// ---------------------------------------------------------------------------------------------
#ifndef WB_CPU_EMULATION

__device__ __forceinline__ float wb_f16_to_f32(u16 v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));
    return f;
}

// Round to nearest even (sm_80+ instruction).
__device__ __forceinline__ u16 wb_f32_to_bf16(float f) {
    u16 r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));
    return r;
}

__device__ __forceinline__ u16 wb_f32_to_f16(float f) {
    u16 r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(f));
    return r;
}

__device__ __forceinline__ u32 wb_smem_addr(const void* p) {
    return (u32)__cvta_generic_to_shared(p);
}

// 16-byte asynchronous global->shared copy; `src_bytes` < 16 zero-fills the rest (0 = all zero).
__device__ __forceinline__ void wb_cp_async16(void* smem, const void* gmem, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(wb_smem_addr(smem)),
                 "l"(gmem), "r"(src_bytes));
}

__device__ __forceinline__ void wb_cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}

template <int N>
__device__ __forceinline__ void wb_cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// ldmatrix: four 8x8 matrices of 16-bit values from shared memory, one 16-byte row per lane
// (lanes 8j..8j+7 address matrix j's rows); register j of lane l holds matrix j's row l/4,
// columns 2(l%4) and 2(l%4)+1 (`_trans`: the transposed matrix's).
__device__ __forceinline__ void wb_ldmatrix_x4(u32 (&r)[4], const u16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(wb_smem_addr(p)));
}

__device__ __forceinline__ void wb_ldmatrix_x4_trans(u32 (&r)[4], const u16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(wb_smem_addr(p)));
}

// d += A·B on one warp's fragments of a 16x16 (row-major) A and a 16x8 (column-major) B of
// bf16 (BF16) or f16 values, fp32 accumulators.
template <bool BF16>
__device__ __forceinline__ void wb_mma_m16n8k16(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    if (BF16) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

// A kernel's dynamic shared memory (its size is the launch's), 16-byte aligned.
#define WB_DYNAMIC_SMEM(T, name) extern __shared__ __align__(16) T name[]

#endif  // WB_CPU_EMULATION
