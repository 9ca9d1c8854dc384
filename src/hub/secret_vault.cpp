#include "hub/secret_vault.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace tether::hub {

namespace {

Error key_error(const std::string& message) {
  return make_error(Errc::kInvalid, "secrets_key", message);
}

std::string errno_text() {
  return std::strerror(errno);
}

// What to do about a key file that is there but unusable.
constexpr const char* kRestoreAdvice =
    " Restore the file from your backup of the data directory. Only if it is lost for good: move "
    "it away and start the hub, which makes a new key; tasks still queued with secrets then fail.";

// The key file's 32 bytes, after checking its type, owner and mode.
Result<std::array<unsigned char, SecretVault::kKeyBytes>> read_key(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return key_error("cannot open key file '" + path + "': " + errno_text());
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    return key_error("key file '" + path + "' is not a regular file");
  }
  if ((info.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", info.st_mode & 07777);
    return key_error("key file '" + path + "' has mode " + mode +
                     ": group and others must have no access to it. Fix it with: chmod 600 '" +
                     path + "'");
  }
  if (info.st_uid != ::geteuid() && info.st_uid != 0) {
    return key_error("key file '" + path + "' belongs to another user (uid " +
                     std::to_string(info.st_uid) + ")");
  }
  if (info.st_size != static_cast<off_t>(SecretVault::kKeyBytes)) {
    return key_error("key file '" + path + "' is " + std::to_string(info.st_size) +
                     " bytes; a key is " + std::to_string(SecretVault::kKeyBytes) +
                     " bytes. It was damaged or replaced." + kRestoreAdvice);
  }
  std::array<unsigned char, SecretVault::kKeyBytes> key{};
  if (::read(fd, key.data(), key.size()) != static_cast<ssize_t>(key.size())) {
    OPENSSL_cleanse(key.data(), key.size());
    return key_error("cannot read key file '" + path + "': " + errno_text());
  }
  return key;
}

// Makes the key file: 32 random bytes written to a new file beside it, then
// linked into place, so no reader ever sees half a key and a hub starting
// at the same moment cannot replace one already made.
Result<void> create_key(const std::string& data_dir, const std::string& path) {
  std::array<unsigned char, SecretVault::kKeyBytes> key{};
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
    return key_error("cannot make a key: OpenSSL's random generator failed");
  }
  const std::string temporary = path + ".new";
  ::unlink(temporary.c_str());
  const int fd =
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return key_error("cannot create '" + temporary + "': " + errno_text());
  const bool written = ::fchmod(fd, 0600) == 0 &&
                       ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size()) &&
                       ::fsync(fd) == 0;
  const std::string reason = errno_text();
  OPENSSL_cleanse(key.data(), key.size());
  ::close(fd);
  if (!written) {
    ::unlink(temporary.c_str());
    return key_error("cannot write '" + temporary + "': " + reason);
  }
  const bool linked = ::link(temporary.c_str(), path.c_str()) == 0 || errno == EEXIST;
  const std::string link_reason = errno_text();
  ::unlink(temporary.c_str());
  if (!linked) return key_error("cannot create key file '" + path + "': " + link_reason);
  if (const int dir = ::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    (void)::fsync(dir);  // the new name survives a power cut
    ::close(dir);
  }
  return {};
}

struct CipherFree {
  void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
};
using Cipher = std::unique_ptr<EVP_CIPHER_CTX, CipherFree>;

const unsigned char* bytes_of(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

}  // namespace

Result<SecretVault> SecretVault::open(const std::string& data_dir) {
  SecretVault vault;
  vault.path_ = data_dir + "/" + kKeyFileName;
  struct stat info {};
  if (::lstat(vault.path_.c_str(), &info) != 0) {
    if (errno != ENOENT)
      return key_error("cannot use key file '" + vault.path_ + "': " + errno_text());
    TETHER_TRY(made, create_key(data_dir, vault.path_));
    vault.created_ = true;
  }
  TETHER_TRY(key, read_key(vault.path_));
  vault.key_ = *key;
  OPENSSL_cleanse(key->data(), key->size());
  return vault;
}

SecretVault::SecretVault(SecretVault&& other) noexcept
    : key_(other.key_), path_(std::move(other.path_)), created_(other.created_) {
  OPENSSL_cleanse(other.key_.data(), other.key_.size());
}

SecretVault::~SecretVault() {
  OPENSSL_cleanse(key_.data(), key_.size());
}

Result<SecretVault::Sealed> SecretVault::seal(std::string_view value,
                                              std::string_view associated) const {
  Sealed sealed;
  sealed.nonce.resize(kNonceBytes);
  auto* nonce = reinterpret_cast<unsigned char*>(sealed.nonce.data());
  if (RAND_bytes(nonce, static_cast<int>(kNonceBytes)) != 1) {
    return make_error(Errc::kIo, "seal_failed", "OpenSSL's random generator failed");
  }
  sealed.ciphertext.resize(value.size() + kTagBytes);
  auto* out = reinterpret_cast<unsigned char*>(sealed.ciphertext.data());
  Cipher cipher(EVP_CIPHER_CTX_new());
  int length = 0;
  int tail = 0;
  const bool ok = cipher &&
                  EVP_EncryptInit_ex(cipher.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) &&
                  EVP_CIPHER_CTX_ctrl(cipher.get(), EVP_CTRL_GCM_SET_IVLEN,
                                      static_cast<int>(kNonceBytes), nullptr) &&
                  EVP_EncryptInit_ex(cipher.get(), nullptr, nullptr, key_.data(), nonce) &&
                  EVP_EncryptUpdate(cipher.get(), nullptr, &length, bytes_of(associated),
                                    static_cast<int>(associated.size())) &&
                  EVP_EncryptUpdate(cipher.get(), out, &length, bytes_of(value),
                                    static_cast<int>(value.size())) &&
                  EVP_EncryptFinal_ex(cipher.get(), out + length, &tail) &&
                  EVP_CIPHER_CTX_ctrl(cipher.get(), EVP_CTRL_GCM_GET_TAG,
                                      static_cast<int>(kTagBytes), out + value.size());
  if (!ok) return make_error(Errc::kIo, "seal_failed", "OpenSSL could not encrypt a secret");
  return sealed;
}

Result<std::string> SecretVault::unseal(const Sealed& sealed, std::string_view associated) const {
  auto refused = [] {
    return make_error(Errc::kInvalid, "unseal_failed",
                      "it does not decrypt with this hub's key (another key, or altered bytes)");
  };
  if (sealed.nonce.size() != kNonceBytes || sealed.ciphertext.size() < kTagBytes) return refused();
  const size_t size = sealed.ciphertext.size() - kTagBytes;
  std::string value(size, '\0');
  std::string tag = sealed.ciphertext.substr(size);
  Cipher cipher(EVP_CIPHER_CTX_new());
  int length = 0;
  int tail = 0;
  const bool ok =
      cipher && EVP_DecryptInit_ex(cipher.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) &&
      EVP_CIPHER_CTX_ctrl(cipher.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kNonceBytes),
                          nullptr) &&
      EVP_DecryptInit_ex(cipher.get(), nullptr, nullptr, key_.data(), bytes_of(sealed.nonce)) &&
      EVP_DecryptUpdate(cipher.get(), nullptr, &length, bytes_of(associated),
                        static_cast<int>(associated.size())) &&
      EVP_DecryptUpdate(cipher.get(), reinterpret_cast<unsigned char*>(value.data()), &length,
                        bytes_of(sealed.ciphertext), static_cast<int>(size)) &&
      EVP_CIPHER_CTX_ctrl(cipher.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                          tag.data()) &&
      EVP_DecryptFinal_ex(cipher.get(), reinterpret_cast<unsigned char*>(value.data()) + length,
                          &tail) > 0;
  if (!ok) {
    OPENSSL_cleanse(value.data(), value.size());
    return refused();
  }
  return value;
}

}  // namespace tether::hub
