// Running SHA-256 over a byte stream (OpenSSL EVP), reported as lowercase hex.
// Agent and hub both hash every stream; the final's digest is how the hub
// proves it stored exactly the bytes the task wrote.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace tether::protocol {

class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256& other);
  Sha256& operator=(const Sha256& other);
  Sha256(Sha256&&) noexcept = default;
  Sha256& operator=(Sha256&&) noexcept = default;
  ~Sha256();

  void update(std::string_view bytes);
  // Digest of everything so far; the running state is left untouched.
  std::string hex_digest() const;

  // Frees the OpenSSL EVP_MD_CTX; public only so sha256.cpp can name it.
  struct ContextDeleter {
    void operator()(void* context) const;
  };

 private:
  std::unique_ptr<void, ContextDeleter> context_;
};

// Convenience for tests and verification of stored bytes.
std::string sha256_hex(std::string_view bytes);

}  // namespace tether::protocol
