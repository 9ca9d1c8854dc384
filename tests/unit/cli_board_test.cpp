// The live board of `tether run --selector/--agents` on a terminal
// (docs/cli.md, Fleets), without a terminal: the model (states, bytes, exit
// codes, which host is followed), what render() draws for given sizes, the
// keys, and the text helpers for terminal cells. Output from hosts is
// hostile here: escape sequences, carriage returns, endless and invalid
// lines must come out visible, and never wider or longer than the screen.
#include <catch2/catch.hpp>
#include <random>

#include "cli/key_decoder.hpp"
#include "cli/run_board.hpp"
#include "cli/terminal_text.hpp"

using namespace tether;
using cli::BoardKey;
using cli::RunBoard;

namespace {

protocol::RunView run_of(const std::vector<std::string>& agents) {
  protocol::RunView run;
  run.id = "r-1";
  run.state = "running";
  for (const auto& agent : agents) {
    protocol::RunTaskView task;
    task.agent = agent;
    task.task_id = "t-" + agent;
    task.state = "queued";
    run.tasks.push_back(task);
  }
  return run;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines)
    text += line + "\n";
  return text;
}

// Every rule render() promises, for any board and size.
void check_screen(const std::vector<std::string>& lines, size_t rows, size_t cols) {
  INFO(joined(lines));
  CHECK(lines.size() <= rows);
  for (const auto& line : lines) {
    CHECK(cli::display_width(line) <= cols);
    for (size_t at = 0; at < line.size(); ++at) {
      const auto byte = static_cast<unsigned char>(line[at]);
      CHECK(byte >= 0x20);
      CHECK(byte != 0x7f);
      // No C1 control (U+0080..U+009F, 0xc2 0x80..0x9f).
      if (byte == 0xc2 && at + 1 < line.size()) {
        CHECK(static_cast<unsigned char>(line[at + 1]) >= 0xa0);
      }
    }
  }
}

// The line of the board that begins with `prefix`, or "".
std::string line_starting(const std::vector<std::string>& lines, const std::string& prefix) {
  for (const auto& line : lines)
    if (line.rfind(prefix, 0) == 0) return line;
  return "";
}

}  // namespace

TEST_CASE("board: states, bytes and exit codes per agent, drawn as rows", "[cli][board]") {
  RunBoard board(run_of({"edge-1", "edge-2", "web-3"}));
  board.on_status("t-edge-1", "running");
  board.on_status("t-edge-2", "running");
  board.on_output("t-edge-1", 1, "alpha\nbeta\n");
  board.on_output("t-edge-2", 2, "boom\n");
  board.on_output("t-edge-2", 1, std::string(2048, 'x'));
  board.on_final("t-edge-2", 3, std::nullopt);
  board.on_status("t-edge-2", "failed");
  board.on_status("t-unknown", "failed");  // not the run's: ignored
  const auto lines = board.render(12, 80);
  check_screen(lines, 12, 80);
  const std::vector<std::string> expected = {
      "run r-1 running: 1 queued, 1 running, 1 failed",
      "  AGENT   STATE          STDOUT      STDERR  EXIT",
      "> edge-1  running          11 B         0 B  -",
      "  edge-2  failed        2.0 KiB         5 B  3",
      "  web-3   queued            0 B         0 B  -",
      "-- edge-1 -- keys: ↑↓ j k host · Tab n next with output · q stop following -----",
      "out| alpha",
      "out| beta",
  };
  CHECK(lines == expected);

  board.on_final("t-edge-1", std::nullopt, 9);
  board.on_status("t-edge-1", "failed");
  board.on_run("failed", "");
  const auto ended = board.render(12, 80);
  CHECK(ended[0] == "run r-1 failed: 1 queued, 2 failed");
  CHECK(ended[2] == "> edge-1  failed           11 B         0 B  signal 9");
}

TEST_CASE("board: the first host that writes is followed until a key chooses", "[cli][board]") {
  RunBoard board(run_of({"a", "b", "c", "d"}));
  CHECK(board.followed_agent() == "a");  // before any output: the first agent
  board.on_output("t-c", 2, "c wrote first\n");
  CHECK(board.followed_agent() == "c");
  board.on_output("t-b", 1, "b later\n");
  CHECK(board.followed_agent() == "c");  // stays
  CHECK(line_starting(board.render(20, 60), "err| ") == "err| c wrote first");
  board.follow_next();
  CHECK(board.followed_agent() == "d");
  board.follow_next();
  CHECK(board.followed_agent() == "a");  // around
  board.follow_previous();
  CHECK(board.followed_agent() == "d");
  board.follow_next_with_output();  // a has none: b
  CHECK(board.followed_agent() == "b");
  const auto lines = board.render(20, 60);
  CHECK(line_starting(lines, "-- ").rfind("-- b -- ", 0) == 0);
  CHECK(line_starting(lines, "> ").rfind("> b ", 0) == 0);
  CHECK(line_starting(lines, "out| ") == "out| b later");
  board.follow_next_with_output();
  CHECK(board.followed_agent() == "c");
  board.follow_previous_with_output();
  CHECK(board.followed_agent() == "b");

  RunBoard quiet(run_of({"a", "b"}));
  quiet.follow_next_with_output();  // nobody wrote: it stays
  CHECK(quiet.followed_agent() == "a");
  RunBoard empty(run_of({}));
  empty.follow_next();
  CHECK(empty.followed_agent().empty());
  CHECK(empty.render(10, 40)[0] == "run r-1 running: no tasks");
}

TEST_CASE("board: hostile output reaches the screen visible, never raw", "[cli][board]") {
  RunBoard board(run_of({"edge-1", "evil\x1b[2J"}));
  // An escape sequence that would clear the screen, retitle the window and
  // draw a fake row; a carriage return that would start over a line; C1
  // CSI; invalid UTF-8; a CRLF line; tabs.
  board.on_output("t-edge-1", 1,
                  "\x1b[2J\x1b[H\x1b]0;pwned\x07> edge-2  succeeded\n"
                  "progress 10%\rprogress 100%\n"
                  "\xc2\x9b"
                  "31m red \xff\xfe end\n"
                  "windows line\r\n"
                  "a\tb\n");
  board.on_output("t-edge-1", 2, "no newline yet \x1b[K");
  const auto lines = board.render(20, 100);
  check_screen(lines, 20, 100);
  const std::string text = joined(lines);
  CHECK_THAT(text, Catch::Contains("out| \\e[2J\\e[H\\e]0;pwned\\x07> edge-2  succeeded\n"));
  CHECK_THAT(text, Catch::Contains("out| progress 10%\\x0dprogress 100%\n"));
  CHECK_THAT(text, Catch::Contains("out| \\u009b31m red \\xff\\xfe end\n"));
  CHECK_THAT(text, Catch::Contains("out| windows line\n"));
  CHECK_THAT(text, Catch::Contains("out| a       b\n"));
  CHECK(lines.back() == "err| no newline yet \\e[K");  // the unfinished line, last
  // The agent's own name is made visible too, in its row.
  CHECK(line_starting(lines, "  evil") == "  evil\\e[2J  queued            0 B         0 B  -");
  // A task's line never begins like a row of the board.
  for (size_t at = 0; at < lines.size(); ++at) {
    if (lines[at].rfind("> ", 0) == 0) CHECK(lines[at].rfind("> edge-1 ", 0) == 0);
  }
}

TEST_CASE("board: long and endless lines are cut to the width, and kept bounded", "[cli][board]") {
  cli::RunBoardLimits limits;
  limits.max_line_bytes = 300;
  limits.max_lines_per_host = 50;
  RunBoard board(run_of({"edge-1"}), limits);
  board.on_output("t-edge-1", 1, std::string(100000, 'y'));  // one line, no newline
  auto lines = board.render(10, 40);
  check_screen(lines, 10, 40);
  CHECK(lines.back() == "out| " + std::string(34, 'y') + "…");
  board.on_output("t-edge-1", 1, "\n");
  for (int i = 0; i < 1000; ++i)
    board.on_output("t-edge-1", 1, "line " + std::to_string(i) + "\n");
  lines = board.render(200, 40);
  check_screen(lines, 200, 40);
  size_t output = 0;
  for (const auto& line : lines)
    output += line.rfind("out| ", 0) == 0;
  CHECK(output == 50);  // the kept lines, not all
  CHECK(lines.back() == "out| line 999");
  // A wide character is never split, and counts two columns.
  board.on_output("t-edge-1", 1, "日本語のテキスト\n");
  lines = board.render(10, 12);
  check_screen(lines, 10, 12);
  CHECK(lines.back() == "out| 日本語…");
}

TEST_CASE("board: many agents show a window around the followed one", "[cli][board]") {
  std::vector<std::string> agents;
  for (int i = 0; i < 100; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "host-%03d", i);
    agents.push_back(name);
  }
  RunBoard board(run_of(agents));
  board.on_output("t-host-050", 1, "fifty\n");
  for (int i = 0; i < 20; ++i)
    board.on_output("t-host-050", 1, "n" + std::to_string(i) + "\n");
  const auto lines = board.render(24, 80);
  check_screen(lines, 24, 80);
  // 24 rows: header, titles, 9 agents and "+N more", separator, 11 lines of output.
  REQUIRE(lines.size() == 24);
  CHECK(line_starting(lines, "> ").rfind("> host-050 ", 0) == 0);
  CHECK(lines[2].rfind("  host-046 ", 0) == 0);
  CHECK(lines[10].rfind("  host-054 ", 0) == 0);
  CHECK(lines[11] == "  +91 more (46 above, 45 below)");
  CHECK(lines[12].rfind("-- host-050 -- ", 0) == 0);
  CHECK(lines[13] == "out| n9");
  CHECK(lines[23] == "out| n19");
  board.follow_previous();
  for (int i = 0; i < 60; ++i)
    board.follow_previous();  // up to host-000 ... then around to host-089
  CHECK(board.followed_agent() == "host-089");
  const auto bottom = board.render(24, 80);
  CHECK(line_starting(bottom, "  +") == "  +91 more (85 above, 6 below)");
  board.follow_next();
  for (int i = 0; i < 10; ++i)
    board.follow_next();
  CHECK(board.followed_agent() == "host-000");
  CHECK(line_starting(board.render(24, 80), "  +") == "  +91 more (0 above, 91 below)");
  // Every size, from none at all: never more rows or columns than there are.
  for (size_t rows = 0; rows <= 30; ++rows) {
    for (size_t cols : {0, 1, 2, 5, 17, 80})
      check_screen(board.render(rows, cols), rows, cols);
  }
}

TEST_CASE("board: gaps, notices, and hosts found after the submission", "[cli][board]") {
  RunBoard board(run_of({"edge-1"}));
  board.add_task("t-late", "late-2");
  board.add_task("t-late", "other");  // known: unchanged
  board.on_output("t-late", 1, "half a li");
  board.on_gap("t-late", 512);
  board.on_output("t-late", 1, "ne\n");
  board.on_final("t-late", 0, std::nullopt);
  board.set_notice("tether: cancelling run r-1 (interrupt again to stop waiting)");
  const auto lines = board.render(20, 80);
  check_screen(lines, 20, 80);
  CHECK(lines[1] == "tether: cancelling run r-1 (interrupt again to stop waiting)");
  CHECK(line_starting(lines, "> ").rfind("> late-2 ", 0) == 0);
  const std::string text = joined(lines);
  CHECK_THAT(text, Catch::EndsWith("[tether] 512 bytes of output were dropped by the agent here\n"
                                   "out| half a line\n"));
}

TEST_CASE("board: memory is shared out among many chatty hosts", "[cli][board]") {
  cli::RunBoardLimits limits;
  limits.total_line_bytes = 100 << 10;
  limits.min_host_bytes = 1 << 10;
  limits.followed_host_bytes = 20 << 10;
  limits.max_line_bytes = 100;
  std::vector<std::string> agents;
  for (int i = 0; i < 1000; ++i)
    agents.push_back("h" + std::to_string(i));
  RunBoard board(run_of(agents), limits);
  const std::string line(99, 'z');
  for (int round = 0; round < 50; ++round)
    for (const auto& agent : agents)
      board.on_output("t-" + agent, 1, line + "\n");
  // The followed host (h0, the first that wrote) keeps its larger share.
  const auto lines = board.render(400, 200);
  size_t output = 0;
  for (const auto& l : lines)
    output += l.rfind("out| ", 0) == 0;
  CHECK(output == 50);
  // Another keeps 1 KiB: 10 lines of 100 bytes (the newline is not kept).
  board.follow_next();
  size_t other = 0;
  for (const auto& l : board.render(400, 200))
    other += l.rfind("out| ", 0) == 0;
  CHECK(other == 10);
}

TEST_CASE("board keys from a terminal's bytes", "[cli][board]") {
  cli::KeyDecoder keys;
  using Keys = std::vector<BoardKey>;
  CHECK(keys.feed("jkq") == Keys{BoardKey::kDown, BoardKey::kUp, BoardKey::kQuit});
  CHECK(keys.feed("\t n N") ==
        Keys{BoardKey::kNextWithOutput, BoardKey::kNextWithOutput, BoardKey::kPreviousWithOutput});
  CHECK(keys.feed("\x1b[A\x1b[B\x1bOA\x1bOB\x1b[Z") == Keys{BoardKey::kUp, BoardKey::kDown,
                                                            BoardKey::kUp, BoardKey::kDown,
                                                            BoardKey::kPreviousWithOutput});
  // A sequence cut between reads waits for its end.
  CHECK(keys.feed("\x1b").empty());
  CHECK(keys.feed("[").empty());
  CHECK(keys.feed("B") == Keys{BoardKey::kDown});
  // Other keys and sequences are read whole and ignored: F5, Home with
  // modifiers, a bracketed paste's markers, Right.
  CHECK(keys.feed("\x1b[15~\x1b[1;5H\x1b[200~jq\x1b[201~\x1b[C").size() == 2);
  CHECK(keys.feed("x\r\n ").empty());
  CHECK(keys.feed("\x1bq") == Keys{BoardKey::kQuit});  // Alt-q
  CHECK(keys.feed("\x1b\x1b[A") == Keys{BoardKey::kUp});
  CHECK(keys.feed("\x1b[\tj") == Keys{BoardKey::kNextWithOutput, BoardKey::kDown});
  // An endless sequence is dropped, and keys after it still count.
  CHECK(keys.feed("\x1b[" + std::string(100, '1')).empty());
  CHECK(keys.feed("j") == Keys{BoardKey::kDown});
  // Random bytes never make it fail.
  std::mt19937 random(7);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < 20000; ++i) {
    const char c = static_cast<char>(byte(random));
    (void)keys.feed(std::string_view(&c, 1));
  }
}

TEST_CASE("text for terminal cells", "[cli][board]") {
  CHECK(cli::display_width("abc") == 3);
  CHECK(cli::display_width("日本") == 4);
  CHECK(cli::display_width("e\xcc\x81") == 1);  // e and a combining acute
  CHECK(cli::display_width("·…↑") == 3);
  CHECK(cli::clip_to_width("abcdef", 6) == "abcdef");
  CHECK(cli::clip_to_width("abcdefg", 6) == "abcde…");
  CHECK(cli::clip_to_width("日本語", 5) == "日本…");
  CHECK(cli::clip_to_width("日本語", 4) == "日…");
  CHECK(cli::clip_to_width("abc", 0).empty());
  CHECK(cli::clip_to_width("abc", 1) == "…");
  CHECK(cli::fit_to_width("ab", 4) == "ab  ");
  CHECK(cli::fit_to_width("ab", 4, true) == "  ab");
  CHECK(cli::fit_to_width("abcdef", 4) == "abc…");
  CHECK(cli::human_bytes(0) == "0 B");
  CHECK(cli::human_bytes(1023) == "1023 B");
  CHECK(cli::human_bytes(1536) == "1.5 KiB");
  CHECK(cli::human_bytes(3u << 20) == "3.0 MiB");
  CHECK(cli::human_bytes(5ull << 30) == "5.0 GiB");
}
