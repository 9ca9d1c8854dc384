#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <vector>

namespace {

// Repeats every failed assertion on stderr once the run has ended. Catch's
// own report goes to stdout, before the processes' logs (stderr) in what
// `meson test --print-errorlogs` shows, and CI keeps only the last lines of
// that: without this, a failure there names no test.
class FailureDigest : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseStarting(const Catch::TestCaseInfo& info) override { test_ = info.name; }

  bool assertionEnded(const Catch::AssertionStats& stats) override {
    const Catch::AssertionResult& result = stats.assertionResult;
    if (result.isOk()) return true;
    std::string line = test_ + "\n  " + result.getSourceInfo().file + ":" +
                       std::to_string(result.getSourceInfo().line) + ": ";
    line += result.hasExpression() ? result.getExpressionInMacro() : std::string("FAIL");
    if (result.hasExpandedExpression() && result.getExpandedExpression() != result.getExpression())
      line += "\n  with expansion: " + result.getExpandedExpression();
    if (!result.getMessage().empty()) line += "\n  " + result.getMessage();
    for (const auto& message : stats.infoMessages)
      line += "\n  info: " + message.message.substr(0, 400);
    failures_.push_back(std::move(line));
    return true;
  }

  void testRunEnded(const Catch::TestRunStats& stats) override {
    if (failures_.empty()) return;
    std::fprintf(stderr, "\n==== %zu failed assertion(s) in %zu test case(s) ====\n",
                 failures_.size(), static_cast<size_t>(stats.totals.testCases.failed));
    for (const auto& failure : failures_)
      std::fprintf(stderr, "%s\n", failure.c_str());
  }

 private:
  std::string test_;
  std::vector<std::string> failures_;
};

}  // namespace

CATCH_REGISTER_LISTENER(FailureDigest)
