// Test-only kernels with planted races, for the emulator's own tests (emulator.rs): they show
// that warp-serial mode catches hazards the lockstep orders cannot. No plan of the crate
// launches them. One block of 64 threads (two warps), `tiles` >= 3, 2 x 256 floats of dynamic
// shared memory; `in` holds 256 * tiles floats, `out` 64 * tiles + 64.
//
// - A two-stage cp.async pipeline over `tiles` tiles of 256 floats: each thread copies one
//   16-byte chunk of a tile, then sums the chunk a thread of the other warp copied into
//   out[64 i + t]. `variant` 1 leaves out the barrier that ends the reads of a tile, so the copy
//   of tile i + 2 into the stage of tile i may land while the other warp still reads it.
// - An exchange: each thread reads the slot of a thread of the other warp, adds its lane
//   neighbour's value (a shuffle) and writes the sum into its own slot, then out[64 tiles + t]
//   is its slot. `variant` 2 leaves out the barrier between the reads and the writes, so one
//   warp may overwrite slots before the other warp has read them.
__global__ void wb_test_planted_race(const float* __restrict__ in, float* __restrict__ out, int tiles,
                                     int variant) {
    WB_DYNAMIC_SMEM(float, stage);
    const int t = threadIdx.x, other = 4 * ((t + 32) % 64);
    wb_cp_async16(stage + 4 * t, in + 4 * t, 16);
    wb_cp_async_commit();
    for (int i = 0; i < tiles; ++i) {
        if (i + 1 < tiles) wb_cp_async16(stage + 256 * ((i + 1) % 2) + 4 * t, in + 256 * (i + 1) + 4 * t, 16);
        wb_cp_async_commit();
        wb_cp_async_wait<1>();
        __syncthreads();
        const float* c = stage + 256 * (i % 2) + other;
        out[64 * i + t] = c[0] + c[1] + c[2] + c[3];
        if (variant != 1) __syncthreads();
    }
    if (variant == 1) __syncthreads();
    stage[t] = in[t];
    __syncthreads();
    float v = stage[(t + 32) % 64];
    v += __uint_as_float(__shfl_xor_sync(0xffffffffu, __float_as_uint(v), 1));
    if (variant != 2) __syncthreads();
    stage[t] = v;
    __syncthreads();
    out[64 * tiles + t] = stage[t];
}

// A static shared tile, for the emulator's own test of its initial contents and bounds: one
// warp per block writes out[32 b + t] = tile[(t + 1) % 32], where tile[t] = 100 b + t.
// `variant` 1 reads the tile before writing it (a bug whose result must be NaN in every
// block), 2 reads one element past its end (a fault under AddressSanitizer).
__global__ void wb_test_static_smem(float* __restrict__ out, int variant) {
    __shared__ float tile[32];
    const int t = threadIdx.x, b = blockIdx.x;
    float early = tile[(t + 1) % 32];
    __syncthreads();
    tile[t] = (float)(100 * b + t);
    __syncthreads();
    // Through a pointer the compiler cannot trace (UBSan checks an array's subscript and the
    // objects it can see): past the end is AddressSanitizer's to see, in the section GCC
    // leaves unchecked without -fsanitize-sections.
    const float* volatile p = tile;
    const int at = variant == 2 ? 32 : (t + 1) % 32;
    out[32 * b + t] = variant == 1 ? early : p[at];
}
