// The web UI's files, built into the binary by src/hub/ui/embed_assets.py
// (src/hub/ui/ and xterm.js from npm, pinned by src/hub/ui/package-lock.json).
#pragma once

#include <string_view>
#include <vector>

namespace tether::hub {

struct UiAsset {
  std::string_view path;          // the URL path: "/", "/ui/app.js", ...
  std::string_view content_type;  // "text/javascript; charset=utf-8", ...
  std::string_view body;
  std::string_view etag;  // 16 hex digits of the body's SHA-256
};

// Every file, in the order embed_assets.py was given them.
const std::vector<UiAsset>& ui_assets();

}  // namespace tether::hub
