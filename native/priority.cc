#include "priority.h"

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace guts {

namespace {

std::atomic<bool> g_background{false};
// Sleep per unit of CPU time at each preemption point: share s -> (1 - s) / s.
std::atomic<double> g_sleep_per_cpu{0.0};

int64_t ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// <linux/ioprio.h> is not in every libc's headers: the ABI values.
constexpr int kIoprioWhoProcess = 1;
constexpr int kIoprioClassIdle = 3;
constexpr int kIoprioClassShift = 13;

std::vector<pid_t> ThreadIds() {
  std::vector<pid_t> ids;
  if (DIR* d = opendir("/proc/self/task")) {
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      ids.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
    }
    closedir(d);
  }
  if (ids.empty()) ids.push_back(static_cast<pid_t>(syscall(SYS_gettid)));
  return ids;
}

}  // namespace

BackgroundResult EnterBackgroundPriority(double cpu_share) {
  BackgroundResult r;
  bool idle = true, nice = true, io = true;
  for (pid_t tid : ThreadIds()) {
    // On Linux these calls take a thread id and change that thread only.
    struct sched_param sp = {};
    if (sched_setscheduler(tid, SCHED_IDLE, &sp) != 0) idle = false;
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 19) != 0) nice = false;
    if (syscall(SYS_ioprio_set, kIoprioWhoProcess, tid, kIoprioClassIdle << kIoprioClassShift) != 0) io = false;
    r.threads++;
  }
  if (cpu_share > 0 && cpu_share < 1) g_sleep_per_cpu.store((1 - cpu_share) / cpu_share, std::memory_order_relaxed);
  g_background.store(true, std::memory_order_relaxed);
  r.cpu = idle ? "idle" : nice ? "nice" : "unchanged";
  r.io_idle = io;
  return r;
}

bool InBackgroundMode() { return g_background.load(std::memory_order_relaxed); }

void PreemptionPoint() {
  if (!g_background.load(std::memory_order_relaxed)) return;
  const double ratio = g_sleep_per_cpu.load(std::memory_order_relaxed);
  if (ratio <= 0) {
    syscall(SYS_getppid);
    return;
  }
  // Pacing: sleep in proportion to the CPU time this thread used since its
  // last point, so each thread is on a CPU at most cpu_share of the time.
  thread_local int64_t last = -1;
  const int64_t now = ThreadCpuNs();
  if (last >= 0) {
    int64_t ns = static_cast<int64_t>(static_cast<double>(now - last) * ratio);
    ns = std::min<int64_t>(ns, 50000000);  // a point missed for long: catch up gently
    if (ns > 0) {
      timespec ts = {static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
      nanosleep(&ts, nullptr);
    }
  }
  last = ThreadCpuNs();
}

void NameThisThread(const char* name) { pthread_setname_np(pthread_self(), name); }

void InitPriority(Napi::Env env, Napi::Object exports) {
  exports.Set("enterBackgroundPriority", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    double share = 1;
    if (info.Length() > 0 && info[0].IsNumber()) share = info[0].As<Napi::Number>().DoubleValue();
    BackgroundResult r = EnterBackgroundPriority(share);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("threads", r.threads);
    o.Set("cpu", r.cpu);
    o.Set("ioIdle", r.io_idle);
    return o;
  }));
}

}  // namespace guts
