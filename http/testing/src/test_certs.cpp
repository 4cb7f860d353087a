// Test certificates with OpenSSL's C API (test_certs.hpp).

#include "clearing/http/testing/test_certs.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <vector>

namespace clearing::http::testing {
namespace {

constexpr long kDay = 24L * 3600;

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertFree {
  void operator()(X509* cert) const { X509_free(cert); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

void require(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificates: ") + what + " failed");
}

Key new_key() {
  Key key(EVP_EC_gen("P-256"));
  require(key != nullptr, "EVP_EC_gen");
  return key;
}

struct Issued {
  Key key;
  Cert cert;
};

struct Spec {
  std::string common_name;
  bool is_ca = false;
  std::string san;             // "DNS:localhost,IP:127.0.0.1" or ""
  std::string extended_usage;  // "serverAuth", "clientAuth" or ""
  long not_before_s = -kDay;
  long not_after_s = 365 * kDay;
};

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  require(extension != nullptr, "X509V3_EXT_conf_nid");
  const int added = X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
  require(added == 1, "X509_add_ext");
}

// Signed by `issuer` (self-signed when null).
Issued issue(const Spec& spec, const Issued* issuer, long serial) {
  Issued out{new_key(), Cert(X509_new())};
  X509* cert = out.cert.get();
  require(cert != nullptr, "X509_new");
  require(X509_set_version(cert, 2) == 1, "X509_set_version");
  require(ASN1_INTEGER_set(X509_get_serialNumber(cert), serial) == 1, "serial");
  require(X509_gmtime_adj(X509_getm_notBefore(cert), spec.not_before_s) != nullptr, "notBefore");
  require(X509_gmtime_adj(X509_getm_notAfter(cert), spec.not_after_s) != nullptr, "notAfter");
  require(X509_set_pubkey(cert, out.key.get()) == 1, "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert);
  require(X509_NAME_add_entry_by_txt(
              name, "CN", MBSTRING_ASC,
              reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1, -1, 0) == 1,
          "subject");
  X509* issuer_cert = issuer != nullptr ? issuer->cert.get() : cert;
  require(X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert)) == 1, "issuer");
  add_extension(cert, issuer_cert, NID_basic_constraints,
                spec.is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_extension(cert, issuer_cert, NID_key_usage,
                spec.is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  add_extension(cert, issuer_cert, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) add_extension(cert, issuer_cert, NID_authority_key_identifier, "keyid");
  if (!spec.san.empty()) add_extension(cert, issuer_cert, NID_subject_alt_name, spec.san);
  if (!spec.extended_usage.empty()) {
    add_extension(cert, issuer_cert, NID_ext_key_usage, spec.extended_usage);
  }
  EVP_PKEY* signing_key = issuer != nullptr ? issuer->key.get() : out.key.get();
  require(X509_sign(cert, signing_key, EVP_sha256()) > 0, "X509_sign");
  return out;
}

struct File {
  std::FILE* file;
  ~File() {
    if (file != nullptr) std::fclose(file);
  }
};

void write_cert(const std::string& path, const Issued& issued) {
  File out{std::fopen(path.c_str(), "w")};
  require(out.file != nullptr, "open a certificate file");
  require(PEM_write_X509(out.file, issued.cert.get()) == 1, "PEM_write_X509");
}

void write_key(const std::string& path, const Issued& issued) {
  File out{std::fopen(path.c_str(), "w")};
  require(out.file != nullptr, "open a key file");
  require(::chmod(path.c_str(), 0600) == 0, "chmod a key file");
  require(
      PEM_write_PrivateKey(out.file, issued.key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
      "PEM_write_PrivateKey");
}

CertAndKey write_pair(const std::string& dir, const std::string& name, const Issued& issued) {
  CertAndKey files{dir + "/" + name + ".crt", dir + "/" + name + ".key"};
  write_cert(files.cert_file, issued);
  write_key(files.key_file, issued);
  return files;
}

}  // namespace

TestCerts::TestCerts() {
  std::string pattern = (std::filesystem::temp_directory_path() / "clearing-certs-XXXXXX").string();
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  require(::mkdtemp(buffer.data()) != nullptr, "mkdtemp");
  dir_ = buffer.data();

  const std::string server_names = "DNS:localhost,IP:127.0.0.1";
  const auto ca = issue({.common_name = "clearing test CA", .is_ca = true}, nullptr, 1);
  const auto other_ca = issue({.common_name = "unrelated test CA", .is_ca = true}, nullptr, 2);
  const auto server_cert = issue(
      {.common_name = "localhost", .san = server_names, .extended_usage = "serverAuth"}, &ca, 3);
  const auto client_cert =
      issue({.common_name = "clearing-adapter", .extended_usage = "clientAuth"}, &ca, 4);
  const auto other_client_cert =
      issue({.common_name = "clearing-adapter", .extended_usage = "clientAuth"}, &other_ca, 5);
  const auto expired_cert = issue({.common_name = "localhost",
                                   .san = server_names,
                                   .extended_usage = "serverAuth",
                                   .not_before_s = -30 * kDay,
                                   .not_after_s = -kDay},
                                  &ca, 6);
  const auto wrong_host_cert = issue(
      {.common_name = "other.example", .san = "DNS:other.example", .extended_usage = "serverAuth"},
      &ca, 7);

  ca_file = dir_ + "/ca.crt";
  write_cert(ca_file, ca);
  other_ca_file = dir_ + "/other-ca.crt";
  write_cert(other_ca_file, other_ca);
  server = write_pair(dir_, "server", server_cert);
  client = write_pair(dir_, "client", client_cert);
  other_client = write_pair(dir_, "other-client", other_client_cert);
  expired = write_pair(dir_, "expired", expired_cert);
  wrong_host = write_pair(dir_, "wrong-host", wrong_host_cert);
}

TestCerts::~TestCerts() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

}  // namespace clearing::http::testing
