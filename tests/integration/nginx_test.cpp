// nginx in front of the hub, configured by packaging/nginx/tether-hub.conf
// as shipped: the test changes only the ports, the certificate paths and the
// upstream addresses (the API's and the web UI's), and adds one switch (a file whose presence makes
// nginx refuse the WebSocket upgrade). A real nginx, a real agent verifying the proxy's certificate
// against a test CA, a real SSE viewer (curl).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "agent_world.hpp"

using namespace tether;
using namespace tether::test;

namespace {

// The web UI's port, from the hub's log ("web UI on http://127.0.0.1:PORT/").
int ui_port_of(const std::string& hub_log) {
  const std::string marker = "web UI on http://127.0.0.1:";
  const auto at = hub_log.find(marker);
  REQUIRE(at != std::string::npos);
  return std::stoi(hub_log.substr(at + marker.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Replaces the one occurrence of `from`; REQUIREs that there is one, so a
// change to the shipped file that this test no longer understands fails it.
void replace_once(std::string& text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  INFO("looking for: " << from);
  REQUIRE(at != std::string::npos);
  REQUIRE(text.find(from, at + 1) == std::string::npos);
  text.replace(at, from.size(), to);
}

// Replaces every occurrence of `from` (at least one).
void replace_all(std::string& text, const std::string& from, const std::string& to) {
  INFO("looking for: " << from);
  REQUIRE(text.find(from) != std::string::npos);
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}

class Nginx {
 public:
  Nginx(core::Loop& loop, std::string dir, int hub_port, int ui_port, const TestCertificates& certs)
      : dir_(std::move(dir)), port_(free_port()), ui_port_(free_port()), process_(loop) {
    std::string site =
        read_file(std::string(env_path("TETHER_SOURCE_DIR")) + "/packaging/nginx/tether-hub.conf");
    replace_once(site, "server 127.0.0.1:7070 ",
                 "server 127.0.0.1:" + std::to_string(hub_port) + " ");
    replace_once(site, "listen 443 ssl;", "listen 127.0.0.1:" + std::to_string(port_) + " ssl;");
    replace_once(site, "listen [::]:443 ssl;", "");
    replace_once(site, "server 127.0.0.1:7071;",
                 "server 127.0.0.1:" + std::to_string(ui_port) + ";");
    replace_once(site, "listen 8443 ssl;",
                 "listen 127.0.0.1:" + std::to_string(ui_port_) + " ssl;");
    replace_once(site, "listen [::]:8443 ssl;", "");
    replace_all(site, "server_name hub.example.com;", "server_name localhost;");
    replace_all(site, "/etc/ssl/certs/hub.example.com.pem", certs.cert);
    replace_all(site, "/etc/ssl/private/hub.example.com.key", certs.key);
    replace_once(site, "location ~ ^/api/v1/agents/[^/]+/channel$ {",
                 "location ~ ^/api/v1/agents/[^/]+/channel$ {\n"
                 "        if (-f " +
                     refuse_flag() + ") { return 503; }");
    std::ofstream(dir_ + "/tether-hub.conf") << site;

    // The frame around it: everything in the test's directory; an old
    // worker that still holds a WebSocket after a reload quits within 1 s.
    std::ofstream main(dir_ + "/nginx.conf");
    if (::geteuid() == 0) main << "user root;\n";
    main << "worker_processes 1;\n"
         << "pid " << dir_ << "/nginx.pid;\n"
         << "error_log stderr notice;\n"
         << "worker_shutdown_timeout 1s;\n"
         << "events { worker_connections 256; }\n"
         << "http {\n"
         << "  access_log " << dir_ << "/access.log;\n"
         << "  client_body_temp_path " << dir_ << "/body;\n"
         << "  proxy_temp_path " << dir_ << "/proxy;\n"
         << "  fastcgi_temp_path " << dir_ << "/fastcgi;\n"
         << "  uwsgi_temp_path " << dir_ << "/uwsgi;\n"
         << "  scgi_temp_path " << dir_ << "/scgi;\n"
         << "  include " << dir_ << "/tether-hub.conf;\n"
         << "}\n";
  }

  core::Co<void> start() {
    process_.start({"/usr/sbin/nginx", "-p", dir_, "-e", "stderr", "-c", dir_ + "/nginx.conf", "-g",
                    "daemon off;"},
                   {"PATH=/usr/sbin:/usr/bin:/bin"});
    const bool up = co_await process_.wait_for_log("start worker process", 10000);
    INFO(process_.log());
    REQUIRE(up);
  }
  // Reloads the configuration; the old worker closes its connections.
  core::Co<void> reload() {
    const size_t from = process_.log().size();
    REQUIRE(::kill(process_.pid(), SIGHUP) == 0);
    const bool reloaded = co_await process_.wait_for_log("start worker process", 10000, from);
    INFO(process_.log());
    REQUIRE(reloaded);
  }
  core::Co<void> stop() { (void)co_await process_.stop(SIGQUIT); }

  std::string url() const { return "https://localhost:" + std::to_string(port_); }
  std::string ui_url() const { return "https://localhost:" + std::to_string(ui_port_); }
  std::string refuse_flag() const { return dir_ + "/refuse-channel"; }
  const std::string& log() const { return process_.log(); }

 private:
  std::string dir_;
  int port_;
  int ui_port_;
  LoggedProcess process_;
};

}  // namespace

TEST_CASE("behind nginx with TLS: the channel streams, a final falls back to HTTP, SSE is live",
          "[nginx]") {
  TempDir certs_dir;
  TestCertificates certs(certs_dir.path());
  AgentWorldOptions options;
  options.start_agent = false;
  options.hub_args = {"--ui-listen", "127.0.0.1:0"};
  AgentWorld world(options);
  TempDir nginx_dir;
  std::unique_ptr<Nginx> nginx;
  LoggedProcess viewer(world.loop);
  world.run([&]() -> core::Co<void> {
    nginx = std::make_unique<Nginx>(world.loop, nginx_dir.path(), world.hub.port(),
                                    ui_port_of(world.hub.log()), certs);
    co_await nginx->start();
    // The agent knows the hub only as nginx, and trusts only the test CA.
    world.agent.set("hub_url", nginx->url());
    world.agent.set("ca_file", certs.ca);
    co_await world.agent.start();
    const bool connected = co_await world.agent.wait_for_log("connected to " + nginx->url(), 10000);
    REQUIRE(connected);

    const std::string flag = world.dir.path() + "/go";
    const std::string task_id =
        co_await world.submit_shell("echo marker-one; while [ ! -e '" + flag +
                                    "' ]; do sleep 0.02; done; echo marker-two; "
                                    "while [ ! -e '" +
                                    flag + "-end' ]; do sleep 0.02; done");
    Operator through_nginx(world.loop, world.pool, nginx->url(), world.admin_token, certs.ca);
    const bool first = co_await through_nginx.wait_for_output(task_id, "stdout", 11, 15000);
    REQUIRE(first);

    // A viewer follows the task's events through nginx. The token goes in a
    // header file, not in curl's argv.
    const std::string header = world.dir.write_secret(
        "viewer.header", "Authorization: Bearer " + world.admin_token + "\n");
    auto follow = [&](LoggedProcess& curl) {
      curl.start({"/usr/bin/curl", "--silent", "--show-error", "--no-buffer", "--cacert", certs.ca,
                  "--header", "@" + header, nginx->url() + "/api/v1/tasks/" + task_id + "/events"},
                 {"PATH=/usr/bin:/bin"});
    };
    follow(viewer);
    const bool history = co_await viewer.wait_for_log("marker-one", 10000);
    INFO(viewer.log());
    REQUIRE(history);
    // Live: the second line reaches the viewer while the task still runs
    // (it waits for the -end flag), so nothing held it back on the way. Two
    // things see to that, and either suffices: proxy_buffering off in the
    // shipped file, and X-Accel-Buffering: no on the hub's event streams.
    { std::ofstream touch(flag); }
    const bool live = co_await viewer.wait_for_log("marker-two", 10000);
    CHECK(live);
    const std::string state_while_live = co_await through_nginx.state_of(task_id);
    CHECK(state_while_live == "running");

    // The WebSocket upgrade is refused from now on; the reload makes the old
    // worker drop the open channel (and this viewer: curl reports a cut
    // transfer). HTTP still passes.
    { std::ofstream refuse(nginx->refuse_flag()); }
    const size_t before = world.agent.log().size();
    co_await nginx->reload();
    const bool dropped = co_await world.agent.wait_for_log("result channel closed", 10000, before);
    REQUIRE(dropped);
    const bool refused =
        co_await world.agent.wait_for_log("cannot open the result channel", 15000, before);
    CHECK(refused);

    // The task ends while the channel is down: its final goes over HTTP.
    { std::ofstream touch(flag + "-end"); }
    const bool over_http = co_await world.agent.wait_for_log("delivered over HTTP", 20000, before);
    CHECK(over_http);
    const bool succeeded = co_await through_nginx.wait_for_state(task_id, "succeeded", 20000);
    REQUIRE(succeeded);
    const std::string task_json = co_await through_nginx.task_json(task_id);
    auto final_view = read_final(task_json);
    CHECK(final_view.verified);
    CHECK(final_view.out.bytes == std::string("marker-one\nmarker-two\n").size());
    CHECK(world.final_events(task_id) == 1);
    const int cut_viewer = co_await viewer.wait_exit(10000);
    CHECK(cut_viewer == 18);  // CURLE_PARTIAL_FILE

    // A viewer after the end gets the whole history, the end event, and a
    // clean close from the new worker.
    LoggedProcess late_viewer(world.loop);
    follow(late_viewer);
    const int late_exit = co_await late_viewer.wait_exit(10000);
    INFO(late_viewer.log());
    CHECK(late_exit == 0);
    CHECK(late_viewer.count_in_log("marker-two") == 1);
    CHECK(late_viewer.count_in_log("event: end") == 1);

    // The web UI through its server block: the page, a sign-in whose cookie
    // is Secure (nginx says the client came over TLS), and the task's
    // events for that cookie.
    // (Calls built as locals first: GCC 12 miscompiles braced lists inside
    // a co_await operand.)
    const auto ui_call = [&](const std::string& method, const std::string& target,
                             const std::string& body, const std::string& cookie) {
      core::HttpCall call;
      call.method = method;
      call.server = *core::parse_url(nginx->ui_url());
      call.target = target;
      call.body = body;
      if (!cookie.empty()) call.headers.emplace_back("Cookie", cookie);
      call.ca_file = certs.ca;
      return call;
    };
    const std::string sign_in_body = R"({"token":")" + world.admin_token + R"("})";
    auto page_call = ui_call("GET", "/", "", "");
    auto page = co_await core::http_request(world.loop, world.pool, page_call);
    REQUIRE(page.ok());
    CHECK(page->status == 200);
    CHECK_THAT(page->header("content-type"), Catch::StartsWith("text/html"));
    auto sign_in_call = ui_call("POST", "/ui/session", sign_in_body, "");
    auto signed_in = co_await core::http_request(world.loop, world.pool, sign_in_call);
    REQUIRE(signed_in.ok());
    REQUIRE(signed_in->status == 200);
    const std::string set_cookie = signed_in->header("set-cookie");
    CHECK_THAT(set_cookie, Catch::Contains("HttpOnly") && Catch::EndsWith("; Secure"));
    auto events_call = ui_call("GET", "/api/v1/tasks/" + task_id + "/events", "",
                               set_cookie.substr(0, set_cookie.find(';')));
    auto events = co_await core::http_request(world.loop, world.pool, events_call);
    REQUIRE(events.ok());
    CHECK(events->status == 200);
    CHECK_THAT(events->body, Catch::Contains("marker-two") && Catch::Contains("event: end"));
    co_await nginx->stop();
  });
}
