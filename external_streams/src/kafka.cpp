#include "clearing/external_streams/kafka.hpp"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "clearing/base/logging.hpp"
#include "kafka_internal.hpp"

namespace clearing::external_streams {

namespace {

// The protocol always, then only what it uses: librdkafka would ignore the rest, and a
// setting it ignores must not seem to be in force.
void add_security(const KafkaSecurity& security, std::map<std::string, std::string>& own) {
  own["security.protocol"] = security.protocol;
  if (security.protocol.starts_with("SASL_")) {
    own["sasl.mechanisms"] = security.sasl_mechanism;
    own["sasl.username"] = security.sasl_username;
    own["sasl.password"] = security.sasl_password;
  }
  if (!security.protocol.ends_with("SSL")) return;
  // librdkafka's default, set explicitly: the brokers' certificates are checked.
  own["enable.ssl.certificate.verification"] = "true";
  own["ssl.endpoint.identification.algorithm"] = security.ssl_endpoint_identification_algorithm;
  const std::pair<const char*, const std::string*> files[] = {
      {"ssl.ca.location", &security.ssl_ca_location},
      {"ssl.certificate.location", &security.ssl_certificate_location},
      {"ssl.key.location", &security.ssl_key_location},
      {"ssl.key.password", &security.ssl_key_password},
  };
  for (const auto& [key, value] : files) {
    if (!value->empty()) own[key] = *value;
  }
}

// A client's own settings, with what every client of this module sets (where the cluster
// is, who it is, how it treats connections, how it authenticates), and last the operator's
// extra ones over all.
std::map<std::string, std::string> client_settings(const KafkaClientOptions& o,
                                                   std::map<std::string, std::string> own) {
  add_security(o.security, own);
  own.insert({
      {"bootstrap.servers", o.bootstrap_servers},
      {"client.id", o.client_id},
      {"socket.timeout.ms", std::to_string(o.socket_timeout_ms)},
      {"log.connection.close", "false"},
      // A broker back from an outage is reconnected within a second, not after librdkafka's
      // default backoff of up to 10 s (the chaos run: a partition 8 s late after a 2.6 s outage).
      {"reconnect.backoff.max.ms", "1000"},
  });
  for (const auto& [k, v] : o.extra) own[k] = v;
  return own;
}

// librdkafka's own log lines (syslog levels) through the module logger "kafka", so that in
// JSON mode they are JSON lines too; librdkafka would print them to stderr in its own format.
// Called on librdkafka's threads (spdlog's loggers are thread-safe).
void log_through_spdlog(const rd_kafka_t* client, int level, const char* facility,
                        const char* text) {
  static const auto log = base::module_logger("kafka");
  const auto spd_level = level <= 2   ? spdlog::level::critical
                         : level == 3 ? spdlog::level::err
                         : level == 4 ? spdlog::level::warn
                         : level <= 6 ? spdlog::level::info
                                      : spdlog::level::debug;
  log->log(spd_level, "librdkafka facility={} client={} detail=\"{}\"", facility,
           client != nullptr ? rd_kafka_name(client) : "none", text);
}

}  // namespace

std::map<std::string, std::string> producer_settings(const KafkaClientOptions& o) {
  return client_settings(
      o, {
             // Exactly-once into the log per producer session, order kept under retries.
             {"enable.idempotence", "true"},
             {"acks", "all"},
             {"max.in.flight.requests.per.connection", "5"},
             {"retries", "2147483647"},
             {"message.timeout.ms", std::to_string(o.message_timeout_ms)},
             {"linger.ms", "2"},
             {"batch.num.messages", "10000"},
             {"compression.type", "none"},
             {"partitioner", "consistent_random"},  // unused: we always name the partition
             {"enable.gapless.guarantee", "false"},
         });
}

std::map<std::string, std::string> consumer_settings(const KafkaClientOptions& o,
                                                     const std::string& group_id) {
  return client_settings(
      o, {
             {"group.id", group_id},
             // Offsets live in PostgreSQL with the applied seq; Kafka's are never used.
             {"enable.auto.commit", "false"},
             {"enable.auto.offset.store", "false"},
             {"auto.offset.reset", "earliest"},
             {"isolation.level", "read_committed"},
             {"session.timeout.ms", std::to_string(o.session_timeout_ms)},
             {"max.poll.interval.ms", std::to_string(o.max_poll_interval_ms)},
             {"partition.assignment.strategy", "range"},
             {"enable.partition.eof", "false"},
             {"fetch.wait.max.ms", std::to_string(o.fetch_wait_max_ms)},
             {"fetch.min.bytes", "1"},
         });
}

tl::expected<rd_kafka_conf_t*, KafkaError> make_conf(
    const std::map<std::string, std::string>& settings) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // In text mode librdkafka keeps printing its own lines, as before.
  if (base::log_format() == base::LogFormat::json)
    rd_kafka_conf_set_log_cb(conf, log_through_spdlog);
  char error[512];
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof error) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return tl::unexpected(
          KafkaError{KafkaErrc::invalid_setting, "kafka option " + key + ": " + error});
    }
  }
  return conf;
}

tl::expected<std::map<std::string, std::string>, KafkaError> librdkafka_configuration(
    const std::map<std::string, std::string>& settings) {
  auto conf = make_conf(settings);
  if (!conf) return tl::unexpected(conf.error());
  std::size_t count = 0;
  const char** dump = rd_kafka_conf_dump(*conf, &count);
  std::map<std::string, std::string> out;
  for (std::size_t i = 0; i + 1 < count; i += 2) out.emplace(dump[i], dump[i + 1]);
  rd_kafka_conf_dump_free(dump, count);
  rd_kafka_conf_destroy(*conf);
  return out;
}

namespace {

// The TCP ports of a bootstrap list "host:port,host:port".
std::set<int> bootstrap_ports(const std::string& bootstraps) {
  std::set<int> ports;
  std::size_t start = 0;
  while (start < bootstraps.size()) {
    auto end = bootstraps.find(',', start);
    if (end == std::string::npos) end = bootstraps.size();
    const auto colon = bootstraps.rfind(':', end - 1);
    if (colon != std::string::npos && colon > start)
      ports.insert(std::atoi(bootstraps.substr(colon + 1, end - colon - 1).c_str()));
    start = end + 1;
  }
  return ports;
}

// The mock cluster's brokers accept without TCP_NODELAY. A broker that answers two
// pipelined requests (an idempotent producer's batches for several partitions, a fetch
// while a produce is answered) then holds the second answer back until the client ACKs
// the first, and the client delays its ACK by up to 40 ms (Linux's delayed ACK): 42 ms
// per flush of a multi-partition produce, against 0.5 ms with it. Kafka's own brokers set
// TCP_NODELAY on every connection. librdkafka gives no hook into the mock's sockets, but
// Linux copies TCP_NODELAY from a listening socket to the sockets it accepts: this finds
// the process's listening sockets on the cluster's ports and sets it there, once.
// Returns how many it set.
int set_nodelay_on_listeners(const std::set<int>& ports) {
  int set = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    const int fd = std::atoi(entry.path().filename().c_str());
    int listening = 0;
    socklen_t length = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || !listening) continue;
    sockaddr_storage address{};
    socklen_t address_length = sizeof address;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_length) != 0) continue;
    int port = -1;
    if (address.ss_family == AF_INET)
      port = ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
    if (address.ss_family == AF_INET6)
      port = ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
    if (!ports.contains(port)) continue;
    const int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0) ++set;
  }
  return set;
}

}  // namespace

struct EmbeddedKafka::Impl {
  rd_kafka_t* host = nullptr;  // the handle that owns the mock cluster
  rd_kafka_mock_cluster_t* cluster = nullptr;
  ~Impl() {
    if (cluster) rd_kafka_mock_cluster_destroy(cluster);
    if (host) rd_kafka_destroy(host);
  }
};

namespace {

// What the mock cluster's calls return, as the error of `what`.
tl::expected<void, KafkaError> refused_unless_ok(rd_kafka_resp_err_t err, const std::string& what) {
  if (err)
    return tl::unexpected(
        KafkaError{KafkaErrc::cluster_refused, what + ": " + rd_kafka_err2str(err)});
  return {};
}

}  // namespace

tl::expected<std::unique_ptr<EmbeddedKafka>, KafkaError> EmbeddedKafka::start(int brokers) {
  if (brokers < 1 || brokers > 9)
    return tl::unexpected(
        KafkaError{KafkaErrc::invalid_setting, "embedded kafka needs 1..9 brokers"});
  auto conf = make_conf({{"client.id", "embedded-kafka-host"}, {"log.connection.close", "false"}});
  if (!conf) return tl::unexpected(conf.error());
  char error[512];
  std::unique_ptr<EmbeddedKafka> kafka(new EmbeddedKafka());
  kafka->impl_ = std::make_unique<Impl>();
  kafka->impl_->host = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, error, sizeof error);
  if (!kafka->impl_->host) {
    rd_kafka_conf_destroy(*conf);
    return tl::unexpected(
        KafkaError{KafkaErrc::client_failed, std::string("embedded kafka: ") + error});
  }
  kafka->impl_->cluster = rd_kafka_mock_cluster_new(kafka->impl_->host, brokers);
  if (!kafka->impl_->cluster)
    return tl::unexpected(
        KafkaError{KafkaErrc::cluster_refused, "embedded kafka: mock cluster did not start"});
  kafka->bootstraps_ = rd_kafka_mock_cluster_bootstraps(kafka->impl_->cluster);
  kafka->brokers_ = brokers;
  // A cluster without it would answer pipelined requests up to 40 ms late: every figure
  // measured against it would be wrong. Refused with the cause, like any other start failure.
  const auto ports = bootstrap_ports(kafka->bootstraps_);
  const int nodelay = set_nodelay_on_listeners(ports);
  if (nodelay != static_cast<int>(ports.size()))
    return tl::unexpected(KafkaError{
        KafkaErrc::cluster_refused,
        "embedded kafka: TCP_NODELAY set on " + std::to_string(nodelay) + " of the " +
            std::to_string(ports.size()) +
            " brokers' listening sockets (found through /proc/self/fd: is /proc mounted?)"});
  return kafka;
}

EmbeddedKafka::~EmbeddedKafka() = default;

tl::expected<void, KafkaError> EmbeddedKafka::create_topic(const std::string& name,
                                                           int partitions) {
  return refused_unless_ok(
      rd_kafka_mock_topic_create(impl_->cluster, name.c_str(), partitions, std::min(brokers_, 3)),
      "create topic " + name);
}

tl::expected<void, KafkaError> EmbeddedKafka::set_broker_down(int broker_id) {
  return refused_unless_ok(rd_kafka_mock_broker_set_down(impl_->cluster, broker_id), "broker down");
}

tl::expected<void, KafkaError> EmbeddedKafka::set_broker_up(int broker_id) {
  return refused_unless_ok(rd_kafka_mock_broker_set_up(impl_->cluster, broker_id), "broker up");
}

tl::expected<void, KafkaError> EmbeddedKafka::set_partition_leader(const std::string& topic,
                                                                   int partition, int broker_id) {
  return refused_unless_ok(
      rd_kafka_mock_partition_set_leader(impl_->cluster, topic.c_str(), partition, broker_id),
      "partition leader");
}

}  // namespace clearing::external_streams
