// Label selectors (protocol/selector.hpp, docs/protocol.md 11.4): every form
// matching and not, the canonical text and its round trip, and each error
// with its column and message.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "protocol/labels.hpp"
#include "protocol/selector.hpp"

using namespace tether;
using namespace tether::protocol;

namespace {

Labels labels_of(const std::string& text) {
  return parse_labels(text).value();
}

bool selects(const std::string& selector, const std::string& labels) {
  auto parsed = Selector::parse(selector);
  if (!parsed) FAIL("'" << selector << "' did not parse: " << parsed.error().message);
  return parsed->matches(labels_of(labels));
}

}  // namespace

TEST_CASE("selector: every form matches what Kubernetes' would, and only that", "[selector]") {
  struct Case {
    const char* selector;
    const char* labels;
    bool matches;
  };
  const Case cases[] = {
      {"role=web", "role=web,region=eu", true},
      {"role=web", "role=db", false},
      {"role=web", "region=eu", false},
      {"role==web", "role=web", true},
      {"role==web", "role=webx", false},
      {"role=", "role=", true},
      {"role=", "role=web", false},
      {"role=", "region=eu", false},
      {"role!=web", "role=db", true},
      {"role!=web", "role=web", false},
      {"role!=web", "region=eu", true},  // absent: as in Kubernetes
      {"role!=", "role=web", true},
      {"role!=", "role=", false},
      {"region in (eu,us)", "region=us", true},
      {"region in (eu,us)", "region=eu", true},
      {"region in (eu,us)", "region=ap", false},
      {"region in (eu,us)", "role=web", false},
      {"region notin (eu,us)", "region=ap", true},
      {"region notin (eu,us)", "region=eu", false},
      {"region notin (eu,us)", "role=web", true},  // absent: as in Kubernetes
      {"canary", "canary=", true},
      {"canary", "canary=yes", true},
      {"canary", "role=web", false},
      {"!canary", "role=web", true},
      {"!canary", "canary=", false},
      {"in", "in=x", true},  // a key may be called in
      {"in in (in)", "in=in", true},
      {"notin notin (x)", "notin=y", true},
      {"notin notin (x)", "notin=x", false},
      {"role=web,region in (eu,us),!canary", "role=web,region=eu", true},
      {"role=web,region in (eu,us),!canary", "role=web,region=eu,canary=1", false},
      {"role=web,region in (eu,us),!canary", "role=db,region=eu", false},
      {"role=web,region in (eu,us),!canary", "role=web", false},
      {"role=web,role!=db", "role=web", true},  // a key may come back
      {"role=web,role=db", "role=web", false},
  };
  for (const Case& c : cases) {
    INFO(c.selector << " on " << c.labels);
    CHECK(selects(c.selector, c.labels) == c.matches);
  }
}

TEST_CASE("selector: whitespace around tokens changes nothing", "[selector]") {
  const auto canonical = Selector::parse("role=web,region in (eu,us),!canary,tier!=db,x");
  REQUIRE(canonical);
  for (const char* spaced : {
           " role = web , region in ( eu , us ) , ! canary , tier != db , x ",
           "role==web,region in(eu,us),!canary,tier!=db,x",
           "\trole=web,\r\n region  in (us,eu,us),!canary,tier!=db,x\n",
       }) {
    INFO(spaced);
    auto parsed = Selector::parse(spaced);
    REQUIRE(parsed);
    CHECK(*parsed == *canonical);
    CHECK(parsed->text() == "role=web,region in (eu,us),!canary,tier!=db,x");
  }
  auto spaced_empty = Selector::parse("role= ,x");
  REQUIRE(spaced_empty);
  CHECK(spaced_empty->text() == "role=,x");
  CHECK(Selector::parse("role=web")->text() == "role=web");
  CHECK_FALSE(*Selector::parse("role=web") == *Selector::parse("role!=web"));
  CHECK_FALSE(*Selector::parse("a,b") == *Selector::parse("b,a"));  // the order given stays
}

TEST_CASE("selector: the canonical text reads back to an equal selector", "[selector]") {
  for (const char* text : {"role=web,region in (eu,us),!canary", "role=", "a!=,b", "k notin (1)",
                           "in in (in,notin),!notin", "a.b_c-9=x.y_z-1"}) {
    INFO(text);
    auto parsed = Selector::parse(text);
    REQUIRE(parsed);
    CHECK(parsed->text() == text);
    auto again = Selector::parse(parsed->text());
    REQUIRE(again);
    CHECK(*again == *parsed);
  }
  auto parsed = Selector::parse("role=web,region in (us,eu),!canary");
  REQUIRE(parsed);
  REQUIRE(parsed->requirements().size() == 3);
  CHECK(parsed->requirements()[1].op == Selector::Operator::kIn);
  CHECK(parsed->requirements()[1].values == std::set<std::string>{"eu", "us"});
}

TEST_CASE("selector: bad input is an error naming the column and what was expected", "[selector]") {
  const std::string rule_of_keys =
      "must be 1 to 63 of A-Z a-z 0-9 . _ - starting with a letter or digit";
  const std::string rule_of_values = "must be 0 to 63 of A-Z a-z 0-9 . _ -";
  const std::string long_key(64, 'k');
  struct Case {
    std::string text;
    int column;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"region in (eu,us", 17, "expected a comma or ) after 'us', found the end"},
      {"region in ()", 11, "empty set after 'in' (name at least one value)"},
      {"region notin ( )", 14, "empty set after 'notin' (name at least one value)"},
      {"region in eu", 11, "expected ( after 'in', found 'eu'"},
      {"region notin", 13, "expected ( after 'notin', found the end"},
      {"region in (eu,,us)", 15, "expected a value after ',', found ','"},
      {"region in (eu,)", 15, "expected a value after ',', found ')'"},
      {"region in (eu us)", 15, "expected a comma or ) after 'eu', found 'us'"},
      {"region in (eu/x)", 12, "value 'eu/x' " + rule_of_values},
      {"ro/le=web", 1, "key 'ro/le' " + rule_of_keys},
      {"-role=web", 1, "key '-role' " + rule_of_keys},
      {"r\xc3\xb4le=web", 1, "key 'r\\xc3\\xb4le' " + rule_of_keys},
      {long_key + "=v", 1, "key '" + long_key + "' " + rule_of_keys},
      {"role=we/b", 6, "value 'we/b' " + rule_of_values},
      {"role=web\x01", 6, "value 'web\\x01' " + rule_of_values},
      {"k=" + std::string(64, 'v'), 3, "value '" + std::string(64, 'v') + "' " + rule_of_values},
      {"role=(web)", 6, "expected a value after '=', found '('"},
      {"role===web", 7, "expected a value after '==', found '='"},
      {"role=web,", 10, "expected a key or !key after ',', found the end"},
      {"role=web,,region=eu", 10, "expected a key or !key after ',', found ','"},
      {",role=web", 1, "expected a key or !key, found ','"},
      {"(a)", 1, "expected a key or !key, found '('"},
      {"key ~ x", 5, "expected =, ==, !=, in, notin, a comma or the end after 'key', found '~'"},
      {"role!web", 5, "expected =, ==, !=, in, notin, a comma or the end after 'role', found '!'"},
      {"role=web region=eu", 10, "expected a comma or the end after 'web', found 'region'"},
      {"role= region=eu", 13, "expected a comma or the end after 'region', found '='"},
      {"region in (eu)x", 15, "expected a comma or the end after ')', found 'x'"},
      {"!", 2, "expected a key after '!', found the end"},
      {"!!a", 2, "expected a key after '!', found '!'"},
      {"!role=web", 6, "expected a comma or the end after 'role', found '='"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto parsed = Selector::parse(c.text);
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().code == "invalid_selector");
    CHECK(parsed.error().kind == Errc::kInvalid);
    CHECK(parsed.error().message ==
          "selector: at column " + std::to_string(c.column) + ": " + c.message);
  }
  // A long token is shown cut, so that a message stays a line.
  auto long_word = Selector::parse("a " + std::string(100, 'x'));
  REQUIRE_FALSE(long_word);
  CHECK(long_word.error().message ==
        "selector: at column 3: expected =, ==, !=, in, notin, a "
        "comma or the end after 'a', found '" +
            std::string(64, 'x') + "...'");
}

TEST_CASE("selector: an empty text, one too long and too many requirements are refused",
          "[selector]") {
  for (const char* empty : {"", " ", " \t\r\n"}) {
    auto parsed = Selector::parse(empty);
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().code == "invalid_selector");
    CHECK(parsed.error().message == "selector: empty (name at least one label requirement)");
  }
  const std::string longest = "a" + std::string(kMaxSelectorBytes - 1, ' ');
  CHECK(Selector::parse(longest).ok());
  auto too_long = Selector::parse(longest + " ");
  REQUIRE_FALSE(too_long);
  CHECK(too_long.error().code == "invalid_selector");
  CHECK(too_long.error().message == "selector: too long: 1025 bytes (at most 1024)");

  std::string most;
  for (size_t i = 0; i < kMaxSelectorRequirements; ++i)
    most += (i ? ",k" : "k") + std::to_string(i);
  auto parsed = Selector::parse(most);
  REQUIRE(parsed);
  CHECK(parsed->requirements().size() == 64);
  auto too_many = Selector::parse(most + ",k64");
  REQUIRE_FALSE(too_many);
  CHECK(too_many.error().message ==
        "selector: at column " + std::to_string(most.size() + 2) + ": more than 64 requirements");
}

namespace {

// Random requirements, written with random spacing and spelling, and what
// they must become and match: the parser and matcher checked against a
// model of their own.
struct RandomRequirement {
  Selector::Operator op;
  std::string key;
  std::vector<std::string> values;  // as written: unsorted, maybe repeated
};

class RandomSelectors {
 public:
  explicit RandomSelectors(uint32_t seed) : random_(seed) {}

  std::vector<RandomRequirement> requirements() {
    std::vector<RandomRequirement> out(1 + pick(6));
    for (RandomRequirement& r : out) {
      r.op = static_cast<Selector::Operator>(pick(6));
      r.key = any_of(kKeys);
      const bool single =
          r.op == Selector::Operator::kEquals || r.op == Selector::Operator::kNotEquals;
      const bool set = r.op == Selector::Operator::kIn || r.op == Selector::Operator::kNotIn;
      if (single) r.values = {any_of(kValues)};
      for (size_t i = set ? 1 + pick(4) : 0; i > 0; --i)
        r.values.push_back(any_of(kSetValues));
    }
    return out;
  }

  std::string written(const std::vector<RandomRequirement>& requirements) {
    std::string text = space();
    for (const RandomRequirement& r : requirements) {
      if (&r != &requirements.front()) text += "," + space();
      if (r.op == Selector::Operator::kNotExists) text += "!" + space();
      text += r.key;
      if (r.op == Selector::Operator::kEquals) text += space() + (pick(2) ? "=" : "==") + space();
      if (r.op == Selector::Operator::kNotEquals) text += space() + "!=" + space();
      if (r.op == Selector::Operator::kIn) text += " " + space() + "in" + space() + "(";
      if (r.op == Selector::Operator::kNotIn) text += " " + space() + "notin" + space() + "(";
      for (const std::string& value : r.values)
        text += (&value == &r.values.front() ? "" : ",") + space() + value + space();
      if (r.op == Selector::Operator::kIn || r.op == Selector::Operator::kNotIn) text += ")";
      text += space();
    }
    return text;
  }

  Labels labels() {
    Labels out;
    for (const char* key : kKeys) {
      if (pick(3) > 0) out[key] = any_of(kValues);
    }
    return out;
  }

 private:
  static constexpr const char* kKeys[] = {"role", "region", "canary", "in", "notin", "a.b_c-9"};
  static constexpr const char* kValues[] = {"", "web", "db", "eu", "us", "1.0"};
  static constexpr const char* kSetValues[] = {"web", "db", "eu", "us", "1.0"};

  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(random_); }
  template <size_t N>
  std::string any_of(const char* const (&pool)[N]) {
    return pool[pick(N)];
  }
  std::string space() {
    static constexpr const char* kSpaces[] = {"", "", " ", "\t", "  ", "\r\n"};
    return any_of(kSpaces);
  }

  std::mt19937 random_;
};

std::string canonical(const std::vector<RandomRequirement>& requirements) {
  std::string text;
  for (const RandomRequirement& r : requirements) {
    const std::set<std::string> values(r.values.begin(), r.values.end());
    std::string set;
    for (const std::string& value : values)
      set += (set.empty() ? "(" : ",") + value;
    text += text.empty() ? "" : ",";
    if (r.op == Selector::Operator::kEquals) text += r.key + "=" + r.values[0];
    if (r.op == Selector::Operator::kNotEquals) text += r.key + "!=" + r.values[0];
    if (r.op == Selector::Operator::kIn) text += r.key + " in " + set + ")";
    if (r.op == Selector::Operator::kNotIn) text += r.key + " notin " + set + ")";
    if (r.op == Selector::Operator::kExists) text += r.key;
    if (r.op == Selector::Operator::kNotExists) text += "!" + r.key;
  }
  return text;
}

bool holds(const RandomRequirement& r, const Labels& labels) {
  const bool present = labels.count(r.key) > 0;
  const bool listed =
      present && std::find(r.values.begin(), r.values.end(), labels.at(r.key)) != r.values.end();
  if (r.op == Selector::Operator::kExists) return present;
  if (r.op == Selector::Operator::kNotExists) return !present;
  if (r.op == Selector::Operator::kEquals || r.op == Selector::Operator::kIn) return listed;
  return !listed;
}

}  // namespace

TEST_CASE("selector: random selectors print canonically, read back equal, and match as written",
          "[selector]") {
  RandomSelectors random(20261122);
  for (int round = 0; round < 500; ++round) {
    const auto requirements = random.requirements();
    const std::string written = random.written(requirements);
    INFO("written: '" << written << "'");
    auto parsed = Selector::parse(written);
    REQUIRE(parsed);
    CHECK(parsed->text() == canonical(requirements));
    auto again = Selector::parse(parsed->text());
    REQUIRE(again);
    CHECK(*again == *parsed);
    for (int i = 0; i < 20; ++i) {
      const Labels labels = random.labels();
      bool all = true;
      for (const RandomRequirement& r : requirements)
        all = all && holds(r, labels);
      INFO("labels: " << format_labels(labels));
      CHECK(parsed->matches(labels) == all);
    }
  }
}
