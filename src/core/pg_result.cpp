#include "core/pg_result.hpp"

#include <charconv>
#include <stdexcept>

namespace tether::core {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

int64_t PgResult::changed_rows() const {
  const char* text = PQcmdTuples(result_.get());
  int64_t value = 0;
  std::from_chars(text, text + std::char_traits<char>::length(text), value);
  return value;
}

void PgResult::check(int row, int column) const {
  if (row < 0 || row >= rows() || column < 0 || column >= columns())
    throw std::logic_error("PgResult: no row " + std::to_string(row) + " column " +
                           std::to_string(column));
}

bool PgResult::is_null(int row, int column) const {
  check(row, column);
  return PQgetisnull(result_.get(), row, column) != 0;
}

std::string_view PgResult::text(int row, int column) const {
  check(row, column);
  return {PQgetvalue(result_.get(), row, column),
          static_cast<size_t>(PQgetlength(result_.get(), row, column))};
}

int64_t PgResult::int64(int row, int column) const {
  const std::string_view value = text(row, column);
  if (is_null(row, column)) return 0;
  int64_t number = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), number);
  if (error != std::errc() || end != value.data() + value.size())
    throw std::logic_error("PgResult: column " + std::string(PQfname(result_.get(), column)) +
                           " is not an integer: " + std::string(value));
  return number;
}

std::string PgResult::bytes(int row, int column) const {
  const std::string_view value = text(row, column);
  if (is_null(row, column)) return {};
  if (value.size() < 2 || value[0] != '\\' || value[1] != 'x' || value.size() % 2 != 0)
    throw std::logic_error("PgResult: column " + std::string(PQfname(result_.get(), column)) +
                           " is not bytea in hex format");
  std::string out;
  out.reserve((value.size() - 2) / 2);
  for (size_t i = 2; i < value.size(); i += 2) {
    const int high = hex_digit(value[i]);
    const int low = hex_digit(value[i + 1]);
    if (high < 0 || low < 0) throw std::logic_error("PgResult: a bad hex digit in bytea");
    out.push_back(static_cast<char>(high * 16 + low));
  }
  return out;
}

}  // namespace tether::core
