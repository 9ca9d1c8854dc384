#include "core/lws_logging.hpp"

#include <libwebsockets.h>

#include <cstdlib>
#include <string>
#include <string_view>

#include "core/log.hpp"
#include "core/web_server.hpp"

namespace tether::core {

void configure_lws_logging() {
  static bool configured = false;
  if (configured) return;
  configured = true;
  // Through our log, so lines carry a time and a journald priority. lws
  // warnings mostly repeat what our callers report better (a refused
  // upgrade, a closed peer): debug. Its errors stay visible.
  lws_set_log_level(LLL_ERR | LLL_WARN, [](int level, const char* line) {
    std::string_view text(line);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
      text.remove_suffix(1);
    // accept() failed (lws 4.1 logs it and returns, and the listener stays
    // readable): the servers pause, and say so once, instead of a line per
    // wake-up at full speed.
    constexpr std::string_view kAcceptFailed = "accept: errno ";
    if (const size_t at = text.find(kAcceptFailed); at != std::string_view::npos) {
      const int error_number =
          std::atoi(std::string(text.substr(at + kAcceptFailed.size())).c_str());
      WebServer::pause_all_accepting(error_number);
      return;
    }
    if (level == LLL_ERR) {
      log_warning("lws", text);
    } else {
      log_debug("lws", text);
    }
  });
}

}  // namespace tether::core
