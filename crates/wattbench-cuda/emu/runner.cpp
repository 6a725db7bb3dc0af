// The emulator's program: runs one plan of wattbench-cuda (buffers, then kernel launches,
// copies and zeroings in stream order) on the CPU execution model of cuda_cpu.h and
// sm90_cpu.h, with the kernels compiled from kernels/*.cu as they are.
//
//   wb-emu [--reverse] [--warp-serial] PLAN IN OUT
//
// --reverse resumes threads (or, with --warp-serial, warps) last first; --warp-serial runs
// each warp as far as it can before the next starts, with copies landing at issue (cuda_cpu.h).
//
// PLAN is the text the Rust side writes (emulator.rs): `buf BYTES LEN` lines, then steps
// (`launch ENTRY GX GY GZ BX BY BZ CLUSTER SMEM NARGS` followed by one `arg ...` line per
// argument,
// `copy DBUF DSTART SBUF SSTART LEN`, `zero BUF START LEN`). IN holds every buffer's initial
// bytes, in order; OUT receives them after the last step. Exit status: 0 done, 2 a malformed
// plan or unreadable file, 3 a kernel fault (the message names the kernel, block and thread).
#include "cuda_cpu.h"

#include "common.cuh"
#include "gemm.cu"
#include "conv.cu"
#include "rnn.cu"
#include "elementwise.cu"
#include "sm90_cpu.h"
#include "gemm_sm90.cu"
#include "planted.cu"

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <tuple>
#include <utility>

namespace wbemu {

Machine M;

void fail(const std::string& what) {
    if (M.cur >= 0 && M.cur < (int)M.fibers.size()) {
        const Fiber& f = M.fibers[M.cur];
        const uint3 b = M.ctas[f.cta].idx, t = f.tid;
        std::fprintf(stderr, "kernel fault in %s, block (%u,%u,%u), thread (%u,%u,%u): %s\n",
                     M.kernel, b.x, b.y, b.z, t.x, t.y, t.z, what.c_str());
    } else {
        std::string blocks;
        for (const Cta& c : M.ctas) {
            char buf[48];
            std::snprintf(buf, sizeof buf, "%s(%u,%u,%u)", blocks.empty() ? "" : " ", c.idx.x, c.idx.y,
                          c.idx.z);
            blocks += buf;
        }
        std::fprintf(stderr, "kernel fault in %s, block %s: %s\n", M.kernel, blocks.c_str(), what.c_str());
    }
    std::exit(3);
}

unsigned char* smem_at(int cta, unsigned addr, size_t len, const char* what) {
    if (addr < kSmemBase || addr - kSmemBase > M.dyn_bytes || len > M.dyn_bytes - (addr - kSmemBase)) {
        char buf[200];
        std::snprintf(buf, sizeof buf, "%s: %zu bytes at shared address 0x%x, outside the %u bytes of dynamic shared memory at 0x%x",
                      what, len, addr, M.dyn_bytes, kSmemBase);
        fail(buf);
    }
    return M.ctas[cta].smem + (addr - kSmemBase);
}

MBar& mbar(int cta, u32 bar, const char* what) {
    for (auto& [a, b] : M.ctas[cta].bars)
        if (a == bar) return b;
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s on shared address 0x%x of CTA %d, not an initialised mbarrier", what, bar, cta);
    fail(buf);
}

namespace {
void mbar_try_complete(MBar& b) {
    if (b.pending == 0 && b.tx == 0) {
        ++b.phase;
        b.pending = b.count;
        ++M.events;
    }
}
}  // namespace

void mbar_arrive(int cta, u32 bar) {
    MBar& b = mbar(cta, bar, "mbarrier.arrive");
    if (b.pending == 0) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "mbarrier at 0x%x of CTA %d: an arrival beyond the %d its phase expects (%lld transaction bytes outstanding)",
                      bar, cta, b.count, b.tx);
        fail(buf);
    }
    --b.pending;
    ++M.events;
    mbar_try_complete(b);
}

namespace {
// A TMA load lands: the box, swizzled, in each CTA it names; then its bytes.
void land(const TmaOp& op) {
    const TmaMap& m = op.map;
    const size_t row_bytes = m.box_cols * 2, bytes = row_bytes * m.box_rows;
    for (unsigned r = 0; r < M.cluster; ++r) {
        if (!(op.mask >> r & 1u)) continue;
        smem_at((int)r, op.dst, bytes, "cp.async.bulk.tensor destination");
        for (unsigned long long y = 0; y < m.box_rows; ++y)
            for (unsigned long long x = 0; x < m.box_cols; ++x) {
                const long long row = op.c1 + (long long)y, col = op.c0 + (long long)x;
                const bool in = row >= 0 && col >= 0 && (unsigned long long)row < m.rows &&
                                (unsigned long long)col < m.cols;
                const u16 v = in ? m.base[(size_t)row * m.ld + (size_t)col] : (u16)0;
                u32 a = op.dst + (u32)(y * row_bytes + 2 * x);
                a ^= ((a >> 7) & 7u) << 4;
                std::memcpy(smem_at((int)r, a, 2, "cp.async.bulk.tensor write"), &v, 2);
            }
        MBar& b = mbar((int)r, op.bar, "cp.async.bulk.tensor completion");
        b.tx -= (long long)bytes;
        mbar_try_complete(b);
    }
    ++M.events;
}
}  // namespace

void tma_issue(u32 dst, const TmaMap* map, int c0, int c1, u32 bar, unsigned mask) {
    if (map->magic != kTmaMagic) fail("cp.async.bulk.tensor with a tensor map the host did not encode");
    // 128 bytes is TMA's rule; the 128-byte swizzle pattern spans 1024, and this model (like the
    // kernels' descriptors) takes it from the address bits, so a box must start on that span.
    if (dst % 1024) fail("cp.async.bulk.tensor with 128-byte swizzle: destination not on a 1024-byte boundary");
    if (mask == 0 || mask >= (1u << M.cluster)) fail("cp.async.bulk.tensor: a multicast mask outside the cluster");
    ++M.tma_loads;
    if (M.warp_serial) {
        land(TmaOp{mask, dst, bar, *map, c0, c1});
        return;
    }
    M.tma.push_back(TmaOp{mask, dst, bar, *map, c0, c1});
    ++M.events;
}

namespace {

// Every issued TMA load lands (none is left in warp-serial mode: they land at issue).
void land_tma() {
    std::vector<TmaOp> ops;
    ops.swap(M.tma);
    for (const TmaOp& op : ops) land(op);
}

u16 half(u32 r, int i) { return (u16)(i ? r >> 16 : r & 0xFFFF); }
u32 pack(u16 lo, u16 hi) { return (u32)lo | ((u32)hi << 16); }
float to_f32(u16 v, bool bf) { return bf ? wb_bf16_to_f32(v) : wb_f16_to_f32(v); }

const char* name_of(Collective c) {
    switch (c) {
        case Collective::Ldmatrix: return "ldmatrix.x4";
        case Collective::LdmatrixTrans: return "ldmatrix.x4.trans";
        case Collective::MmaBf16: return "mma.m16n8k16.bf16";
        case Collective::MmaF16: return "mma.m16n8k16.f16";
        case Collective::Shfl: return "shfl.sync.bfly";
        case Collective::Wgmma: return "wgmma.mma_async";
        case Collective::WgCommit: return "wgmma.commit_group";
        case Collective::WgWait: return "wgmma.wait_group";
        default: return "none";
    }
}

// One warp-collective instruction, every lane of `lanes` (32 fibers) waiting at it.
void run_warp_collective(Fiber* lanes) {
    const Collective kind = lanes[0].coll;
    if (kind == Collective::Shfl) {
        u32 v[32];
        for (int l = 0; l < 32; ++l) v[l] = *static_cast<const u32*>(lanes[l].in0);
        for (int l = 0; l < 32; ++l) {
            const int src = l ^ *static_cast<const int*>(lanes[l].in1);
            if (src < 0 || src > 31) fail("shfl.sync.bfly: a lane mask outside the warp");
            *static_cast<u32*>(lanes[l].out) = v[src];
        }
        return;
    }
    if (kind == Collective::Ldmatrix || kind == Collective::LdmatrixTrans) {
        // Matrix j's row r is the 16 bytes lane 8j + r points at.
        u16 m[4][8][8];
        for (int j = 0; j < 4; ++j)
            for (int r = 0; r < 8; ++r) std::memcpy(m[j][r], lanes[8 * j + r].in0, 16);
        const bool tr = kind == Collective::LdmatrixTrans;
        for (int l = 0; l < 32; ++l) {
            u32* out = static_cast<u32*>(lanes[l].out);
            const int row = l / 4, col = 2 * (l % 4);
            for (int j = 0; j < 4; ++j)
                out[j] = tr ? pack(m[j][col][row], m[j][col + 1][row]) : pack(m[j][row][col], m[j][row][col + 1]);
        }
        return;
    }
    // mma.m16n8k16.row.col: gather A[16][16], B[16][8] and C[16][8] from the fragments.
    const bool bf = kind == Collective::MmaBf16;
    double A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; ++l) {
        const int g = l >> 2, t = l & 3;
        const u32* a = static_cast<const u32*>(lanes[l].in0);
        const u32* b = static_cast<const u32*>(lanes[l].in1);
        const float* d = static_cast<const float*>(lanes[l].out);
        for (int i = 0; i < 2; ++i) {
            A[g][2 * t + i] = to_f32(half(a[0], i), bf);
            A[g + 8][2 * t + i] = to_f32(half(a[1], i), bf);
            A[g][2 * t + 8 + i] = to_f32(half(a[2], i), bf);
            A[g + 8][2 * t + 8 + i] = to_f32(half(a[3], i), bf);
            B[2 * t + i][g] = to_f32(half(b[0], i), bf);
            B[2 * t + 8 + i][g] = to_f32(half(b[1], i), bf);
            C[g][2 * t + i] = d[i];
            C[g + 8][2 * t + i] = d[2 + i];
        }
    }
    for (int l = 0; l < 32; ++l) {
        const int g = l >> 2, t = l & 3;
        float* d = static_cast<float*>(lanes[l].out);
        for (int h = 0; h < 2; ++h)
            for (int i = 0; i < 2; ++i) {
                const int r = g + 8 * h, c = 2 * t + i;
                double s = C[r][c];
                for (int k = 0; k < 16; ++k) s += A[r][k] * B[k][c];
                d[2 * h + i] = (float)s;
            }
    }
}

// Element (r, k) of a wgmma operand (r: row of A or column of B) through its descriptor.
u16 operand(int cta, u64 desc, bool mn_major, int r, int k, bool a) {
    if ((desc >> 62) != 1) fail(std::string("wgmma: a ") + (a ? "A" : "B") + " descriptor without 128-byte swizzle (not modelled)");
    const u32 start = (u32)(desc & 0x3FFF) << 4, lbo = (u32)((desc >> 16) & 0x3FFF) << 4,
              sbo = (u32)((desc >> 32) & 0x3FFF) << 4;
    u32 addr = mn_major ? start + (u32)(r / 64) * lbo + (u32)(k / 8) * sbo + (u32)(k % 8) * 128 + 2u * (u32)(r % 64)
                        : start + (u32)(r / 8) * sbo + (u32)(r % 8) * 128 + 2u * (u32)k;
    addr ^= ((addr >> 7) & 7u) << 4;
    u16 v;
    std::memcpy(&v, smem_at(cta, addr, 2, a ? "wgmma A operand" : "wgmma B operand"), 2);
    return v;
}

// The accumulator register of thread t (of the warpgroup) holding D[row][col] of m64nN.
void acc_pos(int t, int i, int& row, int& col) {
    const int w = t / 32, l = t % 32, j = i / 4, q = i % 4;
    row = 16 * w + l / 4 + (q >= 2 ? 8 : 0);
    col = 8 * j + 2 * (l % 4) + (q & 1);
}

void retire(int cta, Warpgroup& wg, const WgmmaOp& op) {
    const int n = op.a.n, regs = n / 2;
    if (wg.expect.empty()) wg.expect.assign(128, {});
    for (int t = 0; t < 128; ++t) {
        const std::vector<float>& want = op.first ? std::vector<float>(op.snapshot.begin() + t * regs, op.snapshot.begin() + (t + 1) * regs)
                                                  : wg.expect[t];
        if ((int)want.size() != regs || std::memcmp(want.data(), op.acc[t], regs * sizeof(float)) != 0)
            fail("wgmma: accumulators changed while a wgmma.mma_async using them was in flight");
    }
    std::vector<double> A(64 * 16), B(16 * (size_t)n);
    for (int r = 0; r < 64; ++r)
        for (int k = 0; k < 16; ++k) A[r * 16 + k] = to_f32(operand(cta, op.a.da, op.a.trans_a != 0, r, k, true), op.a.bf16);
    for (int c = 0; c < n; ++c)
        for (int k = 0; k < 16; ++k) B[k * n + c] = to_f32(operand(cta, op.a.db, op.a.trans_b != 0, c, k, false), op.a.bf16);
    for (int t = 0; t < 128; ++t) {
        for (int i = 0; i < regs; ++i) {
            int row, col;
            acc_pos(t, i, row, col);
            double s = op.a.scale_d ? (double)op.acc[t][i] : 0.0;
            for (int k = 0; k < 16; ++k) s += A[row * 16 + k] * B[k * n + col];
            op.acc[t][i] = (float)s;
        }
        wg.expect[t].assign(op.acc[t], op.acc[t] + regs);
    }
    ++M.wgmmas;
}

// One warpgroup-collective instruction, all 128 threads of warpgroup `g` of CTA `cta` at it.
void run_wg_collective(int cta, int g, Fiber* th) {
    Warpgroup& wg = M.ctas[cta].wgs[g];
    const Collective kind = th[0].coll;
    if (kind == Collective::Wgmma) {
        WgmmaOp op;
        op.a = th[0].wg;
        op.first = wg.open.empty() && wg.committed.empty();
        for (int t = 0; t < 128; ++t) {
            if (!(th[t].wg == op.a)) fail("wgmma.mma_async: descriptors, scale-d or shape differ across the warpgroup");
            op.acc[t] = static_cast<float*>(th[t].out);
            if (op.first) op.snapshot.insert(op.snapshot.end(), op.acc[t], op.acc[t] + op.a.n / 2);
        }
        wg.open.push_back(std::move(op));
    } else if (kind == Collective::WgCommit) {
        wg.committed.push_back(std::move(wg.open));
        wg.open.clear();
    } else {
        const int n = th[0].wait_n;
        for (int t = 1; t < 128; ++t)
            if (th[t].wait_n != n) fail("wgmma.wait_group: different counts across the warpgroup");
        while ((int)wg.committed.size() > n) {
            for (const WgmmaOp& op : wg.committed.front()) retire(cta, wg, op);
            wg.committed.erase(wg.committed.begin());
        }
        if (wg.committed.empty() && wg.open.empty()) wg.expect.clear();
    }
}

const char* state_name(State s) {
    switch (s) {
        case State::Runnable: return "running";
        case State::Spinning: return "waiting on an mbarrier";
        case State::AtBarrier: return "at __syncthreads";
        case State::AtClusterBarrier: return "at barrier.cluster";
        case State::AtCollective: return "at";
        default: return "exited";
    }
}

[[noreturn]] void stuck(const char* why) {
    M.cur = -1;
    std::string s = why;
    s += " (threads by CTA and linear index):";
    const int n = (int)M.fibers.size();
    auto same = [](const Fiber& a, const Fiber& b) {
        return a.cta == b.cta && a.state == b.state && a.coll == b.coll &&
               (a.state != State::Spinning || (a.spin_bar == b.spin_bar && a.spin_parity == b.spin_parity));
    };
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && same(M.fibers[j + 1], M.fibers[i])) ++j;
        const Fiber& f = M.fibers[i];
        char range[48], buf[240];
        if (i == j) std::snprintf(range, sizeof range, "CTA %d thread %d", f.cta, f.lin);
        else std::snprintf(range, sizeof range, "CTA %d threads %d-%d", f.cta, f.lin, M.fibers[j].lin);
        if (f.state == State::AtCollective) {
            std::snprintf(buf, sizeof buf, " %s at %s;", range, name_of(f.coll));
        } else if (f.state == State::Spinning) {
            const MBar* b = nullptr;
            for (auto& [a, m] : M.ctas[f.cta].bars)
                if (a == f.spin_bar) b = &m;
            std::snprintf(buf, sizeof buf, " %s wait for parity %u of the mbarrier at 0x%x (phase %u, %d of %d arrivals missing, %lld transaction bytes);",
                          range, f.spin_parity, f.spin_bar, b ? b->phase : 0, b ? b->pending : 0, b ? b->count : 0, b ? b->tx : 0);
        } else {
            std::snprintf(buf, sizeof buf, " %s %s;", range, state_name(f.state));
        }
        s += buf;
        i = j + 1;
    }
    fail(s);
}

// Resumes fiber `i` until it yields.
void resume(int i) {
    M.cur = i;
#if WB_EMU_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, M.fibers[i].stack, kStackBytes);
#endif
    swapcontext(&M.main_ctx, &M.fibers[i].ctx);
#if WB_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

// Runs the warp-collective instruction the `count` lanes of a warp all wait at, if they do.
void try_warp_collective(Fiber* lanes, int count) {
    int at = 0;
    for (int l = 0; l < count; ++l) at += lanes[l].state == State::AtCollective;
    if (at < count || warpgroup_wide(lanes[0].coll)) return;
    if (count < 32) stuck("a warp-collective instruction in a partial warp");
    for (int l = 1; l < 32; ++l)
        if (lanes[l].coll != lanes[0].coll) stuck("lanes of one warp at different collective instructions");
    run_warp_collective(lanes);
    ++M.collectives;
    ++M.events;
    for (int l = 0; l < 32; ++l) lanes[l].state = State::Runnable;
}

// The static __shared__ arrays of every kernel (cuda_cpu.h puts them in this section; the
// linker defines its bounds, weakly: a build without any has none).
extern "C" char __start_wb_static_smem[] __attribute__((weak));
extern "C" char __stop_wb_static_smem[] __attribute__((weak));

// Fills the static __shared__ arrays with 0xFF bytes at a block's start. Not instrumented: the
// section also holds AddressSanitizer's red zones between the arrays, whose bytes mean nothing
// (their poison is in the shadow memory, which this leaves alone).
__attribute__((no_sanitize("address"))) void poison_static_smem() {
    volatile char* p = __start_wb_static_smem;
    for (; p && p < __stop_wb_static_smem; ++p) *p = (char)0xFF;
}

void run_cluster() {
    const int n = (int)M.fibers.size();
    const int per_cta = n / (int)M.ctas.size();
    for (int i = 0; i < n; ++i) {
        Fiber& f = M.fibers[i];
        f.state = State::Runnable;
        f.coll = Collective::None;
        f.committed.clear();
        f.open.clear();
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = kStackBytes;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, fiber_entry, 0);
    }
    poison_static_smem();
    for (Cta& c : M.ctas) {
        if (M.dyn_bytes) std::memset(c.smem, 0xFF, M.dyn_bytes);
        c.bars.clear();
        c.wgs.assign((per_cta + 127) / 128, Warpgroup{});
    }
    const int warps = (per_cta + 31) / 32;
    auto warp_size = [per_cta](int w) { return per_cta - w * 32 < 32 ? per_cta - w * 32 : 32; };
    for (;;) {
        const long long before = M.events;
        if (!M.warp_serial) {
            for (int k = 0; k < n; ++k) {
                const int i = M.reverse ? n - 1 - k : k;
                const State st = M.fibers[i].state;
                if (st == State::Runnable || st == State::Spinning) resume(i);
            }
        } else {
            // Warp by warp: each runs (its warp-collective instructions included) until every
            // lane waits at a barrier, an mbarrier, a warpgroup-collective instruction or has
            // exited, before the next warp starts.
            const int nw = (int)M.ctas.size() * warps;
            for (int k = 0; k < nw; ++k) {
                const int w = M.reverse ? nw - 1 - k : k;
                const int first = (w / warps) * per_cta + (w % warps) * 32;
                const int count = warp_size(w % warps);
                for (;;) {
                    const long long start = M.events;
                    for (int m = 0; m < count; ++m) {
                        const int i = first + (M.reverse ? count - 1 - m : m);
                        const State st = M.fibers[i].state;
                        if (st == State::Runnable || st == State::Spinning) resume(i);
                    }
                    M.cur = -1;
                    try_warp_collective(&M.fibers[first], count);
                    if (M.events == start) break;
                }
            }
        }
        M.cur = -1;
        land_tma();
        // Warps and warpgroups whose threads all wait at one collective instruction run it.
        for (int c = 0; c < (int)M.ctas.size(); ++c) {
            Fiber* cf = &M.fibers[c * per_cta];
            for (int w = 0; w < warps; ++w) try_warp_collective(cf + w * 32, warp_size(w));
            for (int g = 0; g * 128 < per_cta; ++g) {
                Fiber* th = cf + g * 128;
                if (per_cta - g * 128 < 128) continue;
                bool all = true;
                for (int t = 0; t < 128 && all; ++t)
                    all = th[t].state == State::AtCollective && warpgroup_wide(th[t].coll) && th[t].coll == th[0].coll;
                if (!all) continue;
                run_wg_collective(c, g, th);
                ++M.collectives;
                ++M.events;
                for (int t = 0; t < 128; ++t) th[t].state = State::Runnable;
            }
        }
        // Barriers: __syncthreads per CTA, barrier.cluster over the cluster.
        int done = 0, cluster = 0;
        for (auto& f : M.fibers) {
            done += f.state == State::Done;
            cluster += f.state == State::AtClusterBarrier;
        }
        if (done == n) return;
        for (int c = 0; c < (int)M.ctas.size(); ++c) {
            Fiber* cf = &M.fibers[c * per_cta];
            int at = 0, gone = 0;
            for (int i = 0; i < per_cta; ++i) {
                at += cf[i].state == State::AtBarrier;
                gone += cf[i].state == State::Done;
            }
            if (at == per_cta) {
                for (int i = 0; i < per_cta; ++i) cf[i].state = State::Runnable;
                ++M.events;
            } else if (at > 0 && at + gone == per_cta) {
                stuck("__syncthreads reached after other threads of the block exited");
            }
        }
        if (cluster == n) {
            for (auto& f : M.fibers) f.state = State::Runnable;
            ++M.events;
        } else if (cluster > 0 && cluster + done == n) {
            stuck("barrier.cluster reached after other threads of the cluster exited");
        }
        if (M.events == before) stuck("no thread can make progress");
    }
}

}  // namespace

void thread_exit() {
    Fiber& f = me();
    // A thread's copies still in flight land before the block ends.
    for (auto& g : f.committed)
        for (auto& c : g) {
            if (c.bytes > 0) std::memcpy(c.dst, c.src, c.bytes);
            std::memset((char*)c.dst + c.bytes, 0, 16 - c.bytes);
        }
    f.committed.clear();
    if (f.lin % 128 == 0) {
        // The last thread of a warpgroup to leave finds no wgmma in flight, or the kernel
        // leaves accumulators unwritten: checked when the warpgroup's first thread exits.
        const Warpgroup& wg = M.ctas[f.cta].wgs[f.lin / 128];
        if (!wg.open.empty() || !wg.committed.empty()) fail("exit with wgmma operations in flight (no wgmma.wait_group 0)");
    }
}

void launch(const char* name, uint3 grid, uint3 block, unsigned cluster, unsigned smem, std::function<void()> body) {
    M.kernel = name;
    M.grid = grid;
    M.block = block;
    M.cluster = cluster;
    M.body = std::move(body);
    M.dyn_bytes = smem;
    if (cluster == 0 || grid.x % cluster) fail("a grid that is not a whole number of clusters");
    const int per_cta = (int)(block.x * block.y * block.z);
    const int n = per_cta * (int)cluster;
    if ((int)M.fibers.size() < n) {
        const size_t old = M.fibers.size();
        M.fibers.resize(n);
        for (size_t i = old; i < (size_t)n; ++i) {
            M.fibers[i].stack = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (M.fibers[i].stack == MAP_FAILED) fail("cannot map a fiber stack");
        }
    }
    std::vector<Fiber> spare;
    if ((int)M.fibers.size() > n) {
        spare.assign(std::make_move_iterator(M.fibers.begin() + n), std::make_move_iterator(M.fibers.end()));
        M.fibers.resize(n);
    }
    for (int i = 0; i < n; ++i) {
        const int lin = i % per_cta;
        M.fibers[i].cta = i / per_cta;
        M.fibers[i].lin = lin;
        M.fibers[i].tid = {(unsigned)(lin % block.x), (unsigned)((lin / block.x) % block.y),
                           (unsigned)(lin / (block.x * block.y))};
    }
    // Each CTA's dynamic shared memory: exactly the launch's bytes, so AddressSanitizer sees
    // an access past them.
    M.ctas.assign(cluster, Cta{});
    for (Cta& c : M.ctas) c.smem = smem ? new (std::align_val_t(128)) unsigned char[smem] : nullptr;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; x += cluster) {
                for (unsigned r = 0; r < cluster; ++r) {
                    M.ctas[r].idx = {x + r, y, z};
                    M.ctas[r].rank = r;
                }
                run_cluster();
            }
    for (Cta& c : M.ctas)
        if (c.smem) ::operator delete[](c.smem, std::align_val_t(128));
    M.ctas.clear();
    for (auto& f : spare) M.fibers.push_back(std::move(f));
}

}  // namespace wbemu

// ---------------------------------------------------------------------------------------------
// Plans
// ---------------------------------------------------------------------------------------------
namespace {

[[noreturn]] void bad_plan(const std::string& why) {
    std::fprintf(stderr, "wb-emu: %s\n", why.c_str());
    std::exit(2);
}

struct Buffer {
    unsigned elem = 0;
    size_t len = 0;
    unsigned char* data = nullptr;
};
std::vector<Buffer> buffers;

struct PtrArg {
    bool null = true;
    size_t buf = 0, start = 0;
};

struct Arg {
    std::string kind;  // ptr, int, f32, rnnbwd
    PtrArg ptr;
    long long i = 0;
    float f = 0;
    PtrArg rnn[6];
    int pitch = 0;
    PtrArg tmap;
    unsigned long long rows = 0, cols = 0, ld = 0, box_cols = 0, box_rows = 0;
};

PtrArg parse_ptr(std::istream& in) {
    std::string tok;
    in >> tok;
    PtrArg p;
    if (tok == "null") return p;
    const size_t colon = tok.find(':');
    if (colon == std::string::npos) bad_plan("pointer `" + tok + "`: expected BUF:START or null");
    p.null = false;
    p.buf = std::stoull(tok.substr(0, colon));
    p.start = std::stoull(tok.substr(colon + 1));
    if (p.buf >= buffers.size() || p.start > buffers[p.buf].len) bad_plan("pointer `" + tok + "` outside the buffers");
    return p;
}

template <class T>
T* address(const PtrArg& p, const char* entry, size_t index) {
    if (p.null) return nullptr;
    const Buffer& b = buffers[p.buf];
    if (b.elem != sizeof(T)) {
        bad_plan(std::string(entry) + ": argument " + std::to_string(index) + " points at " +
                 std::to_string(sizeof(T)) + "-byte elements, its buffer holds " +
                 std::to_string(b.elem) + "-byte ones");
    }
    return reinterpret_cast<T*>(b.data + p.start * b.elem);
}

// One kernel parameter of C type T from its plan argument.
template <class T>
struct Bind;

template <class T>
struct Bind<T*> {
    static T* get(const Arg& a, const char* e, size_t i) {
        if (a.kind != "ptr") bad_plan(std::string(e) + ": argument " + std::to_string(i) + " is a pointer, the plan gives " + a.kind);
        return address<std::remove_const_t<T>>(a.ptr, e, i);
    }
};
template <>
struct Bind<int> {
    static int get(const Arg& a, const char* e, size_t i) {
        if (a.kind != "int") bad_plan(std::string(e) + ": argument " + std::to_string(i) + " is an int, the plan gives " + a.kind);
        return (int)a.i;
    }
};
template <>
struct Bind<unsigned int> {
    static unsigned get(const Arg& a, const char* e, size_t i) {
        if (a.kind != "int") bad_plan(std::string(e) + ": argument " + std::to_string(i) + " is an unsigned int, the plan gives " + a.kind);
        return (unsigned)a.i;
    }
};
template <>
struct Bind<float> {
    static float get(const Arg& a, const char* e, size_t i) {
        if (a.kind != "f32") bad_plan(std::string(e) + ": argument " + std::to_string(i) + " is a float, the plan gives " + a.kind);
        return a.f;
    }
};
template <>
struct Bind<RnnBwdArgs> {
    static RnnBwdArgs get(const Arg& a, const char* e, size_t i) {
        if (a.kind != "rnnbwd") bad_plan(std::string(e) + ": argument " + std::to_string(i) + " is RnnBwdArgs, the plan gives " + a.kind);
        RnnBwdArgs r;
        r.hs = address<float>(a.rnn[0], e, i);
        r.save = address<float>(a.rnn[1], e, i);
        r.cprev = address<float>(a.rnn[2], e, i);
        r.cprev_pitch = a.pitch;
        r.dxp = address<float>(a.rnn[3], e, i);
        r.drec = address<float>(a.rnn[4], e, i);
        r.carry = address<float>(a.rnn[5], e, i);
        return r;
    }
};

template <>
struct Bind<WbTensorMap> {
    static WbTensorMap get(const Arg& a, const char* e, size_t i) {
        if (a.kind != "tmap") bad_plan(std::string(e) + ": argument " + std::to_string(i) + " is a tensor map, the plan gives " + a.kind);
        const Buffer& b = buffers[a.tmap.buf];
        if (a.tmap.null || b.elem != 2) bad_plan(std::string(e) + ": a tensor map over no buffer of 16-bit elements");
        if (a.rows * a.ld > b.len - a.tmap.start || a.cols > a.ld) bad_plan(std::string(e) + ": a tensor map past its buffer");
        const wbemu::TmaMap m{wbemu::kTmaMagic, address<u16>(a.tmap, e, i), a.rows, a.cols, a.ld, a.box_cols, a.box_rows};
        WbTensorMap t{};
        std::memcpy(&t, &m, sizeof m);
        return t;
    }
};

using Runner = std::function<void(const char*, uint3, uint3, unsigned, unsigned, const std::vector<Arg>&)>;

template <class... P, size_t... I>
std::tuple<P...> bind_all(const std::vector<Arg>& args, const char* e, std::index_sequence<I...>) {
    return std::tuple<P...>{Bind<P>::get(args[I], e, I)...};
}

template <class... P>
Runner wrap(void (*f)(P...)) {
    return [f](const char* e, uint3 grid, uint3 block, unsigned cluster, unsigned smem, const std::vector<Arg>& args) {
        if (args.size() != sizeof...(P))
            bad_plan(std::string(e) + " takes " + std::to_string(sizeof...(P)) + " arguments, the plan gives " +
                     std::to_string(args.size()));
        auto bound = bind_all<P...>(args, e, std::index_sequence_for<P...>{});
        wbemu::launch(e, grid, block, cluster, smem, [f, bound] { std::apply(f, bound); });
    };
}

const std::map<std::string, Runner>& entries() {
#define WB_ENTRY(name) {#name, wrap(&name)},
    static const std::map<std::string, Runner> table = {
#include "entries.inc"
    };
#undef WB_ENTRY
    return table;
}

Buffer& checked(size_t buf, size_t start, size_t len) {
    if (buf >= buffers.size() || start > buffers[buf].len || len > buffers[buf].len - start)
        bad_plan("a range outside its buffer");
    return buffers[buf];
}

}  // namespace

int main(int argc, char** argv) {
#if WB_EMU_ASAN
    // A sanitizer's report names the source line; this names the launch it happened in.
    __sanitizer_set_death_callback(+[] {
        if (wbemu::M.cur >= 0 && wbemu::M.cur < (int)wbemu::M.fibers.size()) {
            const wbemu::Fiber& f = wbemu::M.fibers[wbemu::M.cur];
            const uint3 b = wbemu::M.ctas[f.cta].idx, t = f.tid;
            std::fprintf(stderr, "(in kernel %s, block (%u,%u,%u), thread (%u,%u,%u))\n", wbemu::M.kernel, b.x, b.y, b.z,
                         t.x, t.y, t.z);
        }
    });
#endif
    int a = 1;
    for (; a < argc && argv[a][0] == '-'; ++a) {
        const std::string flag = argv[a];
        if (flag == "--reverse") wbemu::M.reverse = true;
        else if (flag == "--warp-serial") wbemu::M.warp_serial = true;
        else bad_plan("unknown option " + flag);
    }
    if (argc - a != 3) bad_plan("usage: wb-emu [--reverse] [--warp-serial] PLAN IN OUT");
    std::ifstream plan(argv[a]);
    std::ifstream in(argv[a + 1], std::ios::binary);
    if (!plan || !in) bad_plan("cannot read the plan or its buffers");
    std::string line;
    struct Step {
        std::string kind, entry;
        uint3 grid{}, block{};
        unsigned cluster = 1, smem = 0;
        std::vector<Arg> args;
        size_t d = 0, ds = 0, s = 0, ss = 0, len = 0;
    };
    std::vector<Step> steps;
    while (std::getline(plan, line)) {
        std::istringstream ls(line);
        std::string kind;
        if (!(ls >> kind)) continue;
        if (kind == "buf") {
            Buffer b;
            ls >> b.elem >> b.len;
            if (!ls || (b.elem != 2 && b.elem != 4)) bad_plan("bad buffer line: " + line);
            const size_t bytes = b.elem * b.len;
            // Buffers are 256-byte aligned, as cudaMalloc's are; AddressSanitizer guards the end.
            b.data = static_cast<unsigned char*>(::operator new[](bytes ? bytes : 1, std::align_val_t(256)));
            in.read(reinterpret_cast<char*>(b.data), (std::streamsize)bytes);
            if ((size_t)in.gcount() != bytes) bad_plan("the buffers file is shorter than the plan's buffers");
            buffers.push_back(b);
        } else if (kind == "launch") {
            Step s;
            s.kind = kind;
            size_t nargs = 0;
            ls >> s.entry >> s.grid.x >> s.grid.y >> s.grid.z >> s.block.x >> s.block.y >> s.block.z >> s.cluster >> s.smem >> nargs;
            if (!ls) bad_plan("bad launch line: " + line);
            for (size_t i = 0; i < nargs; ++i) {
                if (!std::getline(plan, line)) bad_plan("missing arguments of " + s.entry);
                std::istringstream as(line);
                std::string tag;
                Arg arg;
                as >> tag >> arg.kind;
                if (tag != "arg") bad_plan("expected an argument line: " + line);
                if (arg.kind == "ptr") arg.ptr = parse_ptr(as);
                else if (arg.kind == "int") as >> arg.i;
                else if (arg.kind == "f32") {
                    u32 bits;
                    as >> std::hex >> bits;
                    arg.f = __uint_as_float(bits);
                } else if (arg.kind == "rnnbwd") {
                    for (int k = 0; k < 3; ++k) arg.rnn[k] = parse_ptr(as);
                    as >> arg.pitch;
                    for (int k = 3; k < 6; ++k) arg.rnn[k] = parse_ptr(as);
                } else if (arg.kind == "tmap") {
                    arg.tmap = parse_ptr(as);
                    as >> arg.rows >> arg.cols >> arg.ld >> arg.box_cols >> arg.box_rows;
                } else bad_plan("unknown argument kind: " + line);
                if (!as) bad_plan("bad argument line: " + line);
                s.args.push_back(arg);
            }
            steps.push_back(std::move(s));
        } else if (kind == "copy") {
            Step s;
            s.kind = kind;
            ls >> s.d >> s.ds >> s.s >> s.ss >> s.len;
            if (!ls) bad_plan("bad copy line: " + line);
            steps.push_back(std::move(s));
        } else if (kind == "zero") {
            Step s;
            s.kind = kind;
            ls >> s.d >> s.ds >> s.len;
            if (!ls) bad_plan("bad zero line: " + line);
            steps.push_back(std::move(s));
        } else {
            bad_plan("unknown line: " + line);
        }
    }
    for (const Step& s : steps) {
        if (s.kind == "launch") {
            auto it = entries().find(s.entry);
            if (it == entries().end()) bad_plan("no emulated kernel " + s.entry);
            it->second(it->first.c_str(), s.grid, s.block, s.cluster, s.smem, s.args);
        } else if (s.kind == "copy") {
            Buffer& d = checked(s.d, s.ds, s.len);
            Buffer& src = checked(s.s, s.ss, s.len);
            if (d.elem != src.elem) bad_plan("a copy between element sizes");
            std::memmove(d.data + s.ds * d.elem, src.data + s.ss * src.elem, s.len * d.elem);
        } else {
            Buffer& d = checked(s.d, s.ds, s.len);
            std::memset(d.data + s.ds * d.elem, 0, s.len * d.elem);
        }
    }
    std::ofstream out(argv[a + 2], std::ios::binary | std::ios::trunc);
    for (const Buffer& b : buffers) out.write(reinterpret_cast<const char*>(b.data), (std::streamsize)(b.elem * b.len));
    if (!out) bad_plan("cannot write the output buffers");
    for (Buffer& b : buffers) ::operator delete[](b.data, std::align_val_t(256));
    std::fprintf(stderr, "wb-emu: %zu steps, %lld collectives, %lld barrier arrivals, %lld TMA loads, %lld wgmmas\n",
                 steps.size(), wbemu::M.collectives, wbemu::M.barriers, wbemu::M.tma_loads, wbemu::M.wgmmas);
    return 0;
}
