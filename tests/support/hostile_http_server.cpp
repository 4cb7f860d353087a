#include "hostile_http_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "clearing/base/name_table.hpp"

namespace clearing::testing {
namespace {

// The statuses the scripts use, each with its phrase (HTTP status codes: a lookup table,
// not an enumeration, so there is no order to check).
constexpr base::NameTable<int, 9> kReasonPhrases{{
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {400, "Bad Request"},
    {404, "Not Found"},
    {409, "Conflict"},
    {422, "Unprocessable Entity"},
    {500, "Internal Server Error"},
    {503, "Service Unavailable"},
}};

std::string_view reason_phrase(int status) {
  return base::name_in(kReasonPhrases, status).value_or("Status");
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const auto sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The value of a header in a request head (case-insensitive name), or "".
std::string header_value(std::string_view head, std::string_view name) {
  const std::string wanted = lower(name) + ":";
  std::size_t line_start = head.find("\r\n");
  while (line_start != std::string_view::npos && line_start + 2 < head.size()) {
    const std::size_t begin = line_start + 2;
    const std::size_t end = std::min(head.find("\r\n", begin), head.size());
    const auto line = head.substr(begin, end - begin);
    if (lower(line.substr(0, wanted.size())) == wanted) {
      auto value = line.substr(wanted.size());
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
      return std::string(value);
    }
    line_start = end == head.size() ? std::string_view::npos : end;
  }
  return {};
}

}  // namespace

std::string http_response(int status, std::string_view body, std::string_view extra_headers) {
  std::string out =
      "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_phrase(status)) +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n";
  out += extra_headers;
  out += "\r\n";
  out += body;
  return out;
}

struct HostileHttpServer::State {
  Handler handler;
  int listen_fd = -1;
  std::uint16_t port = 0;
  std::thread acceptor;

  mutable std::mutex mutex;
  bool stopping = false;
  std::vector<ScriptedRequest> requests;
  std::map<int, int> sockets;  // connection ordinal -> fd, while open
  std::vector<std::thread> servers;
  int accepted = 0;

  void accept_loop() {
    for (;;) {
      const int fd = ::accept(listen_fd, nullptr, nullptr);
      if (fd < 0) {
        if (errno == EINTR) continue;
        return;  // shut down by the destructor
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::lock_guard lock(mutex);
      if (stopping || accepted >= kConnectionsMax) {
        ::close(fd);
        if (stopping) return;
        continue;
      }
      const int ordinal = ++accepted;
      sockets[ordinal] = fd;
      servers.emplace_back([this, fd, ordinal] { serve(fd, ordinal); });
    }
  }

  // Reads requests one after the other and writes the handler's bytes for each.
  void serve(int fd, int ordinal) {
    std::string buffer;
    char chunk[16 * 1024];
    for (bool open = true; open;) {
      const auto head_end = buffer.find("\r\n\r\n");
      if (head_end == std::string::npos) {
        if (buffer.size() > kRequestHeadBytesMax) break;
        const auto got = ::recv(fd, chunk, sizeof chunk, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        buffer.append(chunk, static_cast<std::size_t>(got));
        continue;
      }
      const std::string_view head(buffer.data(), head_end);
      std::size_t body_bytes = 0;
      const auto length = header_value(head, "Content-Length");
      if (!length.empty()) {
        const auto parsed =
            std::from_chars(length.data(), length.data() + length.size(), body_bytes);
        if (parsed.ec != std::errc() || body_bytes > kRequestBodyBytesMax) break;
      }
      const std::size_t total = head_end + 4 + body_bytes;
      while (buffer.size() < total && open) {
        const auto got = ::recv(fd, chunk, sizeof chunk, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0)
          open = false;
        else
          buffer.append(chunk, static_cast<std::size_t>(got));
      }
      if (!open) break;
      ScriptedRequest request;
      const auto first_line = head.substr(0, head.find("\r\n"));
      const auto space = first_line.find(' ');
      const auto second_space = first_line.find(' ', space + 1);
      request.method = std::string(first_line.substr(0, space));
      request.target = std::string(first_line.substr(space + 1, second_space - space - 1));
      request.idempotency_key = header_value(head, "Idempotency-Key");
      request.body = buffer.substr(head_end + 4, body_bytes);
      request.connection = ordinal;
      buffer.erase(0, total);
      {
        std::lock_guard lock(mutex);
        requests.push_back(request);
      }
      const ScriptedReply reply = handler(request);
      if (!send_all(fd, reply.bytes) || reply.close_after) break;
    }
    std::lock_guard lock(mutex);
    sockets.erase(ordinal);
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  }
};

HostileHttpServer::HostileHttpServer(Handler handler) : state_(std::make_shared<State>()) {
  state_->handler = std::move(handler);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("hostile server: socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(fd, kConnectionsMax) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    throw std::runtime_error("hostile server: cannot listen on 127.0.0.1");
  }
  state_->listen_fd = fd;
  state_->port = ntohs(address.sin_port);
  State* state = state_.get();
  state_->acceptor = std::thread([state] { state->accept_loop(); });
}

HostileHttpServer::~HostileHttpServer() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
    for (const auto& [ordinal, fd] : state_->sockets) ::shutdown(fd, SHUT_RDWR);
  }
  // Wakes accept() (Linux returns EINVAL on a listening socket that is shut down).
  ::shutdown(state_->listen_fd, SHUT_RDWR);
  state_->acceptor.join();
  ::close(state_->listen_fd);
  std::vector<std::thread> servers;
  {
    std::lock_guard lock(state_->mutex);
    servers.swap(state_->servers);
  }
  for (auto& server : servers) server.join();
}

std::string HostileHttpServer::base_url() const {
  return "http://127.0.0.1:" + std::to_string(state_->port);
}

std::vector<ScriptedRequest> HostileHttpServer::requests() const {
  std::lock_guard lock(state_->mutex);
  return state_->requests;
}

int HostileHttpServer::connections_accepted() const {
  std::lock_guard lock(state_->mutex);
  return state_->accepted;
}

bool HostileHttpServer::send_on_connection(int connection, std::string_view bytes) {
  std::lock_guard lock(state_->mutex);
  const auto it = state_->sockets.find(connection);
  if (it == state_->sockets.end()) return false;
  return send_all(it->second, bytes);
}

}  // namespace clearing::testing
