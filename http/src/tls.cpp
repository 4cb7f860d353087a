// The TLS contexts of every HTTP link (tls.hpp): one place sets the protocol floor, what is
// trusted and what is presented.

#include "clearing/http/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clearing/http/tls_asio.hpp"

namespace clearing::http {
namespace {

namespace ssl = asio::ssl;

TlsError file_error(const char* option, const std::string& path, const std::exception& error) {
  return {option, std::string("TLS ") + option + " '" + path + "' does not load: " + error.what()};
}

void set_floor(ssl::context& context) {
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
}

// The certificate chain and its key, which must match.
std::optional<TlsError> use_certificate(ssl::context& context, const std::string& cert_file,
                                        const std::string& key_file) {
  try {
    context.use_certificate_chain_file(cert_file);
  } catch (const std::exception& error) {
    return file_error("cert_file", cert_file, error);
  }
  try {
    context.use_private_key_file(key_file, ssl::context::pem);
  } catch (const std::exception& error) {
    return file_error("key_file", key_file, error);
  }
  if (SSL_CTX_check_private_key(context.native_handle()) != 1) {
    ERR_clear_error();
    return TlsError{"key_file",
                    "TLS key_file '" + key_file + "' does not match cert_file '" + cert_file + "'"};
  }
  return std::nullopt;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code error;
  asio::ip::make_address(host, error);
  return !error;
}

}  // namespace

std::optional<TlsError> check_options(const TlsClientOptions& options) {
  if (options.cert_file.empty() != options.key_file.empty()) {
    const char* missing = options.cert_file.empty() ? "cert_file" : "key_file";
    return TlsError{missing, std::string("TLS ") + missing +
                                 " is missing: a client certificate needs both cert_file and "
                                 "key_file"};
  }
  return std::nullopt;
}

std::optional<TlsError> check_options(const TlsServerOptions& options) {
  if (options.cert_file.empty()) return TlsError{"cert_file", "TLS cert_file is missing"};
  if (options.key_file.empty()) return TlsError{"key_file", "TLS key_file is missing"};
  return std::nullopt;
}

tl::expected<ssl::context, TlsError> make_client_context(const TlsClientOptions& options) {
  if (auto problem = check_options(options)) return tl::unexpected(std::move(*problem));
  ssl::context context(ssl::context::tls_client);
  set_floor(context);
  if (options.verify) {
    context.set_verify_mode(ssl::verify_peer);
    try {
      if (options.ca_file.empty()) {
        context.set_default_verify_paths();
      } else {
        context.load_verify_file(options.ca_file);
      }
    } catch (const std::exception& error) {
      return tl::unexpected(file_error("ca_file", options.ca_file, error));
    }
  } else {
    context.set_verify_mode(ssl::verify_none);
  }
  if (!options.cert_file.empty()) {
    if (auto problem = use_certificate(context, options.cert_file, options.key_file)) {
      return tl::unexpected(std::move(*problem));
    }
  }
  return context;
}

tl::expected<ssl::context, TlsError> make_server_context(const TlsServerOptions& options) {
  if (auto problem = check_options(options)) return tl::unexpected(std::move(*problem));
  ssl::context context(ssl::context::tls_server);
  set_floor(context);
  context.set_options(ssl::context::single_dh_use);
  if (auto problem = use_certificate(context, options.cert_file, options.key_file)) {
    return tl::unexpected(std::move(*problem));
  }
  if (options.client_ca_file.empty()) {
    context.set_verify_mode(ssl::verify_none);
    return context;
  }
  try {
    context.load_verify_file(options.client_ca_file);
  } catch (const std::exception& error) {
    return tl::unexpected(file_error("client_ca_file", options.client_ca_file, error));
  }
  // The CAs a client may choose its certificate by.
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca_file.c_str())) {
    SSL_CTX_set_client_CA_list(context.native_handle(), names);
  }
  context.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  return context;
}

bool prepare_client_session(SSL* ssl, const std::string& host, bool verify) {
  const bool ip = is_ip_literal(host);
  if (!ip && SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) return false;
  if (!verify) return true;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  const int set = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                     : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  return set == 1;
}

std::string handshake_failure(SSL* ssl, const boost::system::error_code& error) {
  std::string message = error.message();
  if (ssl == nullptr) return message;
  const long verdict = SSL_get_verify_result(ssl);
  if (verdict != X509_V_OK) {
    message += std::string(" (") + X509_verify_cert_error_string(verdict) + ")";
  }
  return message;
}

}  // namespace clearing::http
