#include "agent/attempt_journal.hpp"

#include "core/wall_clock.hpp"

namespace tether::agent {

namespace {

using protocol::StreamName;

uint64_t column_u64(SQLite::Statement& row, int column) {
  return row.getColumn(column).isNull() ? 0
                                        : static_cast<uint64_t>(row.getColumn(column).getInt64());
}

std::string blob_of(const SQLite::Column& column) {
  if (column.isNull()) return {};
  return std::string(static_cast<const char*>(column.getBlob()),
                     static_cast<size_t>(column.getBytes()));
}

}  // namespace

void AttemptJournal::record_started(const JournaledAttempt& attempt) {
  auto statement = store_.statement(
      "INSERT OR REPLACE INTO attempts (attempt_id, task_id, state, pid, process_group, "
      "process_start, boot_id, started_at, updated_at, command_start) VALUES (?, ?, 'running', "
      "?, ?, ?, ?, ?, ?, ?)");
  statement.bind_all(attempt.attempt_id, attempt.task_id, attempt.pid, attempt.process_group,
                     attempt.process_start, attempt.boot_id, attempt.started_at, core::utc_now(),
                     attempt.command_start);
  statement.exec();
  live_[attempt.attempt_id] = attempt;
}

StreamProgress& AttemptJournal::progress(const protocol::AttemptRef& attempt, StreamName stream) {
  auto& record = live_[attempt.attempt_id];
  record.task_id = attempt.task_id;
  record.attempt_id = attempt.attempt_id;
  dirty_.insert(attempt.attempt_id);
  return record.stream(stream);
}

void AttemptJournal::count_dropped(const std::string& attempt_id, StreamName stream, uint64_t bytes,
                                   bool undelivered) {
  auto& counted = live_[attempt_id].stream(stream);
  counted.dropped += bytes;
  if (undelivered) counted.undelivered += bytes;
  dropped_total_ += bytes;
  dirty_.insert(attempt_id);
}

bool AttemptJournal::abandon(const std::string& attempt_id, StreamName stream, uint64_t from_offset,
                             uint64_t newly_dropped, const std::string& why) {
  auto live = live_.find(attempt_id);
  if (live == live_.end()) return false;
  StreamProgress& counted = live->second.stream(stream);
  counted.abandoned = true;
  counted.abandoned_because = why;
  counted.dropped += newly_dropped;
  dropped_total_ += newly_dropped;
  if (from_offset <= counted.bytes) counted.undelivered = counted.bytes - from_offset;
  // Undelivered bytes are dropped ones too (the hub will not hold them),
  // also those it had acked and then lost.
  if (counted.undelivered > counted.dropped) {
    dropped_total_ += counted.undelivered - counted.dropped;
    counted.dropped = counted.undelivered;
  }
  dirty_.insert(attempt_id);
  return true;
}

void AttemptJournal::finish(const std::string& attempt_id, protocol::FinalReport& report) {
  if (auto it = live_.find(attempt_id); it != live_.end()) {
    for (StreamName name : {StreamName::kStdout, StreamName::kStderr}) {
      const StreamProgress& counted = it->second.stream(name);
      auto& summary = report.summary(name);
      summary.dropped_bytes = counted.dropped;
      summary.undelivered_bytes = counted.undelivered;
      if (counted.undelivered > 0 && !counted.abandoned_because.empty()) {
        report.error += (report.error.empty() ? "" : "; ") + counted.abandoned_because;
      }
    }
  }
  flush();
  auto finished = store_.statement(
      "UPDATE attempts SET state = 'finished', updated_at = ? WHERE attempt_id = ?");
  finished.bind(1, core::utc_now());
  finished.bind(2, attempt_id);
  finished.exec();
  live_.erase(attempt_id);
}

void AttemptJournal::forget(const std::string& attempt_id) {
  auto forget = store_.statement("DELETE FROM attempts WHERE attempt_id = ?");
  forget.bind(1, attempt_id);
  forget.exec();
  live_.erase(attempt_id);
  dirty_.erase(attempt_id);
}

void AttemptJournal::discard(const std::string& attempt_id) {
  discarded_.insert(attempt_id);
  forget(attempt_id);
}

void AttemptJournal::flush() {
  if (dirty_.empty()) return;
  auto update = store_.statement(
      "UPDATE attempts SET stdout_bytes = ?, stderr_bytes = ?, stdout_dropped_bytes = ?, "
      "stderr_dropped_bytes = ?, stdout_sha256_state = ?, stderr_sha256_state = ?, updated_at = ?, "
      "stdout_undelivered_bytes = ?, stderr_undelivered_bytes = ? WHERE attempt_id = ?");
  const std::string now = core::utc_now();
  for (const auto& attempt_id : dirty_) {
    auto it = live_.find(attempt_id);
    if (it == live_.end()) continue;
    const auto& record = it->second;
    update.reset();
    update.bind(1, static_cast<int64_t>(record.out.bytes));
    update.bind(2, static_cast<int64_t>(record.err.bytes));
    update.bind(3, static_cast<int64_t>(record.out.dropped));
    update.bind(4, static_cast<int64_t>(record.err.dropped));
    update.bind(5, record.out.digest_state.data(),
                static_cast<int>(record.out.digest_state.size()));
    update.bind(6, record.err.digest_state.data(),
                static_cast<int>(record.err.digest_state.size()));
    update.bind(7, now);
    update.bind(8, static_cast<int64_t>(record.out.undelivered));
    update.bind(9, static_cast<int64_t>(record.err.undelivered));
    update.bind(10, attempt_id);
    update.exec();
  }
  dirty_.clear();
}

uint64_t AttemptJournal::dropped_bytes(const std::string& attempt_id, StreamName stream) const {
  auto it = live_.find(attempt_id);
  return it == live_.end() ? 0 : it->second.stream(stream).dropped;
}

std::vector<JournaledAttempt> AttemptJournal::running_attempts() {
  auto query = store_.statement(
      "SELECT task_id, attempt_id, pid, process_group, process_start, boot_id, started_at, "
      "stdout_bytes, stderr_bytes, stdout_dropped_bytes, stderr_dropped_bytes, "
      "stdout_sha256_state, stderr_sha256_state, stdout_undelivered_bytes, "
      "stderr_undelivered_bytes, command_start FROM attempts WHERE state = 'running'");
  std::vector<JournaledAttempt> attempts;
  while (query.executeStep()) {
    JournaledAttempt record;
    record.task_id = query.getColumn(0).getString();
    record.attempt_id = query.getColumn(1).getString();
    record.pid = query.getColumn(2).getInt();
    record.process_group = query.getColumn(3).getInt();
    record.process_start = column_u64(query, 4);
    record.boot_id = query.getColumn(5).isNull() ? "" : query.getColumn(5).getString();
    record.started_at = query.getColumn(6).getString();
    record.out.bytes = column_u64(query, 7);
    record.err.bytes = column_u64(query, 8);
    record.out.dropped = column_u64(query, 9);
    record.err.dropped = column_u64(query, 10);
    record.out.digest_state = blob_of(query.getColumn(11));
    record.err.digest_state = blob_of(query.getColumn(12));
    record.out.undelivered = column_u64(query, 13);
    record.err.undelivered = column_u64(query, 14);
    record.command_start = column_u64(query, 15);
    attempts.push_back(std::move(record));
  }
  for (const auto& attempt : attempts)
    live_[attempt.attempt_id] = attempt;
  return attempts;
}

bool AttemptJournal::running(std::vector<protocol::AttemptRef>& attempts) {
  return store_.try_read("reading the running attempts", [&] {
    auto query =
        store_.statement("SELECT task_id, attempt_id FROM attempts WHERE state = 'running'");
    while (query.executeStep())
      attempts.push_back({query.getColumn(0).getString(), query.getColumn(1).getString()});
  });
}

std::vector<JournaledAttempt> AttemptJournal::live_attempts() const {
  std::vector<JournaledAttempt> attempts;
  attempts.reserve(live_.size());
  for (const auto& [id, record] : live_)
    attempts.push_back(record);
  return attempts;
}

AttemptsCensus AttemptJournal::census(SQLite::Database& database) {
  AttemptsCensus census;
  SQLite::Statement attempts(
      database,
      "SELECT state, count(*), coalesce(sum(stdout_dropped_bytes + stderr_dropped_bytes), 0) "
      "FROM attempts GROUP BY state");
  while (attempts.executeStep()) {
    const std::string state = attempts.getColumn(0).getString();
    const uint64_t count = column_u64(attempts, 1);
    if (state == "running") census.running = count;
    if (state == "finished") census.finished = count;
    census.dropped_bytes += column_u64(attempts, 2);
  }
  return census;
}

}  // namespace tether::agent
