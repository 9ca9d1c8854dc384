// KeyDecoder: the keys of the live board (docs/cli.md, Fleets) from the
// bytes a terminal in non-canonical mode sends for them.
//
//   Up,   "k"      the host above          ESC [ A  or  ESC O A
//   Down, "j"      the host below          ESC [ B  or  ESC O B
//   Tab,  "n"      the next host with output
//   Shift-Tab, "N" the previous host with output   ESC [ Z
//   "q"            stop following
//
// Any other byte or escape sequence (function keys, a paste, Alt-x) is
// read whole and ignored. A sequence cut between two reads is kept until
// its end comes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tether::cli {

enum class BoardKey { kUp, kDown, kNextWithOutput, kPreviousWithOutput, kQuit };

class KeyDecoder {
 public:
  // The keys `bytes` completes, in order.
  std::vector<BoardKey> feed(std::string_view bytes);

 private:
  // Consumes one escape sequence from `pending_`; false if it is not whole yet.
  bool take_escape(std::vector<BoardKey>& keys);

  std::string pending_;  // an escape sequence begun, not yet ended
};

}  // namespace tether::cli
