// Fused CPU selective scan (Gu & Dao 2023 §3.3, Alg. 2; ZOH of A, Euler of B), S4D's scan with a step
// per sample and Mamba's streaming layer step, built on first use
// by ssmforecast/math/_fused.py through torch.utils.cpp_extension and called with ctypes, which
// releases the GIL for the whole call: Python threads run batch parts side by side.
//
// Per series b and channel h the state x (N values) stays in registers / L1 for all L steps:
//   x_k = exp(Δ_k A_h) ⊙ x_{k−1} + Δ_k u_k B_k,   y_k = Σ_n C_{k,n} x_{k,n}        (D u_k is added in Python)
// Layouts: u, Δ, y, ȳ and their gradients (batch, H, L) with any strides (three per tensor, in
// elements: torch's, so a transposed (batch, L, H) buffer is read and written in place); row-major
// and contiguous: A (H, N); B, C (batch, L, N); x0, x_L (batch, H, N); D (H,); the states entering
// each block of T steps, kept for the backward, (batch, H, ceil(L / T), N). No OpenMP, no torch headers: plain loops the compiler vectorises over N.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// exp(x) = 2^k · exp(r), k = round(x log₂e), r = x − k ln 2 (Cody–Waite in two parts, Cephes' expf
// polynomial on |r| ≤ ln2 / 2, relative error ≈ 1e-7); written so that a loop of it vectorises
// (libm's expf does not without -ffast-math). Inputs below −87.3 give 2^−126 · e^r (≈ 1e-38) instead of
// a subnormal or 0: a state is multiplied by it, so the absolute error stays below 1e-37.
// expm1 on |r| ≤ ln2 / 2: Cephes' expf polynomial, e^r − 1 = r + r² p(r)
__attribute__((always_inline)) inline float expm1_reduced(float r) noexcept {
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * r * r + r;
}

// x = k ln 2 + r, k = round(x log₂e) (Cody–Waite in two parts; x clamped to [−87.3, 88.3]) → 2^k, r
__attribute__((always_inline)) inline float reduce_exp(float x, float& r) noexcept {
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    // k = round(x log₂e): adding 1.5 · 2²³ rounds to an integer in the float's last place
    const float shifted = x * 1.44269504088896341f + 12582912.0f;
    const float k = shifted - 12582912.0f;
    r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
    const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;  // 2^k in the exponent field
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return scale;
}

// exp(x) = 2^k · exp(r), |r| ≤ ln2 / 2, relative error ≈ 1e-7; written so that a loop of it vectorises
// (libm's expf does not without -ffast-math). Inputs below −87.3 give 2^−126 · e^r (≈ 1e-38) instead of
// a subnormal or 0: a state is multiplied by it, so the absolute error stays below 1e-37.
__attribute__((always_inline)) inline float exp_f32(float x) noexcept {
    float r;
    const float scale = reduce_exp(x, r);
    return (expm1_reduced(r) + 1.0f) * scale;
}

// e^x and e^x − 1 together: 2^k (1 + m) and 2^k m + (2^k − 1), m = expm1(r); the second keeps its
// relative precision for small |x| (k = 0: m itself)
__attribute__((always_inline)) inline void exp_expm1(float x, float& e, float& em1) noexcept {
    float r;
    const float scale = reduce_exp(x, r);
    const float m = expm1_reduced(r);
    e = m * scale + scale;
    em1 = m * scale + (scale - 1.0f);
}
__attribute__((always_inline)) inline void exp_expm1(double x, double& e, double& em1) noexcept {
    e = std::exp(x);
    em1 = std::expm1(x);
}

// sin x and cos x together: x = q π/2 + r (q = round(2x/π), Cody–Waite in three parts, accurate for
// |x| up to ~10⁴), Cephes' sinf / cosf polynomials on |r| ≤ π/4, then the quadrant q mod 4 picks
// (±sin r, ±cos r); branch-free, so a loop of it vectorises
__attribute__((always_inline)) inline void sin_cos(float x, float& s, float& c) noexcept {
    const float shifted = x * 0.636619772367581343f + 12582912.0f;
    const float q = shifted - 12582912.0f;
    const float r = ((x - q * 1.5703125f) - q * 4.837512969970703125e-4f) - q * 7.54978995489188216e-8f;
    const float r2 = r * r;
    float ps = -1.9515295891e-4f;
    ps = ps * r2 + 8.3321608736e-3f;
    ps = ps * r2 - 1.6666654611e-1f;
    const float sr = ps * r2 * r + r;
    float pc = 2.443315711809948e-5f;
    pc = pc * r2 - 1.388731625493765e-3f;
    pc = pc * r2 + 4.166664568298827e-2f;
    const float cr = pc * r2 * r2 - 0.5f * r2 + 1.0f;
    const int32_t qi = static_cast<int32_t>(q);
    const float s0 = (qi & 1) ? cr : sr, c0 = (qi & 1) ? sr : cr;
    s = (qi & 2) ? -s0 : s0;
    c = ((qi + 1) & 2) ? -c0 : c0;
}
__attribute__((always_inline)) inline void sin_cos(double x, double& s, double& c) noexcept {
    s = std::sin(x);
    c = std::cos(x);
}

__attribute__((always_inline)) inline float exp_of(float x) noexcept { return exp_f32(x); }
__attribute__((always_inline)) inline double exp_of(double x) noexcept { return std::exp(x); }

// log(x) for x ≥ 1 (Cephes' logf): x = 2^e m, m ∈ [√½, √2), log m = t − t²/2 + t³ P(t), t = m − 1
__attribute__((always_inline)) inline float log_f32(float x) noexcept {
    int32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    float e = static_cast<float>(((bits >> 23) & 0xff) - 126);
    bits = (bits & 0x807fffff) | 0x3f000000;  // m ∈ [0.5, 1)
    float m;
    std::memcpy(&m, &bits, sizeof m);
    const bool low = m < 0.707106781186547524f;
    e = low ? e - 1.0f : e;
    const float t = low ? m + m - 1.0f : m - 1.0f;
    const float z = t * t;
    float p = 7.0376836292e-2f;
    p = p * t - 1.1514610310e-1f;
    p = p * t + 1.1676998740e-1f;
    p = p * t - 1.2420140846e-1f;
    p = p * t + 1.4249322787e-1f;
    p = p * t - 1.6668057665e-1f;
    p = p * t + 2.0000714765e-1f;
    p = p * t - 2.4999993993e-1f;
    p = p * t + 3.3333331174e-1f;
    const float y = t * z * p - 2.12194440e-4f * e - 0.5f * z;
    return (t + y) + 0.693359375f * e;
}

// softplus(r) = log(1 + e^r) (r > 20: r, as torch); log1p(v) = log(1 + v) · v / ((1 + v) − 1),
// exact where 1 + v rounds to 1 (Goldberg 1991, "What every computer scientist should know about
// floating-point arithmetic", Theorem 4)
__attribute__((always_inline)) inline float softplus_of(float r) noexcept {
    const float v = exp_f32(r), w = 1.0f + v;
    const float l = w == 1.0f ? v : log_f32(w) * (v / (w - 1.0f));
    return r > 20.0f ? r : l;
}
__attribute__((always_inline)) inline double softplus_of(double r) noexcept { return r > 20.0 ? r : std::log1p(std::exp(r)); }

// silu(x) = x σ(x) = x / (1 + e^−x)
template <typename S>
__attribute__((always_inline)) inline S silu_of(S x) noexcept {
    return x / (S(1) + exp_of(-x));
}

// Forward for series [0, batch) of this call: y (with D u where D is given), x_L and the entering
// states; su, sd, sy: the strides of u, Δ and y.
template <typename S>
void forward(int64_t batch, int64_t H, int64_t L, int64_t N, int64_t T, const S* u, const int64_t* su,
             const S* delta, const int64_t* sd, const S* A, const S* B, const S* C, const S* D, const S* x0,
             S* y, const int64_t* sy, S* x_last, S* entering) {
    const int64_t blocks = (L + T - 1) / T;
    std::vector<S> x(N);
    for (int64_t b = 0; b < batch; ++b) {
        const S* Bb = B + b * L * N;  // (L, N)
        const S* Cb = C + b * L * N;  // (L, N)
        for (int64_t h = 0; h < H; ++h) {
            const int64_t bh = b * H + h;
            const S* u_bh = u + b * su[0] + h * su[1];      // (L,), stride su[2]
            const S* d_bh = delta + b * sd[0] + h * sd[1];  // (L,), stride sd[2]
            const S* A_h = A + h * N;                       // (N,)
            S* y_bh = y + b * sy[0] + h * sy[1];            // (L,), stride sy[2]
            const S D_h = D ? D[h] : S(0);
            for (int64_t n = 0; n < N; ++n) x[n] = x0 ? x0[bh * N + n] : S(0);
            S* xp = x.data();
            for (int64_t blk = 0; blk < blocks; ++blk) {
                std::copy(xp, xp + N, entering + (bh * blocks + blk) * N);
                for (int64_t k = blk * T, e = std::min(k + T, L); k < e; ++k) {
                    const S uk = u_bh[k * su[2]], d = d_bh[k * sd[2]], du = d * uk;
                    const S* Bk = Bb + k * N;
                    const S* Ck = Cb + k * N;
                    S acc = 0;
                    // x_k = exp(Δ_k A) x_{k−1} + Δ_k u_k B_k;  y_k = Σ_n C_k x_k
#pragma omp simd reduction(+ : acc)
                    for (int64_t n = 0; n < N; ++n) {
                        xp[n] = exp_of(d * A_h[n]) * xp[n] + du * Bk[n];
                        acc += Ck[n] * xp[n];
                    }
                    y_bh[k * sy[2]] = acc + D_h * uk;
                }
            }
            std::copy(xp, xp + N, x_last + bh * N);
        }
    }
}

// Adjoint for series [0, batch) of this call, block by block backwards from recomputed states:
//   ḡ_k = C_k ȳ_k + Ā_{k+1} ⊙ ḡ_{k+1}  (from ∂/∂x_L at the end),  ∂/∂(ΔA)_k = ḡ_k ⊙ Ā_k ⊙ x_{k−1},
//   ∂Δ_k = Σ_n ∂/∂(ΔA)_{k,n} A_n + u_k Σ_n ḡ_{k,n} B_{k,n},  ∂u_k = Δ_k Σ_n ḡ_{k,n} B_{k,n}  (without D),
//   ∂A_n = Σ_k ∂/∂(ΔA)_{k,n} Δ_k (per series: gA (batch, H, N), summed over the batch in Python),
//   ∂B_k = Σ_h ḡ_k Δ_k u_k,  ∂C_k = Σ_h ȳ_k x_k  (gB, gC (batch, L, N), summed over h here), ∂x0 = Ā_0 ḡ_0,
//   with D: ∂u_k += D ȳ_k and ∂D = Σ_k ȳ_k u_k (per series: gD (batch, H)).
template <typename S>
void backward(int64_t batch, int64_t H, int64_t L, int64_t N, int64_t T, const S* u, const int64_t* su,
              const S* delta, const int64_t* sd, const S* A, const S* B, const S* C, const S* D,
              const S* entering, const S* gy, const int64_t* sgy, const S* gx_last, S* gu, const int64_t* sgu,
              S* gdelta, const int64_t* sgd, S* gA, S* gB, S* gC, S* gD, S* gx0) {
    const int64_t blocks = (L + T - 1) / T;
    std::vector<S> xs(T * N), dA(T * N), g(N), gA_h(N);  // one block's states and Ā, ḡ, Σ_k ∂A
    std::fill(gB, gB + batch * L * N, S(0));
    std::fill(gC, gC + batch * L * N, S(0));
    for (int64_t b = 0; b < batch; ++b) {
        const S* Bb = B + b * L * N;
        const S* Cb = C + b * L * N;
        S* gBb = gB + b * L * N;
        S* gCb = gC + b * L * N;
        for (int64_t h = 0; h < H; ++h) {
            const int64_t bh = b * H + h;
            const S* u_bh = u + b * su[0] + h * su[1];
            const S* d_bh = delta + b * sd[0] + h * sd[1];
            const S* gy_bh = gy + b * sgy[0] + h * sgy[1];
            const S* A_h = A + h * N;
            S* gu_bh = gu + b * sgu[0] + h * sgu[1];
            S* gd_bh = gdelta + b * sgd[0] + h * sgd[1];
            const S D_h = D ? D[h] : S(0);
            S gD_bh = 0;
            for (int64_t n = 0; n < N; ++n) {
                g[n] = gx_last ? gx_last[bh * N + n] : S(0);  // carry: Ā_{k+1} ḡ_{k+1}
                gA_h[n] = 0;
            }
            for (int64_t blk = blocks - 1; blk >= 0; --blk) {
                const int64_t s = blk * T, e = std::min(s + T, L);
                const S* x_in = entering + (bh * blocks + blk) * N;  // x_{s−1}
                // recompute the block's Ā_k and x_k from its entering state
                for (int64_t k = s; k < e; ++k) {
                    const S d = d_bh[k * sd[2]], du = d * u_bh[k * su[2]];
                    const S* Bk = Bb + k * N;
                    const S* prev = k == s ? x_in : xs.data() + (k - s - 1) * N;
                    S* xk = xs.data() + (k - s) * N;
                    S* ak = dA.data() + (k - s) * N;
#pragma omp simd
                    for (int64_t n = 0; n < N; ++n) {
                        ak[n] = exp_of(d * A_h[n]);
                        xk[n] = ak[n] * prev[n] + du * Bk[n];
                    }
                }
                for (int64_t k = e - 1; k >= s; --k) {
                    const S d = d_bh[k * sd[2]], uk = u_bh[k * su[2]], du = d * uk, gyk = gy_bh[k * sgy[2]];
                    const S* Bk = Bb + k * N;
                    const S* Ck = Cb + k * N;
                    const S* prev = k == s ? x_in : xs.data() + (k - s - 1) * N;
                    const S* xk = xs.data() + (k - s) * N;
                    const S* ak = dA.data() + (k - s) * N;
                    S* gBk = gBb + k * N;
                    S* gCk = gCb + k * N;
                    S sum_dA = 0, sum_gB = 0;
#pragma omp simd reduction(+ : sum_dA, sum_gB)
                    for (int64_t n = 0; n < N; ++n) {
                        const S gk = Ck[n] * gyk + g[n];  // ḡ_k
                        const S g_dA = gk * ak[n] * prev[n];  // ∂/∂(ΔA)_k
                        gCk[n] += gyk * xk[n];
                        gBk[n] += gk * du;
                        gA_h[n] += g_dA * d;
                        sum_dA += g_dA * A_h[n];
                        sum_gB += gk * Bk[n];
                        g[n] = ak[n] * gk;  // carry to step k − 1
                    }
                    gd_bh[k * sgd[2]] = sum_dA + uk * sum_gB;
                    gu_bh[k * sgu[2]] = d * sum_gB + D_h * gyk;
                    gD_bh += gyk * uk;
                }
            }
            std::copy(g.begin(), g.end(), gx0 + bh * N);
            std::copy(gA_h.begin(), gA_h.end(), gA + bh * N);
            if (gD) gD[bh] = gD_bh;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// S4D with a step per sample (Gu et al. 2022 "On the parameterization and initialization of diagonal
// SSMs" §2–3, with Δ_k = Δ · (t_k − t_{k−1})): per series b, channel h and complex mode n,
//   x_k = Ā_k x_{k−1} + c_k B,  y_k = 2 Re Σ_n C_n x_{k,n} + D u_k,  z_k = Δ_k Λ,
//   ZOH:    Ā = e^z,  c = β u_k,  β = (e^z − 1)/Λ = Δ φ₁(z)
//   GBT(α): Ā = (1 + (1−α) z) w,  c = β u_k,  β = Δ w,  w = 1/(1 − α z)
//   FOH:    Ā = e^z,  c = γ₀ u_{k−1} + γ₁ u_k,  γ₁ = Δ φ₂(z),  γ₀ = β − γ₁  (u_{−1}: u_before, else u_0)
// with φ₁(z) = (e^z − 1)/z, φ₂(z) = (e^z − 1 − z)/z² (docs/time.md). Complex values are split into
// real and imaginary arrays (vectorised over the modes). Layouts: u, Δ, y and their gradients
// (batch, H, L) with any strides; Λ, B, C (H, n, 2), x0, x_L (batch, H, n, 2) interleaved as torch's
// view_as_real; u_before (batch, H); the states entering each block (batch, H, blocks, 2, n).
// ---------------------------------------------------------------------------------------------

enum Kind { ZOH = 0, GBT = 1, FOH = 2 };

// |z|² below which β = Δ φ₁(z) is its Taylor polynomial Δ (1 + z/2 + z²/6 + z³/24): truncation
// |z|⁴/120 < 1e-18 relative. The closed form (e^z − 1) Λ⁻¹ needs Λ⁻¹, which is inf or NaN for
// |Λ| → 0 (and Λ = 0); for |z| ≥ 1e-4 and a finite Λ⁻¹ it is as accurate as e^z − 1.
constexpr double SMALL_Z2 = 1e-8;

// Ā and s of one mode for a step Δ: ZOH and FOH s = β; GBT s = w (β = Δ w)
template <typename S, int K>
__attribute__((always_inline)) inline void discretize_mode(S d, S alpha, S lr, S li, S ir, S ii, S& ar, S& ai, S& sr,
                                                           S& si) noexcept {
    if constexpr (K != GBT) {
        S e, em1, sn, cs;
        exp_expm1(d * lr, e, em1);
        sin_cos(d * li, sn, cs);
        // cos b − 1 without cancellation where b is small: −sin²b / (1 + cos b)
        const S cm1 = cs > S(0) ? -sn * sn / (S(1) + cs) : cs - S(1);
        ar = e * cs;
        ai = e * sn;
        const S mr = em1 * cs + cm1;  // Re(e^z − 1)
        const S zr = d * lr, zi = d * li;
        if (zr * zr + zi * zi < S(SMALL_Z2)) {  // β = Δ (1 + z (1/2 + z (1/6 + z/24))) by Horner
            const S tr = S(1.0 / 6) + zr * S(1.0 / 24), ti = zi * S(1.0 / 24);
            const S t2r = S(0.5) + zr * tr - zi * ti, t2i = zr * ti + zi * tr;
            sr = d * (S(1) + zr * t2r - zi * t2i);
            si = d * (zr * t2i + zi * t2r);
        } else {  // β = (e^z − 1) Λ⁻¹
            sr = mr * ir - ai * ii;
            si = mr * ii + ai * ir;
        }
    } else {
        const S zr = d * lr, zi = d * li;
        const S dr = S(1) - alpha * zr, di = -alpha * zi;  // 1 − α z
        const S inv = S(1) / (dr * dr + di * di);
        sr = dr * inv;  // w = 1/(1 − α z)
        si = -di * inv;
        const S nr = S(1) + (S(1) - alpha) * zr, ni = (S(1) - alpha) * zi;
        ar = nr * sr - ni * si;
        ai = nr * si + ni * sr;
    }
}

// Taylor series on |z| < 1 of φ₂(z) = Σ_j z^j/(j+2)! and φ₂'(z) = Σ_j (j+1) z^j/(j+3)!: 10 terms in
// float (truncation < 3e-9), 17 in double (< 1e-17)
constexpr double PHI2_SERIES[17] = {1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
                                    1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600,
                                    1.0 / 6227020800, 1.0 / 87178291200, 1.0 / 1307674368000,
                                    1.0 / 20922789888000, 1.0 / 355687428096000, 1.0 / 6402373705728000};
template <typename S>
constexpr int SERIES_TERMS = sizeof(S) == 4 ? 10 : 17;

// Σ_j c_j z^j by Horner, c_j = (j + 1)^power / (j + 2 + power)! (power 0: φ₂, power 1: φ₂')
template <typename S, int power>
__attribute__((always_inline)) inline void phi2_series(S zr, S zi, S& r, S& i) noexcept {
    constexpr int J = SERIES_TERMS<S>;
    auto coef = [](int j) { return S(power ? (j + 1) * PHI2_SERIES[j + 1] : PHI2_SERIES[j]); };
    r = coef(J - 1);
    i = S(0);
    for (int j = J - 2; j >= 0; --j) {
        const S t = r * zr - i * zi + coef(j);
        i = r * zi + i * zr;
        r = t;
    }
}

// ZOH's ∂β/∂Λ = (ΔĀ − β) Λ⁻¹ = Δ² φ₁'(z), φ₁'(z) = Σ_j (j + 1) z^j/(j + 2)!. The closed form loses a
// factor 1/|z| of the precision to cancellation (and is inf or NaN where Λ⁻¹ is), so |z| < r takes the
// series by Horner: float r = 1/2, 8 terms, double r = 1/100, 7 terms (truncation below 1e-8 and 1e-18
// relative; the closed form at |z| = r is within ~1e-7 and ~1e-14). A branch, not a select: the double
// loop runs scalar (libm's exp and sin), where most modes skip the series.
template <typename S>
__attribute__((always_inline)) inline void zoh_dbeta_dlambda(S d, S lr, S li, S ir, S ii, S ar, S ai, S br, S bi,
                                                             S& qr, S& qi) noexcept {
    constexpr int J = sizeof(S) == 4 ? 8 : 7;
    constexpr S R2 = sizeof(S) == 4 ? S(0.25) : S(1e-4);
    const S zr = d * lr, zi = d * li;
    if (zr * zr + zi * zi < R2) {
        S fr = S(J * PHI2_SERIES[J - 1]), fi = S(0);
        for (int j = J - 2; j >= 0; --j) {
            const S t = fr * zr - fi * zi + S((j + 1) * PHI2_SERIES[j]);
            fi = fr * zi + fi * zr;
            fr = t;
        }
        qr = d * d * fr;
        qi = d * d * fi;
    } else {
        const S q0r = d * ar - br, q0i = d * ai - bi;
        qr = q0r * ir - q0i * ii;
        qi = q0r * ii + q0i * ir;
    }
}

// The first-order hold's terms of one mode besides Ā and β: γ₁ = Δ φ₂, and for the backward
// p = ∂γ₁/∂Δ = φ₁ − φ₂, q = ∂γ₁/∂Λ = Δ² φ₂'. |z| < 1: the series (φ₁ = 1 + z φ₂); else the closed
// forms φ₁ = β/Δ, φ₂ = (φ₁ − 1)/z, φ₂' = (φ₁ − 2 φ₂)/z, whose cancellation costs at most ~10× there.
template <typename S>
__attribute__((always_inline)) inline void foh_terms(S d, S lr, S li, S ir, S ii, S br, S bi, S& g1r, S& g1i, S& pr,
                                                     S& pi, S& qr, S& qi) noexcept {
    const S zr = d * lr, zi = d * li;
    S t2r, t2i, t3r, t3i;
    phi2_series<S, 0>(zr, zi, t2r, t2i);
    phi2_series<S, 1>(zr, zi, t3r, t3i);
    const S invd = S(1) / d;  // not read where Δ = 0 (then |z| < 1)
    const S c1r = br * invd, c1i = bi * invd;  // φ₁
    const S izr = ir * invd, izi = ii * invd;  // 1/z = Λ⁻¹/Δ
    const S c2r = (c1r - S(1)) * izr - c1i * izi, c2i = (c1r - S(1)) * izi + c1i * izr;  // φ₂
    const S er = c1r - S(2) * c2r, ei = c1i - S(2) * c2i;
    const S c3r = er * izr - ei * izi, c3i = er * izi + ei * izr;  // φ₂'
    const bool small = zr * zr + zi * zi < S(1);
    const S p1r = small ? S(1) + zr * t2r - zi * t2i : c1r, p1i = small ? zr * t2i + zi * t2r : c1i;
    const S p2r = small ? t2r : c2r, p2i = small ? t2i : c2i;
    const S p3r = small ? t3r : c3r, p3i = small ? t3i : c3i;
    g1r = d * p2r;
    g1i = d * p2i;
    pr = p1r - p2r;
    pi = p1i - p2i;
    qr = d * d * p3r;
    qi = d * d * p3i;
}

// Λ, Λ⁻¹, B, C of channel h as eight split (n,) arrays in p. Λ⁻¹ by Smith's algorithm (no |Λ|², which
// underflows for |Λ| < 1e-19 in float32); Λ = 0 gets Λ⁻¹ = 0, never read (there |z| = 0 takes the series)
template <typename S>
void split_channel(int64_t n, int64_t h, const S* Lambda, const S* B, const S* C, S* p) {
    S *lr = p, *li = p + n, *ir = p + 2 * n, *ii = p + 3 * n, *Br = p + 4 * n, *Bi = p + 5 * n, *Cr = p + 6 * n, *Ci = p + 7 * n;
    for (int64_t m = 0; m < n; ++m) {
        const int64_t j = (h * n + m) * 2;
        lr[m] = Lambda[j];
        li[m] = Lambda[j + 1];
        if (lr[m] == S(0) && li[m] == S(0)) {
            ir[m] = ii[m] = S(0);
        } else if (std::abs(lr[m]) >= std::abs(li[m])) {  // 1/(a + ib) = (1 − i r)/(a + b r), r = b/a
            const S r = li[m] / lr[m], den = lr[m] + li[m] * r;
            ir[m] = S(1) / den;
            ii[m] = -r / den;
        } else {  // = (r − i)/(a r + b), r = a/b
            const S r = lr[m] / li[m], den = lr[m] * r + li[m];
            ir[m] = r / den;
            ii[m] = S(-1) / den;
        }
        Br[m] = B[j];
        Bi[m] = B[j + 1];
        Cr[m] = C[j];
        Ci[m] = C[j + 1];
    }
}

template <typename S, int K>
void diag_forward(int64_t batch, int64_t H, int64_t L, int64_t n, int64_t T, S alpha, const S* u, const int64_t* su,
                  const S* delta, const int64_t* sd, const S* Lambda, const S* B, const S* C, const S* D, const S* x0,
                  const S* u_before, S* y, const int64_t* sy, S* x_last, S* entering) {
    const int64_t blocks = (L + T - 1) / T;
    std::vector<S> par(8 * n), x(2 * n);
    const S *lr = par.data(), *li = lr + n, *ir = li + n, *ii = ir + n, *Br = ii + n, *Bi = Br + n, *Cr = Bi + n, *Ci = Cr + n;
    S *xr = x.data(), *xi = xr + n;
    for (int64_t h = 0; h < H; ++h) {
        split_channel(n, h, Lambda, B, C, par.data());
        const S D_h = D ? D[h] : S(0);
        for (int64_t b = 0; b < batch; ++b) {
            const int64_t bh = b * H + h;
            const S* u_bh = u + b * su[0] + h * su[1];
            const S* d_bh = delta + b * sd[0] + h * sd[1];
            S* y_bh = y + b * sy[0] + h * sy[1];
            for (int64_t m = 0; m < n; ++m) {
                xr[m] = x0 ? x0[(bh * n + m) * 2] : S(0);
                xi[m] = x0 ? x0[(bh * n + m) * 2 + 1] : S(0);
            }
            S u_prev = u_before ? u_before[bh] : u_bh[0];  // FOH: u_{k−1}
            for (int64_t blk = 0; blk < blocks; ++blk) {
                std::copy(xr, xr + 2 * n, entering + (bh * blocks + blk) * 2 * n);
                for (int64_t k = blk * T, e = std::min(k + T, L); k < e; ++k) {
                    const S uk = u_bh[k * su[2]], d = d_bh[k * sd[2]];
                    S acc = 0;
                    // x_k = Ā_k x_{k−1} + c_k B,  y_k = 2 Re Σ C x_k
#pragma omp simd reduction(+ : acc)
                    for (int64_t m = 0; m < n; ++m) {
                        S ar, ai, sr, si;
                        discretize_mode<S, K>(d, alpha, lr[m], li[m], ir[m], ii[m], ar, ai, sr, si);
                        S cr = (K == GBT ? d * sr : sr) * uk, ci = (K == GBT ? d * si : si) * uk;  // β u_k
                        if constexpr (K == FOH) {  // β u_{k−1} + γ₁ (u_k − u_{k−1})
                            S g1r, g1i, pr, pi, qr, qi;
                            foh_terms<S>(d, lr[m], li[m], ir[m], ii[m], sr, si, g1r, g1i, pr, pi, qr, qi);
                            cr = sr * u_prev + g1r * (uk - u_prev);
                            ci = si * u_prev + g1i * (uk - u_prev);
                        }
                        const S nr = ar * xr[m] - ai * xi[m] + cr * Br[m] - ci * Bi[m];
                        const S ni = ar * xi[m] + ai * xr[m] + cr * Bi[m] + ci * Br[m];
                        xr[m] = nr;
                        xi[m] = ni;
                        acc += Cr[m] * nr - Ci[m] * ni;
                    }
                    y_bh[k * sy[2]] = S(2) * acc + D_h * uk;
                    u_prev = uk;
                }
            }
            for (int64_t m = 0; m < n; ++m) {
                x_last[(bh * n + m) * 2] = xr[m];
                x_last[(bh * n + m) * 2 + 1] = xi[m];
            }
        }
    }
}

// Adjoint, block by block backwards from recomputed states (torch's convention for complex
// gradients: ∂f = ∂f/∂Re + i ∂f/∂Im; for w = a v holomorphic, ∂a = ∂w conj(v)):
//   ḡ_k = 2 ȳ_k conj(C) + conj(Ā_{k+1}) ḡ_{k+1},  ∂Ā_k = ḡ_k conj(x_{k−1}),  ∂c_k = ḡ_k conj(B),
//   ∂B = Σ_k ḡ_k conj(c_k),  ∂C = Σ_k 2 ȳ_k conj(x_k),  ∂u_k = Re Σ_n ḡ_k conj(∂c_k/∂u_k B) + D ȳ_k
//   (+ the next step's Re Σ_n ḡ_{k+1} conj(γ₀ B) under FOH),  ∂β = ∂c u_k (FOH: u_{k−1}), ∂γ₁ = ∂c (u_k − u_{k−1});
//   ZOH, FOH (dĀ/dz = ∂β/∂Δ = Ā, ∂β/∂Λ = (ΔĀ − β)/Λ = Δ² φ₁'(z); FOH also ∂γ₁/∂Δ = p, ∂γ₁/∂Λ = q):
//     ∂Δ_k = Re Σ_n conj(Ā)(∂Ā conj(Λ) + ∂β) [+ ∂γ₁ conj(p)],  ∂Λ = Σ_k Δ conj(Ā) ∂Ā + ∂β conj((ΔĀ − β)/Λ) [+ ∂γ₁ conj(q)]
//   GBT (dĀ/dz = ∂β/∂Δ = w², ∂β/∂Λ = αΔ² w²):
//     ∂Δ_k = Re Σ_n conj(w²)(∂Ā conj(Λ) + ∂β),   ∂Λ = Σ_k Δ conj(w²)(∂Ā + αΔ ∂β)
// ∂Λ, ∂B, ∂C (batch, H, n, 2) and ∂D (batch, H) per series (summed over the batch in Python), ∂x0 =
// conj(Ā_0) ḡ_0; FOH: ∂u_before (batch, H) where u_before is given, else that term is added to ∂u_0.
template <typename S, int K>
void diag_backward(int64_t batch, int64_t H, int64_t L, int64_t n, int64_t T, S alpha, const S* u, const int64_t* su,
                   const S* delta, const int64_t* sd, const S* Lambda, const S* B, const S* C, const S* D,
                   const S* u_before, const S* entering, const S* gy, const int64_t* sgy, const S* gx_last, S* gu,
                   const int64_t* sgu, S* gdelta, const int64_t* sgd, S* gLambda, S* gB, S* gC, S* gD, S* gx0,
                   S* gu_before) {
    const int64_t blocks = (L + T - 1) / T;
    constexpr int stored = K == FOH ? 12 : (K == ZOH ? 8 : 6);  // per step and mode: Ā, s, x (ZOH: and ∂β/∂Λ; FOH: γ₁, p, q)
    std::vector<S> par(8 * n), acc(8 * n), buf(stored * T * n);  // parameters; ḡ, ∂Λ, ∂B, ∂C; one block
    const S *lr = par.data(), *li = lr + n, *ir = li + n, *ii = ir + n, *Br = ii + n, *Bi = Br + n, *Cr = Bi + n, *Ci = Cr + n;
    S *Gr = acc.data(), *Gi = Gr + n, *gLr = Gi + n, *gLi = gLr + n, *gBr = gLi + n, *gBi = gBr + n, *gCr = gBi + n, *gCi = gCr + n;
    S *Ar = buf.data(), *Ai = Ar + T * n, *Sr = Ai + T * n, *Si = Sr + T * n, *Xr = Si + T * n, *Xi = Xr + T * n;
    S *G1r = Xi + T * n, *G1i = G1r + T * n, *Pr = G1i + T * n, *Pi = Pr + T * n, *Qr = Pi + T * n, *Qi = Qr + T * n;
    for (int64_t h = 0; h < H; ++h) {
        split_channel(n, h, Lambda, B, C, par.data());
        const S D_h = D ? D[h] : S(0);
        for (int64_t b = 0; b < batch; ++b) {
            const int64_t bh = b * H + h;
            const S* u_bh = u + b * su[0] + h * su[1];
            const S* d_bh = delta + b * sd[0] + h * sd[1];
            const S* gy_bh = gy + b * sgy[0] + h * sgy[1];
            S* gu_bh = gu + b * sgu[0] + h * sgu[1];
            S* gd_bh = gdelta + b * sgd[0] + h * sgd[1];
            const S u_first = u_before ? u_before[bh] : u_bh[0];  // u_{−1}
            std::fill(acc.begin(), acc.end(), S(0));
            if (gx_last) {
                for (int64_t m = 0; m < n; ++m) {
                    Gr[m] = gx_last[(bh * n + m) * 2];
                    Gi[m] = gx_last[(bh * n + m) * 2 + 1];
                }
            }
            S gD_bh = 0, gu_next = 0;  // gu_next: step k + 1's term for u_k (FOH)
            for (int64_t blk = blocks - 1; blk >= 0; --blk) {
                const int64_t s = blk * T, e = std::min(s + T, L);
                const S* er = entering + (bh * blocks + blk) * 2 * n;  // x_{s−1}
                const S* ei = er + n;
                // recompute the block's discretization and states from its entering state
                for (int64_t k = s; k < e; ++k) {
                    const S uk = u_bh[k * su[2]], d = d_bh[k * sd[2]];
                    const S u_prev = k == 0 ? u_first : u_bh[(k - 1) * su[2]];
                    const int64_t o = (k - s) * n;
                    const S* pr = k == s ? er : Xr + o - n;
                    const S* pi = k == s ? ei : Xi + o - n;
#pragma omp simd
                    for (int64_t m = 0; m < n; ++m) {
                        S ar, ai, sr, si;
                        discretize_mode<S, K>(d, alpha, lr[m], li[m], ir[m], ii[m], ar, ai, sr, si);
                        Ar[o + m] = ar;
                        Ai[o + m] = ai;
                        Sr[o + m] = sr;
                        Si[o + m] = si;
                        S cr = (K == GBT ? d * sr : sr) * uk, ci = (K == GBT ? d * si : si) * uk;
                        if constexpr (K == ZOH) {  // ∂β/∂Λ, kept in G1 for the adjoint
                            zoh_dbeta_dlambda<S>(d, lr[m], li[m], ir[m], ii[m], ar, ai, sr, si, G1r[o + m], G1i[o + m]);
                        }
                        if constexpr (K == FOH) {
                            S g1r, g1i, p_r, p_i, qr, qi;
                            foh_terms<S>(d, lr[m], li[m], ir[m], ii[m], sr, si, g1r, g1i, p_r, p_i, qr, qi);
                            G1r[o + m] = g1r;
                            G1i[o + m] = g1i;
                            Pr[o + m] = p_r;
                            Pi[o + m] = p_i;
                            Qr[o + m] = qr;
                            Qi[o + m] = qi;
                            cr = sr * u_prev + g1r * (uk - u_prev);
                            ci = si * u_prev + g1i * (uk - u_prev);
                        }
                        Xr[o + m] = ar * pr[m] - ai * pi[m] + cr * Br[m] - ci * Bi[m];
                        Xi[o + m] = ar * pi[m] + ai * pr[m] + cr * Bi[m] + ci * Br[m];
                    }
                }
                for (int64_t k = e - 1; k >= s; --k) {
                    const S uk = u_bh[k * su[2]], d = d_bh[k * sd[2]], gyk = gy_bh[k * sgy[2]], g2 = S(2) * gyk;
                    const S u_prev = k == 0 ? u_first : u_bh[(k - 1) * su[2]];
                    const S u_in = K == FOH ? u_prev : uk;  // what β multiplies
                    const int64_t o = (k - s) * n;
                    const S* pr = k == s ? er : Xr + o - n;
                    const S* pi = k == s ? ei : Xi + o - n;
                    S sum_u = 0, sum_prev = 0, sum_d = 0;
#pragma omp simd reduction(+ : sum_u, sum_prev, sum_d)
                    for (int64_t m = 0; m < n; ++m) {
                        const S ar = Ar[o + m], ai = Ai[o + m];
                        const S br = K == GBT ? d * Sr[o + m] : Sr[o + m], bi = K == GBT ? d * Si[o + m] : Si[o + m];  // β
                        const S gr = g2 * Cr[m] + Gr[m], gi = -g2 * Ci[m] + Gi[m];  // ḡ_k
                        gCr[m] += g2 * Xr[o + m];
                        gCi[m] -= g2 * Xi[o + m];
                        const S gar = gr * pr[m] + gi * pi[m], gai = gi * pr[m] - gr * pi[m];  // ∂Ā
                        const S gcr = gr * Br[m] + gi * Bi[m], gci = gi * Br[m] - gr * Bi[m];  // ∂c = ḡ conj(B)
                        // c = β u_in (+ γ₁ (u_k − u_{k−1}) under FOH); ∂B = ḡ conj(c)
                        S cr = br * u_in, ci = bi * u_in;
                        if constexpr (K == FOH) {
                            const S g1r = G1r[o + m], g1i = G1i[o + m];
                            cr += g1r * (uk - u_prev);
                            ci += g1i * (uk - u_prev);
                            // ∂u_k = Re(∂c conj(γ₁)), ∂u_{k−1} = Re(∂c conj(β − γ₁))
                            sum_u += gcr * g1r + gci * g1i;
                            sum_prev += gcr * (br - g1r) + gci * (bi - g1i);
                        } else {
                            sum_u += gcr * br + gci * bi;
                        }
                        gBr[m] += gr * cr + gi * ci;
                        gBi[m] += gi * cr - gr * ci;
                        const S gbr = gcr * u_in, gbi = gci * u_in;  // ∂β
                        const S tr = gar * lr[m] + gai * li[m] + gbr, ti = gai * lr[m] - gar * li[m] + gbi;
                        if constexpr (K != GBT) {
                            sum_d += ar * tr + ai * ti;
                            // ∂β/∂Λ = Δ² φ₁'(z), from the recompute: ZOH's in G1, FOH's Δ² p (φ₁' = φ₁ − φ₂)
                            const S qr = K == FOH ? d * d * Pr[o + m] : G1r[o + m];
                            const S qi = K == FOH ? d * d * Pi[o + m] : G1i[o + m];
                            S lr_ = d * (ar * gar + ai * gai) + gbr * qr + gbi * qi;
                            S li_ = d * (ar * gai - ai * gar) + gbi * qr - gbr * qi;
                            if constexpr (K == FOH) {
                                const S ggr = gcr * (uk - u_prev), ggi = gci * (uk - u_prev);  // ∂γ₁
                                sum_d += ggr * Pr[o + m] + ggi * Pi[o + m];
                                lr_ += ggr * Qr[o + m] + ggi * Qi[o + m];
                                li_ += ggi * Qr[o + m] - ggr * Qi[o + m];
                            }
                            gLr[m] += lr_;
                            gLi[m] += li_;
                        } else {
                            const S wr = Sr[o + m], wi = Si[o + m];
                            const S w2r = wr * wr - wi * wi, w2i = S(2) * wr * wi;
                            sum_d += w2r * tr + w2i * ti;
                            const S vr = gar + alpha * d * gbr, vi = gai + alpha * d * gbi;
                            gLr[m] += d * (w2r * vr + w2i * vi);
                            gLi[m] += d * (w2r * vi - w2i * vr);
                        }
                        Gr[m] = ar * gr + ai * gi;  // carry conj(Ā_k) ḡ_k to step k − 1
                        Gi[m] = ar * gi - ai * gr;
                    }
                    gu_bh[k * sgu[2]] = sum_u + gu_next + D_h * gyk;
                    gu_next = sum_prev;
                    gd_bh[k * sgd[2]] = sum_d;
                    gD_bh += gyk * uk;
                }
            }
            if (K == FOH) {  // the term of u_{−1}
                if (gu_before)
                    gu_before[bh] = gu_next;
                else
                    gu_bh[0] += gu_next;
            }
            for (int64_t m = 0; m < n; ++m) {
                const int64_t j = (bh * n + m) * 2;
                gx0[j] = Gr[m];
                gx0[j + 1] = Gi[m];
                gLambda[j] = gLr[m];
                gLambda[j + 1] = gLi[m];
                gB[j] = gBr[m];
                gB[j + 1] = gBi[m];
                gC[j] = gCr[m];
                gC[j + 1] = gCi[m];
            }
            if (gD) gD[bh] = gD_bh;
        }
    }
}

template <typename S>
using DiagForward = decltype(&diag_forward<S, ZOH>);
template <typename S>
using DiagBackward = decltype(&diag_backward<S, ZOH>);
template <typename S>
constexpr DiagForward<S> DIAG_FORWARD[3] = {diag_forward<S, ZOH>, diag_forward<S, GBT>, diag_forward<S, FOH>};
template <typename S>
constexpr DiagBackward<S> DIAG_BACKWARD[3] = {diag_backward<S, ZOH>, diag_backward<S, GBT>, diag_backward<S, FOH>};

// One streaming step of Mamba's causal depthwise conv and its SiLU, per series b and channel h:
//   window = [conv_state, x] (K values, oldest first),  x' = silu(Σ_j w_j window_j + bias),
//   new conv_state = window without its oldest value.
// x is a view with rows ``x_stride`` apart (in_proj's output (batch, 2 H), x its first half).
template <typename S>
void conv_silu_step(int64_t batch, int64_t H, int64_t K, const S* x, int64_t x_stride, const S* conv_state,
                    const S* w, const S* bias, S* out, S* new_state) {
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t h = 0; h < H; ++h) {
            const S* st = conv_state + (b * H + h) * (K - 1);  // (K − 1,)
            S* nst = new_state + (b * H + h) * (K - 1);        // (K − 1,)
            const S* w_h = w + h * K;                          // (K,)
            const S xk = x[b * x_stride + h];
            S acc = 0;
            for (int64_t j = 0; j + 1 < K; ++j) acc += st[j] * w_h[j];
            acc += xk * w_h[K - 1];
            if (bias) acc += bias[h];
            for (int64_t j = 0; j + 2 < K; ++j) nst[j] = st[j + 1];
            if (K > 1) nst[K - 2] = xk;
            out[b * H + h] = silu_of(acc);
        }
    }
}

// One streaming step of the selective SSM and Mamba's gate (Gu & Dao 2023 eq. 2a-2b, 4; Alg. 2):
//   Δ = softplus(δ) · dt,  h = exp(Δ A) ⊙ h + Δ x B,  y = (Σ_n C_n h_n + D x) · silu(z)
// δ (batch, H) is dt_proj's output before the softplus (torch's: δ > 20 gives δ); dt (batch,) or null;
// B, C rows and z rows are ``bc_stride`` and ``z_stride`` apart (views into x_proj's and in_proj's outputs).
template <typename S>
void selective_step(int64_t batch, int64_t H, int64_t N, const S* x, const S* delta_raw, const S* dt, const S* B,
                    const S* C, int64_t bc_stride, const S* state, const S* A, const S* D, const S* z,
                    int64_t z_stride, S* y, S* new_state) {
    for (int64_t b = 0; b < batch; ++b) {
        const S* Bb = B + b * bc_stride;  // (N,)
        const S* Cb = C + b * bc_stride;  // (N,)
        for (int64_t h = 0; h < H; ++h) {
            const int64_t bh = b * H + h;
            const S r = delta_raw[bh];
            S d = softplus_of(r);
            if (dt) d *= dt[b];
            const S xv = x[bh], du = d * xv;
            const S* A_h = A + h * N;
            const S* st = state + bh * N;
            S* nst = new_state + bh * N;
            S acc = 0;
#pragma omp simd reduction(+ : acc)
            for (int64_t n = 0; n < N; ++n) {
                nst[n] = exp_of(d * A_h[n]) * st[n] + du * Bb[n];
                acc += Cb[n] * nst[n];
            }
            const S zv = z[b * z_stride + h];
            y[bh] = (acc + D[h] * xv) * silu_of(zv);
        }
    }
}

// y = x Wᵀ + b for one row, from the transposed weight Wt (in, out), row-major: the rows of Wt summed
// with the weights x (vectorised over out); b (out,) or null
template <typename S>
void row_linear(int64_t in, int64_t out, const S* x, const S* Wt, const S* b, S* y) noexcept {
    for (int64_t o = 0; o < out; ++o) y[o] = b ? b[o] : S(0);
    for (int64_t i = 0; i < in; ++i) {
        const S xi = x[i];
        const S* w = Wt + i * out;
#pragma omp simd
        for (int64_t o = 0; o < out; ++o) y[o] += xi * w[o];
    }
}

// One streaming step of a whole Mamba layer (Gu & Dao 2023 §3.4, Fig. 3; Alg. 2), per series b:
//   [x, z] = in_proj(u),  x' = silu(conv([conv_state, x])),  [δ, B, C] = x_proj(x'),  δ' = dt_proj(δ),
//   (y, h) = selective_step(x', δ', B, C, z),  out = out_proj(y)
// u (batch, d_model); the projections' transposed weights (in, out) and biases (out,) or null; the
// states (batch, H, K − 1) and (batch, H, N); dt (batch,) or null.
template <typename S>
void mamba_step(int64_t batch, int64_t d_model, int64_t H, int64_t K, int64_t N, int64_t R, const S* u,
                const S* in_w, const S* in_b, const S* conv_w, const S* conv_b, const S* x_w, const S* x_b,
                const S* dt_w, const S* dt_b, const S* out_w, const S* out_b, const S* A, const S* D, const S* dt,
                const S* conv_state, const S* ssm_state, S* out, S* new_conv_state, S* new_ssm_state) {
    std::vector<S> xz(2 * H), xc(H), xdbl(R + 2 * N), draw(H), y(H);
    for (int64_t b = 0; b < batch; ++b) {
        row_linear(d_model, 2 * H, u + b * d_model, in_w, in_b, xz.data());
        conv_silu_step<S>(1, H, K, xz.data(), 0, conv_state + b * H * (K - 1), conv_w, conv_b, xc.data(),
                          new_conv_state + b * H * (K - 1));
        row_linear(H, R + 2 * N, xc.data(), x_w, x_b, xdbl.data());
        row_linear(R, H, xdbl.data(), dt_w, dt_b, draw.data());
        selective_step<S>(1, H, N, xc.data(), draw.data(), dt ? dt + b : nullptr, xdbl.data() + R, xdbl.data() + R + N,
                          0, ssm_state + b * H * N, A, D, xz.data() + H, 0, y.data(), new_ssm_state + b * H * N);
        row_linear(H, d_model, y.data(), out_w, out_b, out + b * d_model);
    }
}

}  // namespace

// C entry points, one per function and dtype: ssm_<name>_f32 / ssm_<name>_f64
#define SSM_EXPORTS(S, suffix)                                                                                     \
    void ssm_scan_forward_##suffix(int64_t batch, int64_t H, int64_t L, int64_t N, int64_t T, const S* u,           \
                                   const int64_t* su, const S* delta, const int64_t* sd, const S* A, const S* B,    \
                                   const S* C, const S* D, const S* x0, S* y, const int64_t* sy, S* x_last,         \
                                   S* entering) {                                                                   \
        forward<S>(batch, H, L, N, T, u, su, delta, sd, A, B, C, D, x0, y, sy, x_last, entering);                   \
    }                                                                                                               \
    void ssm_scan_backward_##suffix(int64_t batch, int64_t H, int64_t L, int64_t N, int64_t T, const S* u,          \
                                    const int64_t* su, const S* delta, const int64_t* sd, const S* A, const S* B,   \
                                    const S* C, const S* D, const S* entering, const S* gy, const int64_t* sgy,     \
                                    const S* gx_last, S* gu, const int64_t* sgu, S* gdelta, const int64_t* sgd,     \
                                    S* gA, S* gB, S* gC, S* gD, S* gx0) {                                           \
        backward<S>(batch, H, L, N, T, u, su, delta, sd, A, B, C, D, entering, gy, sgy, gx_last, gu, sgu, gdelta,   \
                    sgd, gA, gB, gC, gD, gx0);                                                                      \
    }                                                                                                               \
    void ssm_diag_forward_##suffix(int64_t batch, int64_t H, int64_t L, int64_t n, int64_t T, int64_t kind,          \
                                   double alpha, const S* u, const int64_t* su, const S* delta, const int64_t* sd,   \
                                   const S* Lambda, const S* B, const S* C, const S* D, const S* x0,                 \
                                   const S* u_before, S* y, const int64_t* sy, S* x_last, S* entering) {             \
        DIAG_FORWARD<S>[kind](batch, H, L, n, T, S(alpha), u, su, delta, sd, Lambda, B, C, D, x0, u_before, y, sy,  \
                              x_last, entering);                                                                    \
    }                                                                                                               \
    void ssm_diag_backward_##suffix(int64_t batch, int64_t H, int64_t L, int64_t n, int64_t T, int64_t kind,         \
                                    double alpha, const S* u, const int64_t* su, const S* delta, const int64_t* sd,  \
                                    const S* Lambda, const S* B, const S* C, const S* D, const S* u_before,          \
                                    const S* entering, const S* gy, const int64_t* sgy, const S* gx_last, S* gu,     \
                                    const int64_t* sgu, S* gdelta, const int64_t* sgd, S* gLambda, S* gB, S* gC,     \
                                    S* gD, S* gx0, S* gu_before) {                                                  \
        DIAG_BACKWARD<S>[kind](batch, H, L, n, T, S(alpha), u, su, delta, sd, Lambda, B, C, D, u_before, entering,  \
                               gy, sgy, gx_last, gu, sgu, gdelta, sgd, gLambda, gB, gC, gD, gx0, gu_before);         \
    }                                                                                                               \
    void ssm_mamba_step_##suffix(int64_t batch, int64_t d_model, int64_t H, int64_t K, int64_t N, int64_t R,       \
                                 const S* u, const S* in_w, const S* in_b, const S* conv_w, const S* conv_b,        \
                                 const S* x_w, const S* x_b, const S* dt_w, const S* dt_b, const S* out_w,          \
                                 const S* out_b, const S* A, const S* D, const S* dt, const S* conv_state,          \
                                 const S* ssm_state, S* out, S* new_conv_state, S* new_ssm_state) {                 \
        mamba_step<S>(batch, d_model, H, K, N, R, u, in_w, in_b, conv_w, conv_b, x_w, x_b, dt_w, dt_b, out_w, out_b, \
                      A, D, dt, conv_state, ssm_state, out, new_conv_state, new_ssm_state);                         \
    }

extern "C" {
SSM_EXPORTS(float, f32)
SSM_EXPORTS(double, f64)
}  // extern "C"
