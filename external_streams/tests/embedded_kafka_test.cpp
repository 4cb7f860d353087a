#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "clearing/external_streams/kafka.hpp"

using namespace clearing::external_streams;

namespace {

int port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port);
  return -1;
}

// The broker side of our connection: the socket of this process whose peer is the
// client's local port (the mock cluster runs in this process). -1 until accepted.
int accepted_socket_for(int client_port) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    const int fd = std::atoi(entry.path().filename().c_str());
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) == 0 &&
        port_of(peer) == client_port)
      return fd;
  }
  return -1;
}

// Connects to 127.0.0.1:port: the socket and its own port (-1 when the connect failed).
std::pair<int, int> connect_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) return {fd, -1};
  sockaddr_storage self{};
  socklen_t length = sizeof self;
  getsockname(fd, reinterpret_cast<sockaddr*>(&self), &length);
  return {fd, port_of(self)};
}

}  // namespace

TEST_CASE(
    "the embedded cluster's brokers accept connections with TCP_NODELAY set, like Kafka's "
    "brokers") {
  auto kafka = EmbeddedKafka::start(3);
  REQUIRE_MESSAGE(kafka, (kafka ? std::string() : kafka.error().message));
  std::vector<int> ports;
  const auto& servers = (*kafka)->bootstrap_servers();
  for (std::size_t at = 0; (at = servers.find(':', at)) != std::string::npos; ++at)
    ports.push_back(std::atoi(servers.c_str() + at + 1));
  REQUIRE(ports.size() == 3);
  for (const int port : ports) {
    CAPTURE(port);
    const auto [client, client_port] = connect_to(port);
    REQUIRE(client_port > 0);
    int server_side = -1;
    for (int i = 0; i < 500 && server_side < 0; ++i) {
      server_side = accepted_socket_for(client_port);
      if (server_side < 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(server_side >= 0);
    int nodelay = 0;
    socklen_t length = sizeof nodelay;
    REQUIRE(getsockopt(server_side, IPPROTO_TCP, TCP_NODELAY, &nodelay, &length) == 0);
    CHECK(nodelay != 0);
    // Our own client socket was left with Nagle on: the check above reads the broker's side.
    int client_nodelay = 1;
    length = sizeof client_nodelay;
    REQUIRE(getsockopt(client, IPPROTO_TCP, TCP_NODELAY, &client_nodelay, &length) == 0);
    CHECK(client_nodelay == 0);
    close(client);
  }
}
