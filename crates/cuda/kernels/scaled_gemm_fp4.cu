// kernels/scaled_gemm_fp4.cu: block scales of an FP4 operand rearranged from kernelyard's
// row-major layout into the tiled layout cuBLASLt's block-scaled matmuls read
// (`CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3` for NVFP4, `VEC32_UE8M0` for MXFP4).
// Rust side: crates/cuda/src/ops/scaled_gemm_fp4.rs (`cuda.scaled_gemm.fp4.cublaslt`), which
// mirrors the index math in `tiled_offset` / `tiled_source` and tests it on the CPU.
//
// NEVER RUN ON HARDWARE: the kernel that launches this needs sm_100 or newer; it compiles in
// CI's matrix (sm_100a, sm_120) and its index math is tested on the CPU only.
//
// Input: `src`, one byte per scale (e4m3 or e8m0: the bytes are copied, never interpreted),
// `rows` x `cols` row-major (`rows` = m or n, `cols` = ceil(k / block)).
// Output: `dst`, the cuBLAS "1D block scaling factors layout": the matrix padded to whole
// tiles of 128 rows x 4 columns (padding bytes are written as 0), tiles in row-major order
// (tile (R, C) is tile number R * ceil(cols / 4) + C, 512 bytes each), and inside a tile the
// byte of row r (0..128) and column c (0..4) at
//     (r % 32) * 16 + (r / 32) * 4 + c,
// i.e. the tile viewed as [4][32][4] (r / 32, r % 32, c) and stored as [32][4][4]. This is
// PyTorch's `to_blocked` (the `SWIZZLE_32_4_4` scale layout of torch._scaled_mm).
//
// One thread per output byte (a grid-stride loop over the padded size), so every byte of the
// output, padding included, is written exactly once; reads are scattered bytes (scales are
// 1/16 or 1/32 of an operand's elements, so this is a small fraction of the matmul's traffic).
#include "common.cuh"

extern "C" __global__ void fp4_scales_to_tiles(const void* src_, void* dst_, long long rows,
                                               long long cols) {
    const unsigned char* src = (const unsigned char*)src_;
    unsigned char* dst = (unsigned char*)dst_;
    const long long col_tiles = (cols + 3) / 4;
    const long long total = ((rows + 127) / 128) * col_tiles * 512;
    for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < total;
         o += (long long)gridDim.x * blockDim.x) {
        const long long tile = o / 512;
        const int within = (int)(o % 512);
        const int r = (within / 16) + ((within / 4) % 4) * 32;
        const int c = within % 4;
        const long long row = (tile / col_tiles) * 128 + r;
        const long long col = (tile % col_tiles) * 4 + c;
        dst[o] = (row < rows && col < cols) ? src[row * cols + col] : (unsigned char)0;
    }
}
