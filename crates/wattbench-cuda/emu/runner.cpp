// The emulator's program: runs one plan of wattbench-cuda (buffers, then kernel launches,
// copies and zeroings in stream order) on the CPU execution model of cuda_cpu.h, with the
// kernels compiled from kernels/*.cu as they are.
//
//   wb-emu [--reverse] PLAN IN OUT
//
// PLAN is the text the Rust side writes (emulator.rs): `buf BYTES LEN` lines, then steps
// (`launch ENTRY GX GY GZ BX BY BZ SMEM NARGS` followed by one `arg ...` line per argument,
// `copy DBUF DSTART SBUF SSTART LEN`, `zero BUF START LEN`). IN holds every buffer's initial
// bytes, in order; OUT receives them after the last step. Exit status: 0 done, 2 a malformed
// plan or unreadable file, 3 a kernel fault (the message names the kernel, block and thread).
#include "cuda_cpu.h"

#include "common.cuh"
#include "gemm.cu"
#include "conv.cu"
#include "rnn.cu"
#include "elementwise.cu"

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
        const uint3 t = M.fibers[M.cur].tid;
        std::fprintf(stderr, "kernel fault in %s, block (%u,%u,%u), thread (%u,%u,%u): %s\n",
                     M.kernel, M.block_idx.x, M.block_idx.y, M.block_idx.z, t.x, t.y, t.z,
                     what.c_str());
    } else {
        std::fprintf(stderr, "kernel fault in %s, block (%u,%u,%u): %s\n", M.kernel,
                     M.block_idx.x, M.block_idx.y, M.block_idx.z, what.c_str());
    }
    std::exit(3);
}

namespace {

u16 half(u32 r, int i) { return (u16)(i ? r >> 16 : r & 0xFFFF); }
u32 pack(u16 lo, u16 hi) { return (u32)lo | ((u32)hi << 16); }
float bf16f(u16 v) { return wb_bf16_to_f32(v); }

const char* name_of(Collective c) {
    switch (c) {
        case Collective::Ldmatrix: return "ldmatrix.x4";
        case Collective::LdmatrixTrans: return "ldmatrix.x4.trans";
        case Collective::MmaBf16: return "mma.m16n8k16.bf16";
        case Collective::MmaF16: return "mma.m16n8k16.f16";
        default: return "none";
    }
}

// One warp-collective instruction, every lane of `lanes` (32 fibers) waiting at it.
void run_collective(Fiber* lanes) {
    const Collective kind = lanes[0].coll;
    if (kind == Collective::Ldmatrix || kind == Collective::LdmatrixTrans) {
        // Matrix j's row r is the 16 bytes lane 8j + r points at.
        u16 m[4][8][8];
        for (int j = 0; j < 4; ++j)
            for (int r = 0; r < 8; ++r)
                std::memcpy(m[j][r], lanes[8 * j + r].in0, 16);
        const bool tr = kind == Collective::LdmatrixTrans;
        for (int l = 0; l < 32; ++l) {
            u32* out = static_cast<u32*>(lanes[l].out);
            const int row = l / 4, col = 2 * (l % 4);
            for (int j = 0; j < 4; ++j)
                out[j] = tr ? pack(m[j][col][row], m[j][col + 1][row])
                            : pack(m[j][row][col], m[j][row][col + 1]);
        }
        return;
    }
    // mma.m16n8k16.row.col: gather A[16][16], B[16][8] and C[16][8] from the fragments.
    const bool bf = kind == Collective::MmaBf16;
    auto val = [&](u16 v) { return bf ? bf16f(v) : wb_f16_to_f32(v); };
    double A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; ++l) {
        const int g = l >> 2, t = l & 3;
        const u32* a = static_cast<const u32*>(lanes[l].in0);
        const u32* b = static_cast<const u32*>(lanes[l].in1);
        const float* d = static_cast<const float*>(lanes[l].out);
        for (int i = 0; i < 2; ++i) {
            A[g][2 * t + i] = val(half(a[0], i));
            A[g + 8][2 * t + i] = val(half(a[1], i));
            A[g][2 * t + 8 + i] = val(half(a[2], i));
            A[g + 8][2 * t + 8 + i] = val(half(a[3], i));
            B[2 * t + i][g] = val(half(b[0], i));
            B[2 * t + 8 + i][g] = val(half(b[1], i));
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

const char* state_name(State s) {
    switch (s) {
        case State::Runnable: return "running";
        case State::AtBarrier: return "at __syncthreads";
        case State::AtCollective: return "at a warp collective";
        default: return "exited";
    }
}

[[noreturn]] void stuck(const char* why) {
    M.cur = -1;
    std::string s = why;
    s += " (threads by linear index):";
    // Name each run of threads in one state.
    const int n = (int)M.fibers.size();
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && M.fibers[j + 1].state == M.fibers[i].state &&
               M.fibers[j + 1].coll == M.fibers[i].coll)
            ++j;
        char range[40], buf[120];
        if (i == j) std::snprintf(range, sizeof range, "thread %d", i);
        else std::snprintf(range, sizeof range, "threads %d-%d", i, j);
        std::snprintf(buf, sizeof buf, " %s %s%s%s;", range,
                      state_name(M.fibers[i].state),
                      M.fibers[i].state == State::AtCollective ? " " : "",
                      M.fibers[i].state == State::AtCollective ? name_of(M.fibers[i].coll) : "");
        s += buf;
        i = j + 1;
    }
    fail(s);
}

void run_block() {
    const int n = (int)M.fibers.size();
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
    if (M.dyn_bytes) std::memset(M.dyn_smem, 0xFF, M.dyn_bytes);
    for (;;) {
        for (int k = 0; k < n; ++k) {
            const int i = M.reverse ? n - 1 - k : k;
            if (M.fibers[i].state != State::Runnable) continue;
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
        M.cur = -1;
        // Everyone waits somewhere or is done: release warps at collectives, then barriers.
        bool progressed = false;
        for (int w = 0; w * 32 < n; ++w) {
            Fiber* lanes = &M.fibers[w * 32];
            const int count = n - w * 32 < 32 ? n - w * 32 : 32;
            int at = 0;
            for (int l = 0; l < count; ++l) at += lanes[l].state == State::AtCollective;
            if (at == 0) continue;
            if (at < count) continue;  // judged below, if nothing else can move
            if (count < 32) stuck("a warp-collective instruction in a partial warp");
            for (int l = 1; l < 32; ++l)
                if (lanes[l].coll != lanes[0].coll)
                    stuck("lanes of one warp at different collective instructions");
            run_collective(lanes);
            ++M.collectives;
            for (int l = 0; l < 32; ++l) lanes[l].state = State::Runnable;
            progressed = true;
        }
        if (progressed) continue;
        int done = 0, barrier = 0;
        for (auto& f : M.fibers) {
            done += f.state == State::Done;
            barrier += f.state == State::AtBarrier;
        }
        if (done == n) return;
        if (barrier == n) {
            for (auto& f : M.fibers) f.state = State::Runnable;
            continue;
        }
        if (barrier > 0 && barrier + done == n)
            stuck("__syncthreads reached after other threads of the block exited");
        stuck("threads wait at different synchronisation points");
    }
}

}  // namespace

void launch(const char* name, uint3 grid, uint3 block, unsigned smem, std::function<void()> body) {
    M.kernel = name;
    M.grid = grid;
    M.block = block;
    M.body = std::move(body);
    const int n = (int)(block.x * block.y * block.z);
    if ((int)M.fibers.size() < n) {
        const size_t old = M.fibers.size();
        M.fibers.resize(n);
        for (size_t i = old; i < (size_t)n; ++i) {
            M.fibers[i].stack = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (M.fibers[i].stack == MAP_FAILED) fail("cannot map a fiber stack");
        }
    }
    std::vector<Fiber> spare;
    if ((int)M.fibers.size() > n) {
        spare.assign(std::make_move_iterator(M.fibers.begin() + n),
                     std::make_move_iterator(M.fibers.end()));
        M.fibers.resize(n);
    }
    for (int i = 0; i < n; ++i)
        M.fibers[i].tid = {(unsigned)(i % block.x), (unsigned)((i / block.x) % block.y),
                           (unsigned)(i / (block.x * block.y))};
    // Exactly the launch's bytes, so AddressSanitizer sees an access past them.
    std::unique_ptr<unsigned char[]> dyn(smem ? new (std::align_val_t(128)) unsigned char[smem]
                                              : nullptr);
    M.dyn_smem = dyn.get();
    M.dyn_bytes = smem;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                M.block_idx = {x, y, z};
                run_block();
            }
    M.dyn_smem = nullptr;
    if (smem) ::operator delete[](dyn.release(), std::align_val_t(128));
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

using Runner = std::function<void(const char*, uint3, uint3, unsigned, const std::vector<Arg>&)>;

template <class... P, size_t... I>
std::tuple<P...> bind_all(const std::vector<Arg>& args, const char* e, std::index_sequence<I...>) {
    return std::tuple<P...>{Bind<P>::get(args[I], e, I)...};
}

template <class... P>
Runner wrap(void (*f)(P...)) {
    return [f](const char* e, uint3 grid, uint3 block, unsigned smem, const std::vector<Arg>& args) {
        if (args.size() != sizeof...(P))
            bad_plan(std::string(e) + " takes " + std::to_string(sizeof...(P)) + " arguments, the plan gives " +
                     std::to_string(args.size()));
        auto bound = bind_all<P...>(args, e, std::index_sequence_for<P...>{});
        wbemu::launch(e, grid, block, smem, [f, bound] { std::apply(f, bound); });
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
            const uint3 t = wbemu::M.fibers[wbemu::M.cur].tid;
            std::fprintf(stderr, "(in kernel %s, block (%u,%u,%u), thread (%u,%u,%u))\n", wbemu::M.kernel,
                         wbemu::M.block_idx.x, wbemu::M.block_idx.y, wbemu::M.block_idx.z, t.x, t.y, t.z);
        }
    });
#endif
    int a = 1;
    if (a < argc && std::string(argv[a]) == "--reverse") {
        wbemu::M.reverse = true;
        ++a;
    }
    if (argc - a != 3) bad_plan("usage: wb-emu [--reverse] PLAN IN OUT");
    std::ifstream plan(argv[a]);
    std::ifstream in(argv[a + 1], std::ios::binary);
    if (!plan || !in) bad_plan("cannot read the plan or its buffers");
    std::string line;
    struct Step {
        std::string kind, entry;
        uint3 grid{}, block{};
        unsigned smem = 0;
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
            ls >> s.entry >> s.grid.x >> s.grid.y >> s.grid.z >> s.block.x >> s.block.y >> s.block.z >> s.smem >> nargs;
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
            it->second(it->first.c_str(), s.grid, s.block, s.smem, s.args);
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
    std::fprintf(stderr, "wb-emu: %zu steps, %lld warp collectives, %lld barrier arrivals\n", steps.size(),
                 wbemu::M.collectives, wbemu::M.barriers);
    return 0;
}
