#pragma once
// TLS settings of the HTTP links (the one HTTP server, the one HTTP client, the clearing
// client): what to trust and what to present. Std only; the contexts are built in one place,
// http/src/tls.cpp (tls_asio.hpp, for .cpp files only).
//
// Contract, for every context built from these options:
// - TLS 1.2 at least; TLS 1.0/1.1 and SSL are refused.
// - Client: with `verify` (the default) the server's chain must lead to a CA of `ca_file` (or
//   of the system's trust store when it is empty) and its certificate must name the host of
//   the URL (a DNS name, or an IP address for an IP literal). With `cert_file` and `key_file`
//   (both or neither) the client presents that certificate (mTLS).
// - Server: presents `cert_file` (its chain, leaf first) with `key_file`. With
//   `client_ca_file`, every client must present a certificate signed by one of its CAs, or
//   the handshake fails; without it no client certificate is asked for.
// - Files are PEM and read when the context is built: a file that does not load is an error
//   naming the option and the path, never the key's content.

#include <optional>
#include <string>

namespace clearing::http {

struct TlsClientOptions {
  std::string ca_file;    // CA bundle (PEM) to trust; "" = the system's trust store
  bool verify = true;     // the server's chain and host name; false for tests only
  std::string cert_file;  // client certificate (PEM, chain leaf first), for mTLS
  std::string key_file;   // its private key (PEM)
};

struct TlsServerOptions {
  std::string cert_file;       // certificate chain (PEM, leaf first)
  std::string key_file;        // its private key (PEM)
  std::string client_ca_file;  // "" = no client certificate; else required, signed by these
};

// Why TLS options cannot be used: the option at fault ("ca_file", "cert_file", "key_file",
// "client_ca_file") and a message naming it and the path.
struct TlsError {
  std::string option;
  std::string message;
};

// The checks that need no file: cert_file and key_file both or neither (client); cert_file
// and key_file both given (server).
std::optional<TlsError> check_options(const TlsClientOptions& options);
std::optional<TlsError> check_options(const TlsServerOptions& options);

}  // namespace clearing::http
