// The URL parser: pure, no Asio.

#include "clearing/http/url.hpp"

#include <algorithm>
#include <charconv>

#include "clearing/base/name_table.hpp"

namespace clearing::http {
namespace {

// What is wrong with a URL, worded to follow its name ("base_url has no host").
constexpr base::NameTable<UrlError, 6> kUrlErrorTexts{{
    {UrlError::bad_scheme, "must start with http:// or https://"},
    {UrlError::credentials, "must not carry credentials"},
    {UrlError::unterminated_ipv6, "has an unterminated IPv6 address"},
    {UrlError::no_host, "has no host"},
    {UrlError::bad_host, "has a bad host (an IPv6 address goes in brackets)"},
    {UrlError::bad_port, "has a bad port (1..65535)"},
}};
static_assert(base::lists_every_enumerator(kUrlErrorTexts, UrlError::bad_port));

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

bool is_ipv6_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
         c == '.';
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  int number = 0;
  const auto* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, number);
  if (text.empty() || error != std::errc{} || stop != end || number < 1 || number > 65535)
    return std::nullopt;
  return static_cast<std::uint16_t>(number);
}

struct HostAndPort {
  std::string_view host;
  std::string_view port;  // "" when none was written
  bool ipv6 = false;
};

tl::expected<HostAndPort, UrlError> split_authority(std::string_view authority) {
  if (authority.find('@') != std::string_view::npos) return tl::unexpected(UrlError::credentials);
  HostAndPort split;
  std::string_view after_host;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return tl::unexpected(UrlError::unterminated_ipv6);
    split.host = authority.substr(1, close - 1);
    split.ipv6 = true;
    after_host = authority.substr(close + 1);
  } else {
    const auto colon = authority.find(':');
    // More than one colon: an IPv6 literal without its brackets.
    if (colon != authority.rfind(':')) return tl::unexpected(UrlError::bad_host);
    split.host = authority.substr(0, colon);
    after_host = colon == std::string_view::npos ? "" : authority.substr(colon);
  }
  if (!after_host.empty()) {
    if (!after_host.starts_with(':')) return tl::unexpected(UrlError::bad_port);
    split.port = after_host.substr(1);
    if (split.port.empty()) return tl::unexpected(UrlError::bad_port);
  }
  return split;
}

tl::expected<void, UrlError> check_host(std::string_view host, bool ipv6) {
  if (host.empty()) return tl::unexpected(UrlError::no_host);
  const bool allowed =
      ipv6 ? std::ranges::all_of(host, is_ipv6_char) && host.find(':') != std::string_view::npos
           : std::ranges::all_of(host, is_name_char);
  if (!allowed) return tl::unexpected(UrlError::bad_host);
  return {};
}

}  // namespace

std::string Url::target() const {
  std::string out = path.empty() ? "/" : path;
  if (query) out += "?" + *query;
  return out;
}

std::string Url::host_for_header() const { return is_ipv6() ? "[" + host + "]" : host; }

std::string_view to_string(UrlError error) {
  return base::name_in(kUrlErrorTexts, error).value_or("is not a URL");
}

tl::expected<Url, UrlError> parse_url(std::string_view text) {
  Url url;
  std::string_view rest;
  if (text.starts_with("http://")) {
    rest = text.substr(7);
  } else if (text.starts_with("https://")) {
    url.tls = true;
    rest = text.substr(8);
  } else {
    return tl::unexpected(UrlError::bad_scheme);
  }
  if (const auto hash = rest.find('#'); hash != std::string_view::npos) {
    url.fragment = std::string(rest.substr(hash + 1));
    rest = rest.substr(0, hash);
  }
  if (const auto question = rest.find('?'); question != std::string_view::npos) {
    url.query = std::string(rest.substr(question + 1));
    rest = rest.substr(0, question);
  }
  const auto slash = rest.find('/');
  const auto authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) url.path = std::string(rest.substr(slash));

  const auto split = split_authority(authority);
  if (!split) return tl::unexpected(split.error());
  if (auto checked = check_host(split->host, split->ipv6); !checked)
    return tl::unexpected(checked.error());
  url.host = std::string(split->host);
  if (split->port.empty()) {
    url.port = url.tls ? 443 : 80;
  } else if (const auto port = parse_port(split->port)) {
    url.port = *port;
  } else {
    return tl::unexpected(UrlError::bad_port);
  }
  return url;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const unsigned char c : text) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

}  // namespace clearing::http
