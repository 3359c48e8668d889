// One model step (format-spec 7.2-7.4) for a batch of chains on the GPU.
//
// Compiled at run time by NVRTC with --fmad=false --ftz=false
// --prec-div=true; every float operation below is also spelled as its
// round-to-nearest intrinsic (__fadd_rn, __fsub_rn, __fmul_rn, __fdiv_rn),
// so no contraction into a fused multiply-add can happen whatever the
// flags. Integer sums are exact (dp4a accumulates int8 x int8 in int32),
// so their order does not matter. The one float reduction, the 16-lane sum
// of 7.4, runs in the spec's fixed order on one thread. The element-wise
// functions are those of src/lm/math.rs, operation by operation; no CUDA
// math library call (expf, tanhf) is used.
//
// One block of 256 threads steps one chain: chains are independent, so a
// chain's result does not depend on the others in the launch.

typedef signed char i8;
typedef unsigned int u32;

#define MAX_DIM 1024
#define MAX_LAYERS 8
#define THREADS 256

// format-spec 7.3 constants, as bit patterns
#define LOG2E __int_as_float(0x3FB8AA3B)
#define LN2_HI __int_as_float(0x3F318000)
#define LN2_LO __int_as_float(0xB95E8083)
#define ROUND_MAGIC 12582912.0f
#define P0 __int_as_float(0x39506967)
#define P1 __int_as_float(0x3AB743CE)
#define P2 __int_as_float(0x3C088908)
#define P3 __int_as_float(0x3D2AA9C1)
#define P4 __int_as_float(0x3E2AAAAA)
#define P5 __int_as_float(0x3F000000)

__device__ __forceinline__ float lza_exp(float x) {
    bool zero = !(x >= -87.0f);
    float xc = zero ? 0.0f : (x > 88.0f ? 88.0f : x);
    float t = __fmul_rn(xc, LOG2E);
    float tm = __fadd_rn(t, ROUND_MAGIC);
    float nf = __fsub_rn(tm, ROUND_MAGIC);
    float r = __fsub_rn(__fsub_rn(xc, __fmul_rn(nf, LN2_HI)), __fmul_rn(nf, LN2_LO));
    float r2 = __fmul_rn(r, r);
    float p = __fadd_rn(__fmul_rn(P0, r), P1);
    p = __fadd_rn(__fmul_rn(p, r), P2);
    p = __fadd_rn(__fmul_rn(p, r), P3);
    p = __fadd_rn(__fmul_rn(p, r), P4);
    p = __fadd_rn(__fmul_rn(p, r), P5);
    p = __fadd_rn(__fadd_rn(__fmul_rn(p, r2), r), 1.0f);
    int n = __float_as_int(tm) - __float_as_int(ROUND_MAGIC);
    float scale = __int_as_float((n + 127) << 23);
    float y = __fmul_rn(p, scale);
    return zero ? 0.0f : y;
}

__device__ __forceinline__ float lza_sigmoid(float x) {
    return __fdiv_rn(1.0f, __fadd_rn(1.0f, lza_exp(-x)));
}

__device__ __forceinline__ float lza_tanh(float x) {
    return __fsub_rn(__fmul_rn(2.0f, lza_sigmoid(__fmul_rn(2.0f, x))), 1.0f);
}

// clamp(round_half_away_from_zero(v * 127), -127, 127), as math.rs computes it
__device__ __forceinline__ int lza_quantize(float v) {
    float y = __fmul_rn(v, 127.0f);
    float a = fabsf(y);
    a = a > 127.0f ? 127.0f : a;
    float s = __fadd_rn(a, 8388608.0f);
    float t = __fsub_rn(s, 8388608.0f);
    int q = (__float_as_int(s) - 0x4B000000) + (__fsub_rn(a, t) == 0.5f ? 1 : 0);
    return y < 0.0f ? -q : q;
}

// min(floor(x), 65280) for 0 <= x (as rangecoder.rs's floor_clamped)
__device__ __forceinline__ u32 lza_floor_clamped(float x) {
    x = x >= 0.0f ? (x > 65280.0f ? 65280.0f : x) : 0.0f;
    float s = __fadd_rn(x, 8388608.0f);
    float r = __fsub_rn(s, 8388608.0f);
    return (u32)(__float_as_int(s) - 0x4B000000) - (r > x ? 1u : 0u);
}

// out[j] = (sum_k W[j,k] x[k]) * m[j] + b[j] for j < rows: one warp per
// row, dp4a over 4 columns at a time, an exact integer warp sum.
__device__ __forceinline__ void matvec(const i8 *__restrict__ w, int rows, int cols,
                                       const int *x, const float *__restrict__ m,
                                       const float *__restrict__ b, float *out) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int words = cols >> 2;
    for (int j = warp; j < rows; j += THREADS / 32) {
        const int *row = (const int *)(w + (unsigned long long)j * cols);
        int acc = 0;
        for (int k = lane; k < words; k += 32) acc = __dp4a(__ldg(row + k), x[k], acc);
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) out[j] = __fadd_rn(__fmul_rn(__int2float_rn(acc), m[j]), b[j]);
    }
}

// words[c] = slot << 10 | reset << 9 | input symbol (0..=256): block c steps
// the chain stored at `slot` of h (f32) and q (i8), stride L*d, from the
// zero state if `reset`, and writes its frequency table to freqs[c*256..].
extern "C" __global__ void __launch_bounds__(THREADS)
lza_step(int d, int layers, const u32 *__restrict__ words,
         const float *__restrict__ embed,
         const i8 *__restrict__ w_hh, const float *__restrict__ m_hh, const float *__restrict__ b_hh,
         const i8 *__restrict__ w_ih, const float *__restrict__ m_ih, const float *__restrict__ b_ih,
         const i8 *__restrict__ w_head, const float *__restrict__ m_head,
         const float *__restrict__ b_head,
         float *h, i8 *q, u32 *freqs) {
    __shared__ int sq[MAX_LAYERS * MAX_DIM / 4];
    __shared__ float gi[3 * MAX_DIM];
    __shared__ float gh[3 * MAX_DIM];
    __shared__ float e[256];
    __shared__ float lane_sum[16];
    __shared__ float warp_max[THREADS / 32];
    __shared__ int warp_arg[THREADS / 32];
    __shared__ u32 warp_total[THREADS / 32];
    __shared__ float s_max;
    __shared__ int s_arg;
    __shared__ float s_inv;
    __shared__ u32 s_total;

    const int tid = threadIdx.x;
    const u32 word = words[blockIdx.x];
    const int u = word & 0x1FF;
    const bool reset = (word >> 9) & 1;
    const unsigned long long ld = (unsigned long long)layers * d;
    float *hs = h + (unsigned long long)(word >> 10) * ld;
    i8 *qs = q + (unsigned long long)(word >> 10) * ld;
    i8 *sqb = (i8 *)sq;
    const int d3 = 3 * d;

    for (int k = tid; k < (int)(ld / 4); k += THREADS) sq[k] = reset ? 0 : ((const int *)qs)[k];
    __syncthreads();
    for (int l = 0; l < layers; ++l) {
        // gh from q(h[l]) (not yet overwritten); gi from the symbol or from
        // q(h_new[l-1]) (written in the previous iteration)
        matvec(w_hh + (unsigned long long)l * d3 * d, d3, d, sq + l * d / 4, m_hh + l * d3, b_hh + l * d3, gh);
        if (l == 0) {
            for (int j = tid; j < d3; j += THREADS) gi[j] = embed[(unsigned long long)u * d3 + j];
        } else {
            matvec(w_ih + (unsigned long long)l * d3 * d, d3, d, sq + (l - 1) * d / 4, m_ih + l * d3,
                   b_ih + l * d3, gi);
        }
        __syncthreads();
        for (int k = tid; k < d; k += THREADS) {
            float hold = reset ? 0.0f : hs[l * d + k];
            float r = lza_sigmoid(__fadd_rn(gi[k], gh[k]));
            float z = lza_sigmoid(__fadd_rn(gi[d + k], gh[d + k]));
            float n = lza_tanh(__fadd_rn(gi[2 * d + k], __fmul_rn(r, gh[2 * d + k])));
            float hn = __fadd_rn(__fmul_rn(__fsub_rn(1.0f, z), n), __fmul_rn(z, hold));
            hs[l * d + k] = hn;
            sqb[l * d + k] = (i8)lza_quantize(hn);
        }
        __syncthreads();
    }
    for (int k = tid; k < (int)(ld / 4); k += THREADS) ((int *)qs)[k] = sq[k];

    // logits, then format-spec 7.4
    matvec(w_head, 256, (int)ld, sq, m_head, b_head, e);
    __syncthreads();
    const float logit = e[tid];
    // the largest logit and the first index holding it
    float mv = logit;
    int mi = tid;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, mv, o);
        int oi = __shfl_xor_sync(0xffffffffu, mi, o);
        if (ov > mv || (ov == mv && oi < mi)) {
            mv = ov;
            mi = oi;
        }
    }
    if ((tid & 31) == 0) {
        warp_max[tid >> 5] = mv;
        warp_arg[tid >> 5] = mi;
    }
    __syncthreads();
    if (tid == 0) {
        float mx = warp_max[0];
        int am = warp_arg[0];
        for (int w = 1; w < THREADS / 32; ++w) {
            if (warp_max[w] > mx || (warp_max[w] == mx && warp_arg[w] < am)) {
                mx = warp_max[w];
                am = warp_arg[w];
            }
        }
        s_max = mx;
        s_arg = am;
    }
    __syncthreads();
    const float ev = lza_exp(__fsub_rn(logit, s_max));
    e[tid] = ev;
    __syncthreads();
    if (tid < 16) {
        float s = e[tid];
        for (int j = 1; j < 16; ++j) s = __fadd_rn(s, e[16 * j + tid]);
        lane_sum[tid] = s;
    }
    __syncthreads();
    if (tid == 0) {
        for (int w = 8; w > 0; w >>= 1)
            for (int i = 0; i < w; ++i) lane_sum[i] = __fadd_rn(lane_sum[i], lane_sum[i + w]);
        s_inv = __fdiv_rn(65280.0f, lane_sum[0]);
    }
    __syncthreads();
    u32 f = 1u + lza_floor_clamped(__fmul_rn(ev, s_inv));
    u32 t = f;
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    if ((tid & 31) == 0) warp_total[tid >> 5] = t;
    __syncthreads();
    if (tid == 0) {
        u32 total = 0;
        for (int w = 0; w < THREADS / 32; ++w) total += warp_total[w];
        s_total = total;
    }
    __syncthreads();
    if (tid == s_arg) f = f + 65536u - s_total;
    freqs[(unsigned long long)blockIdx.x * 256 + tid] = f;
}
