// Reading secrets (tokens) from files.
//
// A token file must belong to the reading user (or root) and must not be
// readable or writable by group or others: such a file is refused with a
// message that says how to fix it. The token is never echoed in errors.
#pragma once

#include <string>

#include "core/result.hpp"

namespace tether::core {

// The file's first line, without surrounding whitespace. Errors name the
// file and the problem, never the content.
Result<std::string> read_secret_file(const std::string& path);

}  // namespace tether::core
