#pragma once
// Child processes (end-to-end tests, the chaos run, bench/e2e): started with a set environment,
// their stdout read line by line (first lines carry ports), stopped with a signal, always reaped.

#include <signal.h>
#include <sys/types.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace clearing::processes {

class Process {
 public:
  // stderr goes to `stderr_file` (appended to, kept) when given, else to a temporary file
  // removed with this object.
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
          bool pipe_stdin = false, std::string stderr_file = {});
  ~Process();  // SIGKILL if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // The next line of stdout (without newline); "" at end of output or after timeout_ms.
  std::string read_line(int timeout_ms = 10'000);
  // All remaining stdout, up to end of output (call after wait()).
  std::string read_all();
  void write_line(const std::string& line);
  void signal(int sig);
  // Waits for the exit; the exit code, or 128 + signal; -1 on timeout.
  int wait(int timeout_ms = 60'000);
  // Whether it has not exited yet (reaps it if it has; wait() then gives the code at once).
  bool running();
  pid_t pid() const { return pid_; }
  // Everything written to stderr so far (it goes to a file).
  std::string stderr_text() const;

 private:
  void drain();  // reads stdout until end of output, on its own thread

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int stdin_fd_ = -1;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::string buffer_;
  bool eof_ = false;
  std::thread reader_;
  std::string stderr_path_;
  bool keep_stderr_ = false;
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace clearing::processes
