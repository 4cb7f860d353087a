#include "clearing/processes/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace clearing::processes {

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env,
                 bool pipe_stdin, std::string stderr_file) {
  int out[2], in[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0 || (pipe_stdin && pipe2(in, O_CLOEXEC) != 0))
    throw std::runtime_error("pipe failed");
  int err_fd = -1;
  if (stderr_file.empty()) {
    char path[] = "/tmp/child-stderr-XXXXXX";
    err_fd = mkostemp(path, O_CLOEXEC);
    stderr_path_ = path;
  } else {
    err_fd = open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    stderr_path_ = std::move(stderr_file);
    keep_stderr_ = true;
  }
  if (err_fd < 0)
    throw std::runtime_error("cannot open a file for the child's stderr: " + stderr_path_);
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    if (pipe_stdin)
      dup2(in[0], STDIN_FILENO);
    else {
      const int null_fd = open("/dev/null", O_RDONLY);
      dup2(null_fd, STDIN_FILENO);
    }
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  close(err_fd);
  stdout_fd_ = out[0];
  reader_ = std::thread([this] { drain(); });
  if (pipe_stdin) {
    close(in[0]);
    stdin_fd_ = in[1];
  }
}

void Process::drain() {
  char chunk[4096];
  for (;;) {
    const auto n = read(stdout_fd_, chunk, sizeof chunk);
    std::lock_guard lock(mutex_);
    if (n <= 0) {
      eof_ = true;
      arrived_.notify_all();
      return;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    arrived_.notify_all();
  }
}

Process::~Process() {
  if (!reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
  if (reader_.joinable()) reader_.join();
  if (stdout_fd_ >= 0) close(stdout_fd_);
  if (stdin_fd_ >= 0) close(stdin_fd_);
  if (!keep_stderr_) unlink(stderr_path_.c_str());
}

std::string Process::read_line(int timeout_ms) {
  std::unique_lock lock(mutex_);
  std::size_t nl = std::string::npos;
  arrived_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                    [&] { return (nl = buffer_.find('\n')) != std::string::npos || eof_; });
  nl = buffer_.find('\n');
  if (nl == std::string::npos) return "";
  auto line = buffer_.substr(0, nl);
  buffer_.erase(0, nl + 1);
  return line;
}

std::string Process::read_all() {
  std::unique_lock lock(mutex_);
  arrived_.wait_for(lock, std::chrono::seconds(5), [&] { return eof_; });
  std::string out = std::move(buffer_);
  buffer_.clear();
  return out;
}

void Process::write_line(const std::string& line) {
  const auto text = line + "\n";
  if (write(stdin_fd_, text.data(), text.size()) < 0)
    throw std::runtime_error("write to child failed");
}

void Process::signal(int sig) { kill(pid_, sig); }

int Process::wait(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!reaped_) {
    if (waitpid(pid_, &status_, WNOHANG) == pid_) {
      reaped_ = true;
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

bool Process::running() {
  if (reaped_) return false;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
  return !reaped_;
}

std::string Process::stderr_text() const {
  std::ifstream in(stderr_path_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace clearing::processes
