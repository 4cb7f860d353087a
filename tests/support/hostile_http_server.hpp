#pragma once
// A scripted HTTP/1.1 server on raw TCP (127.0.0.1, a free port), for tests that need answers
// no well-behaved server sends: two responses to one request on a kept-alive connection, bytes
// written while the connection sits idle, bodies with NUL escapes or megabyte fields.
//
// Each request is read in full (head and Content-Length body) and handed to the test's handler;
// whatever bytes the handler returns are written as they are. The server never frames or
// checks them: that is the point.
//
// Threading: one thread accepts, one thread serves each connection (at most
// kConnectionsMax). The handler runs on connection threads, possibly at once on several.
// Public members are thread safe. Errors: start() throws std::runtime_error when it cannot
// listen; anything wrong on a connection just closes that connection.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace clearing::testing {

struct ScriptedRequest {
  std::string method;
  std::string target;
  std::string idempotency_key;  // empty when the request had none
  std::string body;
  int connection = 0;  // the connection it came on: 1 for the first accepted, 2 next, ...
};

struct ScriptedReply {
  std::string bytes;         // written at once, whatever they are (one response, two, garbage)
  bool close_after = false;  // close the connection after writing
};

// One complete HTTP/1.1 response with a Content-Length, kept alive.
std::string http_response(int status, std::string_view body, std::string_view extra_headers = {});

class HostileHttpServer {
 public:
  using Handler = std::function<ScriptedReply(const ScriptedRequest&)>;

  static constexpr int kConnectionsMax = 64;  // accepted beyond: closed at once
  static constexpr std::size_t kRequestHeadBytesMax = 64 << 10;
  static constexpr std::size_t kRequestBodyBytesMax = 4 << 20;

  explicit HostileHttpServer(Handler handler);
  ~HostileHttpServer();  // closes every connection and joins every thread
  HostileHttpServer(const HostileHttpServer&) = delete;
  HostileHttpServer& operator=(const HostileHttpServer&) = delete;

  std::string base_url() const;  // http://127.0.0.1:<port>
  std::vector<ScriptedRequest> requests() const;
  int connections_accepted() const;

  // Writes `bytes` on the given connection from the caller's thread, as a server (or a proxy)
  // that sends an answer nobody asked for while the client holds the connection idle. Returns
  // once they are handed to the kernel (false when that connection is gone).
  bool send_on_connection(int connection, std::string_view bytes);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace clearing::testing
