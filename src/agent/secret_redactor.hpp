// SecretRedactor: takes the values of a task's secrets out of one of its
// output streams as the stream is read, before any byte reaches the chunker
// (and so the outbox, the hub and the stream's SHA-256): each whole value
// becomes "[secret:NAME]".
//
// Rules (docs/protocol.md 3):
//   - values shorter than kMinSecretBytes are not looked for: "1" or "yes"
//     would be replaced all over ordinary output, and say little anyway;
//   - two names with the same value: the first name (in byte order) is shown;
//   - where values overlap in the output, the one that starts first is
//     replaced, and of those that start at the same byte the longest; so of
//     nested values (one inside another, or a prefix of another) the longer
//     is replaced whenever all of it is there. Scanning goes on after the
//     replaced bytes: a value that began inside them is no longer whole.
//
// Streaming: a value may arrive split across any number of reads. Bytes
// that cannot be the start of a value pass through at once, and a whole
// value is replaced as soon as no longer or earlier one can still complete:
// what is held back is only the longest tail of the input that is a proper
// prefix of some value (a whole value inside that tail waits with it).
// finish() (end of stream) releases what is held. Hence at most the longest
// value's length less one byte is held between reads; a task that prints
// the start of a secret and then stays quiet has that start held until it
// writes more or ends.
//
// Matching is Aho-Corasick over bytes: a trie of the values with failure
// links, so each input byte costs amortised O(1) whatever the number of
// values, and a byte that starts no value costs one table lookup.
//
// Pure: no clock, no I/O, deterministic under test.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::agent {

class SecretRedactor {
 public:
  static constexpr size_t kMinSecretBytes = 4;

  // `secrets`: name to value, as in TaskSpec::secrets.
  explicit SecretRedactor(const std::map<std::string, std::string>& secrets);

  // Whether there is any value to look for (else append() passes bytes through).
  bool active() const { return !patterns_.empty(); }

  // Bytes read from the stream; appends to `out` those that may go on,
  // redacted. May append nothing (all of `bytes` could start a value).
  void append(std::string_view bytes, std::string& out);
  // The stream has ended: appends what is still held back, with any whole
  // value in it redacted. The redactor is then empty and may be reused.
  void finish(std::string& out);

  // Values replaced so far.
  uint64_t redactions() const { return redactions_; }
  // Bytes held back now (for tests).
  size_t bytes_held() const { return held_.size() - held_from_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  struct Node {
    uint32_t fail = 0;         // the longest proper suffix that is a trie node
    uint32_t longest = kNone;  // the longest value that ends here (pattern index)
    uint32_t depth = 0;        // bytes from the root
    // The depth of the deepest node on the failure chain (itself included)
    // that some value continues: the longest held tail a value may still
    // complete from.
    uint32_t open_depth = 0;
    uint32_t first_edge = 0, end_edge = 0;
  };
  struct Edge {
    unsigned char byte;
    uint32_t target;
  };
  struct Pattern {
    std::string marker;  // "[secret:NAME]"
    size_t length = 0;
  };
  // A whole value found in the held bytes: where it starts there, its length.
  struct Match {
    size_t start = 0;
    size_t length = 0;
    uint32_t pattern = 0;
  };

  void build(const std::vector<std::string>& values);
  void link_failures();
  uint32_t child(uint32_t node, unsigned char byte) const;
  uint32_t next(uint32_t node, unsigned char byte) const;
  // One byte in; releases or replaces what is decided.
  void step(char byte, std::string& out);
  // The first `count` held bytes go out as they are.
  void release(size_t count, std::string& out);
  // Replaces best_; the bytes after it are queued in backlog_ to be scanned again.
  void replace_best(std::string& out);
  // Scans backlog_ (and what replacements add to it) until it is empty.
  void drain_backlog(std::string& out);

  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  std::array<uint32_t, 256> root_next_{};  // 0: the byte starts no value
  std::vector<Pattern> patterns_;

  uint32_t node_ = 0;
  std::string held_;  // bytes not yet decided, from held_from_
  size_t held_from_ = 0;
  std::optional<Match> best_;
  std::string backlog_;
  uint64_t redactions_ = 0;
};

}  // namespace tether::agent
