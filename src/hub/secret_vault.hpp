// SecretVault: the hub's key for task secrets at rest, and sealing with it.
//
// The key is 32 random bytes in DATA_DIR/secrets.key, made (mode 0600) the
// first time `tether-hub serve` starts with that data directory
// (docs/operations.md: back it up with hub.db; without it the stored secrets
// of queued tasks cannot be read). Each value is sealed with AES-256-GCM
// (OpenSSL's EVP API), a fresh random 96-bit nonce per value, and
// "associated data" naming what it belongs to (the task id and the secret's
// name), so a sealed value copied to another task or name does not open.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace tether::hub {

class SecretVault {
 public:
  static constexpr size_t kKeyBytes = 32;    // AES-256
  static constexpr size_t kNonceBytes = 12;  // GCM's 96-bit IV
  static constexpr size_t kTagBytes = 16;    // GCM's full tag
  static constexpr const char* kKeyFileName = "secrets.key";

  // Reads DATA_DIR/secrets.key, first creating it if there is none. Errors
  // ("secrets_key") name the file and what to do, never its content: a file
  // that group or others may access (the mode), of another owner, not a
  // regular file, or not exactly 32 bytes; one that cannot be read or made.
  static Result<SecretVault> open(const std::string& data_dir);
  // A vault with `key` (for tests).
  explicit SecretVault(const std::array<unsigned char, kKeyBytes>& key) : key_(key) {}
  SecretVault(SecretVault&& other) noexcept;
  SecretVault(const SecretVault&) = delete;
  SecretVault& operator=(const SecretVault&) = delete;
  SecretVault& operator=(SecretVault&&) = delete;
  // The key is wiped from memory.
  ~SecretVault();

  // Whether open() made the key file just now (a new data directory, or
  // one whose key was lost).
  bool created() const { return created_; }
  const std::string& path() const { return path_; }

  struct Sealed {
    std::string nonce;       // kNonceBytes
    std::string ciphertext;  // as long as the value, then the kTagBytes tag
  };
  // Errors ("seal_failed"): OpenSSL could not make a nonce or encrypt.
  Result<Sealed> seal(std::string_view value, std::string_view associated) const;
  // The value, if `sealed` was made by this key with this associated data.
  // Errors ("unseal_failed"): another key, other associated data, or
  // altered bytes (GCM's tag does not verify); never says more.
  Result<std::string> unseal(const Sealed& sealed, std::string_view associated) const;

 private:
  SecretVault() = default;

  std::array<unsigned char, kKeyBytes> key_{};
  std::string path_;
  bool created_ = false;
};

}  // namespace tether::hub
