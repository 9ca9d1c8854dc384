// tether run --secret: where each value comes from (the environment, a
// file, a pipe) and what is refused, with messages that never quote a value.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>

#include "cli/secret_options.hpp"
#include "protocol/task_spec.hpp"
#include "support.hpp"

using namespace tether;

namespace {

cli::EnvironmentLookup environment_of(std::map<std::string, std::string> variables) {
  return [variables](const std::string& name) -> std::optional<std::string> {
    auto it = variables.find(name);
    if (it == variables.end()) return std::nullopt;
    return it->second;
  };
}

std::string write_file(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

}  // namespace

TEST_CASE("--secret NAME takes the value from the CLI's environment", "[cli][secrets]") {
  auto secrets = cli::read_secret_options(
      {"DB_PASSWORD", "API_KEY"},
      environment_of({{"DB_PASSWORD", "from env"}, {"API_KEY", "k\n2"}, {"OTHER", "x"}}));
  REQUIRE(secrets.ok());
  CHECK(*secrets ==
        std::map<std::string, std::string>{{"API_KEY", "k\n2"}, {"DB_PASSWORD", "from env"}});
  auto unset = cli::read_secret_options({"MISSING"}, environment_of({}));
  REQUIRE_FALSE(unset.ok());
  CHECK(unset.error().code == "usage");
  CHECK_THAT(unset.error().message,
             Catch::Contains("--secret MISSING: MISSING is not set in tether's environment"));
}

TEST_CASE("--secret NAME=@FILE takes the file's bytes less one trailing newline",
          "[cli][secrets]") {
  test::TempDir dir("tether-cli-secrets");
  const auto none = environment_of({});
  struct Case {
    std::string content;
    std::string value;
  };
  const Case cases[] = {
      {"hunter2\n", "hunter2"},      // as echo or an editor writes it
      {"hunter2", "hunter2"},        // printf without one
      {"hunter2\n\n", "hunter2\n"},  // a value that ends in a newline: two
      {"line one\nline two\n", "line one\nline two"},
      {"crlf\r\n", "crlf\r"},  // only the newline itself
      {"", ""},
  };
  for (const auto& c : cases) {
    const std::string path = write_file(dir.path + "/secret", c.content);
    auto secrets = cli::read_secret_options({"PW=@" + path}, none);
    INFO(c.content);
    REQUIRE(secrets.ok());
    CHECK(secrets->at("PW") == c.value);
  }
  // A pipe, as `--secret PW=@<(pass show pw)` gives.
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  REQUIRE(::write(fds[1], "piped\n", 6) == 6);
  ::close(fds[1]);
  auto piped = cli::read_secret_options({"PW=@/dev/fd/" + std::to_string(fds[0])}, none);
  ::close(fds[0]);
  REQUIRE(piped.ok());
  CHECK(piped->at("PW") == "piped");
  // The largest value, and one byte more.
  const std::string largest(protocol::kMaxSecretBytes, 'x');
  write_file(dir.path + "/large", largest + "\n");
  auto fits = cli::read_secret_options({"PW=@" + dir.path + "/large"}, none);
  REQUIRE(fits.ok());
  CHECK(fits->at("PW") == largest);
  write_file(dir.path + "/large", largest + "xy");
  auto over = cli::read_secret_options({"PW=@" + dir.path + "/large"}, none);
  REQUIRE_FALSE(over.ok());
  CHECK_THAT(over.error().message, Catch::Contains("larger than a secret may be"));
}

TEST_CASE(
    "--secret refuses a value in argv, bad names, unreadable files and repeats, "
    "without quoting a value",
    "[cli][secrets]") {
  test::TempDir dir("tether-cli-secrets");
  const std::string binary = write_file(dir.path + "/binary", std::string("a\xff\xfe", 3));
  const std::string nul = write_file(dir.path + "/nul", std::string("a\0b", 3));
  const std::string good = write_file(dir.path + "/good", "a-good-value");
  const auto environment = environment_of({{"PW", "hidden-value"}});
  struct Case {
    std::vector<std::string> options;
    const char* expected;
  };
  const Case cases[] = {
      {{"PW=hidden-value"}, "--secret PW=...: a value on the command line would be visible"},
      {{"PW=@"}, "--secret PW=...: =@ needs a file name"},
      {{"1PW"}, "--secret 1PW: not a valid variable name"},
      {{"BAD-NAME=@x"}, "--secret BAD-NAME: not a valid variable name"},
      {{"=@x"}, "not a valid variable name"},
      {{"PW=@" + dir.path + "/absent"}, "--secret PW=...: cannot open '"},
      {{"PW=@" + binary}, "the value is not UTF-8 text"},
      {{"PW=@" + nul}, "the value holds a NUL byte"},
      {{"PW", "PW=@" + good}, "--secret PW: given twice"},
  };
  for (const auto& c : cases) {
    INFO(c.options.back());
    auto secrets = cli::read_secret_options(c.options, environment);
    REQUIRE_FALSE(secrets.ok());
    CHECK(secrets.error().code == "usage");
    CHECK_THAT(secrets.error().message, Catch::Contains(c.expected));
    CHECK_THAT(secrets.error().message, !Catch::Contains("hidden"));
  }
}
