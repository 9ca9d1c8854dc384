// MetricsServer: an HTTP listener with one page, GET /metrics, whose text a
// callback makes fresh for every scrape (the Prometheus text format). It
// runs on its own address (metrics_listen), apart from anything with
// tokens, so a scraper needs no credentials and reaches nothing else.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/loop.hpp"
#include "core/result.hpp"
#include "core/web_server.hpp"

namespace tether::core {

class MetricsServer {
 public:
  // `address` is "host:port" (port 0 picks one); `field` names it in errors.
  static Result<std::unique_ptr<MetricsServer>> start(Loop& loop, const std::string& address,
                                                      const std::string& field,
                                                      std::function<std::string()> render);
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return server_->port(); }
  const std::string& host() const { return host_; }

 private:
  MetricsServer(std::string host, std::function<std::string()> render)
      : host_(std::move(host)), render_(std::move(render)) {}

  std::string host_;
  std::function<std::string()> render_;
  std::unique_ptr<WebServer> server_;
};

// Prometheus text exposition helpers: "# HELP", "# TYPE" and a sample.
class MetricsText {
 public:
  // type: "counter" or "gauge".
  void family(const std::string& name, const std::string& type, const std::string& help);
  // `labels` is already formatted (`state="queued"`), or empty.
  void sample(const std::string& name, double value, const std::string& labels = "");
  // A family with its one sample.
  void metric(const std::string& name, const std::string& type, const std::string& help,
              double value, const std::string& labels = "") {
    family(name, type, help);
    sample(name, value, labels);
  }
  const std::string& str() const { return text_; }

  // A label value with \, " and newlines escaped.
  static std::string label(const std::string& name, const std::string& value);

 private:
  std::string text_;
};

}  // namespace tether::core
