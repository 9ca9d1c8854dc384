// agent::SecretRedactor: secret values out of a stream as it is read, split
// across reads anywhere, with the overlap rules of secret_redactor.hpp; and
// the runner using it on a real child's streams.
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "agent/secret_redactor.hpp"
#include "agent/task_executor.hpp"
#include "core/run.hpp"
#include "support.hpp"

using namespace tether;
using agent::SecretRedactor;
using Secrets = std::map<std::string, std::string>;

namespace {

// The whole stream through one redactor, cut into `pieces`; what came out.
std::string redact(const Secrets& secrets, const std::vector<std::string>& pieces,
                   uint64_t* count = nullptr) {
  SecretRedactor redactor(secrets);
  std::string out;
  for (const auto& piece : pieces)
    redactor.append(piece, out);
  redactor.finish(out);
  if (count) *count = redactor.redactions();
  CHECK(redactor.bytes_held() == 0);
  return out;
}

std::string redact(const Secrets& secrets, const std::string& stream, uint64_t* count = nullptr) {
  return redact(secrets, std::vector<std::string>{stream}, count);
}

// The rule written out plainly, over the whole stream at once: from the
// start, at each byte the longest value (of 4 bytes or more) that starts
// there is replaced and scanning goes on after it; else the byte stays.
std::string reference(const Secrets& secrets, const std::string& stream, uint64_t& count) {
  std::map<std::string, std::string> names;  // value -> first name
  for (const auto& [name, value] : secrets) {
    if (value.size() >= SecretRedactor::kMinSecretBytes) names.emplace(value, name);
  }
  std::string out;
  count = 0;
  for (size_t i = 0; i < stream.size();) {
    const std::string* best = nullptr;
    for (const auto& [value, name] : names) {
      if (stream.compare(i, value.size(), value) == 0 && (!best || value.size() > best->size())) {
        best = &value;
      }
    }
    if (best) {
      out += "[secret:" + names.at(*best) + "]";
      i += best->size();
      ++count;
    } else {
      out += stream[i++];
    }
  }
  return out;
}

}  // namespace

TEST_CASE("a whole secret in one read becomes [secret:NAME]", "[redactor]") {
  uint64_t count = 0;
  CHECK(redact({{"DB_PASSWORD", "hunter2X"}}, "password: hunter2X, ok\n", &count) ==
        "password: [secret:DB_PASSWORD], ok\n");
  CHECK(count == 1);
  CHECK(redact({{"DB_PASSWORD", "hunter2X"}}, "hunter2Xhunter2X", &count) ==
        "[secret:DB_PASSWORD][secret:DB_PASSWORD]");
  CHECK(count == 2);
}

TEST_CASE("a secret split across two reads at every position is redacted", "[redactor]") {
  const Secrets secrets = {{"TOKEN", "s3cr3t-v4lue"}};
  const std::string stream = "a line\nthe token is s3cr3t-v4lue!\nnext\n";
  const std::string expected = "a line\nthe token is [secret:TOKEN]!\nnext\n";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    INFO("cut at " << cut);
    uint64_t count = 0;
    CHECK(redact(secrets, {stream.substr(0, cut), stream.substr(cut)}, &count) == expected);
    CHECK(count == 1);
  }
  // And one byte per read.
  std::vector<std::string> bytes;
  for (char c : stream)
    bytes.emplace_back(1, c);
  CHECK(redact(secrets, bytes) == expected);
}

TEST_CASE("a secret at the very end of the stream, without a newline, is redacted", "[redactor]") {
  SecretRedactor redactor(Secrets{{"KEY", "tail-secret"}});
  std::string out;
  redactor.append("done: tail-sec", out);
  CHECK(out == "done: ");  // the rest could be the secret's start: held
  CHECK(redactor.bytes_held() == 8);
  redactor.append("ret", out);
  CHECK(out == "done: [secret:KEY]");  // whole, and no longer value can follow: out at once
  CHECK(redactor.bytes_held() == 0);
  redactor.finish(out);
  CHECK(out == "done: [secret:KEY]");
  CHECK(redactor.redactions() == 1);

  // Whole, but also the start of a longer value: decided by the stream's end.
  SecretRedactor nested(Secrets{{"KEY", "tail-secret"}, {"LONGER", "tail-secret-2"}});
  std::string nested_out;
  nested.append("done: tail-secret", nested_out);
  CHECK(nested_out == "done: ");
  nested.finish(nested_out);
  CHECK(nested_out == "done: [secret:KEY]");
  CHECK(nested.redactions() == 1);
}

TEST_CASE("two secrets are each redacted and counted", "[redactor]") {
  uint64_t count = 0;
  CHECK(redact({{"USER_PW", "alpha-one"}, {"API_KEY", "beta-two"}},
               "u=alpha-one k=beta-two u=alpha-one\n",
               &count) == "u=[secret:USER_PW] k=[secret:API_KEY] u=[secret:USER_PW]\n");
  CHECK(count == 3);
}

TEST_CASE("of a secret that is a prefix of another, the longer wins when whole", "[redactor]") {
  const Secrets secrets = {{"SHORT", "abcd"}, {"LONG", "abcdefgh"}};
  CHECK(redact(secrets, "x abcdefgh y") == "x [secret:LONG] y");
  CHECK(redact(secrets, "x abcdefg y") == "x [secret:SHORT]efg y");
  CHECK(redact(secrets, "x abcd") == "x [secret:SHORT]");
  CHECK(redact(secrets, "x abcdef") == "x [secret:SHORT]ef");
  // Split inside either.
  CHECK(redact(secrets, {"x abc", "defg", "h y"}) == "x [secret:LONG] y");
  CHECK(redact(secrets, {"x abcd", "e", "fg!"}) == "x [secret:SHORT]efg!");
}

TEST_CASE("nested and overlapping secrets: earliest start, then longest", "[redactor]") {
  // One inside another: the outer one when it is whole.
  CHECK(redact({{"OUTER", "xxabcdxx"}, {"INNER", "abcd"}}, "xxabcdxx") == "[secret:OUTER]");
  CHECK(redact({{"OUTER", "xxabcdxx"}, {"INNER", "abcd"}}, "xxabcdyy") == "xx[secret:INNER]yy");
  // A suffix of another.
  CHECK(redact({{"WHOLE", "0123456789"}, {"END", "6789"}}, "-0123456789-") == "-[secret:WHOLE]-");
  CHECK(redact({{"WHOLE", "0123456789"}, {"END", "6789"}}, "-3456789-") == "-345[secret:END]-");
  // Overlapping: the one that starts first; the other is no longer whole.
  CHECK(redact({{"A", "abcdef"}, {"B", "defghi"}}, "abcdefghi") == "[secret:A]ghi");
  CHECK(redact({{"A", "abcdef"}, {"B", "defghi"}}, "zzdefghi") == "zz[secret:B]");
  // A later value found first must give way to an earlier one completing after it.
  CHECK(redact({{"LATE", "bcde"}, {"EARLY", "abcdefg"}}, "abcdefg") == "[secret:EARLY]");
  CHECK(redact({{"LATE", "bcde"}, {"EARLY", "abcdefg"}}, "abcdefX") == "a[secret:LATE]fX");
}

TEST_CASE("values under 4 bytes are left alone; 4 bytes are redacted", "[redactor]") {
  uint64_t count = 0;
  CHECK(redact({{"PIN", "123"}, {"EMPTY", ""}}, "pin 123 ok", &count) == "pin 123 ok");
  CHECK(count == 0);
  CHECK_FALSE(SecretRedactor(Secrets{{"PIN", "123"}}).active());
  CHECK(redact({{"PIN", "1234"}}, "pin 1234 ok", &count) == "pin [secret:PIN] ok");
  CHECK(count == 1);
}

TEST_CASE("the same value under two names shows the first name", "[redactor]") {
  CHECK(redact({{"B_NAME", "same-value"}, {"A_NAME", "same-value"}}, "same-value") ==
        "[secret:A_NAME]");
}

TEST_CASE(
    "bytes that cannot start a secret pass at once; a possible start is held until "
    "decided or finished",
    "[redactor]") {
  SecretRedactor redactor(Secrets{{"PASSWORD", "correct-horse"}});
  std::string out;
  redactor.append("hello world\n", out);
  CHECK(out == "hello world\n");
  CHECK(redactor.bytes_held() == 0);
  redactor.append("it is correct", out);
  CHECK(out == "hello world\nit is ");
  CHECK(redactor.bytes_held() == 7);
  redactor.append("ly done", out);  // not the secret after all: released at once
  CHECK(out == "hello world\nit is correctly done");
  CHECK(redactor.bytes_held() == 0);
  redactor.append(" correct-h", out);
  CHECK(redactor.bytes_held() == 9);
  redactor.finish(out);  // the stream ended: what was held goes out as it is
  CHECK(out == "hello world\nit is correctly done correct-h");
  CHECK(redactor.bytes_held() == 0);
  CHECK(redactor.redactions() == 0);
}

TEST_CASE("without secrets, bytes pass through untouched", "[redactor]") {
  SecretRedactor redactor(Secrets{});
  CHECK_FALSE(redactor.active());
  std::string out;
  const std::string binary("\0\xff\x80 x", 5);
  redactor.append(binary, out);
  CHECK(out == binary);
}

TEST_CASE("binary values and repeats match the plain rule for random streams and cuts",
          "[redactor]") {
  std::mt19937 random(20261130);
  const std::string alphabet("ab\xff\n", 4);
  auto text = [&](size_t length) {
    std::string s;
    for (size_t i = 0; i < length; ++i)
      s += alphabet[random() % alphabet.size()];
    return s;
  };
  for (int round = 0; round < 400; ++round) {
    Secrets secrets;
    const int values = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < values; ++i)
      secrets["S" + std::to_string(i)] = text(2 + random() % 7);
    const std::string stream = text(random() % 120);
    std::vector<std::string> pieces;
    for (size_t at = 0; at < stream.size();) {
      const size_t length = std::min<size_t>(stream.size() - at, random() % 9);
      pieces.push_back(stream.substr(at, length));
      at += length;
    }
    uint64_t expected_count = 0;
    const std::string expected = reference(secrets, stream, expected_count);
    uint64_t count = 0;
    INFO("round " << round);
    REQUIRE(redact(secrets, pieces, &count) == expected);
    REQUIRE(count == expected_count);
  }
}

TEST_CASE("the runner redacts a task's secrets from both streams and counts them",
          "[redactor][runner]") {
  protocol::TaskSpec task;
  task.task_id = "t-secret";
  task.attempt_id = "t-secret-a1";
  task.secrets = {{"DB_PASSWORD", "pa55-w0rd-xyz"}, {"SHORT", "abc"}};
  task.shell =
      "printf 'pw=%s\\n' \"$DB_PASSWORD\"; printf 'err %s %s' \"$DB_PASSWORD\" \"$SHORT\" >&2";
  test::CollectingSink sink;
  core::Loop loop;
  agent::TaskExecutor executor(loop, test::executor_options());
  auto run = [&]() -> core::Co<protocol::FinalReport> {
    co_return co_await executor.execute(task, sink);
  };
  const protocol::FinalReport report = core::run_to_completion(loop, run());
  CHECK(report.status == protocol::AttemptStatus::kSucceeded);
  CHECK(sink.out.bytes == "pw=[secret:DB_PASSWORD]\n");
  CHECK(sink.err.bytes == "err [secret:DB_PASSWORD] abc");
  REQUIRE(report.redactions.has_value());
  CHECK(report.redactions->stdout_count == 1);
  CHECK(report.redactions->stderr_count == 1);
  // The final's sizes and digests are of the redacted streams.
  CHECK(report.stdout_summary.bytes == sink.out.bytes.size());
  CHECK(report.stdout_summary.sha256 == protocol::sha256_hex(sink.out.bytes));
  CHECK(report.stderr_summary.sha256 == protocol::sha256_hex(sink.err.bytes));
}
