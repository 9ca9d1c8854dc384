#include "core/crash_report.hpp"

#include <cxxabi.h>
#include <execinfo.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <typeinfo>

namespace tether::core {

namespace {

const char* g_program = "tether";
const char* g_reason = nullptr;

void say(const char* text) {
  if (text) (void)!::write(STDERR_FILENO, text, std::strlen(text));
}

[[noreturn]] void on_terminate() {
  say(g_program);
  say(": fatal: std::terminate");
  if (g_reason) {
    say(": ");
    say(g_reason);
  }
  // The exception being handled, if any: its type, and what() if it is a
  // std::exception.
  if (const std::type_info* type = abi::__cxa_current_exception_type()) {
    say("; exception of type ");
    say(type->name());
    try {
      throw;
    } catch (const std::exception& e) {
      say(": ");
      say(e.what());
    } catch (...) {
    }
  } else {
    say("; no exception in flight");
  }
  say("\n");
  void* frames[64];
  const int count = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, count, STDERR_FILENO);
  std::abort();
}

}  // namespace

void install_crash_report(const char* program) {
  g_program = program;
  std::set_terminate(on_terminate);
}

void note_terminate_reason(const char* reason) {
  g_reason = reason;
}

}  // namespace tether::core
