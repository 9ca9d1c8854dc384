// Selector: which agents a request means, by their labels (labels.hpp), as
// one text: "role=web,region in (eu,us),!canary". The one grammar of agent
// listings, pool tasks and fan-out runs (docs/protocol.md 11.4).
//
// Modelled on Kubernetes label selectors, equality- and set-based
// (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors):
// requirements separated by commas, all of which must hold (AND); a comma
// inside ( ) separates the values of a set. The forms:
//   key=value, key==value   the label is there with that value ("key=" : the value "")
//   key!=value              the label is absent, or has another value
//   key in (v1,v2)          the label is there with one of the values
//   key notin (v1,v2)       the label is absent, or has none of the values
//   key                     the label is there, whatever its value
//   !key                    the label is absent
// Keys and values follow the label rule (kLabelKeyRule, kLabelValueRule).
// Spaces, tabs, CR and LF may surround every token. `in` and `notin` are
// operators only after a key: a key may be called "in".
// Unlike Kubernetes:
// - an empty text is an error, not "every agent": a run must not reach
//   the whole fleet because a variable was empty;
// - a set names at least one value, and no value in a set is empty
//   ("key=" and "key!=" say it of the value "").
#pragma once

#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "protocol/labels.hpp"

namespace tether::protocol {

// Bounds of a selector's text, so that one request cannot make the hub parse
// or match without end.
inline constexpr size_t kMaxSelectorBytes = 1024;
inline constexpr size_t kMaxSelectorRequirements = 64;

class Selector {
 public:
  enum class Operator { kEquals, kNotEquals, kIn, kNotIn, kExists, kNotExists };
  // One comma-separated part. `values`: one for kEquals and kNotEquals (it
  // may be ""), at least one for kIn and kNotIn, none otherwise; a set, so
  // "(us,eu,us)" is "(eu,us)".
  struct Requirement {
    Operator op = Operator::kExists;
    std::string key;
    std::set<std::string> values;
    bool operator==(const Requirement&) const = default;
  };

  // Errors, with code "invalid_selector":
  // - "selector: empty (name at least one label requirement)" for a text of
  //   nothing but whitespace;
  // - "selector: too long: N bytes (at most 1024)";
  // - "selector: at column N: WHAT" otherwise, N the 1-based byte column of
  //   the offending token (one past the text for its end), WHAT naming what
  //   was expected and what was found, e.g. "expected ( after 'in', found
  //   'eu'", "key 'ro/le' must be 1 to 63 of ...", "more than 64
  //   requirements". docs/protocol.md 11.4 lists them.
  static Result<Selector> parse(std::string_view text);

  // Whether every requirement holds for `labels`.
  bool matches(const Labels& labels) const;

  // The canonical text: the requirements in the order given, `=` for `==`,
  // sets sorted, no spaces but the one around in and notin
  // ("role=web,region in (eu,us),!canary"). parse() reads it back to an
  // equal selector.
  std::string text() const;

  // In the order given; never empty.
  const std::vector<Requirement>& requirements() const { return requirements_; }

  // The same requirements in the same order (so the same text()).
  bool operator==(const Selector&) const = default;

 private:
  explicit Selector(std::vector<Requirement> requirements)
      : requirements_(std::move(requirements)) {}

  std::vector<Requirement> requirements_;
};

}  // namespace tether::protocol
