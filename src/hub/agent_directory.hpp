// AgentDirectory: the hub's `agents` and `agent_labels` tables, and the only
// code that reads or writes them.
//
// An agent row holds the SHA-256 of its token (never the token), when it
// was made and last seen, and what its last agent.hello reported (version,
// outbox depth, the labels it says it has). The hub's own labels for it (from
// the registration token it registered with, and `tether-hub agent label`)
// are in agent_labels and take precedence over what it reports: an agent
// cannot drop or change a label the hub gave it (docs/operations.md, Labels).
// Methods run inside the caller's turn (core::SqlStore's group commit).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hub/hub_store.hpp"
#include "protocol/frames.hpp"
#include "protocol/labels.hpp"

namespace tether::hub {

struct AgentRecord {
  std::string name;
  std::string created_at;
  std::string last_seen_at;  // empty: never (as stored at its last hello)
  std::string version;       // empty: no hello yet
  std::optional<int64_t> outbox_rows;
  std::optional<int64_t> outbox_bytes;
  std::string outbox_reported_at;
  protocol::Labels labels;           // in effect: reported_labels, then hub_labels over them
  protocol::Labels reported_labels;  // what its last hello said (agent.conf `labels`)
  protocol::Labels hub_labels;       // the hub's own
};

class AgentDirectory {
 public:
  explicit AgentDirectory(core::SqlStore& store) : store_(store) {}

  // A new agent with the digest of its token and its labels; the name must be free.
  void add(const std::string& name, const std::string& token_digest,
           const protocol::Labels& labels = {});
  // False if there is no such agent.
  bool set_token_digest(const std::string& name, const std::string& token_digest);
  // The agent and its labels; false if there was none.
  bool remove(const std::string& name);
  bool exists(const std::string& name);
  std::vector<std::string> names();
  // Every agent, by name, with its labels.
  std::vector<AgentRecord> list();
  // The labels in effect (as AgentRecord::labels).
  protocol::Labels labels_of(const std::string& name);
  // Sets (`value`) or removes (nothing) one of the hub's own labels of the
  // agent. False if there is no such agent.
  bool set_hub_label(const std::string& name, const std::string& key,
                     const std::optional<std::string>& value);
  std::optional<std::string> token_digest_of(const std::string& name);
  // Stores that a hub saw `name` at `seen_ms` (ms since the epoch), unless a
  // later time is stored (agents.seen_at_ms: hubs on one database decide
  // leases on it together, lease_keeper.hpp).
  void record_seen(const std::string& name, int64_t seen_ms);
  // record_seen for each of `names`, in one statement (PostgreSQL only:
  // `= ANY(array)`; names follow the id rule, so the array literal needs no
  // quoting, docs/protocol.md 2.1).
  void record_seen_all(const std::vector<std::string>& names, int64_t seen_ms);
  // True where other hubs may serve the same database (PostgreSQL): the
  // stored time is then kept (hub.db's one hub keeps it in memory).
  bool seen_is_shared() const { return store_.concurrent_writers(); }
  // The stored time, if any hub stored one.
  std::optional<int64_t> seen_at_ms(const std::string& name);
  // The agent whose token has this digest.
  std::optional<std::string> name_with_token_digest(const std::string& token_digest);
  // What agent.hello said (docs/protocol.md 4.1), and that it was seen now.
  void record_hello(const std::string& name, const protocol::AgentHello& hello);

 private:
  protocol::Labels hub_labels_of(const std::string& name);
  protocol::Labels reported_labels_of(const std::string& name);

  core::SqlStore& store_;
};

}  // namespace tether::hub
