#include "agent/task_init_plan.hpp"

namespace tether::agent {

namespace {

void add(std::string& out, const char* text) {
  out.append(text);
  out.push_back('\0');
}

void add(std::string& out, uint64_t number) {
  add(out, std::to_string(number).c_str());
}

void add_list(std::string& out, const char* name, char* const* items) {
  size_t count = 0;
  while (items && items[count])
    ++count;
  add(out, name);
  add(out, count);
  for (size_t i = 0; i < count; ++i)
    add(out, items[i]);
}

void add_optional(std::string& out, const char* name, const char* value) {
  if (!value) return;
  add(out, name);
  add(out, value);
}

}  // namespace

std::string encode_task_init_plan(const TaskInitPlan& plan) {
  std::string out;
  add(out, kTaskInitPlanMagic);
  add(out, "path");
  add(out, plan.path ? plan.path : "");
  add_list(out, "argv", plan.argv);
  add_list(out, "envp", plan.envp);
  add_optional(out, "cgroup", plan.cgroup);
  add_optional(out, "cwd", plan.cwd);
  add_optional(out, "home", plan.home);
  add(out, "watch");
  add(out, plan.watch_memory ? "1" : "0");
  add(out, plan.watch_pids ? "1" : "0");
  if (plan.switch_user) {
    add(out, "user");
    add(out, plan.uid);
    add(out, plan.gid);
    add(out, plan.group_count);
    for (size_t i = 0; i < plan.group_count; ++i)
      add(out, plan.groups[i]);
  }
  add(out, "end");
  return out;
}

}  // namespace tether::agent
