// ChildProcess: a program started by dwarp (the coordinator and workers of `dwarp run`, the processes of
// integration tests and benchmarks), its stdout and stderr going to a log file. POSIX only.
//
// The destructor kills a child that is still running (SIGKILL) and reaps it, so no child outlives its
// owner by accident; call Signal(SIGTERM) + Wait() for a clean stop.
// Thread-safety: one owner thread per object.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace dwarp {

class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  // Starts args[0] (a path) with args, stdout and stderr appended to `log_path` (created if missing).
  // With `own_process_group` the child leads a process group of its own, so a Ctrl-C at the terminal
  // reaches only the parent, which then stops its children in the order it chooses.
  // NotFound naming the program when it cannot be started.
  static StatusOr<ChildProcess> Start(const std::vector<std::string>& args, const std::string& log_path,
                                      bool own_process_group = false);

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // Sends `signal` if the child is still running.
  void Signal(int signal);
  // Waits up to `timeout` for the child to exit, then kills it (SIGKILL). Returns the exit code, or
  // 128 + signal number when a signal ended it. Returns the earlier result when already reaped.
  int Wait(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Reaps the child if it has exited; true when it has (exit_code() is then set).
  bool Poll();
  int exit_code() const { return exit_code_; }
  // The log file's contents (empty when it cannot be read).
  std::string Log() const;

 private:
  void Reaped(int wait_status);

  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string log_path_;
};

// The folder of the running executable (from /proc/self/exe); empty when it cannot be read.
std::string ExecutableFolder();

}  // namespace dwarp
