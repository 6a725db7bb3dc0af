// The PTX section of kernels/gemm_sm90.cu on the CPU execution model of cuda_cpu.h: the same
// names and meaning, for the Hopper GEMM to run as it is written.
//
// - mbarriers: init, arrive, arrive.expect_tx and try_wait.parity as PTX defines them (a
//   phase completes when its arrivals and its transaction bytes are all in; a fresh barrier's
//   phase "before 0" counts as complete); an arrival beyond a phase's count, a barrier used
//   before init or outside shared memory is a fault. A wait that cannot complete ends the run
//   with the barrier's state instead of the 10 s watchdog.
// - TMA (cp.async.bulk.tensor.2d, with or without multicast) lands at the end of the
//   scheduler's sweep, after every thread has run as far as it can (in warp-serial mode, at
//   issue, as early as it may): the box read from the
//   matrix (zeros outside it), written with the 128-byte swizzle (bits 4-6 of the shared
//   address XORed with bits 7-9), its bytes completed on the barrier of each CTA written.
// - wgmma.mma_async is warpgroup-collective (descriptors, scale-d and shape identical on all
//   128 threads, checked); its operands are read and its accumulators written when a
//   wgmma.wait_group retires its group (the latest moment PTX allows), so a stage released
//   early is read after the producer refilled it; accumulators changed while in flight are a
//   fault. Operands are read through the shared-memory descriptors (start, LBO, SBO, 128-byte
//   swizzle): K-major element (r, k) at start + (r/8)·SBO + (r%8)·128 + 2k, MN-major element
//   (r, k) at start + (r/64)·LBO + (k/8)·SBO + (k%8)·128 + 2(r%64), then swizzled; the
//   accumulator layout of m64nNk16 is PTX's (row 16·warp + lane/4 (+8), column
//   8j + 2(lane%4) (+1) in registers 4j..4j+3).
// - Clusters: the CTAs of a cluster run together, each with its own shared memory; mapa and
//   multicast address the same offset in another CTA; barrier.cluster waits for every thread
//   of the cluster. setmaxnreg, fences and tensor-map prefetches have no effect here.
#pragma once
#include "cuda_cpu.h"

typedef unsigned long long u64;

namespace wbemu {
MBar& mbar(int cta, u32 bar, const char* what);
void mbar_arrive(int cta, u32 bar);
void tma_issue(u32 dst, const TmaMap* map, int c0, int c1, u32 bar, unsigned mask);
}  // namespace wbemu

inline void wg_mbar_init(u32 bar, u32 count) {
    wbemu::smem_at(wbemu::me().cta, bar, 8, "mbarrier.init");
    if (bar % 8) wbemu::fail("mbarrier.init: address not 8-byte aligned");
    auto& bars = wbemu::my_cta().bars;
    for (auto& [a, b] : bars)
        if (a == bar) {
            b = wbemu::MBar{(int)count, (int)count, 0, 0};
            return;
        }
    bars.push_back({bar, wbemu::MBar{(int)count, (int)count, 0, 0}});
    ++wbemu::M.events;
}

inline void wg_mbar_expect_tx(u32 bar, u32 bytes) {
    wbemu::mbar(wbemu::me().cta, bar, "mbarrier.arrive.expect_tx").tx += bytes;
    wbemu::mbar_arrive(wbemu::me().cta, bar);
}

inline void wg_mbar_arrive(u32 bar) { wbemu::mbar_arrive(wbemu::me().cta, bar); }

template <bool CLUSTER_SCOPE = false>
inline bool wg_mbar_test(u32 bar, u32 parity) {
    return (wbemu::mbar(wbemu::me().cta, bar, "mbarrier.try_wait").phase & 1u) != (parity & 1u);
}

template <bool CLUSTER_SCOPE = false>
inline void wg_mbar_wait(u32 bar, u32 parity) {
    while (!wg_mbar_test<CLUSTER_SCOPE>(bar, parity)) {
        wbemu::Fiber& f = wbemu::me();
        f.spin_bar = bar;
        f.spin_parity = parity;
        f.state = wbemu::State::Spinning;
        wbemu::yield();
    }
}

inline u32 wg_cluster_rank() { return wbemu::my_cta().rank; }

inline void wg_cluster_sync() { wbemu::cluster_sync(); }

inline void wg_mbar_arrive_cluster(u32 bar, u32 rank) {
    if (rank >= wbemu::M.cluster) wbemu::fail("mapa: a CTA rank outside the cluster");
    wbemu::mbar_arrive((int)rank, bar);
}

template <class Map>
inline void wg_tma_load(u32 dst, const Map* map, int c0, int c1, u32 bar) {
    static_assert(sizeof(Map) == 128, "a CUtensorMap is 128 bytes");
    wbemu::tma_issue(dst, reinterpret_cast<const wbemu::TmaMap*>(map), c0, c1, bar,
                     1u << wbemu::my_cta().rank);
}

template <class Map>
inline void wg_tma_load_mc(u32 dst, const Map* map, int c0, int c1, u32 bar, unsigned short mask) {
    static_assert(sizeof(Map) == 128, "a CUtensorMap is 128 bytes");
    wbemu::tma_issue(dst, reinterpret_cast<const wbemu::TmaMap*>(map), c0, c1, bar, mask);
}

template <class Map>
inline void wg_prefetch_map(const Map*) {}

inline void wg_fence() {}

inline void wg_commit() { wbemu::collective(wbemu::Collective::WgCommit, nullptr, nullptr, nullptr); }

template <int N>
inline void wg_wait() {
    wbemu::me().wait_n = N;
    wbemu::collective(wbemu::Collective::WgWait, nullptr, nullptr, nullptr);
}

template <int N>
inline void wg_fence_acc(float (&)[N]) {}

template <bool BF16, int TRANS_A, int TRANS_B, int BN>
inline void wg_mma(float (&d)[BN / 2], u64 da, u64 db, u32 scale_d) {
    wbemu::Fiber& f = wbemu::me();
    f.wg = wbemu::WgmmaArgs{da, db, scale_d, BN, BF16, TRANS_A, TRANS_B};
    wbemu::collective(wbemu::Collective::Wgmma, nullptr, nullptr, d);
}

template <bool BF16>
inline u32 wg_pack(float lo, float hi) {
    const u16 l = BF16 ? wb_f32_to_bf16(lo) : wb_f32_to_f16(lo);
    const u16 h = BF16 ? wb_f32_to_bf16(hi) : wb_f32_to_f16(hi);
    return (u32)l | ((u32)h << 16);
}

inline void wg_fence_mbarrier_init() {}

template <int REGS>
inline void wg_setmaxnreg_dec() {}

template <int REGS>
inline void wg_setmaxnreg_inc() {}

#define WG_DYNAMIC_SMEM(name) unsigned char* name = static_cast<unsigned char*>(wbemu::dynamic_smem())
