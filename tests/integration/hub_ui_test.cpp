// The web UI's port (docs/ui.md, docs/protocol.md 11.6), from the
// documents: its page and files, sign-in for a session cookie, CSRF on every
// change, sign-out, revocation and roles, and the operator API additions
// the page uses (tail_bytes, output ranges, paging, stored_at).
#include <algorithm>

#include "logged_process.hpp"
#include "roles.hpp"

using namespace tether;
using namespace tether::test;
using protocol::StreamName;

namespace {

const std::vector<std::string> kUiArgs = {"--ui-listen", "127.0.0.1:0"};

// A browser, as far as the hub can tell: a cookie jar of one cookie and the
// CSRF token the sign-in answered.
struct Browser {
  core::Loop& loop;
  core::ThreadPool& pool;
  std::string url;  // http://127.0.0.1:PORT
  std::string cookie;
  std::string csrf;
  std::vector<std::pair<std::string, std::string>> headers;  // sent with every call
  std::string content_type = "application/json";

  core::Co<Result<core::HttpReply>> call(std::string method, std::string target,
                                         std::string body = std::string(), bool with_csrf = true) {
    core::HttpCall http;
    http.method = std::move(method);
    http.server = *core::parse_url(url);
    http.target = std::move(target);
    http.body = std::move(body);
    http.headers = headers;
    http.content_type = content_type;
    if (!cookie.empty()) http.headers.emplace_back("Cookie", cookie);
    if (with_csrf && !csrf.empty()) http.headers.emplace_back("X-CSRF-Token", csrf);
    http.read_timeout_s = 15;
    co_return co_await core::http_request(loop, pool, std::move(http));
  }
  // Signs in with `token`; returns the answer (status 200 on success).
  core::Co<core::HttpReply> sign_in(const std::string& token) {
    auto reply = co_await call("POST", "/ui/session", R"({"token":")" + token + R"("})");
    REQUIRE(reply.ok());
    if (reply->status == 200) {
      const std::string set_cookie = reply->header("set-cookie");
      cookie = set_cookie.substr(0, set_cookie.find(';'));
      auto body = protocol::parse_json_object(reply->body, "session");
      REQUIRE(body.ok());
      csrf = (*body)["csrf_token"].GetString();
    }
    co_return *reply;
  }
};

Browser browser(World& world) {
  // "web UI on http://127.0.0.1:PORT/"
  const std::string& log = world.hub.log();
  const auto at = log.rfind("web UI on ");  // the latest start's
  REQUIRE(at != std::string::npos);
  const auto start = at + std::string("web UI on ").size();
  std::string url = log.substr(start, log.find('/', start + 7) - start);
  return Browser{world.loop, world.pool, url, {}, {}, {}, "application/json"};
}

}  // namespace

TEST_CASE("the web UI serves its page, xterm.js and nothing else, with a strict policy",
          "[hub][ui]") {
  World world(kUiArgs);
  world.run([&]() -> core::Co<void> {
    auto ui = browser(world);
    auto page = co_await ui.call("GET", "/");
    REQUIRE(page.ok());
    CHECK(page->status == 200);
    CHECK_THAT(page->header("content-type"), Catch::StartsWith("text/html"));
    CHECK_THAT(page->header("content-security-policy"),
               Catch::Contains("script-src 'self'") && Catch::Contains("frame-ancestors 'none'"));
    CHECK(page->header("x-content-type-options") == "nosniff");
    auto xterm = co_await ui.call("GET", "/ui/xterm.js");
    REQUIRE(xterm.ok());
    CHECK(xterm->status == 200);
    CHECK_THAT(xterm->header("content-type"), Catch::StartsWith("text/javascript"));
    CHECK(xterm->body.size() > 100'000);  // the real renderer, not a stub
    for (const std::string path : {"/ui/../hub.db", "/hub.db", "/ui/nothing.js"}) {
      auto missing = co_await ui.call("GET", path);
      REQUIRE(missing.ok());
      INFO(path);
      CHECK(missing->status == 404);
    }
    // The API port serves no page.
    Operator op = world.op();
    auto api_page = co_await op.request("GET", "/");
    REQUIRE(api_page.ok());
    CHECK(api_page->status == 404);
  });
}

TEST_CASE("a session cookie acts as its operator; every change needs the CSRF token", "[hub][ui]") {
  World world(kUiArgs);
  world.run([&]() -> core::Co<void> {
    auto ui = browser(world);
    // No cookie, or a bearer token instead: the UI port answers 401.
    auto anonymous = co_await ui.call("GET", "/api/v1/tasks");
    REQUIRE(anonymous.ok());
    CHECK(anonymous->status == 401);
    auto who = co_await ui.call("GET", "/ui/session");
    REQUIRE(who.ok());
    CHECK(who->status == 401);

    for (const std::string& wrong : {std::string("tto_not-a-token"), world.agent_token}) {
      auto refused = co_await ui.sign_in(wrong);
      CHECK(refused.status == 401);
      CHECK_THAT(refused.body, Catch::Contains("session.token"));
    }
    auto signed_in = co_await ui.sign_in(world.admin_token);
    REQUIRE(signed_in.status == 200);
    const std::string set_cookie = signed_in.header("set-cookie");
    CHECK_THAT(set_cookie, Catch::StartsWith("tether_session=") && Catch::Contains("HttpOnly") &&
                               Catch::Contains("SameSite=Strict") && Catch::Contains("Path=/") &&
                               !Catch::Contains("Secure"));
    CHECK_THAT(signed_in.body,
               Catch::Contains(R"("role":"admin")") && !Catch::Contains(world.admin_token));

    // Behind a TLS proxy (docs/ui.md), the cookie is Secure.
    auto proxied = browser(world);
    proxied.headers.emplace_back("X-Forwarded-Proto", "https");
    auto secure = co_await proxied.sign_in(world.admin_token);
    CHECK_THAT(secure.header("set-cookie"), Catch::EndsWith("; Secure"));

    auto agents = co_await ui.call("GET", "/api/v1/agents");
    REQUIRE(agents.ok());
    CHECK(agents->status == 200);
    CHECK_THAT(agents->body, Catch::Contains("\"edge-1\""));

    // A change without the header (another site's form could send the
    // cookie, never the header): refused before its body is read; nothing queued.
    auto forged = co_await ui.call("POST", "/api/v1/tasks", submit_body("edge-1"), false);
    REQUIRE(forged.ok());
    CHECK(forged->status == 403);
    CHECK_THAT(forged->body, Catch::Contains("X-CSRF-Token"));
    Browser wrong_csrf = ui;
    wrong_csrf.csrf = std::string(64, 'a');
    auto mismatched = co_await wrong_csrf.call("POST", "/api/v1/tasks", submit_body("edge-1"));
    REQUIRE(mismatched.ok());
    CHECK(mismatched->status == 403);
    Operator op = world.op();
    auto listed = co_await op.request("GET", "/api/v1/tasks");
    REQUIRE(listed.ok());
    CHECK(listed->body == R"({"tasks":[]})");

    auto submitted = co_await ui.call("POST", "/api/v1/tasks", submit_body("edge-1"));
    REQUIRE(submitted.ok());
    CHECK(submitted->status == 201);
    // Audited as the token's operator, like the same call with the token.
    auto trail = co_await audit_page(op, "?action=task.submit");
    REQUIRE(trail.entries.size() == 1);
    CHECK_THAT(trail.entries[0].actor, Catch::StartsWith("admin-"));
  });
}

TEST_CASE("sign-out, a revoked token and a viewer's role end or limit a session", "[hub][ui]") {
  World world(kUiArgs);
  const std::string viewer_token = create_token(world, "dash", "viewer");
  const std::string ops_token = create_token(world, "ops", "operator");
  world.run([&]() -> core::Co<void> {
    auto ui = browser(world);
    const auto signed_in_1 = co_await ui.sign_in(world.admin_token);
    REQUIRE(signed_in_1.status == 200);
    auto unsafe_out = co_await ui.call("DELETE", "/ui/session", std::string(), false);
    REQUIRE(unsafe_out.ok());
    CHECK(unsafe_out->status == 403);
    auto out = co_await ui.call("DELETE", "/ui/session");
    REQUIRE(out.ok());
    CHECK(out->status == 204);
    CHECK_THAT(out->header("set-cookie"), Catch::Contains("Max-Age=0"));
    auto after = co_await ui.call("GET", "/api/v1/tasks");
    REQUIRE(after.ok());
    CHECK(after->status == 401);

    auto ops = browser(world);
    const auto signed_in_2 = co_await ops.sign_in(ops_token);
    REQUIRE(signed_in_2.status == 200);
    hub_command({"token", "revoke", "ops", "--data-dir", world.data_dir});
    auto revoked = co_await ops.call("GET", "/api/v1/tasks");
    REQUIRE(revoked.ok());
    CHECK(revoked->status == 401);

    auto viewer = browser(world);
    auto signed_in = co_await viewer.sign_in(viewer_token);
    CHECK_THAT(signed_in.body, Catch::Contains(R"("role":"viewer")"));
    auto read = co_await viewer.call("GET", "/api/v1/agents");
    REQUIRE(read.ok());
    CHECK(read->status == 200);
    auto submit = co_await viewer.call("POST", "/api/v1/tasks", submit_body("edge-1"));
    REQUIRE(submit.ok());
    CHECK(submit->status == 403);
    CHECK_THAT(submit->body, Catch::Contains("role viewer"));
  });
}

TEST_CASE("events from a tail, output ranges, task pages and stored_at (docs/protocol.md 11)",
          "[hub][ui]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    // stdout: 10 chunks of 10 bytes; stderr: one chunk of 3.
    for (uint64_t seq = 1; seq <= 10; ++seq)
      agent.send(output(spec, StreamName::kStdout, seq, (seq - 1) * 10,
                        std::string(9, static_cast<char>('a' + seq - 1)) + "\n"));
    co_await acks_through(agent, StreamName::kStdout, 10);
    agent.send(output(spec, StreamName::kStderr, 1, 0, "e!\n"));
    co_await acks_through(agent, StreamName::kStderr, 1);
    const std::string base = "/api/v1/tasks/" + spec.task_id;

    // The last 25 bytes of stdout are in chunks 8-10; stderr is shorter
    // than the tail, so all of it comes.
    auto tail = co_await op.request("GET", base + "/events?follow=0&tail_bytes=25");
    REQUIRE(tail.ok());
    std::vector<std::string> outputs;
    for (const auto& event : parse_sse(tail->body)) {
      if (event.type != "output") continue;
      outputs.push_back(event.data);
      CHECK_THAT(event.data, Catch::Contains(R"("stored_at":"20)"));
    }
    REQUIRE(outputs.size() == 4);
    CHECK_THAT(outputs[0], Catch::Contains(R"("seq":8)") && Catch::Contains(R"("offset":70)"));
    CHECK_THAT(outputs[2], Catch::Contains(R"("seq":10)"));
    CHECK_THAT(outputs[3], Catch::Contains(R"("stream":"stderr")"));
    auto bad = co_await op.request("GET", base + "/events?tail_bytes=0");
    REQUIRE(bad.ok());
    CHECK(bad->status == 400);
    CHECK_THAT(bad->body, Catch::Contains("tail_bytes"));

    // Bytes 15..34 of stdout: across three chunks.
    auto range = co_await op.request("GET", base + "/output?stream=stdout&offset=15&length=20");
    REQUIRE(range.ok());
    CHECK(range->body == "bbbb\nccccccccc\nddddd");
    auto past = co_await op.request("GET", base + "/output?stream=stdout&offset=95&length=50");
    REQUIRE(past.ok());
    CHECK(past->body == "jjjj\n");

    // Pages of the task list: newest first, then below the last one shown.
    const std::string second = co_await op.submit(submit_body("edge-2"));
    const std::string third = co_await op.submit(submit_body("edge-2"));
    auto first_page = co_await op.request("GET", "/api/v1/tasks?limit=2");
    REQUIRE(first_page.ok());
    CHECK_THAT(first_page->body,
               Catch::Contains(third) && Catch::Contains(second) && !Catch::Contains(spec.task_id));
    auto next_page = co_await op.request("GET", "/api/v1/tasks?limit=2&before=" + second);
    REQUIRE(next_page.ok());
    CHECK_THAT(next_page->body, Catch::Contains(spec.task_id) && !Catch::Contains(second));
    auto unknown = co_await op.request("GET", "/api/v1/tasks?before=t-nope");
    REQUIRE(unknown.ok());
    CHECK(unknown->status == 400);
    CHECK_THAT(unknown->body, Catch::Contains("before"));
    agent.close();
  });
}

TEST_CASE("a session outlives a hub restart; the database holds only digests of it", "[hub][ui]") {
  World world(kUiArgs);
  world.run([&]() -> core::Co<void> {
    auto ui = browser(world);
    const auto signed_in_3 = co_await ui.sign_in(world.admin_token);
    REQUIRE(signed_in_3.status == 200);
    const std::string id = ui.cookie.substr(ui.cookie.find('=') + 1);
    // Every column of every row, as the database's own tool prints them.
    const std::string rows = hub_sql(world.data_dir, "SELECT * FROM browser_sessions");
    CHECK(std::count(rows.begin(), rows.end(), '\n') == 1);
    CHECK(rows.find(id) == std::string::npos);
    CHECK(rows.find(world.admin_token) == std::string::npos);
    co_await world.hub.stop(SIGTERM);
    co_await world.hub.start();
    auto after = browser(world);  // the UI's new port
    after.cookie = ui.cookie;
    after.csrf = ui.csrf;
    auto listed = co_await after.call("GET", "/api/v1/tasks");
    REQUIRE(listed.ok());
    CHECK(listed->status == 200);
    auto submitted = co_await after.call("POST", "/api/v1/tasks", submit_body("edge-1"));
    REQUIRE(submitted.ok());
    CHECK(submitted->status == 201);
    // A cookie of the right shape that was never issued.
    after.cookie = "tether_session=" + std::string(64, 'f');
    auto forged = co_await after.call("GET", "/api/v1/tasks");
    REQUIRE(forged.ok());
    CHECK(forged->status == 401);
  });
}

TEST_CASE("another site cannot sign a browser in (login CSRF)", "[hub][ui]") {
  World world(kUiArgs);
  world.run([&]() -> core::Co<void> {
    // A form can post text/plain: refused, nothing signed in.
    auto form = browser(world);
    form.content_type = "text/plain";
    auto as_text = co_await form.sign_in(world.admin_token);
    CHECK(as_text.status == 400);
    CHECK_THAT(as_text.body, Catch::Contains("Content-Type must be application/json"));
    CHECK(as_text.header("set-cookie").empty());
    // A browser says where a request came from.
    auto cross = browser(world);
    cross.headers.emplace_back("Sec-Fetch-Site", "cross-site");
    auto from_elsewhere = co_await cross.sign_in(world.admin_token);
    CHECK(from_elsewhere.status == 403);
    CHECK(from_elsewhere.header("set-cookie").empty());
    auto same = browser(world);
    same.headers.emplace_back("Sec-Fetch-Site", "same-origin");
    auto from_the_page = co_await same.sign_in(world.admin_token);
    CHECK(from_the_page.status == 200);
  });
}

TEST_CASE("an open event stream closes when its token is revoked or its session ends",
          "[hub][ui]") {
  World world(kUiArgs);
  const std::string watcher_token = create_token(world, "watcher", "viewer");
  const std::string browser_token = create_token(world, "browser", "viewer");
  LoggedProcess by_token(world.loop);
  LoggedProcess by_session(world.loop);
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);  // running, and stays so
    const std::string events = "/api/v1/tasks/" + spec.task_id + "/events";
    auto ui = browser(world);
    const auto signed_in = co_await ui.sign_in(browser_token);
    REQUIRE(signed_in.status == 200);
    // Two viewers (curl: credentials from header files, not argv): a token on
    // the API port, a session on the UI's. Each stream's first line says it
    // is open.
    const auto follow = [&](LoggedProcess& curl, const std::string& url,
                            const std::string& header_file) {
      curl.start({"/usr/bin/curl", "--silent", "--no-buffer", "--header", "@" + header_file, url},
                 {"PATH=/usr/bin:/bin"});
    };
    follow(by_token, world.hub.url() + events,
           world.dir.write_secret("token.header", "Authorization: Bearer " + watcher_token + "\n"));
    follow(by_session, ui.url + events,
           world.dir.write_secret("cookie.header", "Cookie: " + ui.cookie + "\n"));
    for (LoggedProcess* curl : {&by_token, &by_session}) {
      const bool open = co_await curl->wait_for_log(": tether events for", 10000);
      INFO(curl->log());
      REQUIRE(open);
    }
    hub_command({"token", "revoke", "watcher", "--data-dir", world.data_dir});
    auto out = co_await ui.call("DELETE", "/ui/session");
    REQUIRE(out.ok());
    CHECK(out->status == 204);
    // Closed by the hub (curl exits 0 on a clean end of the body), not ended:
    // the task still runs.
    for (LoggedProcess* curl : {&by_token, &by_session}) {
      const int exit_code = co_await curl->wait_exit(20000);
      INFO(curl->log());
      CHECK(exit_code == 0);
      CHECK(curl->count_in_log("event: end") == 0);
    }
    const std::string state = co_await op.state_of(spec.task_id);
    CHECK(state == "running");
    agent.close();
  });
}
