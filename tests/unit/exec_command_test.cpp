// `tether-agent exec` as a process: one JSON object per frame on stdout.
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <sstream>

#include "protocol/base64.hpp"
#include "protocol/sha256.hpp"
#include "support.hpp"

using namespace tether;

TEST_CASE("tether-agent exec prints started, output and final frames as JSON lines", "[exec]") {
  const std::string output = test::shell_output(
      "'" + test::agent_binary() +
      "' exec --interval-ms 5 -- /bin/sh -c 'printf \"hi\\n\"; printf \"\\377\\376\" >&2; exit 3'");
  std::istringstream lines(output);
  std::vector<rapidjson::Document> frames;
  for (std::string line; std::getline(lines, line);) {
    rapidjson::Document doc;
    doc.Parse(line.c_str());
    REQUIRE(doc.IsObject());
    frames.push_back(std::move(doc));
  }
  REQUIRE(frames.size() == 4);
  CHECK(std::string(frames[0]["type"].GetString()) == "task.started");
  CHECK(frames[0]["pid"].GetInt() > 0);
  std::string out;
  std::string err;
  for (size_t i = 1; i < 3; ++i) {
    auto& frame = frames[i];
    CHECK(std::string(frame["type"].GetString()) == "task.output");
    CHECK(frame["seq"].GetUint64() == 1);
    const std::string stream = frame["stream"].GetString();
    const std::string encoding = frame["encoding"].GetString();
    std::string data = frame["data"].GetString();
    if (encoding == "base64") data = protocol::base64_decode(data).value();
    (stream == "stdout" ? out : err) += data;
    CHECK(encoding == (stream == "stdout" ? "utf8" : "base64"));
  }
  CHECK(out == "hi\n");
  CHECK(err == "\xFF\xFE");
  auto& final_frame = frames[3];
  CHECK(std::string(final_frame["type"].GetString()) == "task.final");
  CHECK(std::string(final_frame["status"].GetString()) == "failed");
  CHECK(final_frame["exit_code"].GetInt() == 3);
  CHECK(final_frame["signal"].IsNull());
  CHECK(final_frame["stdout"]["bytes"].GetUint64() == 3);
  CHECK(std::string(final_frame["stdout"]["sha256"].GetString()) == protocol::sha256_hex("hi\n"));
  CHECK(std::string(final_frame["stderr"]["sha256"].GetString()) ==
        protocol::sha256_hex("\xFF\xFE"));
  CHECK(final_frame["error"].IsNull());
  CHECK(std::string(final_frame["attempt_id"].GetString()) ==
        std::string(frames[0]["attempt_id"].GetString()));
}

TEST_CASE("tether-agent exec rejects bad usage with a clear message", "[exec]") {
  const std::string agent = "'" + test::agent_binary() + "'";
  CHECK(std::system((agent + " exec --chunk-bytes 2 -- true 2>/dev/null").c_str()) != 0);
  CHECK(std::system((agent + " exec --bogus 1 -- true 2>/dev/null").c_str()) != 0);
  CHECK(std::system((agent + " exec 2>/dev/null").c_str()) != 0);
  const std::string message =
      test::shell_output(agent + " exec --interval-ms abc -- true 2>&1 || true");
  CHECK_THAT(message, Catch::Contains("--interval-ms: 'abc' is not a non-negative integer"));
}
