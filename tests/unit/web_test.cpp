// The lws-based server and client on one loop, talking over 127.0.0.1:
// HTTP (immediate, deferred, streamed), size limits, and WebSockets.
#include <catch2/catch.hpp>

#include "core/co_group.hpp"
#include "core/http_client.hpp"
#include "core/run.hpp"
#include "core/timer.hpp"
#include "core/web_server.hpp"
#include "core/websocket_client.hpp"

using namespace tether;
using namespace tether::core;

namespace {

struct Fixture {
  Loop loop;
  ThreadPool pool{2};
  std::unique_ptr<WebServer> server;
  std::vector<std::shared_ptr<WebSocketConnection>> server_sockets;
  std::shared_ptr<HttpExchange> parked;  // a long poll waiting for an answer
  int counted = 0;                       // requests to /count handled

  explicit Fixture(WebServerOptions options = {}) {
    WebServer::Handlers handlers;
    handlers.on_request = [this](std::shared_ptr<HttpExchange> exchange) {
      route(std::move(exchange));
    };
    handlers.on_upgrade = [](const HttpRequest& request) {
      if (request.authorization != "Bearer good") return UpgradeDecision{401, R"({"error":"no"})"};
      return UpgradeDecision{};
    };
    handlers.on_websocket = [this](std::shared_ptr<WebSocketConnection> socket) {
      server_sockets.push_back(socket);
      auto* raw = socket.get();
      socket->set_on_message([raw](std::string&& message) {
        if (message == "bye") {
          raw->close(kCloseGoingAway, "leaving");
        } else {
          raw->send_text("echo:" + message);
        }
      });
    };
    auto started = WebServer::start(loop, options, std::move(handlers));
    REQUIRE(started.ok());
    server = std::move(*started);
  }

  void route(std::shared_ptr<HttpExchange> exchange) {
    const auto& request = exchange->request();
    if (request.path == "/hello") {
      exchange->respond(json_response(200, R"({"hello":")" + request.query_value("name") + "\"}"));
    } else if (request.path == "/echo" && request.method == "PUT") {
      exchange->respond(json_response(201, request.body));
    } else if (request.path == "/count") {
      ++counted;
      exchange->respond(json_response(200, std::to_string(counted)));
    } else if (request.path == "/park") {
      parked = exchange;
    } else if (request.path == "/release") {
      parked->respond(json_response(200, R"({"released":true})"));
      exchange->respond(json_response(204, ""));
    } else if (request.path == "/stream") {
      exchange->begin_stream(200, "text/event-stream", {{"cache-control", "no-cache"}});
      for (int i = 0; i < 3; ++i)
        exchange->write("data: " + std::to_string(i) + "\n\n");
      exchange->finish();
    } else if (request.path == "/big") {
      auto remaining = std::make_shared<size_t>(10);
      HttpResponse response;
      response.content_type = "application/octet-stream";
      response.content_length = 10 * 100000;
      response.body_source = [remaining] {
        if (*remaining == 0) return std::string();
        --*remaining;
        return std::string(100000, 'b');
      };
      exchange->respond(std::move(response));
    } else {
      exchange->respond(json_response(404, R"({"error":"not found"})"));
    }
  }

  HttpCall call(std::string method, std::string target, std::string body = {}) {
    HttpCall call;
    call.method = std::move(method);
    call.server = *parse_url("http://127.0.0.1:" + std::to_string(server->port()));
    call.target = std::move(target);
    call.body = std::move(body);
    call.read_timeout_s = 10;
    return call;
  }
};

}  // namespace

TEST_CASE("WebServer answers plain, bodied, deferred and large requests", "[web]") {
  Fixture fixture;
  REQUIRE(fixture.server->port() > 0);
  auto body = [&]() -> Co<void> {
    auto hello =
        co_await http_request(fixture.loop, fixture.pool, fixture.call("GET", "/hello?name=a%20b"));
    REQUIRE(hello.ok());
    CHECK(hello->status == 200);
    CHECK(hello->body == R"({"hello":"a b"})");
    CHECK(hello->header("content-type") == "application/json");

    auto echo = co_await http_request(fixture.loop, fixture.pool,
                                      fixture.call("PUT", "/echo", std::string(300000, 'x')));
    REQUIRE(echo.ok());
    CHECK(echo->status == 201);
    CHECK(echo->body.size() == 300000);

    auto missing = co_await http_request(fixture.loop, fixture.pool, fixture.call("GET", "/nope"));
    REQUIRE(missing.ok());
    CHECK(missing->status == 404);

    auto big = co_await http_request(fixture.loop, fixture.pool, fixture.call("GET", "/big"));
    REQUIRE(big.ok());
    CHECK(big->body == std::string(1000000, 'b'));

    // A parked request is answered only when another request releases it.
    CoGroup group;
    Result<HttpReply> parked = make_error(Errc::kState, "unset", "");
    auto park = [&]() -> Co<void> {
      parked = co_await http_request(fixture.loop, fixture.pool, fixture.call("GET", "/park"));
    };
    group.spawn(park());
    while (!fixture.parked) {
      auto slept = co_await sleep_for(fixture.loop, 5);
      REQUIRE(slept.ok());
    }
    CHECK_FALSE(parked.ok());  // still waiting
    auto release =
        co_await http_request(fixture.loop, fixture.pool, fixture.call("GET", "/release"));
    REQUIRE(release.ok());
    co_await group.join();
    REQUIRE(parked.ok());
    CHECK(parked->body == R"({"released":true})");
    fixture.server.reset();
  };
  run_to_completion(fixture.loop, body());
}

TEST_CASE("WebServer hands each request to its owner once, with a body or without", "[web]") {
  Fixture fixture;
  auto body = [&]() -> Co<void> {
    // A POST with "Content-Length: 0" is handled with its headers; lws then
    // reports an empty body and its completion, which must not hand it over
    // again (the hub audited such a cancel twice).
    auto empty = co_await http_request(fixture.loop, fixture.pool, fixture.call("POST", "/count"));
    REQUIRE(empty.ok());
    CHECK(empty->body == "1");
    auto bodied =
        co_await http_request(fixture.loop, fixture.pool, fixture.call("POST", "/count", "{}"));
    REQUIRE(bodied.ok());
    CHECK(bodied->body == "2");
    auto plain = co_await http_request(fixture.loop, fixture.pool, fixture.call("GET", "/count"));
    REQUIRE(plain.ok());
    CHECK(plain->body == "3");
    CHECK(fixture.counted == 3);
    fixture.server.reset();
  };
  run_to_completion(fixture.loop, body());
}

TEST_CASE("WebServer refuses a body over the limit with 413", "[web]") {
  WebServerOptions options;
  options.max_body_bytes = 1000;
  Fixture fixture(options);
  auto body = [&]() -> Co<void> {
    auto reply = co_await http_request(fixture.loop, fixture.pool,
                                       fixture.call("PUT", "/echo", std::string(5000, 'x')));
    REQUIRE(reply.ok());
    CHECK(reply->status == 413);
    CHECK_THAT(reply->body, Catch::Contains("body_too_large"));
    fixture.server.reset();
  };
  run_to_completion(fixture.loop, body());
}

TEST_CASE("WebServer streams a response of unknown length", "[web]") {
  Fixture fixture;
  auto body = [&]() -> Co<void> {
    auto reply = co_await http_request(fixture.loop, fixture.pool, fixture.call("GET", "/stream"));
    REQUIRE(reply.ok());
    CHECK(reply->status == 200);
    CHECK(reply->header("content-type") == "text/event-stream");
    CHECK(reply->body == "data: 0\n\ndata: 1\n\ndata: 2\n\n");
    fixture.server.reset();
  };
  run_to_completion(fixture.loop, body());
}

TEST_CASE("WebSockets: refused upgrade, echo, large messages, close codes", "[web]") {
  Fixture fixture;
  auto client = WebSocketClient::create(fixture.loop, {});
  REQUIRE(client.ok());
  auto body = [&]() -> Co<void> {
    WebSocketConnectOptions options;
    options.url =
        *parse_url("ws://127.0.0.1:" + std::to_string(fixture.server->port()) + "/channel");
    options.max_message_bytes = 4 << 20;

    auto refused = co_await (*client)->connect(options);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == "ws_refused");
    CHECK_THAT(refused.error().message, Catch::StartsWith("401"));

    options.headers = {{"Authorization", "Bearer good"}};
    auto connected = co_await (*client)->connect(options);
    REQUIRE(connected.ok());
    auto socket = *connected;
    socket->send_text("hi");
    auto reply = co_await socket->receive();
    REQUIRE(reply.ok());
    CHECK(*reply == "echo:hi");
    CHECK(fixture.server_sockets.at(0)->upgrade_request().path == "/channel");

    const std::string large(600000, 'z');
    socket->send_text(large);
    auto large_reply = co_await socket->receive();
    REQUIRE(large_reply.ok());
    CHECK(*large_reply == "echo:" + large);

    socket->send_text("bye");
    auto after_close = co_await socket->receive();
    CHECK_FALSE(after_close.ok());
    CHECK(socket->close_code() == kCloseGoingAway);
    CHECK(socket->close_reason() == "leaving");
    client->reset();
    fixture.server.reset();
  };
  run_to_completion(fixture.loop, body());
}

TEST_CASE("WebSocket client reports a refused connection", "[web]") {
  Loop loop;
  auto client = WebSocketClient::create(loop, {});
  REQUIRE(client.ok());
  auto body = [&]() -> Co<void> {
    WebSocketConnectOptions options;
    options.url = *parse_url("ws://127.0.0.1:1/channel");  // nothing listens on port 1
    auto connected = co_await (*client)->connect(options);
    REQUIRE_FALSE(connected.ok());
    CHECK(connected.error().code == "ws_connect");
    client->reset();
  };
  run_to_completion(loop, body());
}
