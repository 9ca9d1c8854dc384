// JsonWriter: a thin layer over RapidJSON's Writer that takes string_views and
// writes "key": value pairs in one call. All Tether JSON is produced here.
#pragma once

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tether::protocol {

class JsonWriter {
 public:
  JsonWriter() : writer_(buffer_) {}

  void begin_object() { writer_.StartObject(); }
  void end_object() { writer_.EndObject(); }
  void begin_array() { writer_.StartArray(); }
  void end_array() { writer_.EndArray(); }

  void key(std::string_view name) {
    writer_.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
  }
  // `text` must be valid UTF-8 (bytes that are not go out as base64 instead).
  void string(std::string_view text) {
    writer_.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  }
  void uint(uint64_t value) { writer_.Uint64(value); }
  void integer(int64_t value) { writer_.Int64(value); }
  void boolean(bool value) { writer_.Bool(value); }
  void null() { writer_.Null(); }
  // Embeds `json`, which must be one complete, valid JSON value.
  void raw(std::string_view json) {
    writer_.RawValue(json.data(), json.size(), rapidjson::kObjectType);
  }

  void field(std::string_view name, std::string_view text) {
    key(name);
    string(text);
  }
  void field(std::string_view name, const char* text) { field(name, std::string_view(text)); }
  void field(std::string_view name, const std::string& text) {
    field(name, std::string_view(text));
  }
  void field(std::string_view name, uint64_t value) {
    key(name);
    uint(value);
  }
  void field(std::string_view name, int value) {
    key(name);
    integer(value);
  }
  void field(std::string_view name, bool value) {
    key(name);
    boolean(value);
  }
  template <class T>
  void field(std::string_view name, const std::optional<T>& value) {
    if (value) {
      field(name, *value);
    } else {
      key(name);
      null();
    }
  }
  void field(std::string_view name, int64_t value) {
    key(name);
    integer(value);
  }

  std::string_view view() const { return {buffer_.GetString(), buffer_.GetSize()}; }
  std::string str() const { return std::string(view()); }

 private:
  rapidjson::StringBuffer buffer_;
  rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

}  // namespace tether::protocol
