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
// chain's result does not depend on the others in the launch. The products
// are those of tile_matvec for one chain.

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

// out[c][j] = (sum_k W[j,k] x_c[k]) * m[j] + b[j] for the T chains, j <
// rows (a multiple of 32): each warp takes 4 rows at a time, 8 lanes per
// row, each lane 16 columns at a time (dp4a over int4 loads), and R such
// groups of rows at once, so that R loads of weights are in flight per
// lane (one at a time left a step waiting on the latency of each: 50 us a
// step of one chain on an H100, against about 2 us of arithmetic). The 8
// lanes' integer sums are added exactly by shuffles. x_c = x + c*xs and
// out_c = out + c*os in shared memory, x 16-byte aligned; cols is a
// multiple of 32.
template <int T, int R>
__device__ __forceinline__ void tile_matvec(const i8 *__restrict__ w, int rows, int cols,
                                            const i8 *x, int xs, const float *__restrict__ m,
                                            const float *__restrict__ b, float *out, int os) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int r = lane >> 3, s = lane & 7;
    const int quads = cols >> 4;
    const int nwarps = blockDim.x >> 5;
    for (int j0 = warp * 4 + r; j0 < rows; j0 += nwarps * 4 * R) {
        int acc[R][T];
#pragma unroll
        for (int u = 0; u < R; ++u)
#pragma unroll
            for (int c = 0; c < T; ++c) acc[u][c] = 0;
        for (int k = s; k < quads; k += 8) {
            int4 wv[R];
#pragma unroll
            for (int u = 0; u < R; ++u) {
                const int j = j0 + u * nwarps * 4;
                wv[u] = j < rows ? __ldg((const int4 *)(w + (unsigned long long)j * cols) + k)
                                 : make_int4(0, 0, 0, 0);
            }
#pragma unroll
            for (int c = 0; c < T; ++c) {
                const int4 xv = ((const int4 *)(x + c * xs))[k];
#pragma unroll
                for (int u = 0; u < R; ++u) {
                    int a = acc[u][c];
                    a = __dp4a(wv[u].x, xv.x, a);
                    a = __dp4a(wv[u].y, xv.y, a);
                    a = __dp4a(wv[u].z, xv.z, a);
                    a = __dp4a(wv[u].w, xv.w, a);
                    acc[u][c] = a;
                }
            }
        }
#pragma unroll
        for (int u = 0; u < R; ++u) {
            const int j = j0 + u * nwarps * 4;
#pragma unroll
            for (int c = 0; c < T; ++c) {
                int a = acc[u][c];
                a += __shfl_xor_sync(0xffffffffu, a, 1);
                a += __shfl_xor_sync(0xffffffffu, a, 2);
                a += __shfl_xor_sync(0xffffffffu, a, 4);
                acc[u][c] = a;
            }
            if (j < rows) {
                const float mj = m[j], bj = b[j];
#pragma unroll
                for (int c = 0; c < T; ++c)
                    if ((c & 7) == s)
                        out[c * os + j] = __fadd_rn(__fmul_rn(__int2float_rn(acc[u][c]), mj), bj);
            }
        }
    }
}

// The warp's largest value and the first index holding it, in every lane
// (each lane brings its own best value and index).
__device__ __forceinline__ void warp_argmax(float &mv, int &mi) {
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, mv, o);
        int oi = __shfl_xor_sync(0xffffffffu, mi, o);
        if (ov > mv || (ov == mv && oi < mi)) {
            mv = ov;
            mi = oi;
        }
    }
}

// Row groups in flight per lane for T chains: R*T accumulators at most 32.
#define ROWS_FOR(T) ((T) >= 16 ? 2 : (T) >= 8 ? 4 : 8)

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
    __shared__ __align__(16) int sq[MAX_LAYERS * MAX_DIM / 4];
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
        tile_matvec<1, 8>(w_hh + (unsigned long long)l * d3 * d, d3, d, sqb + l * d, 0, m_hh + l * d3,
                          b_hh + l * d3, gh, 0);
        if (l == 0) {
            for (int j = tid; j < d3; j += THREADS) gi[j] = embed[(unsigned long long)u * d3 + j];
        } else {
            tile_matvec<1, 8>(w_ih + (unsigned long long)l * d3 * d, d3, d, sqb + (l - 1) * d, 0,
                              m_ih + l * d3, b_ih + l * d3, gi, 0);
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
    tile_matvec<1, 8>(w_head, 256, (int)ld, sqb, 0, m_head, b_head, e, 0);
    __syncthreads();
    const float logit = e[tid];
    // the largest logit and the first index holding it
    float mv = logit;
    int mi = tid;
    warp_argmax(mv, mi);
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

// ---------------------------------------------------------------------------
// Sequences known in advance (the encoder's): lza_known_T runs every step of
// chains whose symbols are all given, on the device alone, and leaves each
// byte's 8 bit probabilities (format-spec 8.4, "The model's bits"), and on
// request each step's frequency table.
//
// A block runs T chains from their zero state to their ends, one step after
// another, with the chains' state in shared memory: no launch, copy or
// synchronisation with the host per step. Each weight a block reads serves
// its T chains, so a step of T chains costs the weight traffic of one. The
// arithmetic is that of lza_step above, term for term: the integer sums are
// exact whatever their order, the element-wise operations are the same
// calls in the same order, and the one float reduction (the 16-lane sum of
// 7.4) keeps the spec's order.

#define KNOWN_THREADS 256

// Shared memory of a block of T chains with L*d = ld, in bytes (the host
// computes the same sum: known_smem in mod.rs).
//   q_a, q_b: T*ld i8 each (the quantised state, before and after a step)
//   h:        T*ld f32
//   gi, gh:   T*3d f32 each
//   e:        T*256 f32 (logits, then their exponentials)
//   fr:       T*256 u32 (frequencies)
//   cum:      T*260 u32 (cumulative frequencies, 257 used)
//   meta:     T*4 u32 (input symbol, target, length, start)

template <int T>
__device__ __forceinline__ void known_body(
    int d, int layers, int n, const unsigned char *__restrict__ data,
    const u32 *__restrict__ starts, const u32 *__restrict__ lens, const float *__restrict__ embed,
    const i8 *__restrict__ w_hh, const float *__restrict__ m_hh, const float *__restrict__ b_hh,
    const i8 *__restrict__ w_ih, const float *__restrict__ m_ih, const float *__restrict__ b_ih,
    const i8 *__restrict__ w_head, const float *__restrict__ m_head,
    const float *__restrict__ b_head, unsigned short *probs, u32 *tables, int want_tables) {
    extern __shared__ int4 known_smem[];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int ld = layers * d, d3 = 3 * d;
    i8 *q_old = (i8 *)known_smem;
    i8 *q_new = q_old + T * ld;
    float *h = (float *)(q_new + T * ld);
    float *gi = h + T * ld;
    float *gh = gi + T * d3;
    float *e = gh + T * d3;
    u32 *fr = (u32 *)(e + T * 256);
    u32 *cum = fr + T * 256;
    u32 *meta = cum + T * 260;  // [c*4]: input, target, length, start
    const int first = blockIdx.x * T;

    for (int k = tid; k < T * ld; k += KNOWN_THREADS) {
        q_old[k] = 0;
        h[k] = 0.0f;
    }
    if (tid < T) {
        const int c = first + tid;
        meta[tid * 4 + 0] = 256;
        meta[tid * 4 + 1] = 0;
        meta[tid * 4 + 2] = c < n ? lens[c] : 0;
        meta[tid * 4 + 3] = c < n ? starts[c] : 0;
    }
    __syncthreads();
    u32 steps = 0;
#pragma unroll
    for (int c = 0; c < T; ++c) steps = max(steps, meta[c * 4 + 2]);

    for (u32 i = 0; i < steps; ++i) {
        if (tid < T) {
            const bool live = i < meta[tid * 4 + 2];
            meta[tid * 4 + 1] = live ? data[meta[tid * 4 + 3] + i] : 0;
        }
        __syncthreads();
        for (int l = 0; l < layers; ++l) {
            tile_matvec<T, ROWS_FOR(T)>(w_hh + (unsigned long long)l * d3 * d, d3, d, q_old + l * d, ld,
                           m_hh + l * d3, b_hh + l * d3, gh, d3);
            if (l == 0) {
                for (int k = tid; k < T * d3; k += KNOWN_THREADS) {
                    const int c = k / d3, j = k - c * d3;
                    gi[k] = embed[(unsigned long long)meta[c * 4] * d3 + j];
                }
            } else {
                tile_matvec<T, ROWS_FOR(T)>(w_ih + (unsigned long long)l * d3 * d, d3, d, q_new + (l - 1) * d, ld,
                               m_ih + l * d3, b_ih + l * d3, gi, d3);
            }
            __syncthreads();
            for (int k = tid; k < T * d; k += KNOWN_THREADS) {
                const int c = k / d, u = k - c * d;
                const float *gic = gi + c * d3, *ghc = gh + c * d3;
                const float hold = h[c * ld + l * d + u];
                float r = lza_sigmoid(__fadd_rn(gic[u], ghc[u]));
                float z = lza_sigmoid(__fadd_rn(gic[d + u], ghc[d + u]));
                float nn = lza_tanh(__fadd_rn(gic[2 * d + u], __fmul_rn(r, ghc[2 * d + u])));
                float hn = __fadd_rn(__fmul_rn(__fsub_rn(1.0f, z), nn), __fmul_rn(z, hold));
                h[c * ld + l * d + u] = hn;
                q_new[c * ld + l * d + u] = (i8)lza_quantize(hn);
            }
            __syncthreads();
        }
        tile_matvec<T, ROWS_FOR(T)>(w_head, 256, ld, q_new, ld, m_head, b_head, e, 256);
        __syncthreads();
        for (int c = warp; c < T; c += KNOWN_THREADS / 32) {
            float *ec = e + c * 256;
            float v[8];
#pragma unroll
            for (int t = 0; t < 8; ++t) v[t] = ec[lane + 32 * t];
            // the largest logit and the first index holding it
            float mv = v[0];
            int mi = lane;
#pragma unroll
            for (int t = 1; t < 8; ++t)
                if (v[t] > mv) {
                    mv = v[t];
                    mi = lane + 32 * t;
                }
            warp_argmax(mv, mi);
#pragma unroll
            for (int t = 0; t < 8; ++t) {
                v[t] = lza_exp(__fsub_rn(v[t], mv));
                ec[lane + 32 * t] = v[t];
            }
            __syncwarp();
            // 16 lanes, each a sum over j in order, then the pairwise tree
            float s = 0.0f;
            if (lane < 16) {
                s = ec[lane];
                for (int j = 1; j < 16; ++j) s = __fadd_rn(s, ec[16 * j + lane]);
            }
            for (int w = 8; w > 0; w >>= 1) {
                const float o = __shfl_down_sync(0xffffffffu, s, w);
                if (lane < w) s = __fadd_rn(s, o);
            }
            const float inv = __fdiv_rn(65280.0f, __shfl_sync(0xffffffffu, s, 0));
            u32 f[8];
            u32 total = 0;
#pragma unroll
            for (int t = 0; t < 8; ++t) {
                f[t] = 1u + lza_floor_clamped(__fmul_rn(v[t], inv));
                total += f[t];
            }
            for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
            u32 *fc = fr + c * 256;
#pragma unroll
            for (int t = 0; t < 8; ++t) {
                if (mi == lane + 32 * t) f[t] = f[t] + 65536u - total;
                fc[lane + 32 * t] = f[t];
            }
            __syncwarp();
            // cumulative frequencies: 8 consecutive per lane, then a scan
            u32 p[8];
            u32 run = 0;
#pragma unroll
            for (int t = 0; t < 8; ++t) {
                run += fc[8 * lane + t];
                p[t] = run;
            }
            u32 incl = run;
            for (int o = 1; o < 32; o <<= 1) {
                const u32 up = __shfl_up_sync(0xffffffffu, incl, o);
                if (lane >= o) incl += up;
            }
            const u32 excl = incl - run;
            u32 *cc = cum + c * 260;
#pragma unroll
            for (int t = 0; t < 8; ++t) cc[8 * lane + t + 1] = excl + p[t];
            if (lane == 0) cc[0] = 0;
            __syncwarp();
            const u32 len = meta[c * 4 + 2];
            const bool live = first + c < n && i < len;
            if (live && want_tables) {
                u32 *out = tables + (unsigned long long)(meta[c * 4 + 3] + i) * 256;
#pragma unroll
                for (int t = 0; t < 8; ++t) out[lane + 32 * t] = fc[lane + 32 * t];
            }
            if (live && lane < 8) {
                const int k = lane;
                const u32 byte = meta[c * 4 + 1];
                const u32 lo = (byte >> (8 - k)) << (8 - k);
                const u32 hi = lo + (1u << (8 - k));
                const u32 mid = lo + (1u << (7 - k));
                const unsigned long long all = cc[hi] - cc[lo];
                const unsigned long long ones = cc[hi] - cc[mid];
                u32 pk = 32768;
                if (all != 0) {
                    const unsigned long long qk = (ones << 16) / all;
                    pk = (u32)(qk < 1 ? 1 : (qk > 65535 ? 65535 : qk));
                }
                probs[(unsigned long long)(meta[c * 4 + 3] + i) * 8 + k] = (unsigned short)pk;
            }
        }
        __syncthreads();
        if (tid < T) meta[tid * 4] = meta[tid * 4 + 1];  // the next input
        i8 *t = q_old;
        q_old = q_new;
        q_new = t;
    }
}

#define KNOWN_KERNEL(T)                                                                          \
    extern "C" __global__ void __launch_bounds__(KNOWN_THREADS) lza_known_##T(                  \
        int d, int layers, int n, const unsigned char *__restrict__ data,                       \
        const u32 *__restrict__ starts, const u32 *__restrict__ lens,                           \
        const float *__restrict__ embed, const i8 *__restrict__ w_hh,                           \
        const float *__restrict__ m_hh, const float *__restrict__ b_hh,                         \
        const i8 *__restrict__ w_ih, const float *__restrict__ m_ih,                            \
        const float *__restrict__ b_ih, const i8 *__restrict__ w_head,                          \
        const float *__restrict__ m_head, const float *__restrict__ b_head,                     \
        unsigned short *probs, u32 *tables, int want_tables) {                                   \
        known_body<T>(d, layers, n, data, starts, lens, embed, w_hh, m_hh, b_hh, w_ih, m_ih,     \
                      b_ih, w_head, m_head, b_head, probs, tables, want_tables);                 \
    }

KNOWN_KERNEL(1)
KNOWN_KERNEL(2)
KNOWN_KERNEL(4)
KNOWN_KERNEL(8)
KNOWN_KERNEL(16)
