#include "protocol/sha256.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace tether::protocol {

namespace {
EVP_MD_CTX* ctx(const std::unique_ptr<void, Sha256::ContextDeleter>& p) {
  return static_cast<EVP_MD_CTX*>(p.get());
}
}  // namespace

void Sha256::ContextDeleter::operator()(void* context) const {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(context));
}

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  if (!context_ || EVP_DigestInit_ex(ctx(context_), EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
  }
}

Sha256::Sha256(const Sha256& other) : context_(EVP_MD_CTX_new()) {
  if (!context_ || EVP_MD_CTX_copy_ex(ctx(context_), ctx(other.context_)) != 1) {
    throw std::runtime_error("OpenSSL: cannot copy SHA-256 state");
  }
}

Sha256& Sha256::operator=(const Sha256& other) {
  if (this != &other) *this = Sha256(other);
  return *this;
}

Sha256::~Sha256() = default;

void Sha256::update(std::string_view bytes) {
  EVP_DigestUpdate(ctx(context_), bytes.data(), bytes.size());
}

std::string Sha256::hex_digest() const {
  // Finalising destroys the state, so finalise a copy.
  Sha256 copy(*this);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx(copy.context_), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

std::string sha256_hex(std::string_view bytes) {
  Sha256 hash;
  hash.update(bytes);
  return hash.hex_digest();
}

}  // namespace tether::protocol
