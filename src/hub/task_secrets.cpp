#include "hub/task_secrets.hpp"

#include <utility>
#include <vector>

namespace tether::hub {

namespace {

// What a sealed value is bound to: a NUL cannot occur in an id or a name,
// so no two (task, name) pairs give the same bytes.
std::string associated_data(const std::string& task_id, const std::string& name) {
  std::string data = task_id;
  data.push_back('\0');
  data += name;
  return data;
}

}  // namespace

Result<void> TaskSecrets::store(const std::string& task_id,
                                const std::map<std::string, std::string>& secrets) {
  // All sealed before any is written: a failure leaves nothing behind.
  std::vector<std::pair<std::string, SecretVault::Sealed>> rows;
  for (const auto& [name, value] : secrets) {
    TETHER_TRY(sealed, vault_.seal(value, associated_data(task_id, name)));
    rows.emplace_back(name, std::move(*sealed));
  }
  for (const auto& [name, sealed] : rows) {
    store_.begin_write();
    auto insert = store_.query(
        "INSERT INTO task_secrets (task_id, name, nonce, ciphertext) VALUES (?, ?, ?, ?)");
    insert.bind(1, task_id);
    insert.bind(2, name);
    insert.bind_bytes(3, sealed.nonce);
    insert.bind_bytes(4, sealed.ciphertext);
    insert.exec();
  }
  return {};
}

Result<std::map<std::string, std::string>> TaskSecrets::load(const std::string& task_id) {
  auto query = store_.query(
      "SELECT name, nonce, ciphertext FROM task_secrets WHERE task_id = ? ORDER BY name");
  query.bind(1, task_id);
  std::map<std::string, std::string> secrets;
  while (query.executeStep()) {
    const std::string name = query.getColumn(0).getString();
    const SecretVault::Sealed sealed{query.getColumn(1).getBytes(), query.getColumn(2).getBytes()};
    auto value = vault_.unseal(sealed, associated_data(task_id, name));
    if (!value) {
      return make_error(Errc::kInvalid, "secrets_unreadable",
                        "secret " + name + " of task " + task_id + ": " + value.error().message);
    }
    secrets.emplace(name, std::move(*value));
  }
  return secrets;
}

void TaskSecrets::erase(const std::string& task_id) {
  store_.execute_later("DELETE FROM task_secrets WHERE task_id = ?", task_id);
}

uint64_t TaskSecrets::tasks_holding() {
  auto query = store_.query("SELECT count(DISTINCT task_id) FROM task_secrets");
  if (!query.executeStep()) return 0;
  return static_cast<uint64_t>(query.getColumn(0).getInt64());
}

}  // namespace tether::hub
