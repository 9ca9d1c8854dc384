// The fields of each frame type (docs/protocol.md 4.1 to 4.4): one reader
// and one writer per type, chosen by a table (readers) and by the payload's
// type (writers). Used by the frame codec in frames.cpp; not a public API.
#pragma once

#include <string>
#include <string_view>

#include "core/result.hpp"
#include "protocol/frames.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"

namespace tether::protocol {

// The payload of a frame of `type`, from the frame's object. Errors:
// "invalid_frame" naming the field, "frame_too_large" (an output chunk over
// kMaxChunkBytes), "unknown_type".
Result<FramePayload> read_payload(std::string_view type, const JsonObjectReader& object);
// The payload's members into the frame's open object.
void write_payload(JsonWriter& json, const FramePayload& payload);
// task_id and attempt_id, each checked against the id rule (section 2.1).
Result<AttemptRef> read_attempt(const JsonObjectReader& object);

Error invalid_frame(const std::string& message);
// Field errors from the JSON readers carry code "invalid_field"; frames
// report them as invalid_frame with the same message.
Error as_frame_error(const Error& error);
// 1 to kMaxMessageIdLength printable ASCII characters (section 2.1).
bool is_message_id(std::string_view id);

}  // namespace tether::protocol
