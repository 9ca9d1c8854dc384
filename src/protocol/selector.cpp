#include "protocol/selector.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <utility>

namespace tether::protocol {

namespace {

using Operator = Selector::Operator;
using Requirement = Selector::Requirement;

// What the lexer sees: a word is a run of anything but whitespace and the
// punctuation below, so "ro/le" is one word the key rule then refuses by
// name, rather than "ro" followed by a puzzling "/".
enum class TokenKind {
  kWord,
  kOpen,
  kClose,
  kComma,
  kEquals,
  kDoubleEquals,
  kNotEquals,
  kBang,
  kEnd
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string_view lexeme;
  size_t column = 1;  // 1-based, in bytes
};

bool whitespace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool delimiter(char c) {
  return whitespace(c) || c == '(' || c == ')' || c == ',' || c == '=' || c == '!';
}

// The tokens of one text, read one at a time.
struct Cursor {
  std::string_view text;
  size_t position = 0;

  Token next() {
    while (position < text.size() && whitespace(text[position]))
      ++position;
    const size_t start = position;
    if (start == text.size()) return Token{TokenKind::kEnd, {}, start + 1};
    auto punctuation = [&](TokenKind kind, size_t length) {
      position += length;
      return Token{kind, text.substr(start, length), start + 1};
    };
    const char c = text[start];
    const bool equals_follows = start + 1 < text.size() && text[start + 1] == '=';
    if (c == '(') return punctuation(TokenKind::kOpen, 1);
    if (c == ')') return punctuation(TokenKind::kClose, 1);
    if (c == ',') return punctuation(TokenKind::kComma, 1);
    if (c == '=')
      return equals_follows ? punctuation(TokenKind::kDoubleEquals, 2)
                            : punctuation(TokenKind::kEquals, 1);
    if (c == '!')
      return equals_follows ? punctuation(TokenKind::kNotEquals, 2)
                            : punctuation(TokenKind::kBang, 1);
    while (position < text.size() && !delimiter(text[position]))
      ++position;
    return Token{TokenKind::kWord, text.substr(start, position - start), start + 1};
  }

  Token peek() const { return Cursor(*this).next(); }
};

// A token as a message shows it: quoted, control and non-ASCII bytes as
// \xNN (the text may come from anyone and end up on a terminal), at most
// 64 bytes of it.
std::string shown(const Token& token) {
  if (token.kind == TokenKind::kEnd) return "the end";
  constexpr size_t kShownBytes = 64;
  std::string out = "'";
  for (char c : token.lexeme.substr(0, kShownBytes)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    }
  }
  return out + (token.lexeme.size() > kShownBytes ? "...'" : "'");
}

Error error_at(size_t column, const std::string& what) {
  return make_error(Errc::kInvalid, "invalid_selector",
                    "selector: at column " + std::to_string(column) + ": " + what);
}

Error unexpected(const Token& found, const std::string& expected) {
  return error_at(found.column, "expected " + expected + ", found " + shown(found));
}

Result<std::string> read_key(const Token& token) {
  if (!is_label_key(token.lexeme)) {
    return error_at(token.column, "key " + shown(token) + " must be " + std::string(kLabelKeyRule));
  }
  return std::string(token.lexeme);
}

Result<std::string> read_value(const Token& token) {
  if (!is_label_value(token.lexeme)) {
    return error_at(token.column,
                    "value " + shown(token) + " must be " + std::string(kLabelValueRule));
  }
  return std::string(token.lexeme);
}

// After =, == or !=: a word, or nothing (the value "") when a comma or the
// end follows. `last` becomes the value's token, or the operator's.
Result<std::string> read_single_value(Cursor& cursor, const Token& op, Token& last) {
  last = op;
  const Token token = cursor.peek();
  if (token.kind == TokenKind::kComma || token.kind == TokenKind::kEnd) return std::string();
  cursor.next();
  if (token.kind != TokenKind::kWord) return unexpected(token, "a value after " + shown(op));
  last = token;
  return read_value(token);
}

// After in or notin: "(v1,v2,...)", at least one value, none empty. `last`
// becomes the closing parenthesis.
Result<std::set<std::string>> read_set(Cursor& cursor, const Token& op, Token& last) {
  const Token open = cursor.next();
  if (open.kind != TokenKind::kOpen) return unexpected(open, "( after " + shown(op));
  if (cursor.peek().kind == TokenKind::kClose) {
    return error_at(open.column, "empty set after " + shown(op) + " (name at least one value)");
  }
  std::set<std::string> values;
  Token previous = open;
  while (true) {
    const Token token = cursor.next();
    if (token.kind != TokenKind::kWord) {
      return unexpected(token, "a value after " + shown(previous));
    }
    TETHER_TRY(value, read_value(token));
    values.insert(std::move(*value));
    const Token separator = cursor.next();
    if (separator.kind == TokenKind::kClose) {
      last = separator;
      return values;
    }
    if (separator.kind != TokenKind::kComma) {
      return unexpected(separator, "a comma or ) after " + shown(token));
    }
    previous = separator;
  }
}

// What follows a key: an operator and its value or set, or nothing (the
// key exists). `last` becomes the requirement's last token.
Result<Requirement> read_operation(Cursor& cursor, std::string key, Token& last) {
  Requirement requirement{Operator::kExists, std::move(key), {}};
  const Token op = cursor.peek();
  const bool set_word = op.kind == TokenKind::kWord && (op.lexeme == "in" || op.lexeme == "notin");
  if (op.kind == TokenKind::kEquals || op.kind == TokenKind::kDoubleEquals ||
      op.kind == TokenKind::kNotEquals) {
    cursor.next();
    requirement.op = op.kind == TokenKind::kNotEquals ? Operator::kNotEquals : Operator::kEquals;
    TETHER_TRY(value, read_single_value(cursor, op, last));
    requirement.values.insert(std::move(*value));
  } else if (set_word) {
    cursor.next();
    requirement.op = op.lexeme == "in" ? Operator::kIn : Operator::kNotIn;
    TETHER_TRY(values, read_set(cursor, op, last));
    requirement.values = std::move(*values);
  } else if (op.kind != TokenKind::kComma && op.kind != TokenKind::kEnd) {
    return unexpected(op, "=, ==, !=, in, notin, a comma or the end after " + shown(last));
  }
  return requirement;
}

// One requirement; `last` becomes its last token, for the message when
// something other than a comma follows it.
Result<Requirement> read_requirement(Cursor& cursor, const Token* comma, Token& last) {
  Token token = cursor.next();
  const std::string after = comma ? " after " + shown(*comma) : "";
  if (token.kind == TokenKind::kBang) {
    const Token bang = token;
    token = cursor.next();
    if (token.kind != TokenKind::kWord) return unexpected(token, "a key after " + shown(bang));
    TETHER_TRY(key, read_key(token));
    last = token;
    return Requirement{Operator::kNotExists, std::move(*key), {}};
  }
  if (token.kind != TokenKind::kWord) return unexpected(token, "a key or !key" + after);
  TETHER_TRY(key, read_key(token));
  last = token;
  return read_operation(cursor, std::move(*key), last);
}

void append_set(std::string& out, const std::set<std::string>& values) {
  out += " (";
  for (const std::string& value : values)
    out += (&value == &*values.begin() ? "" : ",") + value;
  out += ")";
}

}  // namespace

Result<Selector> Selector::parse(std::string_view text) {
  if (text.size() > kMaxSelectorBytes) {
    return make_error(Errc::kInvalid, "invalid_selector",
                      "selector: too long: " + std::to_string(text.size()) + " bytes (at most " +
                          std::to_string(kMaxSelectorBytes) + ")");
  }
  Cursor cursor{text};
  if (cursor.peek().kind == TokenKind::kEnd) {
    return make_error(Errc::kInvalid, "invalid_selector",
                      "selector: empty (name at least one label requirement)");
  }
  std::vector<Requirement> requirements;
  std::optional<Token> comma;
  while (true) {
    if (requirements.size() == kMaxSelectorRequirements) {
      return error_at(cursor.peek().column,
                      "more than " + std::to_string(kMaxSelectorRequirements) + " requirements");
    }
    Token last;
    TETHER_TRY(requirement, read_requirement(cursor, comma ? &*comma : nullptr, last));
    requirements.push_back(std::move(*requirement));
    const Token next = cursor.next();
    if (next.kind == TokenKind::kEnd) break;
    if (next.kind != TokenKind::kComma) {
      return unexpected(next, "a comma or the end after " + shown(last));
    }
    comma = next;
  }
  return Selector(std::move(requirements));
}

bool Selector::matches(const Labels& labels) const {
  return std::all_of(requirements_.begin(), requirements_.end(), [&](const Requirement& r) {
    const auto found = labels.find(r.key);
    const bool present = found != labels.end();
    const bool listed = present && r.values.count(found->second) > 0;
    switch (r.op) {
      case Operator::kEquals:
      case Operator::kIn:
        return listed;
      case Operator::kNotEquals:
      case Operator::kNotIn:
        return !listed;
      case Operator::kExists:
        return present;
      case Operator::kNotExists:
        return !present;
    }
    return false;
  });
}

std::string Selector::text() const {
  std::string out;
  for (const Requirement& r : requirements_) {
    if (!out.empty()) out += ",";
    const std::string value = r.values.empty() ? std::string() : *r.values.begin();
    switch (r.op) {
      case Operator::kEquals:
        out += r.key + "=" + value;
        break;
      case Operator::kNotEquals:
        out += r.key + "!=" + value;
        break;
      case Operator::kIn:
        out += r.key + " in";
        append_set(out, r.values);
        break;
      case Operator::kNotIn:
        out += r.key + " notin";
        append_set(out, r.values);
        break;
      case Operator::kExists:
        out += r.key;
        break;
      case Operator::kNotExists:
        out += "!" + r.key;
        break;
    }
  }
  return out;
}

}  // namespace tether::protocol
