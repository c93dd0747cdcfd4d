#include "priority.h"

#include <dirent.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace guts {

namespace {

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

BackgroundResult EnterBackgroundPriority() {
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
  r.cpu = idle ? "idle" : nice ? "nice" : "unchanged";
  r.io_idle = io;
  return r;
}

void InitPriority(Napi::Env env, Napi::Object exports) {
  exports.Set("enterBackgroundPriority", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    BackgroundResult r = EnterBackgroundPriority();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("threads", r.threads);
    o.Set("cpu", r.cpu);
    o.Set("ioIdle", r.io_idle);
    return o;
  }));
}

}  // namespace guts
