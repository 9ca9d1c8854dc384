// Routes libwebsockets' log lines to our log (core/log), errors and
// warnings only, once per process. lws 4.1 reports an accept() failure only
// as a log line; that line pauses the live servers' listeners instead
// (WebServer::pause_all_accepting), so a full descriptor table does not
// spin the loop.
#pragma once

namespace tether::core {

void configure_lws_logging();

}  // namespace tether::core
