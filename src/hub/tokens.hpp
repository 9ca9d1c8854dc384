// Tokens: agents and operators authenticate with bearer tokens.
//
// A token is shown once, when it is made; the hub stores only its SHA-256.
// Comparisons of digests use CRYPTO_memcmp, so their timing says nothing
// about how much of a guess was right.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "hub/agent_directory.hpp"
#include "hub/hub_store.hpp"
#include "hub/operator_roles.hpp"
#include "protocol/labels.hpp"

namespace tether::hub {

// "tta_" (agent) or "tto_" (operator) and 43 characters of base64url: 256
// random bits.
std::string generate_token(std::string_view prefix);
std::string token_digest(std::string_view token);
// `bytes` random bytes as lowercase hex (ids).
std::string random_hex(size_t bytes);
bool digests_equal(std::string_view a, std::string_view b);

// The token from an "Authorization: Bearer <token>" header, or empty.
std::string bearer_token(std::string_view authorization);

enum class AuthOutcome { kAllowed, kUnauthorized, kForbidden };

// An operator token, as `tether-hub token list` shows it. `id` is "op-" and
// the first 12 hex digits of the token's SHA-256: it names the token
// without revealing it.
struct OperatorTokenInfo {
  std::string id;
  std::string name;
  Role role = Role::kViewer;
  std::vector<std::string> agent_patterns;  // empty: every agent
  std::string created_at;
  std::string revoked_at;  // empty: not revoked
};

// A new token (shown once) and what was stored about it.
struct NewOperatorToken {
  std::string token;
  OperatorTokenInfo info;
};

// What registering an agent with a registration token did.
struct Registration {
  std::string agent_token;      // shown once, to the registering host
  std::string registration_id;  // "reg-..."
  protocol::Labels labels;      // the labels the hub gave the agent
};

struct RegistrationTokenInfo {
  std::string id;  // "reg-" and 12 hex digits of its SHA-256
  std::string created_at;
  std::string expires_at;  // empty: never
  std::string revoked_at;  // empty: not revoked
  int64_t registered = 0;  // agents registered with it
  std::string labels;      // given to each agent it registers ("k=v,k=v")
};

class TokenStore {
 public:
  TokenStore(core::SqlStore& store, AgentDirectory& agents) : store_(store), agents_(agents) {}

  // Registers an agent and returns its token. Errors: "exists" (the name is
  // taken), "invalid_name" (outside the id rule, docs/protocol.md 2.1).
  Result<std::string> add_agent(const std::string& name, const protocol::Labels& labels = {});
  // Replaces an agent's token; the old one stops working at once. Errors: "not_found".
  Result<std::string> rotate_agent(const std::string& name);
  // Makes an operator token. `agent_patterns` only for role operator.
  // Errors: "invalid_name" (check_token_name), "exists" (the name is
  // taken, by a revoked token too: names in the audit trail stay
  // unambiguous), "invalid_field" (patterns with another role).
  Result<NewOperatorToken> add_operator_token(const std::string& name, Role role,
                                              const std::vector<std::string>& agent_patterns);
  // `tether-hub token admin`: an admin token named "admin-" and 12 random
  // hex digits.
  Result<NewOperatorToken> add_admin_token();
  // Every operator token, revoked ones too, oldest first.
  std::vector<OperatorTokenInfo> operator_tokens();
  // Revokes the token with this id or name; it stops working at once and
  // stays listed. Errors: "not_found", "already_revoked".
  Result<OperatorTokenInfo> revoke_operator_token(const std::string& id_or_name);
  // The principal of the operator token in an Authorization header;
  // nothing when there is none, or it is unknown or revoked.
  std::optional<Principal> operator_principal(std::string_view authorization);
  // The same for the token whose SHA-256 (token_digest) is `digest`.
  std::optional<Principal> operator_principal_of_digest(const std::string& digest);

  // A registration token ("ttr_..."), valid for `ttl_s` seconds (0: until
  // revoked). Returns the token and its id.
  Result<std::pair<std::string, std::string>> add_registration_token(
      int64_t ttl_s, const protocol::Labels& labels = {});
  std::vector<RegistrationTokenInfo> registration_tokens();
  Result<void> revoke_registration_token(const std::string& id);
  // POST /api/v1/agents/register: with a registration token that is known,
  // not revoked and not expired, registers `name` with the token's labels.
  // Errors: "unauthorized" (the message says which of the three), "exists",
  // "invalid_name".
  Result<Registration> register_agent(std::string_view authorization, const std::string& name);

  // Nothing when the header carries a token the hub would accept somewhere
  // (an operator's, an agent's, or a usable registration token); else why
  // not, for a 401 ("missing or unknown token", "registration token reg-...
  // expired at ...", "operator token 'ci' was revoked at ..."). Decides
  // whether a request's body is read at all.
  std::optional<std::string> why_unverified(std::string_view authorization);

  // For /api/v1/agents/{agent}/...: allowed only with that agent's token;
  // forbidden with another agent's (or an operator's) token.
  AuthOutcome check_agent(const std::string& agent, std::string_view authorization);
  // The agent a token belongs to, if any.
  std::optional<std::string> agent_of(std::string_view authorization);
  // For a forbidden answer to an agent route: why, naming whose token it
  // is ("an operator (admin) token", "agent edge-2's token"). The caller
  // holds that token already, so this tells it nothing it could not know,
  // and it tells an agent started with the wrong file what to fix.
  std::string forbidden_agent_message(const std::string& agent, std::string_view authorization);

 private:
  // The id of registration token `token` if it may be used now; else
  // "unauthorized" saying why (unknown, revoked, expired).
  Result<std::string> usable_registration(const std::string& token);
  // The stored row of the operator token `token`, revoked or not.
  std::optional<OperatorTokenInfo> find_operator_token(const std::string& token);
  std::optional<OperatorTokenInfo> find_operator_token_of_digest(const std::string& digest);

  core::SqlStore& store_;
  AgentDirectory& agents_;
};

}  // namespace tether::hub
