// TaskSecrets: the `task_secrets` table of hub.db, and the only code that
// reads or writes it: each secret of a task still to run, sealed by the
// SecretVault (nonce and ciphertext; never the value), with the task id and
// the secret's name as its associated data.
//
// A task's secrets are stored when it is submitted, read when an attempt is
// dispatched (into the task the agent's poll receives), and deleted when the
// task reaches a terminal state: then no attempt can follow.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/result.hpp"
#include "core/sql_store.hpp"
#include "hub/secret_vault.hpp"

namespace tether::hub {

class TaskSecrets {
 public:
  TaskSecrets(core::SqlStore& store, const SecretVault& vault) : store_(store), vault_(vault) {}

  // Seals and stores each of `secrets` (name to value) for `task_id`,
  // inside the turn's write. Errors: "seal_failed" (OpenSSL).
  Result<void> store(const std::string& task_id, const std::map<std::string, std::string>& secrets);
  // The values of `task_id`'s secrets (none: an empty map). Errors:
  // "secrets_unreadable", naming the secret that does not decrypt with this
  // hub's key (the key file was replaced) and never any value.
  Result<std::map<std::string, std::string>> load(const std::string& task_id);
  // Deletes `task_id`'s secrets, inside the turn's write.
  void erase(const std::string& task_id);
  // How many tasks have secrets stored.
  uint64_t tasks_holding();

 private:
  core::SqlStore& store_;
  const SecretVault& vault_;
};

}  // namespace tether::hub
