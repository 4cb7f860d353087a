#pragma once
// For tests: an OTLP/HTTP receiver (an http::HttpServer on a free port) that records the
// bodies POSTed to /v1/traces and reads the spans out of them.

#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "clearing/http/server.hpp"

namespace clearing::tracing::testing {

class OtlpReceiver {
 public:
  // One span as a test reads it, with its service's name.
  struct ReceivedSpan {
    std::string service;
    nlohmann::json span;
    std::string name() const { return span.value("name", ""); }
    std::string trace_id() const { return span.value("traceId", ""); }
    std::string span_id() const { return span.value("spanId", ""); }
    std::string parent_span_id() const { return span.value("parentSpanId", ""); }
    // The attribute's value as its JSON (e.g. {"stringValue":"x"}), null when absent.
    nlohmann::json attribute(const std::string& key) const {
      for (const auto& a : span.value("attributes", nlohmann::json::array()))
        if (a.value("key", "") == key) return a.value("value", nlohmann::json());
      return nullptr;
    }
  };

  OtlpReceiver() {
    http::HttpServerOptions options;
    auto server = http::HttpServer::create(options);
    if (!server) throw std::runtime_error(server.error().message);
    server_ = std::move(*server);
    server_->route(
        "POST", "/v1/traces",
        [this](const http::HttpRequest& request) {
          std::lock_guard lock(mutex_);
          bodies_.push_back(request.body);
          content_types_.push_back(request.headers.count("content-type")
                                       ? request.headers.at("content-type")
                                       : std::string());
          return http::HttpResponse::json(200, "{}");
        },
        false);
    if (auto started = server_->start(); !started)
      throw std::runtime_error(started.error().message);
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  void stop() { server_->stop(); }

  std::vector<std::string> bodies() const {
    std::lock_guard lock(mutex_);
    return bodies_;
  }
  std::vector<std::string> content_types() const {
    std::lock_guard lock(mutex_);
    return content_types_;
  }

  std::vector<ReceivedSpan> spans() const {
    std::vector<ReceivedSpan> out;
    for (const auto& body : bodies()) {
      const auto request = nlohmann::json::parse(body);
      for (const auto& resource : request.at("resourceSpans")) {
        std::string service;
        for (const auto& a : resource.at("resource").value("attributes", nlohmann::json::array()))
          if (a.value("key", "") == "service.name")
            service = a.at("value").value("stringValue", "");
        for (const auto& scope : resource.at("scopeSpans"))
          for (const auto& span : scope.at("spans")) out.push_back({service, span});
      }
    }
    return out;
  }

  // Waits (up to `timeout`) until `done(spans())` holds; returns whether it did.
  template <class Done>
  bool wait_for(Done done, std::chrono::milliseconds timeout = std::chrono::seconds(20)) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done(spans())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return done(spans());
  }

 private:
  std::unique_ptr<http::HttpServer> server_;
  mutable std::mutex mutex_;
  std::vector<std::string> bodies_;
  std::vector<std::string> content_types_;
};

}  // namespace clearing::tracing::testing
