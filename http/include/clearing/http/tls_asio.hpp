#pragma once
// The one place TLS contexts are built (tls.hpp says what they enforce), and the stream the
// servers read: plain TCP or TLS over it, chosen at run time. Heavy (Asio, Beast, OpenSSL):
// include it from .cpp files only, never from a public header of another module.

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <tl/expected.hpp>
#include <utility>

#include "clearing/base/asio.hpp"
#include "clearing/http/tls.hpp"

namespace clearing::http {

tl::expected<asio::ssl::context, TlsError> make_client_context(const TlsClientOptions& options);
tl::expected<asio::ssl::context, TlsError> make_server_context(const TlsServerOptions& options);

// Before a client handshake on `ssl`: the SNI name (for a host name, not an IP literal) and,
// with `verify`, the host name or IP address the server's certificate must carry. False when
// OpenSSL refused the name.
bool prepare_client_session(SSL* ssl, const std::string& host, bool verify);

// Why a handshake failed, for a message: OpenSSL's verdict on the peer's certificate when it
// was refused ("certificate verify failed (certificate has expired)"), else the error's words.
std::string handshake_failure(SSL* ssl, const boost::system::error_code& error);

// A server connection: TCP, with TLS over it when made with a context. Reads and writes go
// through TLS when there is one, so Beast's HTTP operations take it as any stream; deadlines
// are the TCP stream's (expires_after). A TLS one must be handshaken first (tls()).
class ServerStream {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;
  using TlsLayer = asio::ssl::stream<boost::beast::tcp_stream&>;

  ServerStream(asio::ip::tcp::socket socket, asio::ssl::context* tls) : tcp_(std::move(socket)) {
    if (tls != nullptr) tls_.emplace(tcp_, *tls);
  }
  ServerStream(const ServerStream&) = delete;
  ServerStream& operator=(const ServerStream&) = delete;

  executor_type get_executor() noexcept { return tcp_.get_executor(); }
  asio::ip::tcp::socket& socket() noexcept { return tcp_.socket(); }
  template <class Duration>
  void expires_after(Duration duration) {
    tcp_.expires_after(duration);
  }
  void expires_never() { tcp_.expires_never(); }
  bool is_tls() const noexcept { return tls_.has_value(); }
  TlsLayer& tls() { return *tls_; }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (tls_) {
            tls_->async_read_some(b, std::move(handler));
          } else {
            tcp_.async_read_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (tls_) {
            tls_->async_write_some(b, std::move(handler));
          } else {
            tcp_.async_write_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

 private:
  boost::beast::tcp_stream tcp_;
  std::optional<TlsLayer> tls_;  // over tcp_
};

}  // namespace clearing::http
