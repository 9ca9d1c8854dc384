// tether-task-init: the init of one attempt (task_init.hpp), started by the
// agent for each attempt with fd 3 its control socket and fd 4 a memfd
// holding the attempt's plan (task_init_plan.hpp). Not meant to be run by
// hand: without a plan it says "failed EPROTO plan" on fd 3 and exits.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/task_init.hpp"
#include "agent/task_init_plan.hpp"

namespace {

// The plan's bytes, mapped privately (the decoder writes nothing, but its
// pointers are char*), or null.
char* map_plan(size_t& size) {
  struct stat info {};
  if (::fstat(tether::agent::kTaskInitPlanFd, &info) != 0 || info.st_size <= 0) return nullptr;
  size = static_cast<size_t>(info.st_size);
  void* bytes =
      ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, tether::agent::kTaskInitPlanFd, 0);
  return bytes == MAP_FAILED ? nullptr : static_cast<char*>(bytes);
}

}  // namespace

int main() {
  size_t size = 0;
  char* bytes = map_plan(size);
  ::close(tether::agent::kTaskInitPlanFd);
  tether::agent::TaskInitPlan plan;
  const bool readable = bytes && tether::agent::decode_task_init_plan(bytes, size, plan);
  tether::agent::run_task_init(readable ? &plan : nullptr);
}
