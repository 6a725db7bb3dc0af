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

__device__ __forceinline__ float wb_sigmoid(float x) {
    return 1.0f / (1.0f + __expf(-x));
}

// tanh with full fp32 accuracy (the fast `tanh.approx` has ~2^-11 relative error, above the
// f32 tolerance once errors compound over recurrent steps).
__device__ __forceinline__ float wb_tanh(float x) {
    return tanhf(x);
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
