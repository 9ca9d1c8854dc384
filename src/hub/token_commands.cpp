#include "hub/token_commands.hpp"

#include <cstdio>

#include "core/secret_file.hpp"
#include "protocol/json_writer.hpp"

namespace tether::hub {

namespace {

Error usage(const std::string& message) {
  return make_error(Errc::kInvalid, "usage", message);
}

int refused(const std::string& message) {
  std::fprintf(stderr, "tether-hub: %s\n", message.c_str());
  return 1;
}

// The audit detail of a token change: what names it, never the token.
std::string token_detail(const OperatorTokenInfo& token, bool with_role) {
  protocol::JsonWriter detail;
  detail.begin_object();
  detail.field("id", token.id);
  if (with_role) {
    detail.field("role", to_string(token.role));
    detail.field("agents", format_agent_patterns(token.agent_patterns));
  }
  detail.end_object();
  return detail.str();
}

// `token create`: the flags checked before anything is stored.
Result<int> create(const TokenCommand& command, core::SqlStore& store, TokenStore& tokens,
                   AuditLog& audit, DatabaseOwner& owner) {
  if (!command.name) return usage("token create: --name is required");
  if (!command.role) return usage("token create: --role is required (admin, operator or viewer)");
  const auto role = parse_role(*command.role);
  if (!role) {
    return usage("--role: expected admin, operator or viewer, got '" + *command.role + "'");
  }
  if (auto valid = check_token_name(*command.name); !valid)
    return usage("--" + valid.error().message);
  std::vector<std::string> patterns;
  if (command.agents) {
    if (*role != Role::kOperator) {
      return usage("--agents: agent patterns limit role operator only, not role " + *command.role);
    }
    auto parsed = parse_agent_patterns(*command.agents);
    if (!parsed) return usage("--" + parsed.error().message);
    patterns = std::move(*parsed);
  }
  auto made = tokens.add_operator_token(*command.name, *role, patterns);
  if (!made) return refused("--" + made.error().message);
  audit.record(local_actor(), {"token.create", *command.name, token_detail(made->info, true), {}});
  std::fprintf(stderr, "tether-hub: operator token %s (%s), role %s%s\n", made->info.id.c_str(),
               command.name->c_str(), command.role->c_str(),
               patterns.empty() ? "" : (", agents " + format_agent_patterns(patterns)).c_str());
  return hand_out_token(store, command.output, made->token, "operator token " + *command.name,
                        owner);
}

void list(TokenStore& tokens) {
  std::printf("%-16s %-24s %-9s %-24s %-26s %s\n", "ID", "NAME", "ROLE", "AGENTS", "CREATED",
              "REVOKED");
  for (const auto& token : tokens.operator_tokens()) {
    const std::string agents = token.role != Role::kOperator ? "-"
                               : token.agent_patterns.empty()
                                   ? "*"
                                   : format_agent_patterns(token.agent_patterns);
    std::printf("%-16s %-24s %-9s %-24s %-26s %s\n", token.id.c_str(), token.name.c_str(),
                std::string(to_string(token.role)).c_str(), agents.c_str(),
                token.created_at.c_str(),
                token.revoked_at.empty() ? "-" : token.revoked_at.c_str());
  }
}

}  // namespace

int hand_out_token(core::SqlStore& store, const std::string& output, const std::string& token,
                   const std::string& what, DatabaseOwner& owner) {
  if (auto committed = store.commit(); !committed) return refused(committed.error().message);
  owner.back_to_root();  // the file is the caller's, written with the caller's rights
  if (output.empty()) {
    std::printf("%s\n", token.c_str());
    return 0;
  }
  if (auto written = core::write_secret_file(output, token); !written)
    return refused(written.error().message);
  std::fprintf(stderr, "tether-hub: %s written to %s (mode 0600)\n", what.c_str(), output.c_str());
  return 0;
}

Result<int> run_token_command(const TokenCommand& command, core::SqlStore& store,
                              TokenStore& tokens, AuditLog& audit, DatabaseOwner& owner) {
  const auto& words = command.words;
  const bool creates = words.size() == 2 && words[1] == "create";
  if ((command.name || command.role || command.agents) && !creates)
    return usage("--name, --role and --agents go with token create");
  if (creates) return create(command, store, tokens, audit, owner);
  if (words.size() == 2 && words[1] == "admin") {
    auto made = tokens.add_admin_token();
    if (!made) return refused(made.error().message);
    audit.record(local_actor(),
                 {"token.create", made->info.name, token_detail(made->info, true), {}});
    std::fprintf(stderr, "tether-hub: operator token %s (%s), role admin\n", made->info.id.c_str(),
                 made->info.name.c_str());
    return hand_out_token(store, command.output, made->token, "an operator token", owner);
  }
  if (words.size() == 2 && words[1] == "list") {
    list(tokens);
    return 0;
  }
  if (words.size() == 3 && words[1] == "revoke") {
    auto revoked = tokens.revoke_operator_token(words[2]);
    if (!revoked) return refused(revoked.error().message);
    audit.record(local_actor(), {"token.revoke", revoked->name, token_detail(*revoked, false), {}});
    if (auto committed = store.commit(); !committed) return refused(committed.error().message);
    std::fprintf(stderr, "tether-hub: operator token %s (%s) revoked\n", revoked->id.c_str(),
                 revoked->name.c_str());
    return 0;
  }
  return usage("unknown token command");
}

}  // namespace tether::hub
