#include "core/metrics_server.hpp"

#include <cmath>
#include <cstdio>

#include "core/listen_address.hpp"

namespace tether::core {

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(Loop& loop, const std::string& address,
                                                            const std::string& field,
                                                            std::function<std::string()> render) {
  TETHER_TRY(host_port, parse_listen_address(address, field));
  std::unique_ptr<MetricsServer> metrics(new MetricsServer(host_port->first, std::move(render)));
  WebServerOptions options;
  options.bind_address = host_port->first;
  options.port = host_port->second;
  options.max_body_bytes = 0;
  WebServer::Handlers handlers;
  MetricsServer* raw = metrics.get();
  handlers.on_request = [raw](std::shared_ptr<HttpExchange> exchange) {
    const auto& request = exchange->request();
    HttpResponse response;
    response.content_type = "text/plain";
    if (request.path != "/metrics") {
      response.status = 404;
      response.body = "only /metrics is served here\n";
    } else if (request.method != "GET" && request.method != "HEAD") {
      response.status = 405;
      response.body = "GET /metrics\n";
    } else {
      response.content_type = "text/plain; version=0.0.4; charset=utf-8";
      response.body = raw->render_();
    }
    exchange->respond(std::move(response));
  };
  handlers.on_upgrade = [](const HttpRequest&) {
    return UpgradeDecision{404,
                           "{\"error\":{\"code\":\"not_found\",\"message\":\"no WebSocket "
                           "here\",\"retryable\":false}}"};
  };
  auto server = WebServer::start(loop, options, std::move(handlers));
  if (!server) {
    return with_context(server.error(), field + " " + address + ": " + server.error().message);
  }
  metrics->server_ = std::move(*server);
  return metrics;
}

void MetricsText::family(const std::string& name, const std::string& type,
                         const std::string& help) {
  text_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void MetricsText::sample(const std::string& name, double value, const std::string& labels) {
  text_ += name;
  if (!labels.empty()) text_ += "{" + labels + "}";
  char number[64];
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(number, sizeof number, " %.0f\n", value);
  } else {
    std::snprintf(number, sizeof number, " %.6g\n", value);
  }
  text_ += number;
}

std::string MetricsText::label(const std::string& name, const std::string& value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      escaped += '\\';
      escaped += c;
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return name + "=\"" + escaped + "\"";
}

}  // namespace tether::core
