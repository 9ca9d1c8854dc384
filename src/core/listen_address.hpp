// "host:port" or "[v6]:port", as given to --listen or metrics_listen.
#pragma once

#include <string>
#include <utility>

#include "core/result.hpp"

namespace tether::core {

// `field` names where the text came from ("--listen"), for the error.
Result<std::pair<std::string, int>> parse_listen_address(const std::string& text,
                                                         const std::string& field);

}  // namespace tether::core
