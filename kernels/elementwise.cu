// Elementwise and reduction kernels for training steps and for the harness (poisoning
// outputs). Grid-stride loops: any grid size covers any n. Their index is 64-bit: with n near
// 2^31 - 1 (the largest `int` the plans pass) an `int` index overflows when it steps past n.

// w -= lr * g
extern "C" __global__ void sgd_update_f32(float* w, const float* g, float lr, int n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        w[i] = fmaf(-lr, g[i], w[i]);
}

// dx = dy * (y > 0), with y the activation's output.
extern "C" __global__ void relu_bwd_f32(const float* y, const float* dy, float* dx, int n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// dx = dy * (1 - y^2), with y = tanh(x).
extern "C" __global__ void tanh_bwd_f32(const float* y, const float* dy, float* dx, int n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float v = y[i];
        dx[i] = dy[i] * (1.0f - v * v);
    }
}

// dx = dy * y (1 - y), with y = sigmoid(x).
extern "C" __global__ void sigmoid_bwd_f32(const float* y, const float* dy, float* dx, int n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float v = y[i];
        dx[i] = dy[i] * v * (1.0f - v);
    }
}

// dst[c] = sum over rows of src[r][c] (bias gradients). grid (ceil(cols/32)), block (32, 8).
extern "C" __global__ void colsum_f32(const float* src, float* dst, int rows, int cols) {
    __shared__ float part[8][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (c < cols)
        for (int r = threadIdx.y; r < rows; r += 8) s += src[(size_t)r * cols + c];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float t = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; ++k) t += part[k][threadIdx.x];
        dst[c] = t;
    }
}

// Fill with a bit pattern (a NaN poisons outputs before a verified run).
extern "C" __global__ void fill_u32(unsigned int* dst, unsigned int v, int n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dst[i] = v;
}

// f32 -> bf16 / f16 bits (round to nearest even), for uploads done on the device.
extern "C" __global__ void f32_to_bf16(const float* src, u16* dst, int n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dst[i] = wb_f32_to_bf16(src[i]);
}

extern "C" __global__ void f32_to_f16(const float* src, u16* dst, int n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dst[i] = wb_f32_to_f16(src[i]);
}

// Copy a row-major [rows, cols] matrix of 16-bit values into rows of `ld` >= cols elements
// (the columns past `cols` are left as they are): gives the Hopper GEMM's TMA the 16-byte row
// stride it needs when an operand's rows are not a multiple of 8 elements.
extern "C" __global__ void pad_rows_u16(const u16* src, u16* dst, int rows, int cols, int ld) {
    const long long n = (long long)rows * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / cols, c = i - r * cols;
        dst[r * ld + c] = src[i];
    }
}
