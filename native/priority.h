// Background scheduling for work that shares the machine with a running node
// (a hot backup): every thread of this process, and every thread it starts
// later (policies are inherited), runs at SCHED_IDLE CPU priority and in the
// idle I/O class, so the node's request threads preempt it at once.
#pragma once
#include <napi.h>

#include <string>

namespace guts {

struct BackgroundResult {
  int threads = 0;       // threads of the process changed
  std::string cpu;       // "idle" (SCHED_IDLE), "nice" (nice 19 fallback) or "unchanged"
  bool io_idle = false;  // ioprio class IDLE set
};

// cpu_share in (0, 1): background threads also pace themselves at their
// preemption points to run at most that share of the time (see PreemptionPoint).
BackgroundResult EnterBackgroundPriority(double cpu_share = 1);

// Long CPU loops of background work (compressing or hashing a frame) run in
// slices of this size with a PreemptionPoint() between them.
constexpr size_t kPreemptionSlice = 256 << 10;

// Lets a node thread that woke up on this CPU run now rather than at the next
// timer tick. Kernels with lazy preemption (6.13+, the PREEMPT_NONE and
// PREEMPT_LAZY models) do not interrupt a running SCHED_IDLE task when a
// normal task wakes: they mark it and switch at its next return from the
// kernel, else at the tick (4 ms at HZ=250). A user-space loop that never
// enters the kernel held the node's request threads off the CPU for up to
// that long (seen with perf sched during hot backups). Any syscall's return
// is such a point; getppid() is the cheapest that cannot fail. A no-op
// outside background mode.
void PreemptionPoint();

// True once EnterBackgroundPriority ran: loops that would rather run in one
// piece (one-shot compression) keep their preemption points then.
bool InBackgroundMode();

// Names the calling thread (max 15 characters) for top -H, ps -L and perf.
void NameThisThread(const char* name);

void InitPriority(Napi::Env env, Napi::Object exports);

}  // namespace guts
