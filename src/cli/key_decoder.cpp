#include "cli/key_decoder.hpp"

namespace tether::cli {

namespace {

constexpr char kEscape = '\x1b';
// Longer than any key's sequence: what follows is not a key's, and is dropped.
constexpr size_t kMaxSequence = 32;

void add_plain_key(char byte, std::vector<BoardKey>& keys) {
  switch (byte) {
    case 'k':
      keys.push_back(BoardKey::kUp);
      break;
    case 'j':
      keys.push_back(BoardKey::kDown);
      break;
    case '\t':
    case 'n':
      keys.push_back(BoardKey::kNextWithOutput);
      break;
    case 'N':
      keys.push_back(BoardKey::kPreviousWithOutput);
      break;
    case 'q':
      keys.push_back(BoardKey::kQuit);
      break;
    default:
      break;
  }
}

}  // namespace

bool KeyDecoder::take_escape(std::vector<BoardKey>& keys) {
  if (pending_.size() < 2) return false;
  const char kind = pending_[1];
  if (kind != '[' && kind != 'O') {
    // ESC and a key (Alt-key): the key alone.
    const char byte = pending_[1];
    pending_.erase(0, 2);
    if (byte == kEscape) {
      pending_.insert(0, 1, kEscape);
    } else {
      add_plain_key(byte, keys);
    }
    return true;
  }
  // CSI (ESC [ parameters intermediates final) or SS3 (ESC O final): the
  // final byte is in 0x40..0x7e.
  size_t end = 2;
  while (end < pending_.size() && (pending_[end] < 0x40 || pending_[end] > 0x7e)) {
    if (pending_[end] < 0x20) break;  // not a sequence: a control byte ends it
    ++end;
  }
  if (end == pending_.size()) {
    if (pending_.size() > kMaxSequence) pending_.clear();
    return false;
  }
  const std::string_view sequence(pending_.data(), end + 1);
  if (sequence == "\x1b[A" || sequence == "\x1bOA") keys.push_back(BoardKey::kUp);
  if (sequence == "\x1b[B" || sequence == "\x1bOB") keys.push_back(BoardKey::kDown);
  if (sequence == "\x1b[Z") keys.push_back(BoardKey::kPreviousWithOutput);
  // A control byte that cut a sequence short is a key of its own.
  const bool control = pending_[end] < 0x20;
  pending_.erase(0, control ? end : end + 1);
  return true;
}

std::vector<BoardKey> KeyDecoder::feed(std::string_view bytes) {
  std::vector<BoardKey> keys;
  for (const char byte : bytes) {
    if (pending_.empty() && byte != kEscape) {
      add_plain_key(byte, keys);
      continue;
    }
    pending_.push_back(byte);
    while (!pending_.empty() && pending_[0] == kEscape && take_escape(keys)) {
    }
    // What a broken sequence left behind that is not an escape: plain keys.
    while (!pending_.empty() && pending_[0] != kEscape) {
      add_plain_key(pending_[0], keys);
      pending_.erase(0, 1);
    }
  }
  return keys;
}

}  // namespace tether::cli
