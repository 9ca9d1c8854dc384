// Reading secrets (tokens) from files.
//
// A token file must belong to the reading user (or root) and must not be
// readable or writable by group or others: such a file is refused with a
// message that says how to fix it. The token is never echoed in errors.
#pragma once

#include <string>
#include <string_view>

#include "core/result.hpp"

namespace tether::core {

// The file's first line, without surrounding whitespace. Errors name the
// file (as `what`: "token file", "password file") and the problem, never
// the content.
Result<std::string> read_secret_file(const std::string& path, std::string_view what = "token file");

// Writes `secret` and a newline to `path`, mode 0600 from its first byte (a
// new file beside it, renamed over `path`: no moment where it is readable
// by others, and a reader never sees half of it). With `owner_uid` >= 0
// (root only) the file is given to that user, for a daemon that runs as
// someone else. Errors ("secret_file") name the path, never the secret.
Result<void> write_secret_file(const std::string& path, const std::string& secret,
                               int owner_uid = -1, int owner_gid = -1);

}  // namespace tether::core
