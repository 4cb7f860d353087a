#pragma once
// Certificates for the TLS tests, made at run time with OpenSSL's C API (no `openssl`
// command: a fresh CI machine may not have it) into a temporary folder that the destructor
// removes. PEM files; keys are P-256, private key files mode 0600.
//
//   ca            the trusted CA
//   server        signed by ca, SAN DNS:localhost and IP:127.0.0.1, serverAuth
//   client        signed by ca, CN clearing-adapter, clientAuth (mTLS)
//   other_ca      an unrelated CA
//   other_client  signed by other_ca (a client certificate the server must not take)
//   expired       signed by ca, like server but valid only in the past
//   wrong_host    signed by ca, SAN DNS:other.example only
//
// Throws std::runtime_error when OpenSSL or the file system fails.

#include <string>

namespace clearing::http::testing {

struct CertAndKey {
  std::string cert_file;
  std::string key_file;
};

class TestCerts {
 public:
  TestCerts();
  ~TestCerts();
  TestCerts(const TestCerts&) = delete;
  TestCerts& operator=(const TestCerts&) = delete;

  const std::string& dir() const { return dir_; }
  std::string ca_file;
  std::string other_ca_file;
  CertAndKey server;
  CertAndKey client;
  CertAndKey other_client;
  CertAndKey expired;
  CertAndKey wrong_host;

 private:
  std::string dir_;
};

}  // namespace clearing::http::testing
