// kafka.security reaches librdkafka (issue 21, item 2): from a config file, through the options
// the adapter gives every Kafka client (kafka_client_options: the relay's producer and the
// inbound consumer), to what librdkafka holds (rd_kafka_conf_dump), and a client starts with
// the certificates and the encrypted key, generated here with the openssl command. The
// embedded cluster (librdkafka's mock) speaks PLAINTEXT only: a SASL client never gets an
// answer from it, which is why config refuses kafka.security with "embedded".

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "clearing/adapter/kafka_client_options.hpp"
#include "clearing/config/loader.hpp"
#include "clearing/external_streams/kafka.hpp"
#include "clearing/support/command_lines.hpp"
#include "kafka_internal.hpp"

using namespace clearing;
using Json = nlohmann::json;
using Settings = std::map<std::string, std::string>;

namespace {

constexpr const char* kSaslPassword = "sasl-password-for-the-test";
constexpr const char* kKeyPassword = "key-password-for-the-test";
constexpr const char* kUser = "clearing-adapter-dk";

// A fresh folder with a CA, a client certificate it signed and the client's key, encrypted
// with kKeyPassword; removed with the folder.
struct Certificates {
  std::filesystem::path dir;
  Certificates() {
    std::string templ = (std::filesystem::temp_directory_path() / "kafka-tls-XXXXXX").string();
    REQUIRE(::mkdtemp(templ.data()) != nullptr);
    dir = templ;
    const std::string d = dir.string();
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256";
    run("openssl req -x509" + ec + " -nodes -keyout " + d + "/ca.key -out " + d +
        "/ca.pem -days 2 -subj /CN=test-kafka-ca");
    run("openssl req" + ec + " -passout pass:" + kKeyPassword + " -keyout " + d +
        "/client.key -out " + d + "/client.csr -subj /CN=" + kUser);
    run("openssl x509 -req -in " + d + "/client.csr -CA " + d + "/ca.pem -CAkey " + d +
        "/ca.key -CAcreateserial -out " + d + "/client.pem -days 2");
    std::filesystem::permissions(key(), std::filesystem::perms::owner_read);
  }
  ~Certificates() { std::filesystem::remove_all(dir); }
  std::string ca() const { return (dir / "ca.pem").string(); }
  std::string certificate() const { return (dir / "client.pem").string(); }
  std::string key() const { return (dir / "client.key").string(); }
  static void run(const std::string& command) {
    INFO(command);
    REQUIRE(std::system((command + " >/dev/null 2>&1").c_str()) == 0);
  }
};

// A secret file (mode 0400) in `dir`.
std::string secret_file(const std::filesystem::path& dir, const std::string& name,
                        const std::string& content) {
  const auto path = dir / name;
  std::ofstream(path) << content << '\n';
  std::filesystem::permissions(path, std::filesystem::perms::owner_read);
  return path.string();
}

// config/dk.json with `brokers` and `security` as kafka.security, loaded like the adapter
// loads it: the tokens and `more` in the environment.
config::AdapterConfig load(const std::string& brokers, const Json& security,
                           const Settings& more = {}) {
  std::ifstream in(std::string(SOURCE_DIR) + "/config/dk.json");
  REQUIRE(in);
  Json document = Json::parse(in);
  document["kafka"]["brokers"] = brokers;
  if (!security.is_null()) document["kafka"]["security"] = security;
  config::MapEnvironment env({{config::kEnvClearingToken, "clearing-token-0123456789"},
                              {config::kEnvApiToken, std::string(32, 'a')},
                              {config::kEnvCoreCatchupToken, "core-token-0123456789"},
                              {config::kEnvDataKek, std::string(support::kTestDataKek)}});
  for (const auto& [name, value] : more) env.set(name, value);
  auto loaded = config::parse_config(document.dump(), "config/dk.json", env);
  INFO((loaded ? std::string() : loaded.error().to_string()));
  REQUIRE(loaded.has_value());
  return *loaded;
}

// What librdkafka holds for the relay's producer and for the inbound consumer.
std::map<std::string, Settings> held_by_each_client(const config::AdapterConfig& config) {
  const auto options = adapter::kafka_client_options(config, config.kafka.brokers);
  std::map<std::string, Settings> out;
  for (const auto& [client, settings] : std::map<std::string, Settings>{
           {"producer", external_streams::producer_settings(options)},
           {"consumer", external_streams::consumer_settings(options, config.kafka.group_id)}}) {
    auto held = external_streams::librdkafka_configuration(settings);
    INFO(client << ": " << (held ? "" : held.error().message));
    REQUIRE(held.has_value());
    out[client] = std::move(*held);
  }
  return out;
}

// A client made from `settings` the way the relay and the consumer make theirs (make_conf,
// rd_kafka_new); the caller destroys it. Why not, when it cannot be made.
tl::expected<rd_kafka_t*, std::string> make_client(const Settings& settings, rd_kafka_type_t type) {
  auto conf = external_streams::make_conf(settings);
  if (!conf) return tl::unexpected(conf.error().message);
  char error[512];
  rd_kafka_t* client = rd_kafka_new(type, *conf, error, sizeof error);
  if (client == nullptr) {
    rd_kafka_conf_destroy(*conf);
    return tl::unexpected(std::string(error));
  }
  return client;
}

// Nothing when a client starts with `settings`, else why not.
std::string start_client(const Settings& settings, rd_kafka_type_t type) {
  const auto client = make_client(settings, type);
  if (!client) return client.error();
  rd_kafka_destroy(*client);
  return "";
}

std::string value_or_unset(const Settings& settings, const std::string& key) {
  const auto found = settings.find(key);
  return found == settings.end() ? "unset" : found->second;
}

}  // namespace

TEST_CASE("every Kafka client of the adapter carries kafka.security: SASL_SSL, SCRAM, mTLS") {
  const Certificates certificates;
  const auto password_file = secret_file(certificates.dir, "sasl_password", kSaslPassword);
  const auto config =
      load("kafka-1.example:9093,kafka-2.example:9093",
           {{"protocol", "SASL_SSL"},
            {"sasl_mechanism", "SCRAM-SHA-512"},
            {"sasl_username", kUser},
            {"ssl_ca_location", certificates.ca()},
            {"ssl_certificate_location", certificates.certificate()},
            {"ssl_key_location", certificates.key()}},
           {{std::string(config::kOptionalEnvKafkaSaslPassword) + "_FILE", password_file},
            {config::kOptionalEnvKafkaSslKeyPassword, kKeyPassword}});
  for (const auto& [client, held] : held_by_each_client(config)) {
    CAPTURE(client);
    // bootstrap.servers is an alias: librdkafka holds it under this name.
    CHECK(held.at("metadata.broker.list") == "kafka-1.example:9093,kafka-2.example:9093");
    CHECK(held.at("security.protocol") == "sasl_ssl");
    CHECK(held.at("sasl.mechanisms") == "SCRAM-SHA-512");
    CHECK(held.at("sasl.username") == kUser);
    CHECK(held.at("sasl.password") == kSaslPassword);  // the file's, without its line break
    CHECK(held.at("ssl.ca.location") == certificates.ca());
    CHECK(held.at("ssl.certificate.location") == certificates.certificate());
    CHECK(held.at("ssl.key.location") == certificates.key());
    CHECK(held.at("ssl.key.password") == kKeyPassword);
    CHECK(held.at("ssl.endpoint.identification.algorithm") == "https");
    CHECK(held.at("enable.ssl.certificate.verification") == "true");
  }
  // A client starts with them: the CA and the certificate load, and the password opens the
  // key that matches the certificate. It connects in the background (to nobody here).
  const auto options = adapter::kafka_client_options(config, config.kafka.brokers);
  CHECK(start_client(external_streams::producer_settings(options), RD_KAFKA_PRODUCER) == "");
  CHECK(start_client(external_streams::consumer_settings(options, "g"), RD_KAFKA_CONSUMER) == "");
  // With another key password it does not: the settings are what the client works with.
  auto wrong = options;
  wrong.security.ssl_key_password = "not-the-password";
  CHECK(start_client(external_streams::producer_settings(wrong), RD_KAFKA_PRODUCER)
            .starts_with("ssl.key.location failed"));
}

TEST_CASE("SSL without SASL and host names unchecked: only the TLS properties, as configured") {
  const Certificates certificates;
  const auto config =
      load("kafka-1.example:9093", {{"protocol", "SSL"},
                                    {"ssl_ca_location", certificates.ca()},
                                    {"ssl_endpoint_identification_algorithm", "none"},
                                    {"unverified_tls_acknowledged", true}});
  for (const auto& [client, held] : held_by_each_client(config)) {
    CAPTURE(client);
    CHECK(held.at("security.protocol") == "ssl");
    CHECK(held.at("ssl.ca.location") == certificates.ca());
    CHECK(held.at("ssl.endpoint.identification.algorithm") == "none");
    CHECK(value_or_unset(held, "sasl.username") == "unset");
    CHECK(value_or_unset(held, "sasl.password") == "unset");
    CHECK(value_or_unset(held, "ssl.certificate.location") == "unset");
    CHECK(value_or_unset(held, "ssl.key.location") == "unset");
  }
}

TEST_CASE("the shipped config (the embedded cluster) stays PLAINTEXT, with no credentials") {
  const auto config = load("embedded", Json());
  for (const auto& [client, held] : held_by_each_client(config)) {
    CAPTURE(client);
    CHECK(held.at("security.protocol") == "plaintext");
    CHECK(value_or_unset(held, "sasl.username") == "unset");
    CHECK(value_or_unset(held, "sasl.password") == "unset");
    CHECK(value_or_unset(held, "ssl.ca.location") == "unset");
    CHECK(value_or_unset(held, "ssl.key.location") == "unset");
  }
}

TEST_CASE("the embedded cluster answers a PLAINTEXT client and never a SASL one") {
  auto kafka = external_streams::EmbeddedKafka::start(1);
  REQUIRE(kafka.has_value());
  REQUIRE((*kafka)->create_topic("core.dk.payments.v1", 1).has_value());
  const auto metadata_error = [&](const config::AdapterConfig& config) {
    const auto options = adapter::kafka_client_options(config, (*kafka)->bootstrap_servers());
    const auto client =
        make_client(external_streams::producer_settings(options), RD_KAFKA_PRODUCER);
    REQUIRE(client.has_value());
    const rd_kafka_metadata_t* metadata = nullptr;
    const auto err = rd_kafka_metadata(*client, 1, nullptr, &metadata, 3'000);
    if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
    rd_kafka_destroy(*client);
    return err;
  };
  CHECK(metadata_error(load("127.0.0.1:9092", Json())) == RD_KAFKA_RESP_ERR_NO_ERROR);
  // librdkafka's mock (2.0.2, and still today) has no SaslHandshake or SaslAuthenticate.
  const auto sasl = load("127.0.0.1:9092",
                         {{"protocol", "SASL_PLAINTEXT"},
                          {"sasl_mechanism", "SCRAM-SHA-256"},
                          {"sasl_username", kUser}},
                         {{config::kOptionalEnvKafkaSaslPassword, kSaslPassword}});
  CHECK(metadata_error(sasl) != RD_KAFKA_RESP_ERR_NO_ERROR);
}
