// Running SHA-256 over a byte stream, reported as lowercase hex.
//
// Agent and hub both hash every stream; the final's digest is how the hub
// proves it stored exactly the bytes the task wrote. The running state can
// be saved and restored (state()/restore()): the agent persists it with its
// outbox, so after a crash it can still report the exact digest of the bytes
// that reached the outbox.
#pragma once

#include <string>
#include <string_view>

#include "core/result.hpp"

namespace tether::protocol {

class Sha256 {
 public:
  Sha256();

  void update(std::string_view bytes);
  // Digest of everything so far; the running state is left untouched.
  std::string hex_digest() const;

  // An opaque snapshot of the running state, and its inverse.
  std::string state() const;
  static Result<Sha256> restore(std::string_view state);

 private:
  // OpenSSL's SHA256_CTX, kept as plain bytes so this header needs no
  // OpenSSL include; sha256.cpp checks the size.
  alignas(8) unsigned char context_[112];
};

// Convenience for tests and verification of stored bytes.
std::string sha256_hex(std::string_view bytes);

}  // namespace tether::protocol
