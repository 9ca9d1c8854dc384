#include "hub/event_log.hpp"

#include <chrono>

#include "core/wall_clock.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/report_json.hpp"

namespace tether::hub {

namespace {

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<EventKind> parse_kind(const std::string& text) {
  if (text == "status") return EventKind::kStatus;
  if (text == "output") return EventKind::kOutput;
  if (text == "gap") return EventKind::kGap;
  if (text == "final") return EventKind::kFinal;
  if (text == "run") return EventKind::kRun;
  return std::nullopt;
}

constexpr const char* kColumns =
    "id, task_id, attempt_id, kind, stream, seq, byte_offset, length, data, payload, stored_at, "
    "stored_at_us, state, run_id";

StoredEvent read_event(core::Query& row) {
  StoredEvent event;
  event.id = static_cast<uint64_t>(row.getColumn(0).getInt64());
  event.task_id = row.getColumn(1).getString();
  event.attempt_id = row.getColumn(2).isNull() ? "" : row.getColumn(2).getString();
  event.kind = parse_kind(row.getColumn(3).getString()).value_or(EventKind::kStatus);
  if (!row.getColumn(4).isNull()) {
    event.stream = protocol::parse_stream_name(row.getColumn(4).getString())
                       .value_or(protocol::StreamName::kStdout);
  }
  event.seq = static_cast<uint64_t>(row.getColumn(5).getInt64());
  event.offset = static_cast<uint64_t>(row.getColumn(6).getInt64());
  event.length = static_cast<uint64_t>(row.getColumn(7).getInt64());
  if (!row.getColumn(8).isNull()) event.data = row.getColumn(8).getBytes();
  event.payload = row.getColumn(9).isNull() ? "" : row.getColumn(9).getString();
  event.stored_at = row.getColumn(10).getString();
  event.stored_at_us = row.getColumn(11).getInt64();
  event.state = row.getColumn(12).isNull() ? "" : row.getColumn(12).getString();
  event.run_id = row.getColumn(13).getString();
  return event;
}

// Every row of `query`, oldest first as it orders them.
std::vector<StoredEvent> read_events(core::Query& query) {
  std::vector<StoredEvent> events;
  while (query.executeStep())
    events.push_back(read_event(query));
  return events;
}

}  // namespace

std::string_view to_string(EventKind kind) {
  switch (kind) {
    case EventKind::kStatus:
      return "status";
    case EventKind::kOutput:
      return "output";
    case EventKind::kGap:
      return "gap";
    case EventKind::kFinal:
      return "final";
    case EventKind::kRun:
      return "run";
  }
  return "status";
}

std::shared_ptr<StoredEvent> EventLog::insert(StoredEvent fields) {
  store_.begin_write();
  // Made first: the statement binds its output bytes without a copy.
  auto stored = std::make_shared<StoredEvent>(std::move(fields));
  StoredEvent& event = *stored;
  event.stored_at = core::utc_now();
  event.stored_at_us = now_us();
  // The task's run is looked up here (one primary-key read) so that no
  // caller has to know it; a run's own events name it.
  static constexpr const char* kInsert =
      "INSERT INTO events (task_id, attempt_id, kind, stream, seq, byte_offset, length, data, "
      "payload, stored_at, stored_at_us, state, run_id) ";
  static constexpr const char* kValues =
      "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
      "COALESCE(?13, (SELECT run_id FROM tasks WHERE id = ?1), '')";
  // PostgreSQL: the ordering lock (see the header), taken in the same
  // statement before the row, and so its id, is made: the subquery is
  // evaluated first, and OFFSET 0 keeps the planner from folding it into
  // the row's projection. The two-int form of the advisory lock keys: a key
  // space of its own, apart from the one-bigint keys such as the schema's
  // (core/pg_schema.cpp; PostgreSQL docs, "Advisory Lock Functions").
  static const std::string kOrderedInsert =
      std::string(kInsert) + "SELECT " + kValues +
      " FROM (SELECT pg_advisory_xact_lock(7071, hashtext(COALESCE(?13, NULLIF((SELECT run_id "
      "FROM tasks WHERE id = ?1), ''), ?1))) OFFSET 0) AS ordered RETURNING id, run_id";
  static const std::string kPlainInsert =
      std::string(kInsert) + "VALUES (" + kValues + ") RETURNING id, run_id";
  auto insert = store_.query((store_.concurrent_writers() ? kOrderedInsert : kPlainInsert).c_str());
  insert.bind(1, event.task_id);
  if (event.attempt_id.empty()) {
    insert.bind(2);
  } else {
    insert.bind(2, event.attempt_id);
  }
  insert.bind(3, std::string(to_string(event.kind)));
  const bool streamed = event.kind == EventKind::kOutput || event.kind == EventKind::kGap;
  if (streamed) {
    insert.bind(4, std::string(to_string(event.stream)));
    insert.bind(5, static_cast<int64_t>(event.seq));
    insert.bind(6, static_cast<int64_t>(event.offset));
    insert.bind(7, static_cast<int64_t>(event.length));
  } else {
    insert.bind(4);
    insert.bind(5);
    insert.bind(6);
    insert.bind(7);
  }
  if (event.kind == EventKind::kOutput) {
    // Not copied by SQLite, which runs the insert below, while `stored` lives.
    insert.bind_bytes(8, event.data);
  } else {
    insert.bind(8);
  }
  if (event.payload.empty()) {
    insert.bind(9);
  } else {
    insert.bind(9, event.payload);
  }
  insert.bind(10, event.stored_at);
  insert.bind(11, event.stored_at_us);
  if (event.state.empty()) {
    insert.bind(12);
  } else {
    insert.bind(12, event.state);
  }
  if (event.run_id.empty()) {
    insert.bind(13);
  } else {
    insert.bind(13, event.run_id);
  }
  // Nothing here waits for the id: on PostgreSQL the insert (and so its
  // ordering lock) goes with the entry point's next statement or its end,
  // one round trip fewer per event (see the header).
  auto answered = [stored](core::SqlRow& row) {
    stored->id = static_cast<uint64_t>(row.int64(0));
    stored->run_id = row.text(1);
  };
  insert.exec_later(answered);
  return stored;
}

namespace {

StoredEvent event_of(const std::string& task_id, const std::string& attempt_id, EventKind kind) {
  StoredEvent event;
  event.task_id = task_id;
  event.attempt_id = attempt_id;
  event.kind = kind;
  return event;
}

// An output or gap event: where in which stream.
StoredEvent stream_event(const std::string& task_id, const std::string& attempt_id, EventKind kind,
                         protocol::StreamName stream, uint64_t seq, uint64_t offset,
                         uint64_t length) {
  StoredEvent event = event_of(task_id, attempt_id, kind);
  event.stream = stream;
  event.seq = seq;
  event.offset = offset;
  event.length = length;
  return event;
}

}  // namespace

std::shared_ptr<const StoredEvent> EventLog::append_status(const std::string& task_id,
                                                           const std::string& attempt_id,
                                                           std::string_view state,
                                                           std::string payload) {
  StoredEvent event = event_of(task_id, attempt_id, EventKind::kStatus);
  event.state = std::string(state);
  event.payload = std::move(payload);
  return insert(std::move(event));
}

std::shared_ptr<const StoredEvent> EventLog::append_output(const std::string& task_id,
                                                           const std::string& attempt_id,
                                                           const protocol::OutputChunk& chunk) {
  StoredEvent event = stream_event(task_id, attempt_id, EventKind::kOutput, chunk.stream, chunk.seq,
                                   chunk.offset, chunk.data.size());
  event.data = chunk.data;
  return insert(std::move(event));
}

std::shared_ptr<const StoredEvent> EventLog::append_gap(const std::string& task_id,
                                                        const std::string& attempt_id,
                                                        protocol::StreamName stream, uint64_t seq,
                                                        uint64_t offset, uint64_t length) {
  return insert(stream_event(task_id, attempt_id, EventKind::kGap, stream, seq, offset, length));
}

std::shared_ptr<const StoredEvent> EventLog::append_final(const std::string& task_id,
                                                          const std::string& attempt_id,
                                                          std::string payload) {
  StoredEvent event = event_of(task_id, attempt_id, EventKind::kFinal);
  event.payload = std::move(payload);
  return insert(std::move(event));
}

EventLog::HighestSeqs EventLog::highest_seqs(const std::string& attempt_id) {
  // events_by_stream answers each from the index's last entry.
  auto query = store_.query(
      "SELECT COALESCE((SELECT max(seq) FROM events WHERE attempt_id = ?1 AND stream = 'stdout'), "
      "0), COALESCE((SELECT max(seq) FROM events WHERE attempt_id = ?1 AND stream = 'stderr'), 0)");
  query.bind(1, attempt_id);
  query.executeStep();
  return {static_cast<uint64_t>(query.getColumn(0).getInt64()),
          static_cast<uint64_t>(query.getColumn(1).getInt64())};
}

std::optional<StoredEvent> EventLog::read(uint64_t id) {
  static const std::string sql = std::string("SELECT ") + kColumns + " FROM events WHERE id = ?";
  auto row = store_.query(sql.c_str());
  row.bind(1, id);
  if (!row.executeStep()) return std::nullopt;
  return read_event(row);
}

std::vector<StoredEvent> EventLog::page(const std::string& task_id, uint64_t after_id, int limit,
                                        bool with_output, OutputFrom from) {
  static const std::string all_sql =
      std::string("SELECT ") + kColumns +
      " FROM events WHERE task_id = ? AND id > ? AND (kind <> 'output' OR "
      "(stream = 'stdout' AND id >= ?) OR (stream = 'stderr' AND id >= ?)) ORDER BY id LIMIT ?";
  static const std::string no_output_sql =
      std::string("SELECT ") + kColumns +
      " FROM events WHERE task_id = ? AND id > ? AND kind <> 'output' AND ? >= 0 AND ? >= 0 "
      "ORDER BY id LIMIT ?";
  auto query = store_.query(with_output ? all_sql.c_str() : no_output_sql.c_str());
  query.bind(1, task_id);
  query.bind(2, static_cast<int64_t>(after_id));
  query.bind(3, static_cast<int64_t>(from.stdout_id));
  query.bind(4, static_cast<int64_t>(from.stderr_id));
  query.bind(5, limit);
  return read_events(query);
}

OutputFrom EventLog::tail_of(const std::string& attempt_id, uint64_t tail_bytes) {
  OutputFrom from;
  for (const auto stream : {protocol::StreamName::kStdout, protocol::StreamName::kStderr}) {
    const std::string name(to_string(stream));
    // Lengths and offsets only: no output bytes are read.
    auto end = store_.query(
        "SELECT byte_offset + length FROM events WHERE attempt_id = ? AND stream = ? AND "
        "kind = 'output' ORDER BY seq DESC LIMIT 1");
    end.bind_all(attempt_id, name);
    if (!end.executeStep()) continue;
    const uint64_t stored = static_cast<uint64_t>(end.getColumn(0).getInt64());
    end.reset();
    if (stored <= tail_bytes) continue;
    auto first = store_.query(
        "SELECT MIN(id) FROM events WHERE attempt_id = ? AND stream = ? AND kind = 'output' AND "
        "byte_offset + length > ?");
    first.bind_all(attempt_id, name, static_cast<int64_t>(stored - tail_bytes));
    if (first.executeStep() && !first.getColumn(0).isNull()) {
      const auto id = static_cast<uint64_t>(first.getColumn(0).getInt64());
      (stream == protocol::StreamName::kStdout ? from.stdout_id : from.stderr_id) = id;
    }
  }
  return from;
}

std::shared_ptr<const StoredEvent> EventLog::append_run(const std::string& run_id,
                                                        std::string_view state,
                                                        std::string payload) {
  StoredEvent event = event_of(run_id, "", EventKind::kRun);
  event.run_id = run_id;
  event.state = std::string(state);
  event.payload = std::move(payload);
  return insert(std::move(event));
}

std::vector<StoredEvent> EventLog::run_page(const std::string& run_id, uint64_t after_id, int limit,
                                            bool with_output) {
  static const std::string all_sql =
      std::string("SELECT ") + kColumns +
      " FROM events WHERE run_id = ? AND run_id != '' AND id > ? ORDER BY id LIMIT ?";
  static const std::string no_output_sql =
      std::string("SELECT ") + kColumns +
      " FROM events WHERE run_id = ? AND run_id != '' AND id > ? AND kind <> 'output' "
      "ORDER BY id LIMIT ?";
  auto query = store_.query(with_output ? all_sql.c_str() : no_output_sql.c_str());
  query.bind(1, run_id);
  query.bind(2, static_cast<int64_t>(after_id));
  query.bind(3, limit);
  return read_events(query);
}

std::vector<StoredEvent> EventLog::stream_page(const std::string& attempt_id,
                                               protocol::StreamName stream, uint64_t after_seq,
                                               int limit) {
  static const std::string sql = std::string("SELECT ") + kColumns +
                                 " FROM events WHERE attempt_id = ? AND stream = ? AND seq > ? "
                                 "ORDER BY seq LIMIT ?";
  auto query = store_.query(sql.c_str());
  query.bind(1, attempt_id);
  query.bind(2, std::string(to_string(stream)));
  query.bind(3, static_cast<int64_t>(after_seq));
  query.bind(4, limit);
  return read_events(query);
}

std::vector<StoredEvent> EventLog::streams_page(const std::string& attempt_id,
                                                uint64_t after_stdout, uint64_t after_stderr,
                                                int limit) {
  // Two index ranges (events_by_stream), each cut by its own LIMIT: a page
  // never walks what earlier pages read; the outer sort is of those rows only.
  static const std::string part =
      std::string("SELECT ") + kColumns + " FROM events WHERE attempt_id = ?1 AND stream = ";
  static const std::string sql = "SELECT * FROM (" + part +
                                 "'stdout' AND seq > ?2 ORDER BY seq LIMIT ?4) AS out_page "
                                 "UNION ALL SELECT * FROM (" +
                                 part +
                                 "'stderr' AND seq > ?3 ORDER BY seq LIMIT ?4) AS err_page "
                                 "ORDER BY stream, seq";
  auto query = store_.query(sql.c_str());
  query.bind(1, attempt_id);
  query.bind(2, static_cast<int64_t>(after_stdout));
  query.bind(3, static_cast<int64_t>(after_stderr));
  query.bind(4, limit);
  return read_events(query);
}

std::string format_sse(const StoredEvent& event) {
  std::string data;
  if (event.kind == EventKind::kOutput) {
    protocol::JsonWriter json;
    json.begin_object();
    json.field("attempt_id", event.attempt_id);
    protocol::write_output_fields(json, {event.stream, event.seq, event.offset, event.data});
    json.field("stored_at", event.stored_at);
    json.end_object();
    data = json.str();
  } else if (event.kind == EventKind::kGap) {
    protocol::JsonWriter json;
    json.begin_object();
    json.field("attempt_id", event.attempt_id);
    json.field("stream", to_string(event.stream));
    json.field("seq", event.seq);
    json.field("offset", event.offset);
    json.field("length", event.length);
    json.field("stored_at", event.stored_at);
    json.end_object();
    data = json.str();
  } else {
    data = event.payload;
  }
  // Our JSON never contains a raw newline, so one data: line is enough.
  std::string text = "id: " + std::to_string(event.id) + "\nevent: ";
  text += to_string(event.kind);
  text += "\ndata: ";
  text += data;
  text += "\n\n";
  return text;
}

}  // namespace tether::hub
