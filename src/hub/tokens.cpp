#include "hub/tokens.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdexcept>

#include "core/log.hpp"
#include "core/wall_clock.hpp"
#include "protocol/sha256.hpp"
#include "protocol/task_spec.hpp"

namespace tether::hub {

std::string generate_token(std::string_view prefix) {
  unsigned char random[32];
  if (RAND_bytes(random, sizeof random) != 1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed: no randomness for a token");
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string token(prefix);
  // 32 bytes -> 43 base64url characters (no padding).
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char byte : random) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      token.push_back(kAlphabet[(buffer >> bits) & 63]);
    }
  }
  if (bits > 0) token.push_back(kAlphabet[(buffer << (6 - bits)) & 63]);
  return token;
}

std::string token_digest(std::string_view token) {
  return protocol::sha256_hex(token);
}

std::string random_hex(size_t bytes) {
  std::string random(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(random.data()), static_cast<int>(bytes)) != 1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : random) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 15]);
  }
  return hex;
}

bool digests_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() <= kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i]))) {
      return {};
    }
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.back() == ' ')
    token.remove_suffix(1);
  if (token.size() > 256) return {};
  return std::string(token);
}

Result<std::string> TokenStore::add_agent(const std::string& name, const protocol::Labels& labels) {
  if (!protocol::is_valid_id(name)) {
    return make_error(
        Errc::kInvalid, "invalid_name",
        "agent name '" + name + "' must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
  }
  if (agents_.exists(name)) {
    return make_error(Errc::kExists, "exists",
                      "agent '" + name + "' already exists; use `tether-hub agent rotate " + name +
                          "` for a new token");
  }
  const std::string token = generate_token("tta_");
  agents_.add(name, token_digest(token), labels);
  return token;
}

Result<std::string> TokenStore::rotate_agent(const std::string& name) {
  const std::string token = generate_token("tta_");
  if (!agents_.set_token_digest(name, token_digest(token))) {
    return make_error(Errc::kNotFound, "not_found", "no agent named '" + name + "'");
  }
  return token;
}

AuthOutcome TokenStore::check_agent(const std::string& agent, std::string_view authorization) {
  const std::string token = bearer_token(authorization);
  if (token.empty()) return AuthOutcome::kUnauthorized;
  const auto stored = agents_.token_digest_of(agent);
  if (stored && digests_equal(*stored, token_digest(token))) return AuthOutcome::kAllowed;
  // A real token of someone else is forbidden, anything else unauthorized.
  return agent_of(authorization) || operator_principal(authorization) ? AuthOutcome::kForbidden
                                                                      : AuthOutcome::kUnauthorized;
}

std::optional<std::string> TokenStore::agent_of(std::string_view authorization) {
  const std::string token = bearer_token(authorization);
  if (token.empty()) return std::nullopt;
  return agents_.name_with_token_digest(token_digest(token));
}

std::string TokenStore::forbidden_agent_message(const std::string& agent,
                                                std::string_view authorization) {
  std::string whose = "another principal's token";
  if (auto other = agent_of(authorization)) {
    whose = "agent " + *other + "'s token";
  } else if (auto principal = operator_principal(authorization)) {
    whose = "an operator (" + std::string(to_string(principal->role)) + ") token";
  }
  return "this is " + whose + ", not agent " + agent +
         "'s: check the agent's token_file (or TETHER_AGENT_TOKEN_FILE) and its name";
}

namespace {

std::string token_id(std::string_view prefix, const std::string& digest) {
  return std::string(prefix) + digest.substr(0, 12);
}

constexpr const char* kOperatorTokenColumns =
    "id, name, role, agent_patterns, created_at, coalesce(revoked_at, '')";

OperatorTokenInfo read_operator_token(core::Query& row) {
  OperatorTokenInfo info;
  info.id = row.getColumn(0).getString();
  info.name = row.getColumn(1).getString();
  info.role = parse_role(row.getColumn(2).getString()).value_or(Role::kViewer);
  const std::string patterns = row.getColumn(3).getString();
  if (!patterns.empty()) {
    // Stored by add_operator_token from parsed patterns, they parse again. A
    // row edited by hand that does not is one pattern as it stands: it must
    // never widen to every agent.
    auto parsed = parse_agent_patterns(patterns);
    info.agent_patterns = parsed ? std::move(*parsed) : std::vector<std::string>{patterns};
  }
  info.created_at = row.getColumn(4).getString();
  info.revoked_at = row.getColumn(5).getString();
  return info;
}

}  // namespace

Result<NewOperatorToken> TokenStore::add_operator_token(
    const std::string& name, Role role, const std::vector<std::string>& agent_patterns) {
  if (auto valid = check_token_name(name); !valid) return valid.error();
  if (!agent_patterns.empty() && role != Role::kOperator) {
    return make_error(Errc::kInvalid, "invalid_field",
                      "agents: agent patterns limit role operator only, not role " +
                          std::string(to_string(role)));
  }
  {
    auto taken = store_.query("SELECT id FROM operator_tokens WHERE name = ?");
    taken.bind(1, name);
    if (taken.executeStep()) {
      return make_error(Errc::kExists, "exists",
                        "name: a token named '" + name + "' exists already (" +
                            taken.getColumn(0).getString() +
                            "); names are not reused, even after a revocation");
    }
  }
  NewOperatorToken made;
  made.token = generate_token("tto_");
  const std::string digest = token_digest(made.token);
  made.info = {token_id("op-", digest), name, role, agent_patterns, core::utc_now(), {}};
  store_.execute(
      "INSERT INTO operator_tokens (id, name, role, agent_patterns, token_sha256, created_at) "
      "VALUES (?, ?, ?, ?, ?, ?)",
      made.info.id, name, std::string(to_string(role)), format_agent_patterns(agent_patterns),
      digest, made.info.created_at);
  return made;
}

Result<NewOperatorToken> TokenStore::add_admin_token() {
  // 48 random bits: a name taken already is next to impossible, and then
  // the next try differs.
  for (int attempt = 0;; ++attempt) {
    const std::string name = "admin-" + random_hex(6);
    auto made = add_operator_token(name, Role::kAdmin, {});
    if (made || made.error().code != "exists" || attempt == 3) return made;
  }
}

std::vector<OperatorTokenInfo> TokenStore::operator_tokens() {
  static const std::string sql = std::string("SELECT ") + kOperatorTokenColumns +
                                 " FROM operator_tokens ORDER BY created_at, rowid";
  std::vector<OperatorTokenInfo> tokens;
  auto query = store_.query(sql.c_str());
  while (query.executeStep())
    tokens.push_back(read_operator_token(query));
  return tokens;
}

Result<OperatorTokenInfo> TokenStore::revoke_operator_token(const std::string& id_or_name) {
  static const std::string sql = std::string("SELECT ") + kOperatorTokenColumns +
                                 " FROM operator_tokens WHERE id = ? OR name = ?";
  std::optional<OperatorTokenInfo> found;
  {
    auto query = store_.query(sql.c_str());
    query.bind(1, id_or_name);
    query.bind(2, id_or_name);
    if (query.executeStep()) found = read_operator_token(query);
  }
  if (!found) {
    return make_error(
        Errc::kNotFound, "not_found",
        "no operator token '" + id_or_name + "' (give its id, e.g. op-0123456789ab, or its name)");
  }
  if (!found->revoked_at.empty()) {
    return make_error(Errc::kState, "already_revoked",
                      "operator token '" + found->name + "' (" + found->id +
                          ") was revoked already, at " + found->revoked_at);
  }
  found->revoked_at = core::utc_now();
  store_.execute("UPDATE operator_tokens SET revoked_at = ? WHERE id = ?", found->revoked_at,
                 found->id);
  return *found;
}

std::optional<OperatorTokenInfo> TokenStore::find_operator_token(const std::string& token) {
  return find_operator_token_of_digest(token_digest(token));
}

std::optional<OperatorTokenInfo> TokenStore::find_operator_token_of_digest(
    const std::string& digest) {
  static const std::string sql = std::string("SELECT ") + kOperatorTokenColumns +
                                 ", token_sha256 FROM operator_tokens WHERE token_sha256 = ?";
  auto query = store_.query(sql.c_str());
  query.bind(1, digest);
  if (!query.executeStep() || !digests_equal(query.getColumn(6).getString(), digest))
    return std::nullopt;
  return read_operator_token(query);
}

std::optional<Principal> TokenStore::operator_principal(std::string_view authorization) {
  const std::string token = bearer_token(authorization);
  if (token.rfind("tto_", 0) != 0) return std::nullopt;
  auto found = find_operator_token(token);
  if (!found || !found->revoked_at.empty()) return std::nullopt;
  return Principal{found->name, found->role, found->agent_patterns};
}

std::optional<Principal> TokenStore::operator_principal_of_digest(const std::string& digest) {
  auto found = find_operator_token_of_digest(digest);
  if (!found || !found->revoked_at.empty()) return std::nullopt;
  return Principal{found->name, found->role, found->agent_patterns};
}

Result<std::pair<std::string, std::string>> TokenStore::add_registration_token(
    int64_t ttl_s, const protocol::Labels& labels) {
  const std::string token = generate_token("ttr_");
  const std::string digest = token_digest(token);
  const std::string id = token_id("reg-", digest);
  auto insert = store_.query(
      "INSERT INTO registration_tokens (id, token_sha256, created_at, expires_at, labels) "
      "VALUES (?, ?, ?, ?, ?)");
  insert.bind(1, id);
  insert.bind(2, digest);
  insert.bind(3, core::utc_now());
  if (ttl_s > 0) {
    insert.bind(4,
                core::format_utc(std::chrono::system_clock::now() + std::chrono::seconds(ttl_s)));
  } else {
    insert.bind(4);  // NULL: until revoked
  }
  insert.bind(5, protocol::format_labels(labels));
  insert.exec();
  return std::make_pair(token, id);
}

std::vector<RegistrationTokenInfo> TokenStore::registration_tokens() {
  std::vector<RegistrationTokenInfo> tokens;
  auto query = store_.query(
      "SELECT id, created_at, coalesce(expires_at, ''), coalesce(revoked_at, ''), registered, "
      "labels FROM registration_tokens ORDER BY created_at");
  while (query.executeStep()) {
    tokens.push_back({query.getColumn(0).getString(), query.getColumn(1).getString(),
                      query.getColumn(2).getString(), query.getColumn(3).getString(),
                      query.getColumn(4).getInt64(), query.getColumn(5).getString()});
  }
  return tokens;
}

Result<void> TokenStore::revoke_registration_token(const std::string& id) {
  auto revoke = store_.query(
      "UPDATE registration_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL");
  revoke.bind(1, core::utc_now());
  revoke.bind(2, id);
  if (revoke.exec() == 0) {
    return make_error(Errc::kNotFound, "not_found",
                      "no registration token '" + id + "' that is not revoked");
  }
  return {};
}

namespace {

constexpr const char* kFindRegistrationSql =
    "SELECT id, token_sha256, coalesce(expires_at, ''), coalesce(revoked_at, ''), labels "
    "FROM registration_tokens WHERE token_sha256 = ?";

// Why a registration token cannot be used, or empty when it can.
std::string registration_refusal(const std::string& id, const std::string& expires_at,
                                 const std::string& revoked_at) {
  if (!revoked_at.empty()) return "registration token " + id + " was revoked at " + revoked_at;
  // Both UTC in format_utc's fixed-width form: text order is time order.
  if (!expires_at.empty() && expires_at <= core::utc_now()) {
    return "registration token " + id + " expired at " + expires_at;
  }
  return {};
}

}  // namespace

Result<std::string> TokenStore::usable_registration(const std::string& token) {
  const std::string digest = token_digest(token);
  auto query = store_.query(kFindRegistrationSql);
  query.bind(1, digest);
  if (!query.executeStep() || !digests_equal(query.getColumn(1).getString(), digest)) {
    return make_error(Errc::kUnauthorized, "unauthorized", "missing or unknown registration token");
  }
  const std::string id = query.getColumn(0).getString();
  const std::string refusal =
      registration_refusal(id, query.getColumn(2).getString(), query.getColumn(3).getString());
  if (!refusal.empty()) return make_error(Errc::kUnauthorized, "unauthorized", refusal);
  return id;
}

Result<Registration> TokenStore::register_agent(std::string_view authorization,
                                                const std::string& name) {
  const std::string token = bearer_token(authorization);
  if (token.rfind("ttr_", 0) != 0) {
    return make_error(Errc::kUnauthorized, "unauthorized", "missing or unknown registration token");
  }
  TETHER_TRY(id, usable_registration(token));
  std::string labels_text;
  {
    auto labels = store_.query("SELECT labels FROM registration_tokens WHERE id = ?");
    labels.bind(1, *id);
    if (labels.executeStep()) labels_text = labels.getColumn(0).getString();
  }
  auto labels = protocol::parse_labels(labels_text);
  Registration registration{{}, *id, labels ? *labels : protocol::Labels{}};
  TETHER_TRY(agent_token, add_agent(name, registration.labels));
  registration.agent_token = std::move(*agent_token);
  auto count =
      store_.query("UPDATE registration_tokens SET registered = registered + 1 WHERE id = ?");
  count.bind(1, *id);
  count.exec();
  core::log_info("tokens", "agent " + name + " registered with " + *id);
  return registration;
}

std::optional<std::string> TokenStore::why_unverified(std::string_view authorization) {
  const std::string token = bearer_token(authorization);
  if (token.empty()) return "missing or unknown token";
  if (token.rfind("ttr_", 0) == 0) {
    auto id = usable_registration(token);
    if (id) return std::nullopt;
    return id.error().message;
  }
  if (token.rfind("tto_", 0) == 0) {
    auto found = find_operator_token(token);
    if (found && found->revoked_at.empty()) return std::nullopt;
    if (found) return "operator token '" + found->name + "' was revoked at " + found->revoked_at;
    return "missing or unknown token";
  }
  if (agent_of(authorization)) return std::nullopt;
  return "missing or unknown token";
}

}  // namespace tether::hub
