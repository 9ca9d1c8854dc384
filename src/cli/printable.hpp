// Text the CLI did not write itself (an agent's version, a final's error, a
// hub message that quotes its input) is printed through printable(): a
// string from the network must not move the cursor, retitle the window or
// clear the screen of the operator's terminal. Task output is the one
// exception: it is reproduced byte-exact, as the task wrote it.
#pragma once

#include <string>
#include <string_view>

namespace tether::cli {

// `text` with every control character (C0, DEL, C1) and every byte that is
// not part of valid UTF-8 written as a visible escape (\e, \n, \t, \x1b,
// \u009b); printable UTF-8 is kept.
std::string printable(std::string_view text);

// JSON text for a terminal: the same escapes as \u sequences, where JSON
// keeps them raw (DEL and C1 controls inside strings). Still valid JSON,
// and the same value.
std::string printable_json(std::string_view json);

}  // namespace tether::cli
