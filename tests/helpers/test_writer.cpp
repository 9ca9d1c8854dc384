// tether-test-writer: a child process with exactly known output, for tests.
//
//   random SEED BYTES        pseudo-random bytes (every byte value) on stdout
//   utf8 SEED BYTES          pseudo-random UTF-8 text with 1- to 4-byte characters
//   lines COUNT INTERVAL_MS  COUNT lines "<CLOCK_MONOTONIC ns>\n", one per interval
//   text SEED BYTES          BYTES of printable ASCII in 100-byte lines (99 + '\n'),
//                            a block of random lines repeated; like a build log,
//                            the common case, sent without base64
//   textlines SEED COUNT     the bytes of `text SEED COUNT*100`, one write(2) per
//                            100-byte line (a chatty task that flushes each line)
//   wallclock COUNT INTERVAL_MS
//                            COUNT lines "<CLOCK_REALTIME us>\n" on a fixed schedule
//                            (line i at start + i * INTERVAL_MS), each stamped just
//                            before its write: for latency measured at the hub
//   longline BYTES           one line: BYTES-1 'x' then '\n', written in pieces
//   interleave COUNT         "out N\n" on stdout and "err N\n" on stderr, alternating
//   paced SEED CHUNK COUNT INTERVAL_MS
//                            COUNT chunks of CHUNK (a multiple of 8) pseudo-random
//                            bytes, one per interval; the bytes depend only on
//                            SEED and CHUNK * COUNT, so a prefix of
//                            `paced SEED CHUNK N 0` is the same output at full speed
//   exit CODE                exit with CODE
//   fds                      the file descriptors open in this process, "0 1 2\n",
//                            and what fd 1 and 2 are ("pipe" or "socket", ...)
//
// The same arguments always produce the same bytes, so a test can compare
// what the agent captured with `tether-test-writer ... | sha256sum`.
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

void write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("tether-test-writer: write");
      std::exit(3);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

// xorshift64*: tiny, fast, and identical on every platform.
struct Random {
  uint64_t state;
  explicit Random(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ULL + 1) {}
  uint64_t next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
  }
};

uint64_t number(const char* text) {
  return std::strtoull(text, nullptr, 10);
}

int random_bytes(uint64_t seed, uint64_t total) {
  Random random(seed);
  std::vector<char> block(64 * 1024 + 7);
  while (total > 0) {
    // Vary the write size so reads see every kind of boundary.
    size_t size = static_cast<size_t>(random.next() % block.size()) + 1;
    if (size > total) size = static_cast<size_t>(total);
    for (size_t i = 0; i < size; i += 8) {
      uint64_t word = random.next();
      std::memcpy(block.data() + i, &word, i + 8 <= size ? 8 : size - i);
    }
    write_all(1, block.data(), size);
    total -= size;
  }
  return 0;
}

void pause_ms(uint64_t interval_ms) {
  timespec pause{static_cast<time_t>(interval_ms / 1000),
                 static_cast<long>(interval_ms % 1000) * 1000000L};
  while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
  }
}

int paced_bytes(uint64_t seed, uint64_t chunk, uint64_t count, uint64_t interval_ms) {
  Random random(seed);
  std::vector<char> block(chunk + 8);
  for (uint64_t i = 0; i < count; ++i) {
    if (i > 0 && interval_ms > 0) pause_ms(interval_ms);
    for (size_t at = 0; at < chunk; at += 8) {
      const uint64_t word = random.next();
      std::memcpy(block.data() + at, &word, 8);
    }
    write_all(1, block.data(), chunk);
  }
  return 0;
}

// Appends one character of 1 to 4 bytes, chosen at random, to `out`.
void append_character(Random& random, std::string& out) {
  const uint64_t r = random.next();
  switch (r % 5) {
    case 0:
      out.push_back(static_cast<char>('a' + r / 5 % 26));
      break;
    case 1:
      out.push_back(r / 5 % 7 == 0 ? '\n' : ' ');
      break;
    case 2:
      out += "\xC3\xA9";
      break;  // é
    case 3:
      out += "\xE2\x9C\x93";
      break;  // ✓
    default:
      out += "\xF0\x9D\x84\x9E";
      break;  // 𝄞
  }
}

int utf8_text(uint64_t seed, uint64_t total) {
  Random random(seed);
  std::string block;
  uint64_t written = 0;
  while (written < total) {
    block.clear();
    const size_t target = static_cast<size_t>(random.next() % (64 * 1024)) + 1;
    while (block.size() < target)
      append_character(random, block);
    // Never cut a character at the very end: trim to whole characters that fit.
    if (written + block.size() > total) {
      size_t keep = static_cast<size_t>(total - written);
      while (keep > 0 && (static_cast<unsigned char>(block[keep]) & 0xC0) == 0x80)
        --keep;
      block.resize(keep);
      if (keep == 0) break;
    }
    write_all(1, block.data(), block.size());
    written += block.size();
  }
  return 0;
}

int timestamped_lines(uint64_t count, uint64_t interval_ms) {
  for (uint64_t i = 0; i < count; ++i) {
    if (i > 0) pause_ms(interval_ms);
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const std::string line =
        std::to_string(static_cast<uint64_t>(now.tv_sec) * 1000000000ULL + now.tv_nsec) + "\n";
    write_all(1, line.data(), line.size());
  }
  return 0;
}

// 2621 random 100-byte lines (99 printable + '\n'): cheap to repeat, so the
// writer is not what a throughput benchmark measures.
std::vector<char> text_block(uint64_t seed) {
  Random random(seed);
  std::vector<char> block(100 * 2621);
  for (size_t i = 0; i < block.size(); ++i)
    block[i] = i % 100 == 99 ? '\n' : static_cast<char>(' ' + random.next() % 95);
  return block;
}

int text_lines(uint64_t seed, uint64_t total) {
  const std::vector<char> block = text_block(seed);
  uint64_t written = 0;
  while (written < total) {
    const size_t size =
        total - written < block.size() ? static_cast<size_t>(total - written) : block.size();
    write_all(1, block.data(), size);
    written += size;
  }
  return 0;
}

// The bytes of `text SEED COUNT*100`, but one write(2) per line, as a chatty
// task that flushes every line writes them: a reader sees lines, not blocks.
int text_lines_one_by_one(uint64_t seed, uint64_t count) {
  const std::vector<char> block = text_block(seed);
  const uint64_t lines_in_block = block.size() / 100;
  for (uint64_t i = 0; i < count; ++i)
    write_all(1, block.data() + (i % lines_in_block) * 100, 100);
  return 0;
}

int wallclock_lines(uint64_t count, uint64_t interval_ms) {
  timespec start{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t due_ns = i * interval_ms * 1000000ULL;
    timespec due{};
    due.tv_sec = start.tv_sec + static_cast<time_t>((start.tv_nsec + due_ns) / 1000000000ULL);
    due.tv_nsec = static_cast<long>((start.tv_nsec + due_ns) % 1000000000ULL);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, nullptr) == EINTR) {
    }
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    const std::string line =
        std::to_string(static_cast<uint64_t>(now.tv_sec) * 1000000ULL + now.tv_nsec / 1000) + "\n";
    write_all(1, line.data(), line.size());
  }
  return 0;
}

int long_line(uint64_t total) {
  std::string piece(1 << 20, 'x');
  uint64_t left = total - 1;
  while (left > 0) {
    const size_t size = left < piece.size() ? static_cast<size_t>(left) : piece.size();
    write_all(1, piece.data(), size);
    left -= size;
  }
  write_all(1, "\n", 1);
  return 0;
}

int interleave(uint64_t count) {
  for (uint64_t i = 0; i < count; ++i) {
    const std::string out = "out " + std::to_string(i) + "\n";
    const std::string err = "err " + std::to_string(i) + "\n";
    write_all(1, out.data(), out.size());
    write_all(2, err.data(), err.size());
  }
  return 0;
}

// What a process started by the agent has open: "0 1 2\nstdout pipe\nstderr pipe\n".
int list_descriptors() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return 1;
  const int own = ::dirfd(dir);
  std::vector<int> fds;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != own) fds.push_back(fd);
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  std::string text;
  for (size_t i = 0; i < fds.size(); ++i)
    text += (i == 0 ? "" : " ") + std::to_string(fds[i]);
  text += "\n";
  for (int fd : {1, 2}) {
    struct stat info {};
    const char* kind = ::fstat(fd, &info) != 0  ? "closed"
                       : S_ISFIFO(info.st_mode) ? "pipe"
                       : S_ISSOCK(info.st_mode) ? "socket"
                                                : "other";
    text += std::string(fd == 1 ? "stdout " : "stderr ") + kind + "\n";
  }
  write_all(1, text.data(), text.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "random" && argc == 4) return random_bytes(number(argv[2]), number(argv[3]));
  if (mode == "utf8" && argc == 4) return utf8_text(number(argv[2]), number(argv[3]));
  if (mode == "lines" && argc == 4) return timestamped_lines(number(argv[2]), number(argv[3]));
  if (mode == "text" && argc == 4) return text_lines(number(argv[2]), number(argv[3]));
  if (mode == "textlines" && argc == 4) {
    return text_lines_one_by_one(number(argv[2]), number(argv[3]));
  }
  if (mode == "wallclock" && argc == 4) return wallclock_lines(number(argv[2]), number(argv[3]));
  if (mode == "longline" && argc == 3) return long_line(number(argv[2]));
  if (mode == "interleave" && argc == 3) return interleave(number(argv[2]));
  if (mode == "paced" && argc == 6) {
    return paced_bytes(number(argv[2]), number(argv[3]), number(argv[4]), number(argv[5]));
  }
  if (mode == "exit" && argc == 3) return static_cast<int>(number(argv[2]));
  if (mode == "fds" && argc == 2) return list_descriptors();
  std::fprintf(
      stderr,
      "usage: tether-test-writer "
      "random|utf8|text|textlines|lines|wallclock|longline|interleave|paced|exit|fds ...\n");
  return 2;
}
