// hub::SecretVault: the key file (made 0600 once, refused when others may
// read it or it is not a key) and AES-256-GCM sealing bound to its owner.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "hub/secret_vault.hpp"
#include "support.hpp"

using namespace tether;
using hub::SecretVault;

TEST_CASE("the key file is made once, 0600 and 32 bytes, and read back the same",
          "[secrets][vault]") {
  test::TempDir dir("tether-vault");
  auto first = SecretVault::open(dir.path);
  REQUIRE(first.ok());
  CHECK(first->created());
  const std::string path = dir.path + "/secrets.key";
  CHECK(first->path() == path);
  struct stat info {};
  REQUIRE(::stat(path.c_str(), &info) == 0);
  CHECK((info.st_mode & 07777) == 0600);
  CHECK(info.st_size == 32);
  CHECK_FALSE(std::filesystem::exists(path + ".new"));

  const std::string associated("t-1\0NAME", 8);
  auto sealed = first->seal("a value", associated);
  REQUIRE(sealed.ok());
  auto second = SecretVault::open(dir.path);
  REQUIRE(second.ok());
  CHECK_FALSE(second->created());
  auto opened = second->unseal(*sealed, associated);
  REQUIRE(opened.ok());
  CHECK(*opened == "a value");
}

TEST_CASE("a key file others may read, of the wrong size or not a file stops the hub, saying why",
          "[secrets][vault]") {
  test::TempDir dir("tether-vault");
  const std::string path = dir.path + "/secrets.key";
  REQUIRE(SecretVault::open(dir.path).ok());

  ::chmod(path.c_str(), 0640);
  auto readable = SecretVault::open(dir.path);
  REQUIRE_FALSE(readable.ok());
  CHECK(readable.error().code == "secrets_key");
  CHECK_THAT(readable.error().message,
             Catch::Contains("has mode 0640") && Catch::Contains("chmod 600 '" + path + "'"));
  ::chmod(path.c_str(), 0604);
  CHECK_FALSE(SecretVault::open(dir.path).ok());
  ::chmod(path.c_str(), 0600);
  REQUIRE(SecretVault::open(dir.path).ok());

  for (size_t size : {0, 31, 33, 65}) {
    INFO(size);
    { std::ofstream(path, std::ios::binary | std::ios::trunc) << std::string(size, 'k'); }
    auto wrong = SecretVault::open(dir.path);
    REQUIRE_FALSE(wrong.ok());
    CHECK_THAT(wrong.error().message, Catch::Contains("is " + std::to_string(size) + " bytes") &&
                                          Catch::Contains("a key is 32 bytes") &&
                                          Catch::Contains("backup"));
    CHECK_THAT(wrong.error().message, !Catch::Contains("kkkk"));
  }
  std::filesystem::remove(path);
  std::filesystem::create_directory(path);
  auto directory = SecretVault::open(dir.path);
  REQUIRE_FALSE(directory.ok());
  CHECK_THAT(directory.error().message, Catch::Contains("not a regular file"));
}

TEST_CASE("sealing: a fresh nonce each time; another key, owner or altered byte does not open",
          "[secrets][vault]") {
  std::array<unsigned char, SecretVault::kKeyBytes> key{};
  key.fill(1);
  SecretVault vault(key);
  const std::string associated("t-1\0DB_PASSWORD", 15);
  auto one = vault.seal("hunter2-value", associated);
  auto two = vault.seal("hunter2-value", associated);
  REQUIRE(one.ok());
  REQUIRE(two.ok());
  CHECK(one->nonce.size() == SecretVault::kNonceBytes);
  CHECK(one->ciphertext.size() == 13 + SecretVault::kTagBytes);
  CHECK(one->nonce != two->nonce);
  CHECK(one->ciphertext != two->ciphertext);
  CHECK(one->ciphertext.find("hunter2") == std::string::npos);
  auto empty = vault.seal("", associated);
  REQUIRE(empty.ok());
  CHECK(*vault.unseal(*empty, associated) == "");

  auto opened = vault.unseal(*one, associated);
  REQUIRE(opened.ok());
  CHECK(*opened == "hunter2-value");

  auto other_owner = vault.unseal(*one, std::string("t-2\0DB_PASSWORD", 15));
  REQUIRE_FALSE(other_owner.ok());
  CHECK(other_owner.error().code == "unseal_failed");
  CHECK_FALSE(vault.unseal(*one, std::string("t-1\0API_KEY", 11)).ok());
  key.fill(2);
  SecretVault other_key(key);
  CHECK_FALSE(other_key.unseal(*one, associated).ok());
  for (size_t i = 0; i < one->ciphertext.size(); i += 7) {
    auto altered = *one;
    altered.ciphertext[i] = static_cast<char>(altered.ciphertext[i] ^ 1);
    CHECK_FALSE(vault.unseal(altered, associated).ok());
  }
  auto altered_nonce = *one;
  altered_nonce.nonce[0] = static_cast<char>(altered_nonce.nonce[0] ^ 1);
  CHECK_FALSE(vault.unseal(altered_nonce, associated).ok());
  auto short_text = *one;
  short_text.ciphertext.resize(5);
  CHECK_FALSE(vault.unseal(short_text, associated).ok());
}
