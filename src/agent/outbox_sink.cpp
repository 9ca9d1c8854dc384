#include "agent/outbox_sink.hpp"

#include "core/log.hpp"
#include "core/proc_info.hpp"

namespace tether::agent {

void OutboxSink::on_started(const protocol::StartedReport& started, int process_group) {
  JournaledAttempt record;
  record.task_id = attempt_.task_id;
  record.attempt_id = attempt_.attempt_id;
  record.pid = started.pid;
  // The init's group: what a restarted agent kills, if it is provably ours
  // (its start time, recorded here, still matches).
  record.process_group = process_group;
  record.process_start = core::process_start_ticks(process_group).value_or(0);
  record.command_start = core::process_start_ticks(started.pid).value_or(0);
  record.boot_id = core::boot_id();
  record.started_at = started.started_at;
  outbox_.record_started(record, started);
}

void OutboxSink::on_output(protocol::OutputChunk&& chunk, const protocol::Sha256& stream_digest) {
  outbox_.append_output(attempt_, std::move(chunk), stream_digest);
}

bool OutboxSink::accepting_output() const {
  // Another process holds the file's write lock: what was read waits in
  // memory until it is stored, and nothing more is read meanwhile.
  if (!outbox_.writable()) return false;
  const bool disk_room = outbox_.budget().disk_has_room(2 * chunk_bytes_ + 512);
  if (disk_room == disk_blocked_) {
    disk_blocked_ = !disk_room;
    if (disk_blocked_) {
      core::log_warning("outbox", "the filesystem of the outbox is nearly full: the output of " +
                                      attempt_.attempt_id +
                                      " waits for space (outbox_min_free_bytes)");
    } else {
      core::log_info("outbox", "space again for the outbox: the output of " + attempt_.attempt_id +
                                   " flows again");
    }
  }
  if (!disk_room) return false;
  if (outbox_.budget().policy() != OutboxFullPolicy::kBlock) {
    // drop-oldest drops only what cannot be delivered: while the hub takes
    // frames, a task that outruns it is slowed (its pipe fills) once half
    // the outbox is waiting, instead of losing output to a full outbox.
    return outbox_.budget().has_flow_room(2 * chunk_bytes_ + 512);
  }
  // Room for one more full read, escaped: a reader never overshoots by much.
  const bool room = outbox_.budget().has_room(2 * chunk_bytes_ + 512);
  if (room == blocked_) {
    // Said once per episode, so an operator sees why a task stalls.
    blocked_ = !room;
    if (blocked_) {
      core::log_warning("outbox", "outbox full (" + std::to_string(outbox_.frames().bytes()) +
                                      " bytes): the output of " + attempt_.attempt_id +
                                      " waits for the hub's acks (outbox_full_policy = block)");
    } else {
      core::log_info("outbox", "the output of " + attempt_.attempt_id + " flows again");
    }
  }
  return room;
}

}  // namespace tether::agent
