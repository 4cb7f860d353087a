// config: the shipped country files, every environment override, every promised error
// message, the business-day calendar and redaction. Pure: no server, no real environment.

#include "clearing/config/config.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "clearing/config/loader.hpp"

using namespace clearing::config;
using namespace std::chrono;
using Json = nlohmann::json;
using clearing::base::DatedMaintenanceWindow;
using clearing::base::WeeklyMaintenanceWindow;

namespace {

const std::string kDir = CLEARING_CONFIG_DIR;
constexpr const char* kFile = "config/dk.json";  // how errors name the file in these tests

std::string shipped_path(const std::string& cc) { return kDir + "/" + cc + ".json"; }

Json shipped_json(const std::string& cc) {
  std::ifstream in(shipped_path(cc));
  REQUIRE(in);
  return Json::parse(in);
}

// Tokens of the minimum lengths (kClearingTokenLengthMin, kApiTokenLengthMin) and more.
constexpr const char* kClearingTokenValue = "clearing-secret-1";
constexpr const char* kApiTokenValue = "api-secret-2-0123456789abcdef012345";
constexpr const char* kCoreTokenValue = "core-catchup-secret-3";
// base64 of 32 bytes: "data-kek-of-the-config-tests-32b".
constexpr const char* kDataKekValue = "ZGF0YS1rZWstb2YtdGhlLWNvbmZpZy10ZXN0cy0zMmI=";

MapEnvironment env_with_secrets() {
  return MapEnvironment({{kEnvClearingToken, kClearingTokenValue},
                         {kEnvApiToken, kApiTokenValue},
                         {kEnvCoreCatchupToken, kCoreTokenValue},
                         {kEnvDataKek, kDataKekValue}});
}

// The DK file, changed by `edit`, parsed under the name config/dk.json.
tl::expected<AdapterConfig, ConfigErrors> load_edited(const std::function<void(Json&)>& edit,
                                                      const Environment& env = env_with_secrets(),
                                                      LoadOptions options = {}) {
  Json document = shipped_json("dk");
  edit(document);
  return parse_config(document.dump(2), kFile, env, options);
}

// The one error about `key`; fails the test when loading succeeded or nothing names it.
ConfigError error_for(const tl::expected<AdapterConfig, ConfigErrors>& result,
                      const std::string& key) {
  REQUIRE_FALSE(result.has_value());
  const ConfigError* error = result.error().find(key);
  INFO("errors:\n" << result.error().to_string());
  REQUIRE(error != nullptr);
  CHECK(error->file == kFile);
  return *error;
}

// The message of the error about `key` from loading a shipped file.
std::string error_for_file(const tl::expected<AdapterConfig, ConfigErrors>& result,
                           const std::string& key) {
  REQUIRE_FALSE(result.has_value());
  const ConfigError* error = result.error().find(key);
  INFO("errors:\n" << result.error().to_string());
  REQUIRE(error != nullptr);
  return error->message;
}

// The place of a dotted key ("streams.outbound[1].name") in the JSON document.
Json::json_pointer pointer_to(const std::string& key) {
  std::string path = "/";
  for (const char c : key) {
    if (c == '.' || c == '[') {
      path += '/';
    } else if (c != ']') {
      path += c;
    }
  }
  return Json::json_pointer(path);
}

// The messages of a load that refused both tokens and nothing else (but the credential toward
// the core, when that is missing too): {clearing.token's, http.api_token's}.
std::pair<std::string, std::string> token_errors(
    const tl::expected<AdapterConfig, ConfigErrors>& result) {
  REQUIRE_FALSE(result.has_value());
  const bool core_too = result.error().find("streams.core_catchup_token") != nullptr;
  const bool kek_too = result.error().find("privacy.data_kek") != nullptr;
  CHECK(result.error().errors.size() == 2 + (core_too ? 1 : 0) + (kek_too ? 1 : 0));
  const auto* clearing = result.error().find("clearing.token");
  const auto* api = result.error().find("http.api_token");
  REQUIRE(clearing != nullptr);
  REQUIRE(api != nullptr);
  return {clearing->message, api->message};
}

// A boolean key: its value in the shipped DK file (also in the summary as key=value), and the
// other value read when the file sets it.
void check_boolean_key(const std::string& key, bool shipped_value,
                       const std::function<bool(const AdapterConfig&)>& read) {
  CAPTURE(key);
  const auto shipped = load_edited([](Json&) {});
  REQUIRE(shipped.has_value());
  CHECK(read(*shipped) == shipped_value);
  CHECK(redacted_summary(*shipped).find(key + (shipped_value ? "=true" : "=false")) !=
        std::string::npos);
  const auto flipped = load_edited([&](Json& j) { j[pointer_to(key)] = !shipped_value; });
  REQUIRE(flipped.has_value());
  CHECK(read(*flipped) == !shipped_value);
}

// A value written at `key` of the DK file, and the message of the error it must give there.
struct Refusal {
  std::string key;
  Json value;
  std::string message;
};

// Each refusal loaded on its own, checked with error_for (in the file, naming the key).
void check_refusals(const std::vector<Refusal>& refusals) {
  for (const auto& refusal : refusals) {
    CAPTURE(refusal.key);
    CAPTURE(refusal.value.dump());
    const auto loaded = load_edited([&](Json& j) { j[pointer_to(refusal.key)] = refusal.value; });
    CHECK(error_for(loaded, refusal.key).message == refusal.message);
  }
}

// A function of one text and what it must give for each input.
template <typename Result>
void check_each(Result (*function)(std::string_view),
                const std::vector<std::pair<std::string, Result>>& expected) {
  for (const auto& [input, result] : expected) {
    CAPTURE(input);
    CHECK(function(input) == result);
  }
}

constexpr year_month_day ymd(int y, unsigned m, unsigned d) {
  return year_month_day{year{y}, month{m}, day{d}};
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The shipped files.

TEST_CASE("the three shipped country files load") {
  const auto env = env_with_secrets();
  struct Expected {
    std::string cc;
    Country country;
    std::string currency;
  };
  for (const auto& expected :
       {Expected{"dk", Country::dk, "DKK"}, Expected{"se", Country::se, "SEK"},
        Expected{"no", Country::no, "NOK"}}) {
    CAPTURE(expected.cc);
    const auto loaded = load_config(shipped_path(expected.cc), env);
    INFO((loaded ? std::string() : loaded.error().to_string()));
    REQUIRE(loaded.has_value());
    const AdapterConfig& config = *loaded;
    CHECK(config.source_file == shipped_path(expected.cc));
    CHECK(config.country.code == expected.country);
    CHECK(config.country.currency == expected.currency);
    CHECK(config.country.amount_limit_minor > 0);
    CHECK(config.country.cutoff_utc == hours{13} + minutes{30});
    CHECK(config.country.business_days.weekend == std::vector<weekday>{Saturday, Sunday});
    CHECK(config.clearing.base_url == "http://127.0.0.1:8081");
    CHECK(config.clearing.token.reveal() == kClearingTokenValue);
    CHECK(config.http.api_token.reveal() == kApiTokenValue);
    CHECK(config.streams.inbound.name == "core." + expected.cc + ".payments.v1");
    CHECK(config.streams.inbound.partitions == 4);
    REQUIRE(config.streams.outbound.size() == 4);
    CHECK(config.streams.outbound[0].name == "adapter." + expected.cc + ".payments.v1");
    CHECK(config.streams.outbound[0].partitions == 4);
    CHECK(config.streams.outbound[0].derivation == Derivation::payments_v1);
    CHECK(config.streams.outbound[1].name == "adapter." + expected.cc + ".settlements.v1");
    CHECK(config.streams.outbound[1].partitions == 2);
    CHECK(config.streams.outbound[1].derivation == Derivation::settlements_v1);
    CHECK(config.streams.outbound[2].name == "adapter." + expected.cc + ".payments.v2");
    CHECK(config.streams.outbound[2].partitions == 4);
    CHECK(config.streams.outbound[2].derivation == Derivation::payments_v2);
    CHECK(config.streams.outbound[3].name == "adapter." + expected.cc + ".positions.v1");
    CHECK(config.streams.outbound[3].partitions == 1);
    CHECK(config.streams.outbound[3].derivation == Derivation::positions_v1);
    CHECK(config.streams.deprecated.empty());
    CHECK(config.kafka.embedded());
    CHECK(config.database.url == "postgresql://postgres@127.0.0.1:5432/clearing_" + expected.cc);
    CHECK(config.dispatcher.lease_ms > config.clearing.request_timeout_ms);
    CHECK(config.log_level == LogLevel::info);
    // The calendar covers 2026 and 2027 (New Year and Christmas of both years at least).
    for (const auto date :
         {ymd(2026, 1, 1), ymd(2026, 12, 25), ymd(2027, 1, 1), ymd(2027, 12, 25)}) {
      CHECK_FALSE(config.country.is_business_day(date));
    }
    CHECK(validate(config).empty());
  }
}

TEST_CASE("the shipped files have each country's public holidays") {
  const auto env = env_with_secrets();
  const auto dk = load_config(shipped_path("dk"), env);
  const auto se = load_config(shipped_path("se"), env);
  const auto no = load_config(shipped_path("no"), env);
  REQUIRE(dk.has_value());
  REQUIRE(se.has_value());
  REQUIRE(no.has_value());
  const auto is_holiday = [](const AdapterConfig& c, year_month_day d) {
    const auto& list = c.country.business_days.holidays;
    return std::find(list.begin(), list.end(), d) != list.end();
  };
  // Easter 2026 is 5 April, Easter 2027 28 March.
  CHECK(is_holiday(*dk, ymd(2026, 4, 2)));  // Maundy Thursday (DK, NO only)
  CHECK(is_holiday(*no, ymd(2027, 3, 25)));
  CHECK_FALSE(is_holiday(*se, ymd(2026, 4, 2)));
  CHECK(is_holiday(*se, ymd(2026, 4, 3)));   // Good Friday everywhere
  CHECK(is_holiday(*dk, ymd(2027, 3, 29)));  // Easter Monday
  CHECK(is_holiday(*dk, ymd(2026, 5, 14)));  // Ascension Day
  CHECK(is_holiday(*se, ymd(2027, 5, 6)));
  CHECK(is_holiday(*no, ymd(2026, 5, 25)));  // Whit Monday (not in Sweden since 2005)
  CHECK_FALSE(is_holiday(*se, ymd(2026, 5, 25)));
  CHECK_FALSE(is_holiday(*dk, ymd(2026, 5, 1)));  // Great Prayer Day and 1 May: not in DK
  CHECK(is_holiday(*se, ymd(2026, 6, 6)));        // Sweden's National Day
  CHECK(is_holiday(*se, ymd(2026, 6, 20)));       // Midsummer Day
  CHECK(is_holiday(*se, ymd(2027, 11, 6)));       // All Saints' Day
  CHECK(is_holiday(*se, ymd(2026, 1, 6)));        // Epiphany
  CHECK(is_holiday(*no, ymd(2026, 5, 17)));       // Constitution Day
  CHECK(is_holiday(*no, ymd(2027, 5, 17)));       // (also Whit Monday in 2027)
  // Bank closing days that are not public holidays.
  CHECK_FALSE(dk->country.is_business_day(ymd(2026, 5, 15)));  // Friday after Ascension
  CHECK_FALSE(dk->country.is_business_day(ymd(2026, 6, 5)));   // Constitution Day
  CHECK_FALSE(se->country.is_business_day(ymd(2026, 6, 19)));  // Midsummer Eve
  CHECK_FALSE(no->country.is_business_day(ymd(2026, 12, 24)));
  CHECK_FALSE(no->country.is_business_day(ymd(2027, 12, 31)));
  CHECK(no->country.is_business_day(ymd(2026, 6, 5)));
}

TEST_CASE("a file that cannot be opened names the file") {
  const auto loaded = load_config(kDir + "/does-not-exist.json", env_with_secrets());
  REQUIRE_FALSE(loaded.has_value());
  CHECK(loaded.error().to_string().starts_with(kDir + "/does-not-exist.json: cannot open"));
}

// ---------------------------------------------------------------------------------------
// Environment.

TEST_CASE("every environment override replaces the file's value") {
  MapEnvironment env({
      {"CLEARING_ADAPTER_DATABASE_URL", "postgresql://adapter:pw@db.internal:5433/clearing"},
      {"CLEARING_ADAPTER_KAFKA_BROKERS", "kafka-1:9092,kafka-2:9092"},
      {"CLEARING_ADAPTER_CLEARING_URL", "https://clearing.example.dk/api"},
      {"CLEARING_ADAPTER_CLEARING_TOKEN", "clearing-t0ken-16"},
      {"CLEARING_ADAPTER_CORE_CATCHUP_URL", "http://core.internal:9000"},
      {"CLEARING_ADAPTER_HTTP_ADDRESS", "0.0.0.0:9090"},
      {"CLEARING_ADAPTER_API_TOKEN", "api-t0ken-0123456789abcdef0123456"},
      {"CLEARING_ADAPTER_CORE_CATCHUP_TOKEN", "core-t0ken-0123456"},
      {"CLEARING_ADAPTER_DATA_KEK", kDataKekValue},
  });
  const auto loaded = load_config(shipped_path("dk"), env);
  INFO((loaded ? std::string() : loaded.error().to_string()));
  REQUIRE(loaded.has_value());
  CHECK(loaded->database.url == "postgresql://adapter:pw@db.internal:5433/clearing");
  CHECK(loaded->kafka.brokers == "kafka-1:9092,kafka-2:9092");
  CHECK_FALSE(loaded->kafka.embedded());
  CHECK(loaded->clearing.base_url == "https://clearing.example.dk/api");
  CHECK(loaded->clearing.token.reveal() == "clearing-t0ken-16");
  CHECK(loaded->streams.core_catchup_url == "http://core.internal:9000");
  CHECK(loaded->http.address == "0.0.0.0:9090");
  CHECK(loaded->http.api_token.reveal() == "api-t0ken-0123456789abcdef0123456");
}

TEST_CASE("CLEARING_ADAPTER_KAFKA_BROKERS=embedded selects the mock cluster") {
  auto env = env_with_secrets();
  env.set(kEnvKafkaBrokers, "embedded");
  const auto loaded = load_edited([](Json& j) { j["kafka"]["brokers"] = "kafka:9092"; }, env);
  REQUIRE(loaded.has_value());
  CHECK(loaded->kafka.embedded());
}

TEST_CASE("an empty environment variable counts as unset") {
  auto env = env_with_secrets();
  env.set(kEnvDatabaseUrl, "");
  const auto loaded = load_config(shipped_path("dk"), env);
  REQUIRE(loaded.has_value());
  CHECK(loaded->database.url == "postgresql://postgres@127.0.0.1:5432/clearing_dk");
}

TEST_CASE("values the environment can give may be left out of the file") {
  auto env = env_with_secrets();
  env.set(kEnvDatabaseUrl, "postgresql://db/clearing");
  env.set(kEnvHttpAddress, "127.0.0.1:1234");
  const auto edit = [](Json& j) {
    j["database"].erase("url");
    j["http"].erase("address");
  };
  const auto loaded = load_edited(edit, env);
  REQUIRE(loaded.has_value());
  CHECK(loaded->database.url == "postgresql://db/clearing");
  // Without the environment the same file is missing two required keys.
  const auto failed = load_edited(edit);
  CHECK(error_for(failed, "database.url").message ==
        "missing required key (set it in the file or in CLEARING_ADAPTER_DATABASE_URL)");
  CHECK(error_for(failed, "http.address").message ==
        "missing required key (set it in the file or in CLEARING_ADAPTER_HTTP_ADDRESS)");
}

TEST_CASE("a bad value from the environment names the variable") {
  auto env = env_with_secrets();
  env.set(kEnvHttpAddress, "localhost");
  env.set(kEnvKafkaBrokers, "kafka-1:9092,,kafka-2");
  const auto loaded = load_config(shipped_path("dk"), env);
  REQUIRE_FALSE(loaded.has_value());
  const auto* address = loaded.error().find("http.address");
  REQUIRE(address != nullptr);
  CHECK(address->message ==
        "from CLEARING_ADAPTER_HTTP_ADDRESS: must be host:port (port 1..65535; [v6]:port for "
        "IPv6), got \"localhost\"");
  const auto* brokers = loaded.error().find("kafka.brokers");
  REQUIRE(brokers != nullptr);
  CHECK(brokers->message.starts_with("from CLEARING_ADAPTER_KAFKA_BROKERS: must be \"embedded\""));
}

TEST_CASE("required secrets: both tokens must come from the environment") {
  const MapEnvironment empty;
  const auto [clearing, api] = token_errors(load_config(shipped_path("dk"), empty));
  CHECK(clearing.starts_with(
      "not set: set CLEARING_ADAPTER_CLEARING_TOKEN (or CLEARING_ADAPTER_CLEARING_TOKEN_FILE, a "
      "file holding it) in the environment"));
  CHECK(clearing.find("allow_missing_secrets") != std::string::npos);
  CHECK(api.starts_with(
      "not set: set CLEARING_ADAPTER_API_TOKEN (or CLEARING_ADAPTER_API_TOKEN_FILE"));

  SUBCASE("allow_missing_secrets lets the embedded demo start without them") {
    const auto demo =
        load_config(shipped_path("dk"), empty, LoadOptions{.allow_missing_secrets = true});
    REQUIRE(demo.has_value());
    CHECK_FALSE(demo->clearing.token.is_set());
    CHECK_FALSE(demo->http.api_token.is_set());
  }
}

TEST_CASE("a token in the file is an error, even with allow_missing_secrets") {
  const auto loaded = load_edited(
      [](Json& j) {
        j["clearing"]["token"] = "s3cret-in-file";
        j["http"]["api_token"] = "another";
      },
      MapEnvironment{}, LoadOptions{.allow_missing_secrets = true});
  CHECK(error_for(loaded, "clearing.token").to_string() ==
        "config/dk.json: clearing.token: secrets are never read from the file: remove this key "
        "and set CLEARING_ADAPTER_CLEARING_TOKEN in the environment");
  CHECK(error_for(loaded, "http.api_token").message.find("CLEARING_ADAPTER_API_TOKEN") !=
        std::string::npos);
  // The secret's value never appears in a message.
  CHECK(loaded.error().to_string().find("s3cret-in-file") == std::string::npos);
}

TEST_CASE("a token too short, too long or not printable ASCII is refused without showing it") {
  const auto load_with = [](const std::string& clearing_token, const std::string& api_token,
                            LoadOptions options = {}) {
    return load_config(shipped_path("dk"),
                       MapEnvironment({{kEnvClearingToken, clearing_token},
                                       {kEnvApiToken, api_token},
                                       {kEnvCoreCatchupToken, kCoreTokenValue},
                                       {kEnvDataKek, kDataKekValue}}),
                       options);
  };
  const std::string clearing_min(kClearingTokenLengthMin, 'c');
  const std::string api_min(kApiTokenLengthMin, 'a');
  CHECK(load_with(clearing_min, api_min).has_value());

  const auto short_tokens = load_with("x", api_min.substr(1));
  const auto [clearing, api] = token_errors(short_tokens);
  CHECK(clearing ==
        "must be 16 to 4096 characters long (from CLEARING_ADAPTER_CLEARING_TOKEN or "
        "CLEARING_ADAPTER_CLEARING_TOKEN_FILE; the value is not shown): set the whole token the "
        "clearing issued");
  CHECK(api ==
        "must be 32 to 4096 characters long (from CLEARING_ADAPTER_API_TOKEN or "
        "CLEARING_ADAPTER_API_TOKEN_FILE; the value is not shown): generate one, e.g. openssl "
        "rand -hex 16");
  CHECK(short_tokens.error().to_string().find(api_min.substr(1)) == std::string::npos);
  CHECK(load_with(clearing_min.substr(1), api_min).error().find("clearing.token") != nullptr);

  // A set token is checked even where a missing one is allowed (the embedded demo).
  CHECK_FALSE(load_with("x", api_min, LoadOptions{.allow_missing_secrets = true}).has_value());

  const auto too_long = load_with(std::string(kTokenLengthMax + 1, 'c'), api_min);
  CHECK(error_for_file(too_long, "clearing.token").starts_with("must be 16 to 4096"));
  const auto not_ascii = load_with(clearing_min, api_min + "\xc3\xa6");
  CHECK(error_for_file(not_ascii, "http.api_token") ==
        "must not contain white space, control characters or non-ASCII bytes (from "
        "CLEARING_ADAPTER_API_TOKEN or CLEARING_ADAPTER_API_TOKEN_FILE; the value is not shown)");
}

// A file in a fresh temporary folder, with `content` and `mode`; removed with the folder.
struct SecretFile {
  std::filesystem::path dir;
  std::filesystem::path path;
  SecretFile(const std::string& content, std::filesystem::perms mode) {
    std::string templ = (std::filesystem::temp_directory_path() / "secret-XXXXXX").string();
    REQUIRE(::mkdtemp(templ.data()) != nullptr);
    dir = templ;
    path = dir / "secret";
    std::ofstream(path, std::ios::binary) << content;
    std::filesystem::permissions(path, mode);
  }
  ~SecretFile() { std::filesystem::remove_all(dir); }
};

constexpr auto kOwnerRead = std::filesystem::perms::owner_read;
constexpr auto kGroupRead = std::filesystem::perms::group_read;
constexpr auto kOthersRead = std::filesystem::perms::others_read;

TEST_CASE("secrets from files: each secret variable has a _FILE form") {
  const std::string clearing_token(kClearingTokenLengthMin, 'c');
  const std::string api_token(kApiTokenLengthMin, 'a');
  // A trailing line break (echo token > file) is not part of the secret; group-readable is fine.
  const SecretFile clearing(clearing_token + "\n", kOwnerRead | kGroupRead);
  const SecretFile api(api_token, kOwnerRead);
  const SecretFile database("postgresql://clearing:pw@db:5432/clearing_dk\r\n", kOwnerRead);
  const auto loaded =
      load_config(shipped_path("dk"),
                  MapEnvironment({{std::string(kEnvClearingToken) + "_FILE", clearing.path},
                                  {std::string(kEnvApiToken) + "_FILE", api.path},
                                  {std::string(kEnvCoreCatchupToken), kCoreTokenValue},
                                  {std::string(kEnvDataKek), kDataKekValue},
                                  {std::string(kEnvDatabaseUrl) + "_FILE", database.path}}));
  REQUIRE_MESSAGE(loaded.has_value(), (loaded ? "" : loaded.error().to_string()));
  CHECK(loaded->clearing.token.reveal() == clearing_token);
  CHECK(loaded->http.api_token.reveal() == api_token);
  CHECK(loaded->database.url == "postgresql://clearing:pw@db:5432/clearing_dk");
  // The summary shows neither the tokens nor the password.
  const auto summary = redacted_summary(*loaded);
  CHECK(summary.find(clearing_token) == std::string::npos);
  CHECK(summary.find(api_token) == std::string::npos);
  CHECK(summary.find(":pw@") == std::string::npos);
}

TEST_CASE("secrets from files: both ways, others' access, a missing, empty or huge file") {
  const std::string api_token(kApiTokenLengthMin, 'a');
  const auto api_error = [&](MapEnvironment env) {
    env.set(kEnvClearingToken, std::string(kClearingTokenLengthMin, 'c'));
    const auto loaded = load_config(shipped_path("dk"), env);
    REQUIRE_FALSE(loaded.has_value());
    const auto* error = loaded.error().find("http.api_token");
    REQUIRE(error != nullptr);
    CHECK(loaded.error().to_string().find(api_token) == std::string::npos);
    return error->message;
  };
  const std::string file_variable = std::string(kEnvApiToken) + "_FILE";
  const auto file_env = [&](const std::string& path) {
    return MapEnvironment(std::map<std::string, std::string>{{file_variable, path}});
  };
  const SecretFile good(api_token, kOwnerRead);
  CHECK(api_error(MapEnvironment({{kEnvApiToken, api_token}, {file_variable, good.path}})) ==
        "set either CLEARING_ADAPTER_API_TOKEN or CLEARING_ADAPTER_API_TOKEN_FILE, not both");
  const SecretFile readable(api_token, kOwnerRead | kOthersRead);
  CHECK(api_error(file_env(readable.path)) ==
        "from CLEARING_ADAPTER_API_TOKEN_FILE: \"" + readable.path.string() +
            "\" is readable or writable by others (mode 0404): chmod o-rwx it (Kubernetes: "
            "defaultMode 0440 or 0400; compose: the secret's mode)");
  const SecretFile empty("\n", kOwnerRead);
  CHECK(api_error(file_env(empty.path)) ==
        "from CLEARING_ADAPTER_API_TOKEN_FILE: \"" + empty.path.string() + "\" is empty");
  CHECK(api_error(file_env(good.dir.string() + "/none")) ==
        "from CLEARING_ADAPTER_API_TOKEN_FILE: cannot read \"" + good.dir.string() +
            "/none\": No such file or directory");
  CHECK(api_error(file_env(good.dir.string())) == "from CLEARING_ADAPTER_API_TOKEN_FILE: \"" +
                                                      good.dir.string() +
                                                      "\" is not a regular file");
  const SecretFile huge(std::string(kSecretFileBytesMax + 1, 'a'), kOwnerRead);
  CHECK(api_error(file_env(huge.path)) == "from CLEARING_ADAPTER_API_TOKEN_FILE: \"" +
                                              huge.path.string() +
                                              "\" is larger than 65536 bytes: not a secret");
  // What the file holds is checked like the variable's value, without showing it.
  const SecretFile short_token("short", kOwnerRead);
  CHECK(api_error(file_env(short_token.path))
            .starts_with("must be 32 to 4096 characters long (from CLEARING_ADAPTER_API_TOKEN or "
                         "CLEARING_ADAPTER_API_TOKEN_FILE; the value is not shown)"));
}

TEST_CASE("the adapter's credential toward the core: required, its own, never in the file") {
  const std::string api_token(kApiTokenLengthMin, 'a');
  const auto load_with = [&](std::map<std::string, std::string> more, LoadOptions options = {}) {
    more.emplace(kEnvClearingToken, kClearingTokenValue);
    more.emplace(kEnvApiToken, api_token);
    more.emplace(kEnvDataKek, kDataKekValue);
    return load_config(shipped_path("dk"), MapEnvironment(std::move(more)), options);
  };
  const auto loaded = load_with({{kEnvCoreCatchupToken, kCoreTokenValue}});
  REQUIRE(loaded.has_value());
  CHECK(loaded->streams.core_catchup_token.reveal() == kCoreTokenValue);
  CHECK(redacted_summary(*loaded).find("streams.core_catchup_token=set") != std::string::npos);
  CHECK(redacted_summary(*loaded).find(kCoreTokenValue) == std::string::npos);

  CHECK(error_for_file(load_with({}), "streams.core_catchup_token")
            .starts_with("not set: set CLEARING_ADAPTER_CORE_CATCHUP_TOKEN (or "
                         "CLEARING_ADAPTER_CORE_CATCHUP_TOKEN_FILE"));
  // The embedded demo may run without it, as without the other secrets.
  CHECK(load_with({}, LoadOptions{.allow_missing_secrets = true}).has_value());
  // The adapter's API token sent to the core would open the adapter to the core's side.
  const auto same = load_with({{kEnvCoreCatchupToken, api_token}});
  CHECK(error_for_file(same, "streams.core_catchup_token") ==
        "must differ from CLEARING_ADAPTER_API_TOKEN: the core's side would hold a token that "
        "opens the adapter's API (/transfers, /parked); give the adapter its own credential for "
        "the core");
  CHECK(same.error().to_string().find(api_token) == std::string::npos);
  CHECK(error_for_file(load_with({{kEnvCoreCatchupToken, "short"}}), "streams.core_catchup_token")
            .starts_with("must be 16 to 4096 characters long"));
  // From a file, like every secret.
  const SecretFile file(std::string(kCoreTokenValue) + "\n", kOwnerRead);
  const auto from_file = load_with({{std::string(kEnvCoreCatchupToken) + "_FILE", file.path}});
  REQUIRE(from_file.has_value());
  CHECK(from_file->streams.core_catchup_token.reveal() == kCoreTokenValue);
  // Never in the file.
  const auto in_file =
      load_edited([](Json& j) { j["streams"]["core_catchup_token"] = "core-token-in-the-file"; });
  CHECK(error_for(in_file, "streams.core_catchup_token").message ==
        "secrets are never read from the file: remove this key and set "
        "CLEARING_ADAPTER_CORE_CATCHUP_TOKEN in the environment");
}

TEST_CASE("Environment::process reads the real environment") {
  ::setenv("CLEARING_ADAPTER_CONFIG_TEST_PROBE", "probe-value", 1);
  CHECK(Environment::process().get("CLEARING_ADAPTER_CONFIG_TEST_PROBE") == "probe-value");
  ::unsetenv("CLEARING_ADAPTER_CONFIG_TEST_PROBE");
  CHECK_FALSE(Environment::process().get("CLEARING_ADAPTER_CONFIG_TEST_PROBE").has_value());
}

// ---------------------------------------------------------------------------------------
// The promised messages.

TEST_CASE("an out-of-range value gives the allowed range") {
  const auto loaded = load_edited([](Json& j) { j["clearing"]["request_timeout_ms"] = 0; });
  REQUIRE_FALSE(loaded.has_value());
  CHECK(loaded.error().to_string() ==
        "config/dk.json: clearing.request_timeout_ms: must be in [1, 600000], got 0");
}

TEST_CASE("more out-of-range values") {
  check_refusals({
      {"streams.inbound.partitions", 257, "must be in [1, 256], got 257"},
      {"country.amount_limit_minor", 0, "must be in [1, 1000000000000000], got 0"},
      {"retry.backoff_max_ms", 500,
       "must be in [1000, 604800000] (at least retry.backoff_initial_ms), got 500"},
      {"retry.backoff_multiplier", 0, "must be in [1, 16], got 0"},
      {"retry.unknown_outcomes_before_inquiry", 0, "must be in [1, 1000], got 0"},
      {"clearing.connect_timeout_ms", 6000,
       "must be in [1, 5000] (at most clearing.request_timeout_ms), got 6000"},
      {"kafka.session_timeout_ms", 1000, "must be in [6000, 1800000], got 1000"},
      {"kafka.fetch_wait_max_ms", 0, "must be in [1, 5000], got 0"},
      {"kafka.relay_round_interval_min_ms", 1001, "must be in [0, 1000], got 1001"},
      {"kafka.relay_round_interval_min_ms", -1, "must be in [0, 1000], got -1"},
      {"incoming.page_limit", 5000, "must be in [1, 1000], got 5000"},
      {"clearing.in_flight_max", 5'000'000'000LL, "must be a 32-bit integer, got 5000000000"},
  });
  CHECK(load_edited([](Json& j) {
          j["kafka"]["fetch_wait_max_ms"] = 5;
        })->kafka.fetch_wait_max_ms == 5);
  CHECK(load_edited([](Json&) {})->kafka.relay_round_interval_min_ms ==
        50);  // kRelayRoundIntervalMsDefault  // optional: the default
  CHECK(load_edited([](Json& j) {
          j["kafka"]["relay_round_interval_min_ms"] = 0;
        })->kafka.relay_round_interval_min_ms == 0);
}

TEST_CASE("the API's connection limits and idle deadline: defaults, ranges, the per-client cap") {
  const auto shipped = load_edited([](Json&) {});
  REQUIRE(shipped.has_value());
  CHECK(shipped->http.connections_max == 256);
  CHECK(shipped->http.connections_per_client_max == 64);
  CHECK(shipped->http.idle_timeout_ms == 5000);
  CHECK(redacted_summary(*shipped).find("http.connections_max=256 "
                                        "http.connections_per_client_max=64 "
                                        "http.idle_timeout_ms=5000") != std::string::npos);

  const auto set = load_edited([](Json& j) {
    j["http"]["connections_max"] = 1000;
    j["http"]["connections_per_client_max"] = 1000;
    j["http"]["idle_timeout_ms"] = 100;
  });
  REQUIRE(set.has_value());
  CHECK(set->http.connections_max == 1000);
  CHECK(set->http.connections_per_client_max == 1000);
  CHECK(set->http.idle_timeout_ms == 100);

  // Left out, the per-client cap follows a lowered total.
  const auto lowered = load_edited([](Json& j) { j["http"]["connections_max"] = 32; });
  REQUIRE(lowered.has_value());
  CHECK(lowered->http.connections_per_client_max == 32);

  const auto zero = load_edited([](Json& j) { j["http"]["connections_max"] = 0; });
  CHECK(error_for(zero, "http.connections_max").message == "must be in [1, 10000], got 0");
  CHECK(zero.error().errors.size() == 1);
  check_refusals({
      {"http.connections_max", 10001, "must be in [1, 10000], got 10001"},
      {"http.connections_per_client_max", 257,
       "must be in [1, 256] (at most http.connections_max), got 257"},
      {"http.connections_per_client_max", 0,
       "must be in [1, 256] (at most http.connections_max), got 0"},
      {"http.idle_timeout_ms", 99, "must be in [100, 120000], got 99"},
      {"http.idle_timeout_ms", 120001, "must be in [100, 120000], got 120001"},
      {"http.idle_timeout_ms", "5s", "must be an integer, got string \"5s\""},
  });
}

TEST_CASE("kafka.partition_assignment: database by default, group on request, nothing else") {
  const auto shipped = load_edited([](Json&) {});
  REQUIRE(shipped.has_value());
  CHECK(shipped->kafka.partition_assignment == PartitionAssignment::database);
  CHECK(redacted_summary(*shipped).find("kafka.partition_assignment=database") !=
        std::string::npos);
  const auto database =
      load_edited([](Json& j) { j["kafka"]["partition_assignment"] = "database"; });
  REQUIRE(database.has_value());
  CHECK(database->kafka.partition_assignment == PartitionAssignment::database);
  const auto group = load_edited([](Json& j) { j["kafka"]["partition_assignment"] = "group"; });
  REQUIRE(group.has_value());
  CHECK(group->kafka.partition_assignment == PartitionAssignment::group);
  CHECK(error_for(load_edited([](Json& j) { j["kafka"]["partition_assignment"] = "sticky"; }),
                  "kafka.partition_assignment")
            .message == "must be \"database\" or \"group\", got \"sticky\"");
}

TEST_CASE("clearing.concurrency_mode: adaptive by default, fixed on request, bounds checked") {
  const auto shipped = load_edited([](Json&) {});
  REQUIRE(shipped.has_value());
  CHECK(shipped->clearing.concurrency_mode == ConcurrencyMode::adaptive);
  CHECK(shipped->clearing.in_flight_max == 512);
  CHECK(shipped->clearing.concurrency_initial == 16);
  CHECK(shipped->clearing.concurrency_min == 4);
  const auto summary = redacted_summary(*shipped);
  CHECK(summary.find("clearing.concurrency_mode=adaptive") != std::string::npos);
  CHECK(summary.find("clearing.concurrency_initial=16") != std::string::npos);
  // Left out of the file: adaptive, with the defaults.
  const auto defaulted = load_edited([](Json& j) {
    j["clearing"].erase("concurrency_mode");
    j["clearing"].erase("concurrency_initial");
    j["clearing"].erase("concurrency_min");
  });
  REQUIRE(defaulted.has_value());
  CHECK(defaulted->clearing.concurrency_mode == ConcurrencyMode::adaptive);
  CHECK(defaulted->clearing.concurrency_initial == 16);
  CHECK(defaulted->clearing.concurrency_min == 4);
  const auto fixed = load_edited([](Json& j) { j["clearing"]["concurrency_mode"] = "fixed"; });
  REQUIRE(fixed.has_value());
  CHECK(fixed->clearing.concurrency_mode == ConcurrencyMode::fixed);
  CHECK(redacted_summary(*fixed).find("clearing.concurrency_initial") == std::string::npos);
  CHECK(error_for(load_edited([](Json& j) { j["clearing"]["concurrency_mode"] = "vegas"; }),
                  "clearing.concurrency_mode")
            .message == "must be \"adaptive\" or \"fixed\", got \"vegas\"");
  // The limit's bounds must lie within in_flight_max, when adaptive only.
  const auto initial_above = load_edited([](Json& j) {
    j["clearing"]["in_flight_max"] = 8;
    j["clearing"]["concurrency_initial"] = 16;
  });
  CHECK(error_for(initial_above, "clearing.concurrency_initial").message ==
        "must be in [4, 8] (within [clearing.concurrency_min, clearing.in_flight_max]), got 16");
  CHECK(error_for(load_edited([](Json& j) { j["clearing"]["concurrency_min"] = 0; }),
                  "clearing.concurrency_min")
            .message == "must be in [1, 512] (at most clearing.in_flight_max), got 0");
  // A fixed cap of 8 with the adaptive keys still in the file is fine: they do not apply.
  CHECK(load_edited([](Json& j) {
          j["clearing"]["concurrency_mode"] = "fixed";
          j["clearing"]["in_flight_max"] = 8;
        }).has_value());
}

TEST_CASE(
    "clearing.reuse_connections: off by default (the contract's answers carry no reference), may "
    "be turned on") {
  check_boolean_key("clearing.reuse_connections", false,
                    [](const AdapterConfig& c) { return c.clearing.reuse_connections; });
}

TEST_CASE("dispatcher.lease_by_session: on by default, may be turned off, must be a boolean") {
  check_boolean_key("dispatcher.lease_by_session", true,
                    [](const AdapterConfig& c) { return c.dispatcher.lease_by_session; });
  CHECK_FALSE(
      load_edited([](Json& j) { j["dispatcher"]["lease_by_session"] = "yes"; }).has_value());
}

TEST_CASE("streams.tail_check_interval_ms: 2000 by default, 0 turns it off, at most 600000") {
  const auto shipped = load_edited([](Json&) {});
  REQUIRE(shipped.has_value());
  CHECK(shipped->streams.tail_check_interval_ms == 2000);
  const auto off = load_edited([](Json& j) { j["streams"]["tail_check_interval_ms"] = 0; });
  REQUIRE(off.has_value());
  CHECK(off->streams.tail_check_interval_ms == 0);
  check_refusals({
      {"streams.tail_check_interval_ms", -1, "must be in [0, 600000], got -1"},
      {"streams.tail_check_interval_ms", 600001, "must be in [0, 600000], got 600001"},
  });
}

TEST_CASE("the dispatcher lease must exceed the clearing request timeout") {
  const auto loaded = load_edited([](Json& j) {
    j["clearing"]["request_timeout_ms"] = 30000;
    j["dispatcher"]["lease_ms"] = 30000;
  });
  CHECK(error_for(loaded, "dispatcher.lease_ms").to_string() ==
        "config/dk.json: dispatcher.lease_ms: must exceed clearing.request_timeout_ms (30000), "
        "so that a lease outlives the clearing call it covers, got 30000");
}

TEST_CASE("an unknown key is named with its path, at any level") {
  const auto loaded = load_edited([](Json& j) {
    j["clearing"]["request_timeout"] = 5000;  // typo of request_timeout_ms
    j["colour"] = "blue";
    j["streams"]["outbound"][1]["compacted"] = true;
    j["country"]["business_days"]["half_days"] = Json::array();
  });
  const auto typo = error_for(loaded, "clearing.request_timeout");
  CHECK(typo.to_string().starts_with(
      "config/dk.json: clearing.request_timeout: unknown key (allowed here: base_url, token, "
      "request_timeout_ms,"));
  CHECK(error_for(loaded, "colour").message.starts_with("unknown key (allowed here: country, "));
  CHECK(error_for(loaded, "streams.outbound[1].compacted").message ==
        "unknown key (allowed here: name, partitions, derivation, backfill_from)");
  CHECK(error_for(loaded, "country.business_days.half_days").message ==
        "unknown key (allowed here: weekend, holidays, bank_closing_days)");
}

TEST_CASE("a missing required key is named") {
  const auto loaded = load_edited([](Json& j) {
    j["country"].erase("currency");
    j["streams"]["inbound"].erase("partitions");
    j["streams"]["outbound"][0].erase("derivation");
  });
  CHECK(error_for(loaded, "country.currency").to_string() ==
        "config/dk.json: country.currency: missing required key");
  CHECK(error_for(loaded, "streams.inbound.partitions").message == "missing required key");
  CHECK(error_for(loaded, "streams.outbound[0].derivation").message == "missing required key");
  // A missing key is reported once, not also as "must be DKK".
  CHECK(loaded.error().errors.size() == 3);
}

TEST_CASE("a missing section reports its required keys") {
  const auto loaded = load_edited([](Json& j) { j.erase("streams"); });
  CHECK(error_for(loaded, "streams.inbound.partitions").message == "missing required key");
  CHECK(error_for(loaded, "streams.outbound").message == "missing required key");
  CHECK(error_for(loaded, "streams.core_catchup_url").message ==
        "missing required key (set it in the file or in CLEARING_ADAPTER_CORE_CATCHUP_URL)");
}

TEST_CASE("a missing retry section stops the start, naming each of its keys") {
  const auto loaded = load_edited([](Json& j) { j.erase("retry"); });
  REQUIRE_FALSE(loaded.has_value());
  for (const char* key :
       {"retry.backoff_initial_ms", "retry.backoff_max_ms", "retry.backoff_multiplier",
        "retry.unknown_outcomes_before_inquiry", "retry.pending_inquiry_interval_ms",
        "retry.investigation_inquiry_interval_ms", "retry.deadline_ms"}) {
    CAPTURE(key);
    CHECK(error_for(loaded, key).to_string() ==
          std::string("config/dk.json: ") + key + ": missing required key");
  }
  CHECK(loaded.error().errors.size() == 7);
}

TEST_CASE("the keys without a safe default are required") {
  // What the clearing agreed to, the load on its feed, the retry policy and the calendar.
  const std::vector<std::pair<std::string, std::string>> required{
      {"clearing", "request_timeout_ms"}, {"clearing", "connect_timeout_ms"},
      {"clearing", "in_flight_max"},      {"clearing", "pool_connections_max"},
      {"retry", "deadline_ms"},           {"retry", "unknown_outcomes_before_inquiry"},
      {"incoming", "poll_interval_ms"},   {"incoming", "page_limit"},
  };
  for (const auto& [section, key] : required) {
    CAPTURE(key);
    const auto loaded = load_edited([&](Json& j) { j[section].erase(key); });
    CHECK(error_for(loaded, section + "." + key).message == "missing required key");
    CHECK(loaded.error().errors.size() == 1);
  }
  for (const char* key : {"weekend", "bank_closing_days"}) {
    CAPTURE(key);
    const auto loaded = load_edited([&](Json& j) { j["country"]["business_days"].erase(key); });
    CHECK(error_for(loaded, std::string("country.business_days.") + key).message ==
          "missing required key");
  }
  // No closing days is a value to write down, not to forget.
  const auto none = load_edited(
      [](Json& j) { j["country"]["business_days"]["bank_closing_days"] = Json::array(); });
  REQUIRE(none.has_value());
  CHECK(none->country.business_days.bank_closing_days.empty());
}

TEST_CASE("sections with only defaults may be left out") {
  const auto loaded = load_edited([](Json& j) {
    j.erase("dispatcher");
    j.erase("log_level");
    j["streams"]["inbound"].erase("name");
    j["kafka"].erase("group_id");
    j["kafka"].erase("client_id");
    j["kafka"].erase("produce_timeout_ms");
    j["kafka"].erase("session_timeout_ms");
    j["kafka"].erase("relay_batch_max");
    j["kafka"].erase("consumer_batch_max");
    j["database"].erase("connections_max");
    j["database"].erase("statement_timeout_ms");
    j["clearing"].erase("verify_tls");
  });
  REQUIRE(loaded.has_value());
  CHECK(loaded->dispatcher == DispatcherConfig{});
  CHECK(loaded->log_level == LogLevel::info);
  CHECK(loaded->kafka.session_timeout_ms == KafkaConfig{}.session_timeout_ms);
  CHECK(loaded->database.connections_max == DatabaseConfig{}.connections_max);
  CHECK(loaded->clearing.verify_tls);
  CHECK(loaded->streams.inbound.name == "core.dk.payments.v1");
  CHECK(loaded->kafka.group_id == "clearing-adapter-dk");
  CHECK(loaded->kafka.client_id == "clearing-adapter-dk");
}

TEST_CASE("a wrong type is named with what was found") {
  const auto loaded = load_edited([](Json& j) {
    j["clearing"]["request_timeout_ms"] = "5000";
    j["clearing"]["verify_tls"] = "yes";
    j["retry"]["backoff_initial_ms"] = 1.5;
    j["dispatcher"] = Json::array();
    j["streams"]["outbound"] = Json::object();
  });
  CHECK(error_for(loaded, "clearing.request_timeout_ms").to_string() ==
        "config/dk.json: clearing.request_timeout_ms: must be an integer, got string \"5000\"");
  CHECK(error_for(loaded, "clearing.verify_tls").message ==
        "must be true or false, got string \"yes\"");
  CHECK(error_for(loaded, "retry.backoff_initial_ms").message ==
        "must be an integer, got number 1.5");
  CHECK(error_for(loaded, "dispatcher").message == "must be an object, got an array");
  CHECK(error_for(loaded, "streams.outbound").message ==
        "must be an array of {name, partitions, derivation}, got an object");
  // No derived errors for the keys that failed to read (the lease check, empty outbound).
  CHECK(loaded.error().errors.size() == 5);
}

TEST_CASE("bad stream names") {
  SUBCASE("not matching the pattern") {
    const auto loaded =
        load_edited([](Json& j) { j["streams"]["inbound"]["name"] = "core.DK.payments"; });
    CHECK(error_for(loaded, "streams.inbound.name").to_string() ==
          "config/dk.json: streams.inbound.name: must match "
          "^(core|adapter)\\.(dk|se|no|fi)\\.[a-z]+\\.v[0-9]+$, got \"core.DK.payments\"");
  }
  SUBCASE("another country's stream") {
    const auto loaded =
        load_edited([](Json& j) { j["streams"]["inbound"]["name"] = "core.se.payments.v1"; });
    CHECK(error_for(loaded, "streams.inbound.name").message ==
          "must carry the adapter's country code dk, got \"core.se.payments.v1\"");
  }
  SUBCASE("the inbound stream is the core's") {
    const auto loaded =
        load_edited([](Json& j) { j["streams"]["inbound"]["name"] = "adapter.dk.payments.v1"; });
    CHECK(error_for(loaded, "streams.inbound.name")
              .message.starts_with("must be a stream of the core"));
  }
  SUBCASE("an outbound name that does not fit its derivation") {
    const auto loaded = load_edited(
        [](Json& j) { j["streams"]["outbound"][1]["name"] = "adapter.dk.payments.v2"; });
    CHECK(error_for(loaded, "streams.outbound[1].name").message ==
          "must be adapter.dk.settlements.v1 for derivation settlements.v1, got "
          "\"adapter.dk.payments.v2\"");
  }
  SUBCASE("an unknown derivation") {
    const auto loaded =
        load_edited([](Json& j) { j["streams"]["outbound"][0]["derivation"] = "payments.v9"; });
    CHECK(error_for(loaded, "streams.outbound[0].derivation").message ==
          "must be one of \"payments.v1\", \"settlements.v1\", \"payments.v2\", "
          "\"positions.v1\", got \"payments.v9\"");
  }
  SUBCASE("the same stream twice") {
    const auto loaded =
        load_edited([](Json& j) { j["streams"]["outbound"][1] = j["streams"]["outbound"][0]; });
    CHECK(error_for(loaded, "streams.outbound[1].name").message ==
          "\"adapter.dk.payments.v1\" is listed twice");
  }
  SUBCASE("a stream's derivation decides its name, positions.v1 too") {
    const auto loaded = load_edited(
        [](Json& j) { j["streams"]["outbound"][3]["name"] = "adapter.dk.positions.v2"; });
    CHECK(error_for(loaded, "streams.outbound[3].name").message ==
          "must be adapter.dk.positions.v1 for derivation positions.v1, got "
          "\"adapter.dk.positions.v2\"");
  }
}

// Versioning a stream (docs/streams.md): a new version beside the old, its backfill's start,
// and the old one deprecated, then retired. "Today" is fixed so the sunsets are stable.
TEST_CASE("stream versions: backfill_from and streams.deprecated") {
  using std::chrono::day;
  using std::chrono::month;
  using std::chrono::year;
  const LoadOptions on_dec_6{.today = std::chrono::year_month_day{year{2026}, month{12}, day{6}}};
  const auto with = [&](Json deprecated, Json v2_extra = Json::object()) {
    return load_edited(
        [&](Json& j) {
          // The shipped outbound streams: payments.v1, settlements.v1, payments.v2, positions.v1.
          j["streams"]["outbound"][2].update(v2_extra);
          j["streams"]["deprecated"] = std::move(deprecated);
        },
        env_with_secrets(), on_dec_6);
  };
  SUBCASE("v1 deprecated with a sunset to come, v2 and positions.v1 beside it") {
    const auto loaded =
        with(Json::array({{{"stream", "adapter.dk.payments.v1"}, {"sunset", "2027-06-30"}}}),
             {{"backfill_from", "2026-01-01T00:00:00Z"}});
    REQUIRE(loaded.has_value());
    REQUIRE(loaded->streams.deprecated.size() == 1);
    CHECK(loaded->streams.deprecated[0].stream == "adapter.dk.payments.v1");
    CHECK(format_date(loaded->streams.deprecated[0].sunset) == "2027-06-30");
    CHECK_FALSE(loaded->streams.deprecated[0].retired);
    CHECK(loaded->streams.outbound[2].backfill_from == "2026-01-01T00:00:00Z");
    CHECK(loaded->streams.outbound[3].derivation == Derivation::positions_v1);
    CHECK(redacted_summary(*loaded).find(
              "streams.deprecated=adapter.dk.payments.v1/sunset:2027-06-30") != std::string::npos);
  }
  SUBCASE("retired after its sunset") {
    const auto loaded = with(Json::array(
        {{{"stream", "adapter.dk.payments.v1"}, {"sunset", "2026-12-01"}, {"retired", true}}}));
    REQUIRE(loaded.has_value());
    CHECK(loaded->streams.deprecated[0].retired);
  }
  SUBCASE("a sunset that has passed without retired") {
    const auto loaded =
        with(Json::array({{{"stream", "adapter.dk.payments.v1"}, {"sunset", "2026-12-05"}}}));
    CHECK(error_for(loaded, "streams.deprecated[0].sunset").message ==
          "the sunset 2026-12-05 of adapter.dk.payments.v1 has passed: set \"retired\": true to "
          "stop deriving it (its history stays readable), or move the sunset");
  }
  SUBCASE("retired before its sunset") {
    const auto loaded = with(Json::array(
        {{{"stream", "adapter.dk.payments.v1"}, {"sunset", "2026-12-07"}, {"retired", true}}}));
    CHECK(error_for(loaded, "streams.deprecated[0].retired").message ==
          "adapter.dk.payments.v1 cannot be retired before its sunset 2026-12-07: its consumers "
          "were promised it until then");
  }
  SUBCASE("an unknown stream, a stream twice, a bad date, a missing sunset") {
    const auto loaded = with(Json::array({
        {{"stream", "adapter.dk.payments.v3"}, {"sunset", "2027-01-01"}},
        {{"stream", "adapter.dk.payments.v1"}, {"sunset", "2027-01-01"}},
        {{"stream", "adapter.dk.payments.v1"}, {"sunset", "2027-01-01"}},
        {{"stream", "adapter.dk.settlements.v1"}, {"sunset", "1 May 2027"}},
        {{"stream", "adapter.dk.positions.v1"}},
    }));
    CHECK(error_for(loaded, "streams.deprecated[0].stream").message ==
          "\"adapter.dk.payments.v3\" is not a stream of streams.outbound");
    CHECK(error_for(loaded, "streams.deprecated[2].stream").message ==
          "\"adapter.dk.payments.v1\" is listed twice");
    CHECK(error_for(loaded, "streams.deprecated[3].sunset").message ==
          "must be a date YYYY-MM-DD, got \"1 May 2027\"");
    CHECK(error_for(loaded, "streams.deprecated[4].sunset").message == "missing required key");
  }
  SUBCASE("deprecated is not a list; backfill_from is not a time") {
    const auto loaded = with(Json::object(), {{"backfill_from", "yesterday"}});
    CHECK(error_for(loaded, "streams.deprecated").message ==
          "must be an array of {stream, sunset, retired}, got an object");
    CHECK(error_for(loaded, "streams.outbound[2].backfill_from").message ==
          "must be an RFC 3339 time (2026-01-01T00:00:00Z), got \"yesterday\"");
  }
}

TEST_CASE("bad addresses and URLs") {
  const auto loaded = load_edited([](Json& j) {
    j["http"]["address"] = "127.0.0.1:99999";
    j["clearing"]["base_url"] = "ftp://clearing";
    j["streams"]["core_catchup_url"] = "http://user:pw@core:1";
    j["kafka"]["brokers"] = "kafka-1:9092;kafka-2:9092";
    j["database"]["url"] = "mysql://root:hunter2@db/clearing";
  });
  CHECK(error_for(loaded, "http.address").to_string() ==
        "config/dk.json: http.address: must be host:port (port 1..65535; [v6]:port for IPv6), "
        "got \"127.0.0.1:99999\"");
  CHECK(error_for(loaded, "clearing.base_url").message ==
        "must start with http:// or https://, got \"ftp://clearing\"");
  CHECK(error_for(loaded, "streams.core_catchup_url")
            .message.starts_with("must not carry credentials"));
  CHECK(error_for(loaded, "kafka.brokers").message ==
        "must be \"embedded\" or host:port[,host:port...], got \"kafka-1:9092;kafka-2:9092\"");
  const auto database = error_for(loaded, "database.url");
  CHECK(database.message ==
        "must be a libpq URI (postgresql://user@host:port/dbname), got "
        "\"mysql://root:***@db/clearing\"");
}

TEST_CASE("the country's fields") {
  check_refusals({
      {"country.currency", "EUR", "must be DKK for country DK, got \"EUR\""},
      {"country.code", "dk", "must be one of \"DK\", \"SE\", \"NO\", \"FI\", got \"dk\""},
      {"country.cutoff_utc", "24:00",
       "must be a time \"HH:MM\" in 00:00..23:59 (UTC), got \"24:00\""},
      {"country.business_days.holidays[3]", "2026-02-30",
       "must be a date \"YYYY-MM-DD\", got \"2026-02-30\""},
      {"country.business_days.weekend",
       Json::array({"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
       "must leave at least one business weekday"},
      {"country.business_days.weekend[0]", "Saturday",
       "must be one of Mon, Tue, Wed, Thu, Fri, Sat, Sun, got \"Saturday\""},
  });
  CHECK(error_for(load_edited([](Json& j) {
                    j["country"]["business_days"]["holidays"].push_back("2026-12-25");
                  }),
                  "country.business_days.holidays")
            .message == "lists 2026-12-25 twice");
  CHECK(error_for(load_edited([](Json& j) {
                    j["country"]["business_days"]["bank_closing_days"].push_back("2026-01-01");
                  }),
                  "country.business_days.bank_closing_days")
            .message == "2026-01-01 is already a holiday; list it once");
}

TEST_CASE("a stream of another country is not reported twice when the country is bad") {
  const auto loaded = load_edited([](Json& j) { j["country"]["code"] = "GB"; });
  REQUIRE_FALSE(loaded.has_value());
  CHECK(loaded.error().errors.size() == 1);
  CHECK(loaded.error().errors[0].key == "country.code");
}

TEST_CASE("several errors are all reported, one line each, in one go") {
  const auto loaded = load_edited([](Json& j) {
    j["clearing"]["request_timeout_ms"] = 0;
    j["clearing"]["tiemout"] = 1;
    j["country"].erase("currency");
    j["streams"]["outbound"][0]["partitions"] = "four";
    j["http"]["address"] = "nowhere";
    j["log_level"] = "verbose";
  });
  REQUIRE_FALSE(loaded.has_value());
  const auto& errors = loaded.error();
  CHECK(errors.errors.size() == 6);
  for (const char* key : {"clearing.request_timeout_ms", "clearing.tiemout", "country.currency",
                          "streams.outbound[0].partitions", "http.address", "log_level"}) {
    CAPTURE(key);
    CHECK(errors.find(key) != nullptr);
  }
  const std::string text = errors.to_string();
  CHECK(std::count(text.begin(), text.end(), '\n') == 5);
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) CHECK(line.starts_with("config/dk.json: "));
  CHECK(errors.find("log_level")->message ==
        "must be one of \"trace\", \"debug\", \"info\", \"warn\", \"error\", got \"verbose\"");
}

TEST_CASE("invalid JSON is reported with line and column") {
  const std::string text = "{\n  \"country\": {\n    \"code\": \"DK\",,\n  }\n}\n";
  const auto loaded = parse_config(text, kFile, env_with_secrets());
  REQUIRE_FALSE(loaded.has_value());
  REQUIRE(loaded.error().errors.size() == 1);
  const auto message = loaded.error().to_string();
  CAPTURE(message);
  CHECK(message.starts_with("config/dk.json: invalid JSON at line 3, column 18: syntax error"));
}

TEST_CASE("the file must hold an object") {
  const auto loaded = parse_config("[1, 2]", kFile, env_with_secrets());
  REQUIRE_FALSE(loaded.has_value());
  CHECK(loaded.error().to_string() ==
        "config/dk.json: the file must hold one JSON object, got an array");
}

TEST_CASE("a key given twice is an error, not a silent last-one-wins") {
  std::string text = shipped_json("dk").dump(2);
  const std::string anchor = "\"request_timeout_ms\": 5000,";
  const auto at = text.find(anchor);
  REQUIRE(at != std::string::npos);
  text.insert(at, "\"request_timeout_ms\": 100,\n    ");
  const auto loaded = parse_config(text, kFile, env_with_secrets());
  CHECK(error_for(loaded, "clearing.request_timeout_ms").message ==
        "key given twice in one object (only one value can count)");
}

// ---------------------------------------------------------------------------------------
// Business days.

TEST_CASE("business days: weekends, holidays and bank closing days") {
  BusinessDays days;
  days.holidays = {ymd(2026, 4, 2), ymd(2026, 4, 3),   ymd(2026, 4, 5),
                   ymd(2026, 4, 6), ymd(2026, 12, 25), ymd(2026, 12, 26)};
  days.bank_closing_days = {ymd(2026, 12, 24), ymd(2026, 12, 31)};

  CHECK(days.is_business_day(ymd(2026, 4, 1)));        // Wednesday
  CHECK_FALSE(days.is_business_day(ymd(2026, 4, 2)));  // Maundy Thursday
  CHECK_FALSE(days.is_business_day(ymd(2026, 4, 4)));  // Saturday
  CHECK_FALSE(days.is_business_day(ymd(2026, 12, 24)));
  CHECK(days.is_business_day(ymd(2026, 12, 23)));

  // Over Easter: Thu, Fri holidays, weekend, Monday holiday -> Tuesday.
  CHECK(days.next_business_day(ymd(2026, 4, 1)) == ymd(2026, 4, 7));
  // Over Christmas: 24 closed, 25 holiday, 26-27 weekend -> Monday 28.
  CHECK(days.next_business_day(ymd(2026, 12, 23)) == ymd(2026, 12, 28));
  // Strictly after: a business day does not return itself.
  CHECK(days.next_business_day(ymd(2026, 12, 28)) == ymd(2026, 12, 29));
  // Over New Year's Eve (closed) without a 1 January holiday in this calendar.
  CHECK(days.next_business_day(ymd(2026, 12, 30)) == ymd(2027, 1, 1));
  CHECK(days.business_day_on_or_after(ymd(2026, 12, 28)) == ymd(2026, 12, 28));
  CHECK(days.business_day_on_or_after(ymd(2026, 12, 26)) == ymd(2026, 12, 28));

  SUBCASE("another weekend") {
    days.weekend = {Friday, Saturday};
    CHECK_FALSE(days.is_business_day(ymd(2026, 4, 10)));  // Friday
    CHECK(days.is_business_day(ymd(2026, 4, 12)));        // Sunday
  }
}

TEST_CASE("settlement date: before the cut-off on a business day settles that day") {
  CountryConfig country;
  country.cutoff_utc = hours{13} + minutes{30};
  country.business_days.holidays = {ymd(2026, 12, 25)};
  const auto at = [](year_month_day d, int h, int m) {
    return sys_time<milliseconds>{sys_days{d}} + hours{h} + minutes{m};
  };
  CHECK(country.settlement_date(at(ymd(2026, 11, 26), 13, 29)) == ymd(2026, 11, 26));
  CHECK(country.settlement_date(at(ymd(2026, 11, 26), 13, 30)) == ymd(2026, 11, 27));
  CHECK(country.settlement_date(at(ymd(2026, 11, 27), 15, 0)) == ymd(2026, 11, 30));  // Fri
  CHECK(country.settlement_date(at(ymd(2026, 11, 28), 9, 0)) == ymd(2026, 11, 30));   // Sat
  CHECK(country.settlement_date(at(ymd(2026, 12, 24), 14, 0)) == ymd(2026, 12, 28));
}

TEST_CASE("date and time formatting") {
  CHECK(format_date(ymd(2026, 4, 2)) == "2026-04-02");
  CHECK(format_time_of_day(hours{9} + minutes{5}) == "09:05");
  CHECK(weekday_name(Saturday) == "Sat");
}

// ---------------------------------------------------------------------------------------
// Names, addresses, redaction.

TEST_CASE("stream names follow the contract's pattern") {
  const std::vector<std::pair<std::string, bool>> valid{
      {"core.dk.payments.v1", true},   {"adapter.no.settlements.v12", true},
      {"core.fi.payments.v1", true},   {"core.ee.payments.v1", false},
      {"bank.dk.payments.v1", false},  {"core.dk.payments.v", false},
      {"core.dk.payments.v1x", false}, {"core.dk..v1", false},
      {"core.dk.pay-ments.v1", false}, {"core.dk.payments.1", false},
  };
  check_each(is_valid_stream_name, valid);
}

TEST_CASE("host:port parsing") {
  const std::vector<std::pair<std::string, std::optional<HostPort>>> parsed{
      {"127.0.0.1:8082", HostPort{"127.0.0.1", 8082}},
      {"kafka-1.internal:9092", HostPort{"kafka-1.internal", 9092}},
      {"[::1]:8080", HostPort{"::1", 8080}},
  };
  check_each(parse_host_port, parsed);
  for (const char* text :
       {"localhost", ":8080", "host:0", "host:65536", "host:80x", "::1:8080", "my host:80"}) {
    CAPTURE(text);
    CHECK_FALSE(parse_host_port(text));
  }
}

TEST_CASE("redact_database_url masks passwords and keeps the rest") {
  check_each<std::string>(
      redact_database_url,
      {
          {"postgresql://postgres@127.0.0.1:5432/clearing_dk",
           "postgresql://postgres@127.0.0.1:5432/clearing_dk"},
          {"postgresql://adapter:s3cret@db:5432/clearing",
           "postgresql://adapter:***@db:5432/clearing"},
          {"postgresql://adapter:p@ss@db/clearing", "postgresql://adapter:***@db/clearing"},
          {"postgresql://db/clearing?user=a&password=s3cret&sslmode=require",
           "postgresql://db/clearing?user=a&password=***&sslmode=require"},
          {"host=db password=s3cret dbname=x", "host=db password=*** dbname=x"},
          {"postgresql://db:5432/clearing", "postgresql://db:5432/clearing"},
      });
}

TEST_CASE("redact_database_url masks percent-encoded and other secret parameters") {
  check_each<std::string>(
      redact_database_url,
      {
          // libpq decodes %XX in parameter names: %70assword is password.
          {"postgresql://db/clearing?user=a&%70assword=s3cret",
           "postgresql://db/clearing?user=a&%70assword=***"},
          {"postgresql://db/x?pass%2577ord=s3cret", "postgresql://db/x?pass%2577ord=***"},
          {"postgresql://db/x?PASSWORD=s3cret&sslmode=require",
           "postgresql://db/x?PASSWORD=***&sslmode=require"},
          {"postgresql://db/x?sslmode=verify-full&sslpassword=k3y",
           "postgresql://db/x?sslmode=verify-full&sslpassword=***"},
          {"postgresql://db/x?ssl%70assword=k3y&application_name=a",
           "postgresql://db/x?ssl%70assword=***&application_name=a"},
          // A password pasted without percent-encoding is still masked up to its '@'.
          {"postgresql://adapter:pa?ss@db/clearing", "postgresql://adapter:***@db/clearing"},
          {"postgresql://adapter:pa/ss@db/clearing?sslmode=require",
           "postgresql://adapter:***@db/clearing?sslmode=require"},
          {"postgresql://adapter:s3cret@db/x?%70assword=s3cret",
           "postgresql://adapter:***@db/x?%70assword=***"},
          // libpq's key=value form, with spaces around '=' and a quoted value.
          {"host=db password = 's3 cr\\'et' sslpassword=k3y dbname=x",
           "host=db password = *** sslpassword=*** dbname=x"},
      });
  for (const char* url :
       {"postgresql://db/clearing?user=a&%70assword=s3cret", "postgresql://u:s3cret@db/x",
        "postgresql://u:s3cret@db/x?sslpassword=s3cret", "password=s3cret",
        "host=db password='s3cret'"}) {
    CAPTURE(url);
    CHECK(redact_database_url(url).find("s3cret") == std::string::npos);
  }
}

TEST_CASE("redact_http_url masks user information, queries and fragments") {
  CHECK(redact_http_url("https://user:hunter2@clearing.example/api") ==
        "https://***@clearing.example/api");
  CHECK(redact_http_url("https://t0ken@clearing.example") == "https://***@clearing.example");
  CHECK(redact_http_url("https://clearing.example/api?access_token=abc") ==
        "https://clearing.example/api?***");
  CHECK(redact_http_url("http://core:8092/x#token") == "http://core:8092/x#***");
  CHECK(redact_http_url("http://127.0.0.1:8081") == "http://127.0.0.1:8081");
}

TEST_CASE("verify_tls false stops the start unless acknowledged, then warns") {
  const auto https = [](Json& j) { j["clearing"]["base_url"] = "https://clearing.example/api"; };
  const auto refused = load_edited([&](Json& j) {
    https(j);
    j["clearing"]["verify_tls"] = false;
  });
  CHECK(error_for(refused, "clearing.verify_tls")
            .message.starts_with("false turns off the check of the clearing's certificate"));
  CHECK(refused.error().errors.size() == 1);

  const auto acknowledged = load_edited([&](Json& j) {
    https(j);
    j["clearing"]["verify_tls"] = false;
    j["clearing"]["unverified_tls_acknowledged"] = true;
  });
  INFO((acknowledged ? std::string() : acknowledged.error().to_string()));
  REQUIRE(acknowledged.has_value());
  const auto warnings = config_warnings(*acknowledged);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].to_string() ==
        "config/dk.json: clearing.verify_tls: false (acknowledged): the clearing's certificate "
        "is not checked; anyone on the network path can answer as the clearing");
  CHECK(redacted_summary(*acknowledged).find("clearing.unverified_tls_acknowledged=true") !=
        std::string::npos);

  // A stale acknowledgement would wave a later verify_tls: false through unnoticed.
  const auto stale = load_edited([&](Json& j) {
    https(j);
    j["clearing"]["unverified_tls_acknowledged"] = true;
  });
  CHECK(error_for(stale, "clearing.unverified_tls_acknowledged").message ==
        "is only for verify_tls: false; remove it while the certificate is checked");

  // Over http:// there is no certificate to check: nothing to refuse or warn about.
  const auto plain = load_edited([](Json& j) { j["clearing"]["verify_tls"] = false; });
  REQUIRE(plain.has_value());
  CHECK(config_warnings(*plain).empty());
  const auto shipped = load_config(shipped_path("dk"), env_with_secrets());
  REQUIRE(shipped.has_value());
  CHECK(config_warnings(*shipped).empty());
}

TEST_CASE("an https:// catch-up URL is accepted, from the file and from the environment") {
  const auto loaded =
      load_edited([](Json& j) { j["streams"]["core_catchup_url"] = "https://core.internal:8092"; });
  REQUIRE(loaded.has_value());
  CHECK(loaded->streams.core_catchup_url == "https://core.internal:8092");
  CHECK_FALSE(loaded->streams.core_catchup_ca_file.has_value());
  auto env = env_with_secrets();
  env.set(kEnvCoreCatchupUrl, "https://core.internal:8092");
  const auto from_env = load_config(shipped_path("dk"), env);
  REQUIRE(from_env.has_value());
  CHECK(from_env->streams.core_catchup_url == "https://core.internal:8092");
  CHECK(load_edited([](Json& j) {
          j["clearing"]["base_url"] = "https://clearing.example/api";
        }).has_value());
}

TEST_CASE("a URL with credentials is refused without showing them") {
  const auto loaded = load_edited([](Json& j) {
    j["clearing"]["base_url"] = "https://adapter:hunter2@clearing.example/api";
    j["streams"]["core_catchup_url"] = "http://core:hunter3@core.internal:8092";
  });
  CHECK(error_for(loaded, "clearing.base_url").message ==
        "must not carry credentials (user:password@): tokens come only from the environment, got "
        "\"https://***@clearing.example/api\"");
  CHECK(error_for(loaded, "streams.core_catchup_url")
            .message.ends_with("got \"http://***@core.internal:8092\""));
  const auto query = load_edited(
      [](Json& j) { j["clearing"]["base_url"] = "https://clearing.example/api?token=hunter4"; });
  CHECK(error_for(query, "clearing.base_url").message ==
        "must not carry a query, a fragment or white space, got "
        "\"https://clearing.example/api?***\"");
  CHECK(loaded.error().to_string().find("hunter") == std::string::npos);
  CHECK(query.error().to_string().find("hunter") == std::string::npos);
}

TEST_CASE("redacted_summary shows every value but no secret") {
  MapEnvironment env({{kEnvClearingToken, "clearing-t0ken-XYZ"},
                      {kEnvDatabaseUrl, "postgresql://adapter:db-pw-XYZ@db:5432/clearing_dk"}});
  const auto loaded =
      load_config(shipped_path("dk"), env, LoadOptions{.allow_missing_secrets = true});
  REQUIRE(loaded.has_value());
  const std::string summary = redacted_summary(*loaded);
  CAPTURE(summary);
  CHECK(summary.find("XYZ") == std::string::npos);
  CHECK(summary.find("clearing.token=set") != std::string::npos);
  CHECK(summary.find("http.api_token=unset") != std::string::npos);
  CHECK(summary.find("database.url=postgresql://adapter:***@db:5432/clearing_dk") !=
        std::string::npos);
  CHECK(summary.find("country.code=DK") != std::string::npos);
  CHECK(summary.find("country.cutoff_utc=13:30") != std::string::npos);
  CHECK(summary.find("country.business_days.weekend=Sat,Sun") != std::string::npos);
  CHECK(summary.find("country.business_days.holidays=20(2026-01-01..2027-12-26)") !=
        std::string::npos);
  CHECK(summary.find("clearing.request_timeout_ms=5000") != std::string::npos);
  CHECK(summary.find("dispatcher.lease_ms=30000") != std::string::npos);
  CHECK(summary.find("streams.outbound=adapter.dk.payments.v1/4:payments.v1,"
                     "adapter.dk.settlements.v1/2:settlements.v1") != std::string::npos);
  CHECK(summary.find("kafka.brokers=embedded") != std::string::npos);
  CHECK(summary.find("http.address=127.0.0.1:8082") != std::string::npos);
  CHECK(summary.find("log_level=info") != std::string::npos);
  CHECK(summary.find('\n') == std::string::npos);
}

TEST_CASE("validate() checks a config built in code") {
  auto loaded = load_config(shipped_path("se"), env_with_secrets());
  REQUIRE(loaded.has_value());
  AdapterConfig config = *loaded;
  CHECK(validate(config).empty());
  config.dispatcher.lease_ms = 1;
  config.streams.outbound[0].partitions = 0;
  config.http.api_token = Secret();
  const auto errors = validate(config);
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].key == "dispatcher.lease_ms");
  CHECK(errors[1].key == "streams.outbound[0].partitions");
  CHECK(errors[2].key == "http.api_token");
  CHECK(errors[0].file == shipped_path("se"));
  CHECK(validate(config, LoadOptions{.allow_missing_secrets = true}).size() == 2);
}

TEST_CASE("personal data: the KEK is required, its own shape, from a file, never in the file") {
  const auto load_with = [](std::map<std::string, std::string> env, LoadOptions options = {}) {
    env.emplace(kEnvClearingToken, kClearingTokenValue);
    env.emplace(kEnvApiToken, kApiTokenValue);
    env.emplace(kEnvCoreCatchupToken, kCoreTokenValue);
    return load_config(shipped_path("dk"), MapEnvironment(std::move(env)), options);
  };
  const auto loaded = load_with({{kEnvDataKek, kDataKekValue}});
  REQUIRE_MESSAGE(loaded.has_value(), (loaded ? "" : loaded.error().to_string()));
  CHECK(loaded->privacy.data_kek.reveal() == kDataKekValue);
  CHECK_FALSE(loaded->privacy.data_kek_previous.is_set());
  CHECK(loaded->privacy.retention_years == kRetentionYearsDefault);
  const auto summary = redacted_summary(*loaded);
  CHECK(summary.find("privacy.data_kek=set") != std::string::npos);
  CHECK(summary.find("privacy.retention_years=5") != std::string::npos);
  CHECK(summary.find(kDataKekValue) == std::string::npos);

  CHECK(error_for_file(load_with({}), "privacy.data_kek")
            .starts_with("not set: set CLEARING_ADAPTER_DATA_KEK (or "
                         "CLEARING_ADAPTER_DATA_KEK_FILE"));
  CHECK(load_with({}, LoadOptions{.allow_missing_secrets = true}).has_value());
  const auto longer = load_with({{kEnvDataKek, std::string(kDataKekValue) + "AAAA"}});
  CHECK(error_for_file(longer, "privacy.data_kek") ==
        "must be base64 of 32 bytes: 44 characters (from CLEARING_ADAPTER_DATA_KEK; the value is "
        "not shown)");
  CHECK(longer.error().to_string().find(kDataKekValue) == std::string::npos);
  CHECK(error_for_file(load_with({{kEnvDataKek, "short"}}), "privacy.data_kek")
            .starts_with("must be 44 to 4096 characters long"));

  const SecretFile file(std::string(kDataKekValue) + "\n", kOwnerRead);
  const auto from_file = load_with({{std::string(kEnvDataKek) + "_FILE", file.path},
                                    {kOptionalEnvDataKekPrevious, kDataKekValue}});
  REQUIRE(from_file.has_value());
  CHECK(from_file->privacy.data_kek.reveal() == kDataKekValue);
  CHECK(from_file->privacy.data_kek_previous.reveal() == kDataKekValue);

  const auto in_file = load_edited([](Json& j) { j["privacy"]["data_kek"] = kDataKekValue; });
  CHECK(error_for(in_file, "privacy.data_kek").message ==
        "secrets are never read from the file: remove this key and set "
        "CLEARING_ADAPTER_DATA_KEK in the environment");
  const auto retention = [](int years) {
    return load_edited([years](Json& j) { j["privacy"]["retention_years"] = years; });
  };
  CHECK(retention(10)->privacy.retention_years == 10);
  CHECK(error_for(retention(0), "privacy.retention_years").message == "must be in [1, 100], got 0");
  CHECK(error_for(retention(101), "privacy.retention_years").message ==
        "must be in [1, 100], got 101");
}

// ---------------------------------------------------------------------------------------
// kafka.security (issue 21, item 2): the protocol, SASL and the SSL files, the passwords only
// from the environment or their _FILE forms.

namespace {

constexpr const char* kKafkaBrokers = "kafka-1:9093,kafka-2:9093";
constexpr const char* kKafkaPasswordValue = "kafka-sasl-pw-XYZ";
constexpr const char* kKeyPasswordValue = "kafka-key-pw-XYZ";
// The PEM frames the loader looks at: the clients parse the rest at start.
constexpr const char* kPlainKey = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
constexpr const char* kEncryptedKey =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
constexpr const char* kCertificate =
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

// The DK file with real brokers and `security` as kafka.security, loaded with the tokens and
// `more` in the environment.
tl::expected<AdapterConfig, ConfigErrors> load_secured(
    const Json& security, const std::map<std::string, std::string>& more = {}) {
  MapEnvironment env = env_with_secrets();
  for (const auto& [name, value] : more) env.set(name, value);
  return load_edited(
      [&](Json& j) {
        j["kafka"]["brokers"] = kKafkaBrokers;
        j["kafka"]["security"] = security;
      },
      env);
}

std::string sasl_password_file_variable() {
  return std::string(kOptionalEnvKafkaSaslPassword) + kSecretFileSuffix;
}

}  // namespace

TEST_CASE("kafka.security: PLAINTEXT by default, and the summary says so") {
  const auto shipped = load_config(shipped_path("dk"), env_with_secrets());
  REQUIRE(shipped.has_value());
  CHECK(shipped->kafka.security == KafkaSecurityConfig{});
  CHECK(shipped->kafka.security.protocol == KafkaSecurityProtocol::plaintext);
  const auto summary = redacted_summary(*shipped);
  CHECK(summary.find("kafka.security.protocol=PLAINTEXT ") != std::string::npos);
  CHECK(summary.find("kafka.security.sasl") == std::string::npos);
  CHECK(summary.find("kafka.security.ssl") == std::string::npos);
}

TEST_CASE(
    "kafka.security: SASL_SSL with SCRAM, a CA and a client certificate, secrets from files") {
  const SecretFile ca(kCertificate, kOwnerRead | kOthersRead);  // public: others may read it
  const SecretFile certificate(kCertificate, kOwnerRead | kGroupRead | kOthersRead);
  const SecretFile key(kEncryptedKey, kOwnerRead | kGroupRead);
  const SecretFile password(std::string(kKafkaPasswordValue) + "\n", kOwnerRead);
  const auto loaded = load_secured({{"protocol", "SASL_SSL"},
                                    {"sasl_mechanism", "SCRAM-SHA-512"},
                                    {"sasl_username", "clearing-adapter-dk"},
                                    {"ssl_ca_location", ca.path.string()},
                                    {"ssl_certificate_location", certificate.path.string()},
                                    {"ssl_key_location", key.path.string()}},
                                   {{sasl_password_file_variable(), password.path.string()},
                                    {kOptionalEnvKafkaSslKeyPassword, kKeyPasswordValue}});
  REQUIRE_MESSAGE(loaded.has_value(), (loaded ? "" : loaded.error().to_string()));
  const auto& security = loaded->kafka.security;
  CHECK(security.protocol == KafkaSecurityProtocol::sasl_ssl);
  CHECK(security.sasl_mechanism == SaslMechanism::scram_sha_512);
  CHECK(security.sasl_username == "clearing-adapter-dk");
  CHECK(security.sasl_password.reveal() == kKafkaPasswordValue);
  CHECK(security.ssl_ca_location == ca.path.string());
  CHECK(security.ssl_certificate_location == certificate.path.string());
  CHECK(security.ssl_key_location == key.path.string());
  CHECK(security.ssl_key_password.reveal() == kKeyPasswordValue);
  CHECK(security.endpoint_identification == KafkaEndpointIdentification::https);
  CHECK(config_warnings(*loaded).empty());
  const auto summary = redacted_summary(*loaded);
  CAPTURE(summary);
  CHECK(summary.find(
            "kafka.security.protocol=SASL_SSL kafka.security.sasl_mechanism=SCRAM-SHA-512 "
            "kafka.security.sasl_username=clearing-adapter-dk "
            "kafka.security.sasl_password=set kafka.security.ssl_ca_location=" +
            ca.path.string() + " kafka.security.ssl_certificate_location=" +
            certificate.path.string() + " kafka.security.ssl_key_location=" + key.path.string() +
            " kafka.security.ssl_key_password=set "
            "kafka.security.ssl_endpoint_identification_algorithm=https") != std::string::npos);
  CHECK(summary.find("XYZ") == std::string::npos);

  // The other accepted forms: TLS alone with the system's CAs; SCRAM-SHA-256 over
  // SASL_PLAINTEXT (no warning: SCRAM never sends the password); a plain key without password.
  const auto tls_only = load_secured({{"protocol", "SSL"}});
  REQUIRE(tls_only.has_value());
  CHECK(redacted_summary(*tls_only).find("kafka.security.ssl_ca_location=default") !=
        std::string::npos);
  const auto scram_256 = load_secured(
      {{"protocol", "SASL_PLAINTEXT"}, {"sasl_mechanism", "SCRAM-SHA-256"}, {"sasl_username", "u"}},
      {{kOptionalEnvKafkaSaslPassword, kKafkaPasswordValue}});
  REQUIRE(scram_256.has_value());
  CHECK(scram_256->kafka.security.sasl_mechanism == SaslMechanism::scram_sha_256);
  CHECK(config_warnings(*scram_256).empty());
  const SecretFile plain_key(kPlainKey, kOwnerRead);
  const auto mutual = load_secured({{"protocol", "SSL"},
                                    {"ssl_certificate_location", certificate.path.string()},
                                    {"ssl_key_location", plain_key.path.string()}});
  REQUIRE_MESSAGE(mutual.has_value(), (mutual ? "" : mutual.error().to_string()));
  CHECK_FALSE(mutual->kafka.security.ssl_key_password.is_set());
}

TEST_CASE("kafka.security: PLAIN over SASL_PLAINTEXT is allowed with a warning at every start") {
  const auto loaded = load_secured(
      {{"protocol", "SASL_PLAINTEXT"}, {"sasl_mechanism", "PLAIN"}, {"sasl_username", "u"}},
      {{kOptionalEnvKafkaSaslPassword, kKafkaPasswordValue}});
  REQUIRE(loaded.has_value());
  const auto warnings = config_warnings(*loaded);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].to_string() ==
        "config/dk.json: kafka.security.sasl_mechanism: PLAIN over SASL_PLAINTEXT: the Kafka "
        "password and every message cross the network in clear; use SASL_SSL (or a SCRAM "
        "mechanism, which at least keeps the password)");
}

TEST_CASE("kafka.security: an unknown protocol or mechanism is refused with the choices") {
  const auto protocol = load_secured({{"protocol", "TLS"}, {"sasl_username", "u"}});
  CHECK(error_for(protocol, "kafka.security.protocol").message ==
        "must be one of \"PLAINTEXT\", \"SSL\", \"SASL_PLAINTEXT\", \"SASL_SSL\", got \"TLS\"");
  // Every other rule depends on the protocol: no guesses on top.
  CHECK(protocol.error().errors.size() == 1);
  const auto lower_case = load_secured({{"protocol", "sasl_ssl"}});
  CHECK(error_for(lower_case, "kafka.security.protocol").message ==
        "must be one of \"PLAINTEXT\", \"SSL\", \"SASL_PLAINTEXT\", \"SASL_SSL\", got "
        "\"sasl_ssl\"");
  const auto mechanism =
      load_secured({{"protocol", "SASL_SSL"}, {"sasl_mechanism", "GSSAPI"}, {"sasl_username", "u"}},
                   {{kOptionalEnvKafkaSaslPassword, kKafkaPasswordValue}});
  CHECK(error_for(mechanism, "kafka.security.sasl_mechanism").message ==
        "must be one of \"PLAIN\", \"SCRAM-SHA-256\", \"SCRAM-SHA-512\", got \"GSSAPI\"");
  CHECK(mechanism.error().errors.size() == 1);
  const auto algorithm =
      load_secured({{"protocol", "SSL"}, {"ssl_endpoint_identification_algorithm", "HTTPS"}});
  CHECK(error_for(algorithm, "kafka.security.ssl_endpoint_identification_algorithm").message ==
        "must be \"https\" or \"none\", got \"HTTPS\"");
  const auto unknown = load_secured({{"protocol", "SSL"}, {"ssl.ca.location", "/x"}});
  CHECK(error_for(unknown, "kafka.security.ssl.ca.location").message.starts_with("unknown key"));
}

TEST_CASE("kafka.security: SASL needs a mechanism, a user and a password, and only SASL has them") {
  const auto bare = load_secured({{"protocol", "SASL_SSL"}});
  REQUIRE_FALSE(bare.has_value());
  CHECK(bare.error().errors.size() == 3);
  CHECK(error_for(bare, "kafka.security.sasl_mechanism").message ==
        "required with protocol SASL_SSL: one of \"PLAIN\", \"SCRAM-SHA-256\", \"SCRAM-SHA-512\"");
  CHECK(error_for(bare, "kafka.security.sasl_username").message ==
        "required with protocol SASL_SSL: the user the brokers know this adapter as");
  CHECK(error_for(bare, "kafka.security.sasl_password").message ==
        "not set: protocol SASL_SSL needs CLEARING_ADAPTER_KAFKA_SASL_PASSWORD (or "
        "CLEARING_ADAPTER_KAFKA_SASL_PASSWORD_FILE, a file holding it) in the environment");
  // The demo's allowance for missing tokens does not cover it: SASL without it cannot connect.
  const auto demo = load_edited(
      [](Json& j) {
        j["kafka"]["brokers"] = kKafkaBrokers;
        j["kafka"]["security"] = {
            {"protocol", "SASL_PLAINTEXT"}, {"sasl_mechanism", "PLAIN"}, {"sasl_username", "u"}};
      },
      MapEnvironment(), LoadOptions{.allow_missing_secrets = true});
  CHECK(error_for(demo, "kafka.security.sasl_password")
            .message.starts_with("not set: protocol SASL_PLAINTEXT needs "));

  const auto plaintext =
      load_secured({{"protocol", "SSL"}, {"sasl_mechanism", "PLAIN"}, {"sasl_username", "u"}},
                   {{kOptionalEnvKafkaSaslPassword, kKafkaPasswordValue}});
  const std::string unused =
      "is only for protocol SASL_PLAINTEXT or SASL_SSL, not SSL: remove it, or set "
      "kafka.security.protocol";
  CHECK(error_for(plaintext, "kafka.security.sasl_mechanism").message == unused);
  CHECK(error_for(plaintext, "kafka.security.sasl_username").message == unused);
  CHECK(error_for(plaintext, "kafka.security.sasl_password").message ==
        "is set, but protocol SSL does not use it: unset CLEARING_ADAPTER_KAFKA_SASL_PASSWORD (or "
        "CLEARING_ADAPTER_KAFKA_SASL_PASSWORD_FILE, a file holding it), or set "
        "kafka.security.protocol");
  // A password left in the environment of an adapter without kafka.security is refused too.
  MapEnvironment stale = env_with_secrets();
  stale.set(kOptionalEnvKafkaSaslPassword, kKafkaPasswordValue);
  const auto shipped = load_config(shipped_path("dk"), stale);
  CHECK(error_for_file(shipped, "kafka.security.sasl_password")
            .starts_with("is set, but protocol PLAINTEXT does not use it"));
  CHECK(shipped.error().to_string().find("XYZ") == std::string::npos);
}

TEST_CASE("kafka.security: the passwords are never read from the file") {
  const auto sasl = load_secured({{"protocol", "SASL_SSL"},
                                  {"sasl_mechanism", "PLAIN"},
                                  {"sasl_username", "u"},
                                  {"sasl_password", "in-the-file"}},
                                 {{kOptionalEnvKafkaSaslPassword, kKafkaPasswordValue}});
  CHECK(error_for(sasl, "kafka.security.sasl_password").message ==
        "secrets are never read from the file: remove this key and set "
        "CLEARING_ADAPTER_KAFKA_SASL_PASSWORD in the environment");
  const auto key = load_secured({{"protocol", "SSL"}, {"ssl_key_password", "in-the-file"}});
  CHECK(error_for(key, "kafka.security.ssl_key_password").message ==
        "secrets are never read from the file: remove this key and set "
        "CLEARING_ADAPTER_KAFKA_SSL_KEY_PASSWORD in the environment");
  // Both ways at once, as for every secret.
  const SecretFile password(kKafkaPasswordValue, kOwnerRead);
  const auto both =
      load_secured({{"protocol", "SASL_SSL"}, {"sasl_mechanism", "PLAIN"}, {"sasl_username", "u"}},
                   {{kOptionalEnvKafkaSaslPassword, kKafkaPasswordValue},
                    {sasl_password_file_variable(), password.path.string()}});
  CHECK(error_for(both, "kafka.security.sasl_password").message ==
        "set either CLEARING_ADAPTER_KAFKA_SASL_PASSWORD or "
        "CLEARING_ADAPTER_KAFKA_SASL_PASSWORD_FILE, not both");
}

TEST_CASE("kafka.security: SSL files only with TLS; a certificate and its key together") {
  const SecretFile ca(kCertificate, kOwnerRead);
  const auto plaintext = load_secured({{"ssl_ca_location", ca.path.string()}});
  CHECK(error_for(plaintext, "kafka.security.ssl_ca_location").message ==
        "is only for protocol SSL or SASL_SSL, not PLAINTEXT: the connection would not use it; "
        "remove it, or set kafka.security.protocol");
  CHECK(plaintext.error().errors.size() == 1);
  const auto sasl_plaintext = load_secured({{"protocol", "SASL_PLAINTEXT"},
                                            {"sasl_mechanism", "SCRAM-SHA-256"},
                                            {"sasl_username", "u"},
                                            {"ssl_certificate_location", ca.path.string()},
                                            {"ssl_endpoint_identification_algorithm", "none"}},
                                           {{kOptionalEnvKafkaSaslPassword, kKafkaPasswordValue},
                                            {kOptionalEnvKafkaSslKeyPassword, kKeyPasswordValue}});
  CHECK(error_for(sasl_plaintext, "kafka.security.ssl_certificate_location")
            .message.starts_with("is only for protocol SSL or SASL_SSL, not SASL_PLAINTEXT: "));
  CHECK(error_for(sasl_plaintext, "kafka.security.ssl_endpoint_identification_algorithm")
            .message.starts_with("is only for protocol SSL or SASL_SSL, not SASL_PLAINTEXT: "));
  CHECK(error_for(sasl_plaintext, "kafka.security.ssl_key_password").message ==
        "is set, but protocol SASL_PLAINTEXT does not use TLS: unset "
        "CLEARING_ADAPTER_KAFKA_SSL_KEY_PASSWORD (or CLEARING_ADAPTER_KAFKA_SSL_KEY_PASSWORD_FILE, "
        "a file holding it), or set kafka.security.protocol");

  const SecretFile key(kPlainKey, kOwnerRead);
  const auto certificate_alone =
      load_secured({{"protocol", "SSL"}, {"ssl_certificate_location", ca.path.string()}});
  CHECK(error_for(certificate_alone, "kafka.security.ssl_key_location").message ==
        "required with kafka.security.ssl_certificate_location: the client certificate's "
        "private key (PEM)");
  const auto key_alone =
      load_secured({{"protocol", "SSL"}, {"ssl_key_location", key.path.string()}});
  CHECK(error_for(key_alone, "kafka.security.ssl_certificate_location").message ==
        "required with kafka.security.ssl_key_location: the client certificate (PEM) of that key");
  const auto password_alone =
      load_secured({{"protocol", "SSL"}}, {{kOptionalEnvKafkaSslKeyPassword, kKeyPasswordValue}});
  CHECK(error_for(password_alone, "kafka.security.ssl_key_password").message ==
        "is set, but kafka.security.ssl_key_location is not: unset "
        "CLEARING_ADAPTER_KAFKA_SSL_KEY_PASSWORD (or CLEARING_ADAPTER_KAFKA_SSL_KEY_PASSWORD_FILE, "
        "a file holding it), or name the encrypted key");
  const auto empty = load_secured({{"protocol", "SSL"}, {"ssl_ca_location", ""}});
  CHECK(error_for(empty, "kafka.security.ssl_ca_location").message ==
        "must not be empty (leave the key out)");
}

TEST_CASE(
    "kafka.security: files missing or not files; a key readable by others, not PEM, "
    "encrypted without its password or a password for a plain key") {
  const SecretFile certificate(kCertificate, kOwnerRead | kOthersRead);
  const std::string missing = certificate.dir.string() + "/none.pem";
  const auto ca_missing = load_secured({{"protocol", "SSL"}, {"ssl_ca_location", missing}});
  CHECK(error_for(ca_missing, "kafka.security.ssl_ca_location").message ==
        "cannot read \"" + missing + "\": No such file or directory");
  const auto ca_folder =
      load_secured({{"protocol", "SSL"}, {"ssl_ca_location", certificate.dir.string()}});
  CHECK(error_for(ca_folder, "kafka.security.ssl_ca_location").message ==
        "\"" + certificate.dir.string() + "\" is not a regular file");
  if (::geteuid() != 0) {  // root reads any file: the refusal needs another user
    const SecretFile unreadable(kCertificate, std::filesystem::perms::none);
    const auto refused =
        load_secured({{"protocol", "SSL"}, {"ssl_ca_location", unreadable.path.string()}});
    CHECK(error_for(refused, "kafka.security.ssl_ca_location").message ==
          "cannot read \"" + unreadable.path.string() + "\": Permission denied");
  }
  const auto with_key = [&](const std::string& key_path,
                            const std::map<std::string, std::string>& env = {}) {
    return load_secured({{"protocol", "SSL"},
                         {"ssl_certificate_location", certificate.path.string()},
                         {"ssl_key_location", key_path}},
                        env);
  };
  const auto key_missing = with_key(missing);
  CHECK(error_for(key_missing, "kafka.security.ssl_key_location").message ==
        "cannot read \"" + missing + "\": No such file or directory");
  const SecretFile shared_key(kPlainKey, kOwnerRead | kOthersRead);
  CHECK(error_for(with_key(shared_key.path.string()), "kafka.security.ssl_key_location").message ==
        "\"" + shared_key.path.string() +
            "\" is readable or writable by others (mode 0404): chmod o-rwx it (Kubernetes: "
            "defaultMode 0440 or 0400; compose: the secret's mode)");
  const SecretFile not_pem("just text", kOwnerRead);
  CHECK(error_for(with_key(not_pem.path.string()), "kafka.security.ssl_key_location").message ==
        "\"" + not_pem.path.string() +
            "\" holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)");
  const SecretFile encrypted(kEncryptedKey, kOwnerRead);
  CHECK(error_for(with_key(encrypted.path.string()), "kafka.security.ssl_key_password").message ==
        "not set: \"" + encrypted.path.string() +
            "\" (kafka.security.ssl_key_location) holds an encrypted key; set its password in "
            "CLEARING_ADAPTER_KAFKA_SSL_KEY_PASSWORD (or "
            "CLEARING_ADAPTER_KAFKA_SSL_KEY_PASSWORD_FILE, a file holding it)");
  const SecretFile plain(kPlainKey, kOwnerRead);
  CHECK(error_for(
            with_key(plain.path.string(), {{kOptionalEnvKafkaSslKeyPassword, kKeyPasswordValue}}),
            "kafka.security.ssl_key_password")
            .message == "is set, but \"" + plain.path.string() +
                            "\" (kafka.security.ssl_key_location) holds a key that is not "
                            "encrypted: unset CLEARING_ADAPTER_KAFKA_SSL_KEY_PASSWORD (or "
                            "CLEARING_ADAPTER_KAFKA_SSL_KEY_PASSWORD_FILE, a file holding it), "
                            "or name the encrypted key");
  // An encrypted key in the older OpenSSL form is recognised too.
  const SecretFile traditional(
      "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nMIIB\n"
      "-----END RSA PRIVATE KEY-----\n",
      kOwnerRead);
  CHECK(with_key(traditional.path.string(), {{kOptionalEnvKafkaSslKeyPassword, kKeyPasswordValue}})
            .has_value());
}

TEST_CASE("kafka.security: host names unchecked only when acknowledged, then a warning") {
  const auto refused =
      load_secured({{"protocol", "SSL"}, {"ssl_endpoint_identification_algorithm", "none"}});
  CHECK(error_for(refused, "kafka.security.ssl_endpoint_identification_algorithm").message ==
        "\"none\" turns off the check that a broker's certificate names the broker: anyone "
        "holding a certificate from a trusted CA could pose as a broker. Set "
        "kafka.security.unverified_tls_acknowledged: true to run so anyway (a warning at every "
        "start)");
  const auto acknowledged = load_secured({{"protocol", "SSL"},
                                          {"ssl_endpoint_identification_algorithm", "none"},
                                          {"unverified_tls_acknowledged", true}});
  REQUIRE(acknowledged.has_value());
  const auto warnings = config_warnings(*acknowledged);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].to_string() ==
        "config/dk.json: kafka.security.ssl_endpoint_identification_algorithm: none "
        "(acknowledged): the brokers' host names are not checked against their certificates; "
        "anyone holding a certificate from a trusted CA can pose as a broker");
  CHECK(redacted_summary(*acknowledged)
            .find("kafka.security.ssl_endpoint_identification_algorithm=none") !=
        std::string::npos);
  const auto stale = load_secured({{"protocol", "SSL"}, {"unverified_tls_acknowledged", true}});
  CHECK(error_for(stale, "kafka.security.unverified_tls_acknowledged").message ==
        "is only for ssl_endpoint_identification_algorithm \"none\"; remove it while host names "
        "are checked");
}

TEST_CASE("kafka.security with the embedded cluster is refused: it speaks PLAINTEXT only") {
  const auto loaded = load_edited([](Json& j) { j["kafka"]["security"] = {{"protocol", "SSL"}}; });
  CHECK(error_for(loaded, "kafka.security.protocol").message ==
        "must be \"PLAINTEXT\" with kafka.brokers \"embedded\": the embedded cluster (librdkafka's "
        "mock cluster) speaks PLAINTEXT only, no TLS and no SASL; name the real brokers to use "
        "SSL, got \"SSL\"");
  CHECK(loaded.error().errors.size() == 1);
}

TEST_CASE("kafka.security: validate() checks a config built in code") {
  auto loaded = load_config(shipped_path("dk"), env_with_secrets());
  REQUIRE(loaded.has_value());
  AdapterConfig config = *loaded;
  config.kafka.brokers = kKafkaBrokers;
  config.kafka.security.protocol = KafkaSecurityProtocol::sasl_ssl;
  config.kafka.security.sasl_mechanism = SaslMechanism::plain;
  config.kafka.security.sasl_username = "u";
  const auto errors = validate(config);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].key == "kafka.security.sasl_password");
  config.kafka.security.sasl_password = Secret(kKafkaPasswordValue);
  CHECK(validate(config).empty());
}

TEST_CASE("the API's tokens by role: optional, each its own, never in the file (issue 21)") {
  const std::string metrics(kApiTokenLengthMin, 'm');
  const std::string op(kApiTokenLengthMin, 'o');
  const auto load_with = [](std::map<std::string, std::string> more) {
    more.emplace(kEnvClearingToken, kClearingTokenValue);
    more.emplace(kEnvApiToken, kApiTokenValue);
    more.emplace(kEnvCoreCatchupToken, kCoreTokenValue);
    more.emplace(kEnvDataKek, kDataKekValue);
    return load_config(shipped_path("dk"), MapEnvironment(std::move(more)));
  };
  // Optional: without them the adapter has its API token only.
  const auto without = load_with({});
  REQUIRE(without.has_value());
  CHECK_FALSE(without->http.metrics_token.is_set());
  CHECK_FALSE(without->http.operator_token.is_set());
  CHECK(redacted_summary(*without).find("http.metrics_token=unset") != std::string::npos);
  CHECK(redacted_summary(*without).find("http.operator_token=unset") != std::string::npos);

  const auto both = load_with({{kEnvMetricsToken, metrics}, {kEnvOperatorToken, op}});
  REQUIRE(both.has_value());
  CHECK(both->http.metrics_token.reveal() == metrics);
  CHECK(both->http.operator_token.reveal() == op);
  const auto summary = redacted_summary(*both);
  CHECK(summary.find("http.metrics_token=set") != std::string::npos);
  CHECK(summary.find("http.operator_token=set") != std::string::npos);
  CHECK(summary.find(metrics) == std::string::npos);
  CHECK(summary.find(op) == std::string::npos);

  // From a file, like every secret; given both ways, refused naming both variables.
  const SecretFile file(op + "\n", kOwnerRead);
  const auto from_file = load_with({{std::string(kEnvOperatorToken) + "_FILE", file.path}});
  REQUIRE(from_file.has_value());
  CHECK(from_file->http.operator_token.reveal() == op);
  CHECK(error_for_file(load_with({{kEnvOperatorToken, op},
                                  {std::string(kEnvOperatorToken) + "_FILE", file.path}}),
                       "http.operator_token") ==
        "set either CLEARING_ADAPTER_OPERATOR_TOKEN or CLEARING_ADAPTER_OPERATOR_TOKEN_FILE, not "
        "both");

  // Each its own: the same secret for two roles is refused, naming the other variable.
  const auto same_as = [&](const char* variable, const std::string& value, const char* key,
                           const std::string& expected) {
    CAPTURE(variable);
    const auto loaded = load_with({{variable, value}});
    CHECK(error_for_file(loaded, key) ==
          "must differ from " + expected +
              ": each token opens its own role's routes and names its holder");
    CHECK(loaded.error().to_string().find(value) == std::string::npos);
  };
  same_as(kEnvOperatorToken, kApiTokenValue, "http.operator_token", kEnvApiToken);
  same_as(kEnvMetricsToken, kApiTokenValue, "http.metrics_token", kEnvApiToken);
  // The core's credential is the adapter's toward the core: never one that opens the API.
  // (The core's token may be 16 characters; one as long as the role tokens is needed here.)
  const std::string core_long = std::string(kCoreTokenValue) + "-0123456789abcdef";
  const auto core_same =
      load_config(shipped_path("dk"), MapEnvironment({{kEnvClearingToken, kClearingTokenValue},
                                                      {kEnvApiToken, kApiTokenValue},
                                                      {kEnvCoreCatchupToken, core_long},
                                                      {kEnvDataKek, kDataKekValue},
                                                      {kEnvOperatorToken, core_long}}));
  CHECK(error_for_file(core_same, "http.operator_token") ==
        "must differ from CLEARING_ADAPTER_CORE_CATCHUP_TOKEN: each token opens its own role's "
        "routes and names its holder");
  const auto metrics_is_operator = load_with({{kEnvMetricsToken, op}, {kEnvOperatorToken, op}});
  CHECK(error_for_file(metrics_is_operator, "http.metrics_token") ==
        "must differ from CLEARING_ADAPTER_OPERATOR_TOKEN: each token opens its own role's routes "
        "and names its holder");
  CHECK(error_for_file(metrics_is_operator, "http.operator_token") ==
        "must differ from CLEARING_ADAPTER_METRICS_TOKEN: each token opens its own role's routes "
        "and names its holder");

  // Checked like the API token: short ones and spaces refused, the value never shown.
  CHECK(error_for_file(load_with({{kEnvOperatorToken, "short"}}), "http.operator_token") ==
        "must be 32 to 4096 characters long (from CLEARING_ADAPTER_OPERATOR_TOKEN or "
        "CLEARING_ADAPTER_OPERATOR_TOKEN_FILE; the value is not shown): generate one, e.g. "
        "openssl rand -hex 16");
  CHECK(error_for_file(load_with({{kEnvMetricsToken, metrics + " x"}}), "http.metrics_token")
            .starts_with("must not contain white space"));

  // Never in the file.
  for (const char* key : {"metrics_token", "operator_token"}) {
    CAPTURE(key);
    const auto in_file = load_edited([key](Json& j) { j["http"][key] = "a-token-in-the-file"; });
    CHECK(
        error_for(in_file, std::string("http.") + key)
            .message.starts_with(
                "secrets are never read from the file: remove this key and set CLEARING_ADAPTER_"));
  }
}

// ---- TLS files (issue 21, item 2) ---------------------------------------------------------

namespace {

constexpr auto kOwnerWrite = std::filesystem::perms::owner_write;

// A certificate (0644: public) and a key (0600) in temporary folders. Their content is not
// PEM: the config checks that they can be read, the TLS code what they hold.
struct TlsFiles {
  SecretFile cert{"-----BEGIN CERTIFICATE-----",
                  kOwnerRead | kOwnerWrite | kGroupRead | kOthersRead};
  SecretFile key{"-----BEGIN PRIVATE KEY----- KEY-CONTENT-XYZ", kOwnerRead | kOwnerWrite};
  SecretFile ca{"-----BEGIN CERTIFICATE----- CA", kOwnerRead | kGroupRead | kOthersRead};
};

}  // namespace

TEST_CASE("TLS files: clearing mTLS, the catch-up link and the API, paths in the summary") {
  TlsFiles files;
  const auto loaded = load_edited([&](Json& j) {
    j["clearing"]["base_url"] = "https://clearing.example/api";
    j["clearing"]["client_cert_file"] = files.cert.path.string();
    j["clearing"]["client_key_file"] = files.key.path.string();
    j["streams"]["core_catchup_url"] = "https://core.internal:8092";
    j["streams"]["core_catchup_ca_file"] = files.ca.path.string();
    j["streams"]["core_catchup_client_cert_file"] = files.cert.path.string();
    j["streams"]["core_catchup_client_key_file"] = files.key.path.string();
    j["http"]["tls_cert_file"] = files.cert.path.string();
    j["http"]["tls_key_file"] = files.key.path.string();
    j["http"]["tls_client_ca_file"] = files.ca.path.string();
  });
  REQUIRE_MESSAGE(loaded.has_value(), (loaded ? "" : loaded.error().to_string()));
  CHECK(loaded->clearing.client_cert_file == files.cert.path.string());
  CHECK(loaded->clearing.client_key_file == files.key.path.string());
  CHECK(loaded->streams.core_catchup_ca_file == files.ca.path.string());
  CHECK(loaded->streams.core_catchup_client_key_file == files.key.path.string());
  CHECK(loaded->http.tls_cert_file == files.cert.path.string());
  CHECK(loaded->http.tls_client_ca_file == files.ca.path.string());
  const auto summary = redacted_summary(*loaded);
  CAPTURE(summary);
  CHECK(summary.find("clearing.client_key_file=" + files.key.path.string()) != std::string::npos);
  CHECK(summary.find("streams.core_catchup_ca_file=" + files.ca.path.string()) !=
        std::string::npos);
  CHECK(summary.find("http.tls_cert_file=" + files.cert.path.string()) != std::string::npos);
  CHECK(summary.find("http.tls_client_ca_file=" + files.ca.path.string()) != std::string::npos);
  CHECK(summary.find("KEY-CONTENT") == std::string::npos);
  CHECK(summary.find("BEGIN") == std::string::npos);
  // Without TLS keys the summary says so.
  const auto plain = load_edited([](Json&) {});
  REQUIRE(plain.has_value());
  CHECK(redacted_summary(*plain).find("clearing.client_cert_file=none") != std::string::npos);
  CHECK(redacted_summary(*plain).find("http.tls_cert_file=none") != std::string::npos);
}

TEST_CASE("TLS files: a certificate without its key, or a key without its certificate") {
  TlsFiles files;
  const auto cert = files.cert.path.string();
  const auto key = files.key.path.string();
  const auto loaded = load_edited([&](Json& j) {
    j["clearing"]["client_cert_file"] = cert;
    j["streams"]["core_catchup_client_key_file"] = key;
    j["http"]["tls_cert_file"] = cert;
  });
  CHECK(error_for(loaded, "clearing.client_key_file").message ==
        "missing: clearing.client_cert_file is set, and a certificate needs both "
        "clearing.client_cert_file and clearing.client_key_file");
  CHECK(error_for(loaded, "streams.core_catchup_client_cert_file").message ==
        "missing: streams.core_catchup_client_key_file is set, and a certificate needs both "
        "streams.core_catchup_client_cert_file and streams.core_catchup_client_key_file");
  CHECK(error_for(loaded, "http.tls_key_file").message ==
        "missing: http.tls_cert_file is set, and a certificate needs both http.tls_cert_file and "
        "http.tls_key_file");
  const auto client_ca_alone =
      load_edited([&](Json& j) { j["http"]["tls_client_ca_file"] = files.ca.path.string(); });
  CHECK(error_for(client_ca_alone, "http.tls_client_ca_file").message ==
        "needs http.tls_cert_file and http.tls_key_file: client certificates are asked for only "
        "over TLS");
  const auto empty = load_edited([](Json& j) { j["http"]["tls_client_ca_file"] = ""; });
  CHECK(error_for(empty, "http.tls_client_ca_file").message ==
        "must not be empty (leave the key out for none)");
}

TEST_CASE("TLS files: missing, not a file, and a private key others may read") {
  TlsFiles files;
  const auto missing = files.cert.dir.string() + "/missing.pem";
  const auto loaded = load_edited([&](Json& j) {
    j["clearing"]["client_cert_file"] = missing;
    j["clearing"]["client_key_file"] = files.key.path.string();
    j["streams"]["core_catchup_ca_file"] = files.ca.dir.string();
  });
  CHECK(error_for(loaded, "clearing.client_cert_file").message ==
        "cannot read \"" + missing + "\": No such file or directory");
  CHECK(error_for(loaded, "streams.core_catchup_ca_file").message ==
        "\"" + files.ca.dir.string() + "\" is not a regular file");
  CHECK(loaded.error().find("clearing.client_key_file") == nullptr);

  std::filesystem::permissions(files.key.path, kOwnerRead | kOwnerWrite | kGroupRead | kOthersRead);
  for (const char* section : {"clearing", "http"}) {
    CAPTURE(section);
    const bool api = std::string(section) == "http";
    const auto shared = load_edited([&](Json& j) {
      j[section][api ? "tls_cert_file" : "client_cert_file"] = files.cert.path.string();
      j[section][api ? "tls_key_file" : "client_key_file"] = files.key.path.string();
    });
    CHECK(error_for(shared, std::string(section) + (api ? ".tls_key_file" : ".client_key_file"))
              .message == "\"" + files.key.path.string() +
                              "\" is readable or writable by others (mode 0644): chmod o-rwx it "
                              "(Kubernetes: defaultMode 0440 or 0400; compose: the secret's mode)");
    CHECK(shared.error().to_string().find("KEY-CONTENT") == std::string::npos);
  }
  // A certificate is public: others may read it.
  std::filesystem::permissions(files.key.path, kOwnerRead | kOwnerWrite);
  CHECK(load_edited([&](Json& j) {
          j["http"]["tls_cert_file"] = files.cert.path.string();
          j["http"]["tls_key_file"] = files.key.path.string();
        }).has_value());
}

TEST_CASE("log_format: text by default, json from the file or CLEARING_ADAPTER_LOG_FORMAT") {
  const auto shipped = load_edited([](Json&) {});
  REQUIRE(shipped.has_value());
  CHECK(shipped->log_format == clearing::base::LogFormat::text);
  CHECK(redacted_summary(*shipped).find(" log_format=text") != std::string::npos);

  const auto from_file = load_edited([](Json& j) { j["log_format"] = "json"; });
  REQUIRE(from_file.has_value());
  CHECK(from_file->log_format == clearing::base::LogFormat::json);
  CHECK(redacted_summary(*from_file).find(" log_format=json") != std::string::npos);

  // The variable overrides the file, either way.
  MapEnvironment env = env_with_secrets();
  env.set(kOptionalEnvLogFormat, "json");
  const auto from_env = load_edited([](Json& j) { j["log_format"] = "text"; }, env);
  REQUIRE(from_env.has_value());
  CHECK(from_env->log_format == clearing::base::LogFormat::json);
  env.set(kOptionalEnvLogFormat, "text");
  const auto back = load_edited([](Json& j) { j["log_format"] = "json"; }, env);
  REQUIRE(back.has_value());
  CHECK(back->log_format == clearing::base::LogFormat::text);
  // An empty variable counts as unset.
  env.set(kOptionalEnvLogFormat, "");
  const auto empty = load_edited([](Json& j) { j["log_format"] = "json"; }, env);
  REQUIRE(empty.has_value());
  CHECK(empty->log_format == clearing::base::LogFormat::json);
}

TEST_CASE("log_format: a bad value in the file or the variable is an error naming the key") {
  const auto in_file = load_edited([](Json& j) { j["log_format"] = "xml"; });
  REQUIRE_FALSE(in_file.has_value());
  CHECK(in_file.error().errors.size() == 1);
  CHECK(in_file.error().to_string() ==
        "config/dk.json: log_format: must be \"text\" or \"json\", got \"xml\"");

  const auto wrong_type = load_edited([](Json& j) { j["log_format"] = 1; });
  REQUIRE_FALSE(wrong_type.has_value());
  CHECK(error_for(wrong_type, "log_format").message == "must be a string, got number 1");

  MapEnvironment env = env_with_secrets();
  env.set(kOptionalEnvLogFormat, "JSON");
  const auto in_env = load_edited([](Json&) {}, env);
  REQUIRE_FALSE(in_env.has_value());
  CHECK(in_env.error().errors.size() == 1);
  CHECK(in_env.error().to_string() ==
        "config/dk.json: log_format: from CLEARING_ADAPTER_LOG_FORMAT: must be \"text\" or "
        "\"json\", got \"JSON\"");
}

TEST_CASE("streams.core_story_url: optional, an http(s) base URL, named in its error") {
  const auto shipped = load_edited([](Json&) {});
  REQUIRE(shipped.has_value());
  CHECK(shipped->streams.core_story_url.empty());
  CHECK(redacted_summary(*shipped).find("core_story_url") == std::string::npos);
  const auto set =
      load_edited([](Json& j) { j["streams"]["core_story_url"] = "https://core.internal:8092"; });
  REQUIRE(set.has_value());
  CHECK(set->streams.core_story_url == "https://core.internal:8092");
  CHECK(redacted_summary(*set).find("streams.core_story_url=https://core.internal:8092") !=
        std::string::npos);
  const auto bad = load_edited([](Json& j) { j["streams"]["core_story_url"] = "core:8092"; });
  CHECK(error_for(bad, "streams.core_story_url").message ==
        "must start with http:// or https://, got \"core:8092\"");
  const auto secret = load_edited(
      [](Json& j) { j["streams"]["core_story_url"] = "http://core:hunter5@core.internal:8092"; });
  CHECK(error_for(secret, "streams.core_story_url")
            .message.ends_with("got \"http://***@core.internal:8092\""));
  CHECK(secret.error().to_string().find("hunter5") == std::string::npos);
  CHECK_FALSE(core_story_url_problem("http://127.0.0.1:8092").has_value());
  CHECK(core_story_url_problem("ftp://core") == "must start with http:// or https://");
}

// ---------------------------------------------------------------------------------------
// clearing.maintenance_windows (issue 23, item 3).

TEST_CASE("clearing.maintenance_windows: none by default; weekly and dated windows are read") {
  const auto shipped = load_edited([](Json&) {});
  REQUIRE(shipped.has_value());
  CHECK(shipped->clearing.maintenance_windows.size() == 0);
  CHECK(redacted_summary(*shipped).find("clearing.maintenance_windows=0") != std::string::npos);
  const auto loaded = load_edited([](Json& j) {
    j["clearing"]["maintenance_windows"] = Json::parse(R"([
      {"weekday": "sun", "start": "01:00", "end": "03:00"},
      {"start": "2026-12-24T20:00:00Z", "end": "2026-12-25T02:00:00Z"},
      {"weekday": "Sat", "start": "23:00", "end": "24:00"}])");
  });
  REQUIRE_MESSAGE(loaded.has_value(), loaded.error().to_string());
  const auto& windows = loaded->clearing.maintenance_windows;
  REQUIRE(windows.weekly.size() == 2);
  REQUIRE(windows.dated.size() == 1);
  CHECK(windows.weekly[0].first == 0);
  CHECK(windows.weekly[0].second == WeeklyMaintenanceWindow{std::chrono::Sunday,
                                                            std::chrono::minutes{60},
                                                            std::chrono::minutes{180}});
  CHECK(windows.weekly[1].first == 2);
  CHECK(windows.weekly[1].second.end == std::chrono::minutes{24 * 60});
  CHECK(windows.dated[0].first == 1);
  CHECK(windows.dated[0].second.start == sys_days{ymd(2026, 12, 24)} + std::chrono::hours{20});
  CHECK(windows.dated[0].second.end == sys_days{ymd(2026, 12, 25)} + std::chrono::hours{2});
  CHECK(redacted_summary(*loaded).find("clearing.maintenance_windows=3") != std::string::npos);
  // What the dispatcher holds: the same windows, without their indexes.
  const auto held = windows.windows();
  CHECK(held.weekly ==
        std::vector<WeeklyMaintenanceWindow>{windows.weekly[0].second, windows.weekly[1].second});
  CHECK(held.dated == std::vector<DatedMaintenanceWindow>{windows.dated[0].second});
  CHECK(shipped->clearing.maintenance_windows.windows().empty());
}

TEST_CASE("clearing.maintenance_windows: a bad window is named by its key") {
  const auto with = [](const char* windows) {
    return load_edited(
        [windows](Json& j) { j["clearing"]["maintenance_windows"] = Json::parse(windows); });
  };
  const std::string key = "clearing.maintenance_windows";
  CHECK(
      error_for(with(R"([{"weekday": "sun", "start": "03:00", "end": "01:00"}])"), key + "[0].end")
          .message ==
      "must be after start (03:00), at most 24:00, got 01:00 (a weekly window lies within its "
      "day, UTC)");
  CHECK(error_for(with(R"([{"start": "2026-12-25T02:00:00Z", "end": "2026-12-24T20:00:00Z"}])"),
                  key + "[0].end")
            .message ==
        "must be after start (2026-12-25T02:00:00.000Z), got 2026-12-24T20:00:00.000Z");
  CHECK(error_for(with(R"([{"start": "2026-12-24T20:00:00Z", "end": "2026-12-24T20:00:00Z"}])"),
                  key + "[0].end")
            .message.starts_with("must be after start"));
  CHECK(error_for(with(R"([{"weekday": "sunday", "start": "01:00", "end": "03:00"}])"),
                  key + "[0].weekday")
            .message == "must be one of Mon, Tue, Wed, Thu, Fri, Sat, Sun, got \"sunday\"");
  CHECK(error_for(with(R"([{}, {"weekday": "Sun", "start": "1:00", "end": "03:00"}])"),
                  key + "[1].start")
            .message == "must be a time \"HH:MM\" in 00:00..23:59 (UTC), got \"1:00\"");
  CHECK(
      error_for(with(R"([{"weekday": "Sun", "start": "01:00", "end": "24:01"}])"), key + "[0].end")
          .message == "must be a time \"HH:MM\" in 00:00..24:00 (UTC), got \"24:01\"");
  CHECK(error_for(with(R"([{"start": "2026-12-24 20:00", "end": "2026-12-25T02:00:00Z"}])"),
                  key + "[0].start")
            .message == "must be a UTC time \"YYYY-MM-DDTHH:MM:SSZ\", got \"2026-12-24 20:00\"");
  // A dated window without its end, an unknown key, not an array.
  CHECK_FALSE(
      error_for(with(R"([{"start": "2026-12-24T20:00:00Z"}])"), key + "[0].end").message.empty());
  CHECK_FALSE(error_for(with(R"([{"weekday": "Sun", "start": "01:00", "end": "03:00",
                                  "zone": "CET"}])"),
                        key + "[0].zone")
                  .message.empty());
  CHECK(error_for(with(R"({"weekday": "Sun"})"), key).message.starts_with("must be an array"));
}

TEST_CASE("validate() refuses a hand-built window that ends before it starts") {
  auto config = load_edited([](Json&) {});
  REQUIRE(config.has_value());
  config->clearing.maintenance_windows.dated.push_back(
      {4, DatedMaintenanceWindow{sys_days{ymd(2026, 12, 25)}, sys_days{ymd(2026, 12, 24)}}});
  const auto errors = validate(*config, {});
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].key == "clearing.maintenance_windows[4].end");
}

// ---------------------------------------------------------------------------------------
// Countries as data and Finland (issue 23).

namespace {

// The FI file, changed by `edit`, parsed under the name config/fi.json.
tl::expected<AdapterConfig, ConfigErrors> load_fi_edited(const std::function<void(Json&)>& edit) {
  Json document = shipped_json("fi");
  edit(document);
  return parse_config(document.dump(2), "config/fi.json", env_with_secrets());
}

// Easter Sunday of the Gregorian calendar (the anonymous Gregorian algorithm, Meeus/Butcher).
year_month_day easter_sunday(int y) {
  const int a = y % 19, b = y / 100, c = y % 100, d = b / 4, e = b % 4, f = (b + 8) / 25;
  const int g = (b - f + 1) / 3, h = (19 * a + b - d - g + 15) % 30, i = c / 4, k = c % 4;
  const int l = (32 + 2 * e + 2 * i - h - k) % 7, m = (a + 11 * h + 22 * l) / 451;
  const int month_number = (h + l - 7 * m + 114) / 31, day_number = (h + l - 7 * m + 114) % 31 + 1;
  return ymd(y, static_cast<unsigned>(month_number), static_cast<unsigned>(day_number));
}

year_month_day plus_days(year_month_day date, int days) {
  return year_month_day{sys_days{date} + std::chrono::days{days}};
}

// TARGET's closing days of a year: New Year, Good Friday, Easter Monday, 1 May, 25 and 26 Dec.
std::vector<year_month_day> target_holidays(int y) {
  const auto easter = easter_sunday(y);
  return {ymd(y, 1, 1), plus_days(easter, -2), plus_days(easter, 1),
          ymd(y, 5, 1), ymd(y, 12, 25),        ymd(y, 12, 26)};
}

}  // namespace

TEST_CASE("the shipped FI file loads: EUR in cents, IBANs only, SEPA Instant's limit") {
  const auto loaded = load_config(shipped_path("fi"), env_with_secrets());
  INFO((loaded ? std::string() : loaded.error().to_string()));
  REQUIRE(loaded.has_value());
  const auto& config = *loaded;
  CHECK(config.country.code == Country::fi);
  CHECK(config.country.currency == "EUR");
  CHECK(config.country.currency_minor_units == 2);
  // SEPA Instant's limit per transfer: 100,000.00 EUR.
  CHECK(config.country.amount_limit_minor == 10'000'000);
  CHECK(config.country.account_schemes ==
        std::vector<clearing::sagas::AccountScheme>{clearing::sagas::AccountScheme::iban});
  CHECK(config.country.business_days.bank_closing_days.empty());
  CHECK(config.streams.inbound.name == "core.fi.payments.v1");
  REQUIRE(config.streams.outbound.size() == 4);
  for (const auto& stream : config.streams.outbound) {
    CAPTURE(stream.name);
    CHECK(stream.name.starts_with("adapter.fi."));
  }
  CHECK(config.kafka.group_id == "clearing-adapter-fi");
  CHECK(config.database.url == "postgresql://postgres@127.0.0.1:5432/clearing_fi");
  CHECK(validate(config).empty());
  const std::string summary = redacted_summary(config);
  CHECK(summary.find("country.code=FI") != std::string::npos);
  CHECK(summary.find("country.currency_minor_units=2") != std::string::npos);
  CHECK(summary.find("country.account_schemes=IBAN ") != std::string::npos);
}

TEST_CASE("the DK, SE and NO files keep both schemes without naming them") {
  for (const char* cc : {"dk", "se", "no"}) {
    CAPTURE(cc);
    const auto loaded = load_config(shipped_path(cc), env_with_secrets());
    REQUIRE(loaded.has_value());
    CHECK(loaded->country.account_schemes ==
          std::vector<clearing::sagas::AccountScheme>{clearing::sagas::AccountScheme::iban,
                                                      clearing::sagas::AccountScheme::bban});
    CHECK(loaded->country.currency_minor_units == 2);
  }
}

TEST_CASE("Easter as the FI calendar computes it: Good Friday and Easter Monday") {
  // Published dates of Good Friday and Easter Monday.
  struct Easter {
    int year;
    year_month_day good_friday;
    year_month_day easter_monday;
  };
  for (const auto& expected : {Easter{2026, ymd(2026, 4, 3), ymd(2026, 4, 6)},
                               Easter{2027, ymd(2027, 3, 26), ymd(2027, 3, 29)},
                               Easter{2028, ymd(2028, 4, 14), ymd(2028, 4, 17)},
                               Easter{2029, ymd(2029, 3, 30), ymd(2029, 4, 2)},
                               Easter{2030, ymd(2030, 4, 19), ymd(2030, 4, 22)},
                               Easter{2038, ymd(2038, 4, 23), ymd(2038, 4, 26)}}) {
    CAPTURE(expected.year);
    const auto holidays = target_holidays(expected.year);
    CHECK(holidays[1] == expected.good_friday);
    CHECK(holidays[2] == expected.easter_monday);
    CHECK(weekday{sys_days{expected.good_friday}} == Friday);
    CHECK(weekday{sys_days{expected.easter_monday}} == Monday);
  }
}

TEST_CASE("the FI file lists exactly TARGET's closing days of the years it covers") {
  const auto loaded = load_config(shipped_path("fi"), env_with_secrets());
  REQUIRE(loaded.has_value());
  const auto& country = loaded->country;
  std::vector<year_month_day> expected;
  for (const int y : {2026, 2027}) {
    const auto days = target_holidays(y);
    expected.insert(expected.end(), days.begin(), days.end());
  }
  std::sort(expected.begin(), expected.end());
  CHECK(country.business_days.holidays == expected);
  for (const auto date : expected) {
    CAPTURE(format_date(date));
    CHECK_FALSE(country.is_business_day(date));
  }
  // Easter 2026: Thursday 2 April is a business day (a holiday in DK, not in TARGET), the
  // next business day after it is Tuesday 7 April.
  CHECK(country.is_business_day(ymd(2026, 4, 2)));
  CHECK(country.next_business_day(ymd(2026, 4, 2)) == ymd(2026, 4, 7));
  CHECK(country.next_business_day(ymd(2027, 3, 25)) == ymd(2027, 3, 30));
  // 24 and 31 December are business days in TARGET; 26 Dec 2026 is a Saturday anyway.
  CHECK(country.is_business_day(ymd(2026, 12, 24)));
  CHECK(country.is_business_day(ymd(2026, 12, 31)));
  CHECK(country.next_business_day(ymd(2026, 12, 24)) == ymd(2026, 12, 28));
  // Accepted after the cut-off on Thursday 2 April 2026: it settles on Tuesday 7 April.
  const auto after_cutoff = sys_days{ymd(2026, 4, 2)} + country.cutoff_utc + minutes{1};
  CHECK(country.settlement_date(time_point_cast<milliseconds>(after_cutoff)) == ymd(2026, 4, 7));
}

TEST_CASE("bad country input at start: a clear error that names the key") {
  SUBCASE("an unknown country") {
    for (const char* code : {"GB", "EE", "XX", "fi", "Fi", ""}) {
      CAPTURE(code);
      const auto loaded = load_fi_edited([&](Json& j) { j["country"]["code"] = code; });
      CHECK(error_for_file(loaded, "country.code") ==
            std::string("must be one of \"DK\", \"SE\", \"NO\", \"FI\", got \"") + code + "\"");
    }
  }
  SUBCASE("a currency that does not match the country") {
    const auto loaded = load_fi_edited([](Json& j) { j["country"]["currency"] = "DKK"; });
    CHECK(error_for_file(loaded, "country.currency") == "must be EUR for country FI, got \"DKK\"");
    const auto sek = load_fi_edited([](Json& j) {
      j["country"]["code"] = "SE";
      for (auto& stream : j["streams"]["outbound"]) {
        stream["name"] = "adapter.se." + stream["derivation"].get<std::string>();
      }
      j["streams"]["inbound"]["name"] = "core.se.payments.v1";
    });
    CHECK(error_for_file(sek, "country.currency") == "must be SEK for country SE, got \"EUR\"");
  }
  SUBCASE("minor units that are not the currency's") {
    const auto loaded = load_fi_edited([](Json& j) { j["country"]["currency_minor_units"] = 3; });
    CHECK(error_for_file(loaded, "country.currency_minor_units") ==
          "must be 2 (ISO 4217's for EUR), got 3");
  }
  SUBCASE("an account scheme in use without a rule in the registry") {
    const auto loaded = load_fi_edited([](Json& j) {
      j["country"]["account_schemes"] = Json::array({"IBAN", "BBAN"});
    });
    REQUIRE_FALSE(loaded.has_value());
    CHECK(loaded.error().errors.size() == 1);
    CHECK(loaded.error().to_string() ==
          "config/fi.json: country.account_schemes[1]: no BBAN account rule for FI in the "
          "account-rule registry (sagas/src/account.cpp): remove BBAN or add its rule");
  }
  SUBCASE("account schemes that are no list, unknown, repeated or none") {
    CHECK(error_for_file(load_fi_edited([](Json& j) { j["country"]["account_schemes"] = "IBAN"; }),
                         "country.account_schemes") ==
          "must be an array of schemes (\"IBAN\", \"BBAN\"), got string \"IBAN\"");
    CHECK(error_for_file(load_fi_edited([](Json& j) {
                           j["country"]["account_schemes"] = Json::array({"IBAN", "iban", "PAN"});
                         }),
                         "country.account_schemes[2]") ==
          "must be \"IBAN\" or \"BBAN\", got \"PAN\"");
    CHECK(error_for_file(load_fi_edited([](Json& j) {
                           j["country"]["account_schemes"] = Json::array({"IBAN", "IBAN"});
                         }),
                         "country.account_schemes[1]") == "lists IBAN twice");
    CHECK(error_for_file(
              load_fi_edited([](Json& j) { j["country"]["account_schemes"] = Json::array(); }),
              "country.account_schemes") == "must list at least one scheme (\"IBAN\", \"BBAN\")");
  }
  SUBCASE("a holiday that is not a date") {
    for (const char* text : {"2026-13-01", "2026-04-31", "Good Friday", "2026-4-3", "03.04.2026"}) {
      CAPTURE(text);
      const auto loaded =
          load_fi_edited([&](Json& j) { j["country"]["business_days"]["holidays"][1] = text; });
      CHECK(error_for_file(loaded, "country.business_days.holidays[1]") ==
            std::string("must be a date \"YYYY-MM-DD\", got \"") + text + "\"");
    }
    const auto number =
        load_fi_edited([](Json& j) { j["country"]["business_days"]["holidays"][0] = 20260101; });
    CHECK(error_for_file(number, "country.business_days.holidays[0]") ==
          "must be a string, got number 20260101");
  }
  SUBCASE("the streams of another country") {
    const auto loaded = load_fi_edited(
        [](Json& j) { j["streams"]["outbound"][0]["name"] = "adapter.dk.payments.v1"; });
    CHECK(error_for_file(loaded, "streams.outbound[0].name") ==
          "must carry the adapter's country code fi, got \"adapter.dk.payments.v1\"");
  }
}
