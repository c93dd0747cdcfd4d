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

BackgroundResult EnterBackgroundPriority();

void InitPriority(Napi::Env env, Napi::Object exports);

}  // namespace guts
