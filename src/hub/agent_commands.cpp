#include "hub/agent_commands.hpp"

#include <cstdio>
#include <optional>

#include "hub/token_commands.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/labels.hpp"

namespace tether::hub {

namespace {

Error usage(const std::string& message) {
  return make_error(Errc::kInvalid, "usage", message);
}

// One change of `agent label`: key=value sets, key- removes.
struct LabelChange {
  std::string key;
  std::optional<std::string> value;
};

Result<std::vector<LabelChange>> parse_label_changes(const std::vector<std::string>& words) {
  std::vector<LabelChange> changes;
  for (const auto& word : words) {
    if (!word.empty() && word.back() == '-' && word.find('=') == std::string::npos) {
      const std::string key = word.substr(0, word.size() - 1);
      // The key rule of labels: checked by parsing it with an empty value.
      if (auto checked = protocol::parse_labels(key + "="); !checked) {
        return usage("label " + word + ": " + checked.error().message);
      }
      changes.push_back({key, std::nullopt});
      continue;
    }
    auto labels = protocol::parse_labels(word);
    if (!labels || labels->size() != 1) {
      return usage("label '" + word + "': expected key=value (set) or key- (remove)" +
                   (labels ? std::string() : ": " + labels.error().message));
    }
    changes.push_back({labels->begin()->first, labels->begin()->second});
  }
  return changes;
}

int label_agent(const std::string& name, const std::vector<LabelChange>& changes,
                core::SqlStore& store, AgentDirectory& agents, AuditLog& audit) {
  for (const auto& change : changes) {
    if (!agents.set_hub_label(name, change.key, change.value)) {
      std::fprintf(stderr, "tether-hub: no agent named %s\n", name.c_str());
      return 1;
    }
  }
  protocol::JsonWriter detail;
  detail.begin_object();
  for (const auto& change : changes) {
    if (change.value) {
      detail.field(change.key, *change.value);
    } else {
      detail.key(change.key);
      detail.null();
    }
  }
  detail.end_object();
  audit.record(local_actor(), {"agent.label", name, detail.str(), {}});
  if (auto committed = store.commit(); !committed) {
    std::fprintf(stderr, "tether-hub: %s\n", committed.error().message.c_str());
    return 1;
  }
  std::printf("%s %s\n", name.c_str(), protocol::format_labels(agents.labels_of(name)).c_str());
  return 0;
}

}  // namespace

Result<int> run_agent_command(const AgentCommand& command, core::SqlStore& store,
                              AgentDirectory& agents, TokenStore& tokens, AuditLog& audit,
                              DatabaseOwner& owner) {
  const auto& words = command.words;
  if (words.size() == 3 && (words[1] == "add" || words[1] == "rotate")) {
    auto token = words[1] == "add" ? tokens.add_agent(words[2]) : tokens.rotate_agent(words[2]);
    if (!token) {
      std::fprintf(stderr, "tether-hub: %s\n", token.error().message.c_str());
      return 1;
    }
    audit.record(local_actor(), {"agent." + words[1], words[2], "{}", {}});
    return hand_out_token(store, command.output, *token, "the token of agent " + words[2], owner);
  }
  if (words.size() == 2 && words[1] == "list") {
    std::printf("%-32s %-26s %-26s %s\n", "NAME", "CREATED", "LAST SEEN", "LABELS");
    for (const auto& agent : agents.list()) {
      std::printf("%-32s %-26s %-26s %s\n", agent.name.c_str(), agent.created_at.c_str(),
                  agent.last_seen_at.empty() ? "never" : agent.last_seen_at.c_str(),
                  protocol::format_labels(agent.labels).c_str());
    }
    return 0;
  }
  if (words.size() >= 2 && words[1] == "label") {
    if (words.size() < 4) return usage("agent label NAME key=value... (or key- to remove)");
    TETHER_TRY(changes, parse_label_changes({words.begin() + 3, words.end()}));
    return label_agent(words[2], *changes, store, agents, audit);
  }
  return usage("unknown command");
}

}  // namespace tether::hub
