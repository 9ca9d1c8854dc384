// What a daemon says when it dies of a bug through std::terminate (an
// exception that escaped a coroutine chain, a CoGroup destroyed while its
// children run): one line naming the cause and the exception in flight if
// there is one, then the stack (addresses, and names where the binary
// exports them; `addr2line -e BINARY ADDRESS` resolves the rest), then
// abort (a core dump where enabled). Plain "terminate called without an
// active exception" said none of that.
#pragma once

namespace tether::core {

// Installs the std::terminate handler. `program` names the process in the
// report ("tether-agent"); the pointer must stay valid (a literal).
void install_crash_report(const char* program);

// The reason the next std::terminate has, said before it is called (e.g.
// "a CoGroup was destroyed with 2 children running").
void note_terminate_reason(const char* reason);

}  // namespace tether::core
