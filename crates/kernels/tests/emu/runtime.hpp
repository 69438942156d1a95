// tests/emu/runtime.hpp: runs a kernel's grid on the CPU (see mod.rs). Appended after the kernel
// source; mod.rs then adds one `KY_EMU_ENTRY(<symbol>)` line per listed entry point.
//
// Execution model. The blocks of a launch are shared out among a few worker OS threads; a worker
// runs one block at a time, every GPU thread of the block as a fiber (its own stack) on the
// worker's OS thread. A fiber runs until it reaches `__syncthreads` or a warp operation (shuffle,
// ballot, `__syncwarp`) that not every other participant has reached yet, and then yields to the
// worker's scheduler, which resumes, in thread order, the fibers whose barrier is complete. The
// last thread to arrive goes on without yielding. A barrier no fiber can pass is a deadlock: the
// launch fails and says who waits where.
//
// Barriers. `__syncthreads`: threads that have exited count as arrived (as on the hardware). Warp
// operations: each lane's k-th warp operation meets the k-th of every other lane of its warp
// (32 consecutive linear thread indices; the last warp of a block whose size is not a multiple
// of 32 has fewer lanes); values go through two slot arrays, one for odd and one for even k. A
// lane that exits while the others of its warp wait, or a warp operation after a lane of the
// warp exited, fails the launch.
//
// Context switches: a few instructions of assembly on x86-64 (callee-saved registers and the
// stack pointer); elsewhere, or with -DKY_EMU_UCONTEXT, <ucontext.h> (slower: a system call per
// switch).
#pragma once

#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if !defined(__x86_64__) || defined(KY_EMU_UCONTEXT)
#include <ucontext.h>
#define KY_EMU_USE_UCONTEXT 1
#else
#define KY_EMU_USE_UCONTEXT 0
#endif

// Stack of each fiber (one per GPU thread of a block), bytes; a guard page below each.
#ifndef KY_EMU_STACK_BYTES
#define KY_EMU_STACK_BYTES (128 * 1024)
#endif

#if !KY_EMU_USE_UCONTEXT
// ky_emu_switch(save, next): pushes the callee-saved registers, stores the stack pointer in
// *save, switches to the stack `next` and pops its registers (the System V ABI's callee-saved
// set; the MXCSR and x87 control words are never changed by the kernels). A new fiber's stack
// holds registers with r12 = its function, r13 = its argument, and returns into
// ky_emu_fiber_entry, which calls r12(r13) with the stack 16-byte aligned.
extern "C" void ky_emu_switch(void** save, void* next);
extern "C" void ky_emu_fiber_entry();
asm(R"(
    .pushsection .text
    .p2align 4
    .globl ky_emu_switch
    .hidden ky_emu_switch
    .type ky_emu_switch, @function
ky_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size ky_emu_switch, .-ky_emu_switch
    .p2align 4
    .globl ky_emu_fiber_entry
    .hidden ky_emu_fiber_entry
    .type ky_emu_fiber_entry, @function
ky_emu_fiber_entry:
    movq %r13, %rdi
    callq *%r12
    ud2
    .size ky_emu_fiber_entry, .-ky_emu_fiber_entry
    .popsection
)");
#endif

namespace ky_emu {

typedef void (*Invoke)(void* const* params);

enum class State : unsigned char { Ready, WaitBlock, WaitWarp, Done };

struct Fiber {
#if KY_EMU_USE_UCONTEXT
    ucontext_t ctx;
#else
    void* sp;
#endif
    uint3 tid;
    unsigned warp, lane;
    unsigned block_syncs, warp_syncs;  // barriers arrived at so far
    unsigned wait;                     // the barrier it waits for (WaitBlock, WaitWarp)
    State state;
};

struct Warp {
    unsigned lanes, arrived, completed, done;
    uint64_t slots[2][32];
};

// What the workers of one launch share.
struct Launch {
    Invoke invoke;
    void* const* params;
    dim3 grid, block;
    unsigned shared_bytes;
    uint64_t blocks;
    std::atomic<uint64_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mu;
    std::string error;
    unsigned more = 0;  // failures after the first

    void record(const std::string& msg) {
        std::lock_guard<std::mutex> lock(mu);
        if (error.empty()) {
            error = msg;
        } else {
            ++more;
        }
        failed.store(true);
    }
};

struct Worker;
thread_local Worker* tl_worker = nullptr;

static std::string format(const char* fmt, va_list ap) {
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    return buf;
}

static std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static std::string format(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string s = format(fmt, ap);
    va_end(ap);
    return s;
}

struct Worker {
    Launch* L;
    unsigned n = 0;  // threads per block
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    char* stacks = nullptr;
    size_t guard = 0, stride = 0, mapped = 0;  // fiber i's stack: [guard, stride) of slot i
    Fiber* cur = nullptr;
#if KY_EMU_USE_UCONTEXT
    ucontext_t sched;
#else
    void* sched_sp = nullptr;
#endif
    unsigned block_arrived = 0, block_completed = 0, block_done = 0;
    unsigned char* dyn = nullptr;
    bool block_dead = false;

    explicit Worker(Launch* l) : L(l) {}
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    ~Worker() {
        if (stacks != nullptr) munmap(stacks, mapped);
        free(dyn);
    }

    // Fibers, stacks (a guard page below each) and dynamic shared memory; an error message or "".
    std::string init() {
        n = L->block.x * L->block.y * L->block.z;
        fibers.resize(n);
        warps.resize((n + 31) / 32);
        const size_t page = (size_t)sysconf(_SC_PAGESIZE);
        const size_t stack = (KY_EMU_STACK_BYTES + page - 1) / page * page;
        guard = page;
        stride = stack + page;
        mapped = stride * n;
        void* m = mmap(nullptr, mapped, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return format("cannot map %zu bytes of fiber stacks", mapped);
        stacks = static_cast<char*>(m);
        for (unsigned i = 0; i < n; ++i) {
            if (mprotect(stacks + (size_t)i * stride, page, PROT_NONE) != 0) {
                return "cannot protect a fiber stack's guard page";
            }
        }
        if (L->shared_bytes > 0) {
            const size_t bytes = ((size_t)L->shared_bytes + 127) / 128 * 128;
            dyn = static_cast<unsigned char*>(aligned_alloc(128, bytes));
            if (dyn == nullptr) return format("cannot allocate %u bytes of shared memory", L->shared_bytes);
        }
        const unsigned bx = L->block.x, by = L->block.y;
        for (unsigned i = 0; i < n; ++i) {
            Fiber& f = fibers[i];
            f.tid = uint3{i % bx, i / bx % by, i / (bx * by)};
            f.warp = i / 32;
            f.lane = i % 32;
        }
        for (unsigned w = 0; w < warps.size(); ++w) {
            warps[w].lanes = n - w * 32 < 32 ? n - w * 32 : 32;
        }
        return "";
    }

    static void fiber_main(void* arg) {
        Worker* w = static_cast<Worker*>(arg);
        w->L->invoke(w->L->params);
        w->finish();
    }

#if KY_EMU_USE_UCONTEXT
    static void fiber_main_uctx() { fiber_main(tl_worker); }
#endif

    // Fiber i at the start of the kernel.
    void reset(unsigned i) {
        Fiber& f = fibers[i];
        f.block_syncs = f.warp_syncs = f.wait = 0;
        f.state = State::Ready;
        char* lo = stacks + (size_t)i * stride + guard;
        char* hi = stacks + (size_t)(i + 1) * stride;
#if KY_EMU_USE_UCONTEXT
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = lo;
        f.ctx.uc_stack.ss_size = (size_t)(hi - lo);
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, fiber_main_uctx, 0);
#else
        (void)lo;
        uintptr_t* top = reinterpret_cast<uintptr_t*>(hi);
        top[-1] = reinterpret_cast<uintptr_t>(&ky_emu_fiber_entry);  // returned into
        top[-2] = 0;                                                 // rbp
        top[-3] = 0;                                                 // rbx
        top[-4] = reinterpret_cast<uintptr_t>(&fiber_main);          // r12
        top[-5] = reinterpret_cast<uintptr_t>(this);                 // r13
        top[-6] = 0;                                                 // r14
        top[-7] = 0;                                                 // r15
        f.sp = &top[-7];
#endif
    }

    void resume(Fiber& f) {
        cur = &f;
        threadIdx = f.tid;
#if KY_EMU_USE_UCONTEXT
        swapcontext(&sched, &f.ctx);
#else
        ky_emu_switch(&sched_sp, f.sp);
#endif
        cur = nullptr;
    }

    // From the current fiber back to the scheduler.
    void yield() {
        Fiber* f = cur;
#if KY_EMU_USE_UCONTEXT
        swapcontext(&f->ctx, &sched);
#else
        ky_emu_switch(&f->sp, sched_sp);
#endif
    }

    std::string where() const {
        if (cur == nullptr) return format("block (%u, %u, %u)", blockIdx.x, blockIdx.y, blockIdx.z);
        return format("block (%u, %u, %u) thread (%u, %u, %u)", blockIdx.x, blockIdx.y,
                      blockIdx.z, cur->tid.x, cur->tid.y, cur->tid.z);
    }

    [[noreturn]] void finish() {
        Fiber* f = cur;
        f->state = State::Done;
        ++block_done;
        Warp& wp = warps[f->warp];
        ++wp.done;
        if (wp.arrived > 0) {
            L->record(where() + format(": exits while %u lanes of its warp wait at a warp operation "
                                       "(every lane must call each shuffle)",
                                       wp.arrived));
            block_dead = true;
        }
        if (block_arrived > 0 && block_arrived + block_done == n) {
            ++block_completed;
            block_arrived = 0;
        }
#if KY_EMU_USE_UCONTEXT
        setcontext(&sched);
#else
        void* dead;
        ky_emu_switch(&dead, sched_sp);
#endif
        __builtin_unreachable();
    }

    void run_block(uint64_t b) {
        const uint64_t gx = L->grid.x, gy = L->grid.y;
        blockIdx = uint3{(unsigned)(b % gx), (unsigned)(b / gx % gy), (unsigned)(b / (gx * gy))};
        blockDim = L->block;
        gridDim = L->grid;
        block_arrived = block_completed = block_done = 0;
        block_dead = false;
        for (Warp& w : warps) w.arrived = w.completed = w.done = 0;
        for (unsigned i = 0; i < n; ++i) reset(i);
        if (dyn != nullptr) memset(dyn, 0xff, L->shared_bytes);
        for (;;) {
            bool live = false, progress = false;
            for (unsigned i = 0; i < n; ++i) {
                Fiber& f = fibers[i];
                switch (f.state) {
                    case State::Done: continue;
                    case State::WaitBlock:
                        live = true;
                        if (block_completed < f.wait) continue;
                        break;
                    case State::WaitWarp:
                        live = true;
                        if (warps[f.warp].completed < f.wait) continue;
                        break;
                    case State::Ready: live = true; break;
                }
                f.state = State::Ready;
                resume(f);
                progress = true;
                if (block_dead) return;
            }
            if (!live) return;
            if (!progress) {
                report_deadlock();
                return;
            }
        }
    }

    void report_deadlock() {
        std::string msg = where() + ": deadlock:";
        unsigned shown = 0, waiting = 0;
        for (const Fiber& f : fibers) {
            if (f.state == State::Done) continue;
            ++waiting;
            if (shown++ < 4) {
                msg += format(" thread (%u, %u, %u) waits at its %s #%u;", f.tid.x, f.tid.y,
                              f.tid.z, f.state == State::WaitBlock ? "__syncthreads" : "warp operation",
                              f.wait);
            }
        }
        msg += format(" %u threads wait, %u have exited", waiting, block_done);
        L->record(msg);
    }

    void work() {
        tl_worker = this;
        while (!L->failed.load(std::memory_order_relaxed)) {
            const uint64_t b = L->next.fetch_add(1);
            if (b >= L->blocks) break;
            run_block(b);
        }
        tl_worker = nullptr;
    }
};

// ---- the hooks prelude.hpp declares ---------------------------------------------------------

void sync_block() {
    Worker* w = tl_worker;
    Fiber* f = w->cur;
    const unsigned k = ++f->block_syncs;
    if (++w->block_arrived + w->block_done == w->n) {
        w->block_completed = k;
        w->block_arrived = 0;
        return;
    }
    f->state = State::WaitBlock;
    f->wait = k;
    w->yield();
}

const uint64_t* warp_exchange(uint64_t bits) {
    Worker* w = tl_worker;
    Fiber* f = w->cur;
    Warp& wp = w->warps[f->warp];
    const unsigned k = ++f->warp_syncs;
    if (wp.done > 0) {
        w->L->record(w->where() + format(": warp operation #%u after %u lanes of its warp exited "
                                         "(every lane must call each shuffle)",
                                         k, wp.done));
    }
    uint64_t* slots = wp.slots[k & 1];
    slots[f->lane] = bits;
    if (++wp.arrived + wp.done == wp.lanes) {
        wp.completed = k;
        wp.arrived = 0;
    } else {
        f->state = State::WaitWarp;
        f->wait = k;
        w->yield();
    }
    return slots;
}

unsigned lane_id() { return tl_worker->cur->lane; }

unsigned warp_lanes() { return tl_worker->warps[tl_worker->cur->warp].lanes; }

void fail(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const std::string what = format(fmt, ap);
    va_end(ap);
    Worker* w = tl_worker;
    if (w == nullptr) return;
    w->L->record(w->where() + ": " + what);
}

void trap(const char* what) {
    Worker* w = tl_worker;
    w->L->record(w->where() + ": " + what);
    w->block_dead = true;
    Fiber* f = w->cur;
#if KY_EMU_USE_UCONTEXT
    swapcontext(&f->ctx, &w->sched);
#else
    ky_emu_switch(&f->sp, w->sched_sp);
#endif
    __builtin_unreachable();
}

// Null when the launch has none: a kernel may declare it and not use it (then any access
// faults, as an access past the end of shared memory does on the GPU).
unsigned char* dyn_shared() { return tl_worker->dyn; }

// Runs `invoke` over the grid; 0, or 1 with a message in `err`.
inline int run(Invoke invoke, size_t arity, const unsigned* grid, const unsigned* block,
               unsigned shared_bytes, void* const* params, size_t nparams, unsigned workers,
               char* err, size_t errlen) {
    auto out = [&](const std::string& msg) {
        snprintf(err, errlen, "%s", msg.c_str());
        return 1;
    };
    if (nparams != arity) {
        return out(format("the entry point takes %zu parameters but the launch passes %zu", arity,
                          nparams));
    }
    Launch L;
    L.invoke = invoke;
    L.params = params;
    L.grid = dim3(grid[0], grid[1], grid[2]);
    L.block = dim3(block[0], block[1], block[2]);
    L.shared_bytes = shared_bytes;
    L.blocks = (uint64_t)grid[0] * grid[1] * grid[2];
    const uint64_t threads = (uint64_t)block[0] * block[1] * block[2];
    if (L.blocks == 0 || threads == 0 || threads > 1024) {
        return out(format("invalid launch shape: grid (%u, %u, %u), block (%u, %u, %u)", grid[0],
                          grid[1], grid[2], block[0], block[1], block[2]));
    }
    if (workers == 0) workers = 1;
    if (workers > L.blocks) workers = (unsigned)L.blocks;
    std::vector<Worker*> pool;
    std::string setup;
    for (unsigned i = 0; i < workers && setup.empty(); ++i) {
        pool.push_back(new Worker(&L));
        setup = pool.back()->init();
    }
    if (setup.empty()) {
        std::vector<std::thread> threads_;
        try {
            for (size_t i = 1; i < pool.size(); ++i) {
                threads_.emplace_back([w = pool[i]] { w->work(); });
            }
        } catch (const std::exception& e) {
            L.record(std::string("cannot start a worker thread: ") + e.what());
        }
        pool[0]->work();
        for (std::thread& t : threads_) t.join();
    }
    for (Worker* w : pool) delete w;
    if (!setup.empty()) return out(setup);
    if (L.failed.load()) {
        std::string msg = L.error;
        if (L.more > 0) msg += format(" (and %u more failures)", L.more);
        return out(msg);
    }
    return 0;
}

// The entry point F called with each parameter read from params[i] as F's i-th parameter type.
template <auto F>
struct Kernel;

template <typename... A, void (*F)(A...)>
struct Kernel<F> {
    static constexpr size_t arity = sizeof...(A);

    static void invoke(void* const* p) { call(p, std::index_sequence_for<A...>{}); }

    template <size_t... I>
    static void call([[maybe_unused]] void* const* p, std::index_sequence<I...>) {
        F(*static_cast<std::remove_cv_t<A>*>(p[I])...);
    }
};

}  // namespace ky_emu

// The exported entry of `NAME`: ky_emu_entry_NAME(grid[3], block[3], shared_bytes, params,
// nparams, workers, err, errlen) -> 0 or 1 (see ky_emu::run).
#define KY_EMU_ENTRY(NAME)                                                                         \
    extern "C" __attribute__((visibility("default"))) int ky_emu_entry_##NAME(                     \
        const unsigned* grid, const unsigned* block, unsigned shared_bytes, void* const* params,   \
        size_t nparams, unsigned workers, char* err, size_t errlen) {                              \
        return ky_emu::run(&ky_emu::Kernel<&NAME>::invoke, ky_emu::Kernel<&NAME>::arity, grid,     \
                           block, shared_bytes, params, nparams, workers, err, errlen);            \
    }
