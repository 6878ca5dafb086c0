/* vaekit's C kernels for the conv networks' memory-bound passes: the decoder's stride-2 upsampling from its
   taps, its last layer to one channel and that layer's backward through the ReLU before it, and a grayscale
   image's first layer, each one pass where torch takes two to five (native.py builds this file on first
   use with torch.utils.cpp_extension and calls it through ctypes). fp32, channels_last, C channels a multiple of 16 up to 64: the loops over
   a pixel's channels are whole 16-float vectors, which the compiler keeps in registers. */
#include <string.h>

#ifdef __cplusplus /* cpp_extension builds with the C++ compiler: C's restrict, and C names for ctypes */
#define restrict __restrict__
extern "C" {
#endif

typedef float v16 __attribute__((vector_size(64)));
typedef int i16 __attribute__((vector_size(64)));

static inline v16 load(const float *p) { v16 v; memcpy(&v, p, sizeof v); return v; }
static inline void store(float *p, v16 v) { memcpy(p, &v, sizeof v); }
static inline v16 splat(float s) { return (v16){s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s}; }
static inline v16 where_positive(v16 v, v16 by) { return (v16)((i16)v & (i16)(by > 0)); }
static inline float total(v16 v) {
    float s = 0.0f;
    for (int i = 0; i < 16; i++) s += v[i];
    return s;
}

/* The backward kernels' per-thread sums: a weight gradient of 9 taps x C channels and a bias gradient of C,
   zeroed in registers, then stored as one row of 10 C floats. */
#define ZERO_ROW(C, gw, gb)                                                                                     \
    for (int q = 0; q < 9; q++)                                                                                 \
        for (int v = 0; v < C / 16; v++) gw[q][v] = splat(0.0f);                                                \
    for (int v = 0; v < C / 16; v++) gb[v] = splat(0.0f)
#define STORE_ROW(C, row, gw, gb)                                                                               \
    for (int q = 0; q < 9; q++)                                                                                 \
        for (int v = 0; v < C / 16; v++) store((row) + q * C + 16 * v, gw[q][v]);                              \
    for (int v = 0; v < C / 16; v++) store((row) + 9 * C + 16 * v, gb[v])

/* STATEMENT for each tap (i, j) of output pixel (m, l)'s 3x3, stride-2, padding-1 window that falls inside
   the image x (N, H, W) of image n, with s that pixel's value in every lane. */
#define IN_WINDOW(STATEMENT)                                                                                    \
    for (int i = 0; i < 3; i++) {                                                                               \
        long yy = 2 * m - 1 + i;                                                                                \
        if (yy < 0 || yy >= H) continue;                                                                        \
        for (int j = 0; j < 3; j++) {                                                                           \
            long xx = 2 * l - 1 + j;                                                                            \
            if (xx < 0 || xx >= W) continue;                                                                    \
            v16 s = splat(x[(n * H + yy) * W + xx]);                                                            \
            STATEMENT;                                                                                          \
        }                                                                                                       \
    }

/* Each kernel is written once for a literal channel count C and stamped out for 16, 32, 48 and 64. */
#define KERNELS(C)                                                                                               \
/* A 3x3, stride-2, padding-1, output-padding-1 transposed convolution, from its taps                           \
   T[n, m, l, ky, kx, :] (the input pixel (m, l) times each tap's (C_in, C) matrix): output pixel              \
   (2m+a, 2l+b) takes tap (1+a, 1+b) of (m, l), for odd rows tap (0, 1+b) of (m+1, l), for odd columns         \
   tap (1+a, 0) of (m, l+1), for both tap (0, 0) of (m+1, l+1); then the bias and, with relu, a ReLU. */       \
static void stride2_taps_to_output_##C(const float *restrict T, const float *restrict bias,                    \
                                       float *restrict out, long N, long H, long W, int relu, int threads) {   \
    long OH = 2 * H, OW = 2 * W;                                                                                \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")                                          \
    for (long r = 0; r < N * OH; r++) {                                                                         \
        long n = r / OH, Y = r % OH, m = Y / 2, a = Y % 2;                                                      \
        int down = a && m + 1 < H;                                                                              \
        const float *row = T + (n * H + m) * W * 9 * C, *below = row + W * 9 * C;                              \
        for (long X = 0; X < OW; X++) {                                                                         \
            long l = X / 2, b = X % 2;                                                                          \
            v16 acc[C / 16];                                                                                    \
            const float *t = row + (l * 9 + (1 + a) * 3 + 1 + b) * C;                                           \
            for (int v = 0; v < C / 16; v++) acc[v] = load(bias + 16 * v) + load(t + 16 * v);                   \
            if (down) {                                                                                         \
                t = below + (l * 9 + 1 + b) * C;                                                                \
                for (int v = 0; v < C / 16; v++) acc[v] += load(t + 16 * v);                                    \
            }                                                                                                   \
            if (b && l + 1 < W) {                                                                               \
                t = row + ((l + 1) * 9 + (1 + a) * 3) * C;                                                      \
                for (int v = 0; v < C / 16; v++) acc[v] += load(t + 16 * v);                                    \
                if (down) {                                                                                     \
                    t = below + (l + 1) * 9 * C;                                                                \
                    for (int v = 0; v < C / 16; v++) acc[v] += load(t + 16 * v);                                \
                }                                                                                               \
            }                                                                                                   \
            float *o = out + (r * OW + X) * C;                                                                  \
            for (int v = 0; v < C / 16; v++) store(o + 16 * v, relu ? where_positive(acc[v], acc[v]) : acc[v]); \
        }                                                                                                       \
    }                                                                                                           \
}                                                                                                               \
                                                                                                                \
/* A 3x3, stride-1, padding-1 transposed convolution from C channels to one:                                   \
   out[n, y, x] = bias[0] + sum_{i,j} <in[n, y+1-i, x+1-j, :], w[i, j, :]>. */                                 \
static void to_one_channel_##C(const float *restrict in, const float *restrict w, const float *restrict bias,  \
                               float *restrict out, long N, long H, long W, int threads) {                     \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")                                          \
    for (long r = 0; r < N * H; r++) {                                                                          \
        long n = r / H, y = r % H;                                                                              \
        for (long x = 0; x < W; x++) {                                                                          \
            v16 acc = splat(0.0f);                                                                              \
            for (int i = 0; i < 3; i++) {                                                                       \
                long yy = y + 1 - i;                                                                            \
                if (yy < 0 || yy >= H) continue;                                                                \
                for (int j = 0; j < 3; j++) {                                                                   \
                    long xx = x + 1 - j;                                                                        \
                    if (xx < 0 || xx >= W) continue;                                                            \
                    const float *p = in + ((n * H + yy) * W + xx) * C, *q = w + (i * 3 + j) * C;                \
                    for (int v = 0; v < C / 16; v++) acc += load(p + 16 * v) * load(q + 16 * v);                \
                }                                                                                               \
            }                                                                                                   \
            out[r * W + x] = bias[0] + total(acc);                                                              \
        }                                                                                                       \
    }                                                                                                           \
}                                                                                                               \
                                                                                                                \
/* The backward of to_one_channel for an input that is a ReLU's output, with that ReLU's mask: given the       \
   output's gradient padded by one on each side, gp (N, H+2, W+2),                                              \
   grad_in[n, y, x, :] = [in > 0] sum_{i,j} gp[n, y+i, x+j] w[i, j, :], and in partial[t], one row of          \
   10 C per thread t: grad_w[i, j, :] = sum in[n, y, x, :] gp[n, y+i, x+j], then the sum of grad_in (the       \
   bias gradient of the layer before the ReLU). Per image row: grad_in first, then grad_w, so that each        \
   loop's accumulators fit in registers. */                                                                     \
static void to_one_channel_backward_##C(const float *restrict in, const float *restrict gp,                    \
                                        const float *restrict w, float *restrict grad_in,                      \
                                        float *restrict partial, long N, long H, long W, int threads) {        \
    _Pragma("omp parallel num_threads(threads)")                                                               \
    {                                                                                                           \
        int t = omp_get_thread_num(), nt = omp_get_num_threads();                                               \
        long lo = N * H * t / nt, hi = N * H * (t + 1) / nt, PW = W + 2;                                        \
        v16 gw[9][C / 16], gb[C / 16], wv[9][C / 16];                                                           \
        ZERO_ROW(C, gw, gb);                                                                                    \
        for (int q = 0; q < 9; q++)                                                                             \
            for (int v = 0; v < C / 16; v++) wv[q][v] = load(w + q * C + 16 * v);                               \
        for (long r = lo; r < hi; r++) {                                                                        \
            long n = r / H, y = r % H;                                                                          \
            const float *g = gp + (n * (H + 2) + y) * PW;                                                       \
            for (long x = 0; x < W; x++) {                                                                      \
                const float *p = in + (r * W + x) * C;                                                          \
                float *d = grad_in + (r * W + x) * C;                                                           \
                v16 acc[C / 16];                                                                                \
                for (int v = 0; v < C / 16; v++) acc[v] = splat(0.0f);                                          \
                for (int q = 0; q < 9; q++) {                                                                   \
                    v16 s = splat(g[(q / 3) * PW + x + q % 3]);                                                 \
                    for (int v = 0; v < C / 16; v++) acc[v] += s * wv[q][v];                                    \
                }                                                                                               \
                for (int v = 0; v < C / 16; v++) {                                                              \
                    acc[v] = where_positive(acc[v], load(p + 16 * v));                                          \
                    store(d + 16 * v, acc[v]);                                                                  \
                    gb[v] += acc[v];                                                                            \
                }                                                                                               \
            }                                                                                                   \
            for (long x = 0; x < W; x++) {                                                                      \
                const float *p = in + (r * W + x) * C;                                                          \
                v16 pv[C / 16];                                                                                 \
                for (int v = 0; v < C / 16; v++) pv[v] = load(p + 16 * v);                                      \
                for (int q = 0; q < 9; q++) {                                                                   \
                    v16 s = splat(g[(q / 3) * PW + x + q % 3]);                                                 \
                    for (int v = 0; v < C / 16; v++) gw[q][v] += s * pv[v];                                     \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
        STORE_ROW(C, partial + t * 10 * C, gw, gb);                                                             \
    }                                                                                                           \
}                                                                                                               \
                                                                                                                \
/* A 3x3, stride-2, padding-1 convolution of a one-channel image x (N, H, W) to C channels, with the bias and  \
   a ReLU: y[n, m, l, :] = relu(bias + sum_{i,j} x[n, 2m-1+i, 2l-1+j] w[i, j, :]), (N, (H+1)/2, (W+1)/2, C). */\
static void from_one_channel_##C(const float *restrict x, const float *restrict w, const float *restrict bias, \
                                 float *restrict y, long N, long H, long W, int threads) {                     \
    long OH = (H + 1) / 2, OW = (W + 1) / 2;                                                                    \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")                                          \
    for (long r = 0; r < N * OH; r++) {                                                                         \
        long n = r / OH, m = r % OH;                                                                            \
        for (long l = 0; l < OW; l++) {                                                                         \
            v16 acc[C / 16];                                                                                    \
            for (int v = 0; v < C / 16; v++) acc[v] = load(bias + 16 * v);                                      \
            IN_WINDOW(for (int v = 0; v < C / 16; v++) acc[v] += s * load(w + (i * 3 + j) * C + 16 * v));       \
            float *o = y + (r * OW + l) * C;                                                                    \
            for (int v = 0; v < C / 16; v++) store(o + 16 * v, where_positive(acc[v], acc[v]));                \
        }                                                                                                       \
    }                                                                                                           \
}                                                                                                               \
                                                                                                                \
/* Its weight and bias gradients through the ReLU, from g, the gradient of y: in partial[t], one row of 10 C   \
   per thread, grad_w[i, j, :] = sum [y > 0] g[n, m, l, :] x[n, 2m-1+i, 2l-1+j], then sum [y > 0] g. */        \
static void from_one_channel_backward_##C(const float *restrict x, const float *restrict y,                    \
                                          const float *restrict g, float *restrict partial, long N, long H,    \
                                          long W, int threads) {                                                \
    long OH = (H + 1) / 2, OW = (W + 1) / 2;                                                                    \
    _Pragma("omp parallel num_threads(threads)")                                                               \
    {                                                                                                           \
        int t = omp_get_thread_num(), nt = omp_get_num_threads();                                               \
        long lo = N * OH * t / nt, hi = N * OH * (t + 1) / nt;                                                  \
        v16 gw[9][C / 16], gb[C / 16];                                                                          \
        ZERO_ROW(C, gw, gb);                                                                                    \
        for (long r = lo; r < hi; r++) {                                                                        \
            long n = r / OH, m = r % OH;                                                                        \
            for (long l = 0; l < OW; l++) {                                                                     \
                v16 d[C / 16];                                                                                  \
                for (int v = 0; v < C / 16; v++) {                                                              \
                    d[v] = where_positive(load(g + (r * OW + l) * C + 16 * v), load(y + (r * OW + l) * C + 16 * v));\
                    gb[v] += d[v];                                                                              \
                }                                                                                               \
                IN_WINDOW(for (int v = 0; v < C / 16; v++) gw[i * 3 + j][v] += s * d[v]);                        \
            }                                                                                                   \
        }                                                                                                       \
        STORE_ROW(C, partial + t * 10 * C, gw, gb);                                                             \
    }                                                                                                           \
}

#include <omp.h>

KERNELS(16)
KERNELS(32)
KERNELS(48)
KERNELS(64)

/* The entry points: 0 when done, -1 for a channel count without a kernel (the caller checks first). */
#define BY_CHANNELS(C, CALL) switch (C) { case 16: CALL(16); return 0; case 32: CALL(32); return 0;             \
                                          case 48: CALL(48); return 0; case 64: CALL(64); return 0; }          \
                             return -1;

int stride2_taps_to_output(const float *T, const float *bias, float *out, long N, long H, long W, long C,
                           int relu, int threads) {
#define CALL(c) stride2_taps_to_output_##c(T, bias, out, N, H, W, relu, threads)
    BY_CHANNELS(C, CALL)
#undef CALL
}

int to_one_channel(const float *in, const float *w, const float *bias, float *out, long N, long H, long W, long C,
                   int threads) {
#define CALL(c) to_one_channel_##c(in, w, bias, out, N, H, W, threads)
    BY_CHANNELS(C, CALL)
#undef CALL
}

int to_one_channel_backward(const float *in, const float *gp, const float *w, float *grad_in, float *partial,
                            long N, long H, long W, long C, int threads) {
#define CALL(c) to_one_channel_backward_##c(in, gp, w, grad_in, partial, N, H, W, threads)
    BY_CHANNELS(C, CALL)
#undef CALL
}

int from_one_channel(const float *x, const float *w, const float *bias, float *y, long N, long H, long W, long C,
                     int threads) {
#define CALL(c) from_one_channel_##c(x, w, bias, y, N, H, W, threads)
    BY_CHANNELS(C, CALL)
#undef CALL
}

int from_one_channel_backward(const float *x, const float *y, const float *g, float *partial, long N, long H,
                              long W, long C, int threads) {
#define CALL(c) from_one_channel_backward_##c(x, y, g, partial, N, H, W, threads)
    BY_CHANNELS(C, CALL)
#undef CALL
}

#ifdef __cplusplus
}
#endif
