// Text for the cells of a terminal: how many columns a string takes, how to
// clip it to a width, byte counts for people. The live board of a fan-out
// run (run_board.hpp) and the status line of a single task use these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tether::cli {

// "0 B", "812 B", "1.5 KiB", "12.0 MiB": binary units, one decimal.
std::string human_bytes(uint64_t bytes);

// The columns `text` takes on a terminal. `text` is valid UTF-8 without
// control characters (printable() output): East Asian wide characters and
// emoji count 2, combining marks 0, every other code point 1 (an
// approximation of wcwidth that needs no locale). A byte that is not valid
// UTF-8 counts 1.
size_t display_width(std::string_view text);

// The longest prefix of `text` (cut between code points) that fits in
// `columns`; if `text` did not fit, its last column is "…" so the cut is
// seen. Empty for 0 columns.
std::string clip_to_width(std::string_view text, size_t columns);

// `text` clipped to `columns` and padded with spaces to exactly that width
// (on the right, or on the left with `align_right`).
std::string fit_to_width(std::string_view text, size_t columns, bool align_right = false);

}  // namespace tether::cli
