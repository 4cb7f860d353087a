#pragma once
// A plain POSIX socket HTTP/1.1 client for the mock's tests, so that nothing between the test
// and the bytes tidies them up: requests as text, responses read by Content-Length.

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>

namespace clearing::clearing_mock::testing {

inline constexpr int kReadWaitMs = 3'000;  // a bound on each wait for bytes, not a timing claim

struct Reply {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
};

class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  static std::string request(const std::string& method, const std::string& target,
                             const std::string& body = "", const std::string& key = "",
                             bool keep_alive = true) {
    std::string text =
        method + " " + target + " HTTP/1.1\r\nHost: mock\r\nAuthorization: Bearer mock-token\r\n";
    if (!key.empty()) text += "Idempotency-Key: " + key + "\r\n";
    if (!keep_alive) text += "Connection: close\r\n";
    return text +
           "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  }

  void send(const std::string& method, const std::string& target, const std::string& body = "",
            const std::string& key = "", bool keep_alive = true) {
    send_bytes(request(method, target, body, key, keep_alive));
  }

  void send_bytes(const std::string& bytes) {
    REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }

  // The next complete response; nullopt when the connection ends (or stays silent) first.
  std::optional<Reply> read() {
    for (;;) {
      if (auto reply = take()) return reply;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, kReadWaitMs) <= 0) return std::nullopt;
      char chunk[65536];
      const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  std::optional<Reply> take() {
    const auto end = buffer_.find("\r\n\r\n");
    if (end == std::string::npos) return std::nullopt;
    const std::string head = buffer_.substr(0, end);
    const auto length_at = head.find("Content-Length: ");
    REQUIRE(length_at != std::string::npos);
    const auto length = std::stoul(head.substr(length_at + 16));
    if (buffer_.size() < end + 4 + length) return std::nullopt;
    Reply reply{std::stoi(head.substr(9, 3)), head, buffer_.substr(end + 4, length)};
    buffer_.erase(0, end + 4 + length);
    return reply;
  }

  int fd_ = -1;
  std::string buffer_;
};

}  // namespace clearing::clearing_mock::testing
