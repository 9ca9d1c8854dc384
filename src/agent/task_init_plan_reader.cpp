// decode_task_init_plan (task_init_plan.hpp), apart from the encoder: the
// init links this file alone, with nothing from the C++ library that needs
// libstdc++ at run time (the init starts for every attempt; each shared
// library it loads costs it time).
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "agent/task_init_plan.hpp"

namespace tether::agent {

namespace {

// The strings of a plan, taken one at a time.
struct Fields {
  char* at;
  char* end;

  // The next string, or null if none is left.
  char* next() {
    if (at >= end) return nullptr;
    char* text = at;
    char* nul = static_cast<char*>(std::memchr(at, '\0', static_cast<size_t>(end - at)));
    if (!nul) return nullptr;
    at = nul + 1;
    return text;
  }

  bool next_number(uint64_t& value) {
    const char* text = next();
    if (!text || !*text) return false;
    const char* text_end = text + std::strlen(text);
    auto [stop, error] = std::from_chars(text, text_end, value);
    return error == std::errc() && stop == text_end;
  }

  // N, then N strings into a NULL-terminated malloc'd array.
  bool next_list(char**& list, size_t max) {
    uint64_t count = 0;
    if (!next_number(count) || count > max) return false;
    list = static_cast<char**>(std::calloc(count + 1, sizeof(char*)));
    if (!list) return false;
    for (uint64_t i = 0; i < count; ++i) {
      if (!(list[i] = next())) return false;
    }
    return true;
  }

  bool next_user(TaskInitPlan& plan) {
    uint64_t uid = 0;
    uint64_t gid = 0;
    uint64_t count = 0;
    if (!next_number(uid) || !next_number(gid) || !next_number(count)) return false;
    if (count > static_cast<uint64_t>(end - at)) return false;
    auto* groups = static_cast<gid_t*>(std::calloc(count + 1, sizeof(gid_t)));
    plan.groups = groups;  // owned by the plan from here, even if a group is bad
    if (!groups) return false;
    for (uint64_t i = 0; i < count; ++i) {
      uint64_t group = 0;
      if (!next_number(group)) return false;
      groups[i] = static_cast<gid_t>(group);
    }
    plan.switch_user = true;
    plan.uid = static_cast<uid_t>(uid);
    plan.gid = static_cast<gid_t>(gid);
    plan.group_count = count;
    return true;
  }
};

}  // namespace

namespace {

bool decode_fields(Fields& fields, size_t max, TaskInitPlan& plan) {
  bool have_argv = false;
  bool have_envp = false;
  for (;;) {
    const char* name = fields.next();
    if (!name) return false;
    bool ok = true;
    char** list = nullptr;
    if (std::strcmp(name, "end") == 0) {
      return plan.path && *plan.path && have_argv && have_envp && plan.argv[0];
    } else if (std::strcmp(name, "path") == 0) {
      ok = (plan.path = fields.next()) != nullptr;
    } else if (std::strcmp(name, "argv") == 0 && !have_argv) {
      ok = have_argv = fields.next_list(list, max);
      plan.argv = list;
    } else if (std::strcmp(name, "envp") == 0 && !have_envp) {
      ok = have_envp = fields.next_list(list, max);
      plan.envp = list;
    } else if (std::strcmp(name, "cgroup") == 0) {
      ok = (plan.cgroup = fields.next()) != nullptr;
    } else if (std::strcmp(name, "cwd") == 0) {
      ok = (plan.cwd = fields.next()) != nullptr;
    } else if (std::strcmp(name, "home") == 0) {
      ok = (plan.home = fields.next()) != nullptr;
    } else if (std::strcmp(name, "watch") == 0) {
      uint64_t memory = 0;
      uint64_t pids = 0;
      ok = fields.next_number(memory) && fields.next_number(pids) && memory <= 1 && pids <= 1;
      plan.watch_memory = memory == 1;
      plan.watch_pids = pids == 1;
    } else if (std::strcmp(name, "user") == 0 && !plan.groups) {
      ok = fields.next_user(plan);
    } else {
      ok = false;  // unknown, or a list given twice
    }
    if (!ok) return false;
  }
}

}  // namespace

bool decode_task_init_plan(char* bytes, size_t size, TaskInitPlan& plan) {
  plan = TaskInitPlan{};
  Fields fields{bytes, bytes + size};
  const char* magic = fields.next();
  if (!magic || std::strcmp(magic, kTaskInitPlanMagic) != 0) return false;
  // No list can hold more strings than there are bytes.
  if (decode_fields(fields, size, plan)) return true;
  release_task_init_plan(plan);
  return false;
}

void release_task_init_plan(TaskInitPlan& plan) {
  std::free(const_cast<char**>(plan.argv));
  std::free(const_cast<char**>(plan.envp));
  std::free(const_cast<gid_t*>(plan.groups));
  plan = TaskInitPlan{};
}

}  // namespace tether::agent
