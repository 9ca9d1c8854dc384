#include "core/result.hpp"

namespace tether {

std::string_view to_string(Errc kind) {
  switch (kind) {
    case Errc::kCancelled:
      return "cancelled";
    case Errc::kInvalid:
      return "invalid";
    case Errc::kNotFound:
      return "not found";
    case Errc::kExists:
      return "exists";
    case Errc::kUnauthorized:
      return "unauthorized";
    case Errc::kRefused:
      return "refused";
    case Errc::kUnreachable:
      return "unreachable";
    case Errc::kTimeout:
      return "timeout";
    case Errc::kBusy:
      return "busy";
    case Errc::kState:
      return "state";
    case Errc::kProtocol:
      return "protocol";
    case Errc::kIo:
      return "io";
  }
  return "io";
}

}  // namespace tether
