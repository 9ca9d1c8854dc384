// The low-level SHA256_* functions are deprecated in OpenSSL 3 in favour of
// EVP, but EVP cannot export a digest's running state, which the agent's
// crash recovery needs. They are the same optimised code.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "protocol/sha256.hpp"

#include <openssl/sha.h>

#include <cstring>

namespace tether::protocol {

static_assert(sizeof(SHA256_CTX) == 112, "unexpected SHA256_CTX layout");

namespace {
SHA256_CTX* ctx(unsigned char* bytes) {
  return reinterpret_cast<SHA256_CTX*>(bytes);
}
}  // namespace

Sha256::Sha256() {
  SHA256_Init(ctx(context_));
}

void Sha256::update(std::string_view bytes) {
  SHA256_Update(ctx(context_), bytes.data(), bytes.size());
}

std::string Sha256::hex_digest() const {
  // Finalising destroys the state, so finalise a copy.
  SHA256_CTX copy;
  std::memcpy(&copy, context_, sizeof copy);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256_Final(digest, &copy);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char byte : digest) {
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 15]);
  }
  return hex;
}

std::string Sha256::state() const {
  return std::string(reinterpret_cast<const char*>(context_), sizeof context_);
}

Result<Sha256> Sha256::restore(std::string_view state) {
  if (state.size() != sizeof(SHA256_CTX)) {
    return make_error(Errc::kState, "invalid_state",
                      "a SHA-256 state is " + std::to_string(sizeof(SHA256_CTX)) + " bytes, got " +
                          std::to_string(state.size()));
  }
  Sha256 hash;
  std::memcpy(hash.context_, state.data(), state.size());
  return hash;
}

std::string sha256_hex(std::string_view bytes) {
  Sha256 hash;
  hash.update(bytes);
  return hash.hex_digest();
}

}  // namespace tether::protocol
