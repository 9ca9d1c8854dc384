// Writing all of a buffer to a file descriptor (our stdout, stderr, the
// terminal), through short writes and EINTR.
#pragma once

#include <string_view>

namespace tether::cli {

// False if the descriptor took not all of it: closed for writing (EPIPE,
// its reader left) or gone (EIO, a terminal hung up); errno says which.
bool write_all(int fd, std::string_view bytes);

}  // namespace tether::cli
