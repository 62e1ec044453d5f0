#include "util/json.h"

#include <cassert>

namespace util {

std::string JsonText(const Json& value, int indent) {
  return value.dump(indent, ' ', false, Json::error_handler_t::replace);
}

Json& JsonWriter::Add(std::string_view key, Json value) {
  if (open_.empty()) {
    root_ = std::move(value);
    return root_;
  }
  Json& parent = *open_.back();
  if (parent.is_array()) {
    parent.push_back(std::move(value));
    return parent.back();
  }
  Json& slot = parent[std::string(key)];
  slot = std::move(value);
  return slot;
}

JsonWriter& JsonWriter::BeginObject(std::string_view key) {
  open_.push_back(&Add(key, Json::object()));
  return *this;
}
JsonWriter& JsonWriter::EndObject() {
  assert(!open_.empty() && open_.back()->is_object());
  open_.pop_back();
  return *this;
}
JsonWriter& JsonWriter::BeginArray(std::string_view key) {
  open_.push_back(&Add(key, Json::array()));
  return *this;
}
JsonWriter& JsonWriter::EndArray() {
  assert(!open_.empty() && open_.back()->is_array());
  open_.pop_back();
  return *this;
}
JsonWriter& JsonWriter::String(std::string_view key, std::string_view value) {
  Add(key, std::string(value));
  return *this;
}
JsonWriter& JsonWriter::Number(std::string_view key, uint64_t value) {
  Add(key, value);
  return *this;
}
JsonWriter& JsonWriter::Bool(std::string_view key, bool value) {
  Add(key, value);
  return *this;
}
void JsonWriter::Finish() {
  assert(open_.empty());
  out_ << JsonText(root_, pretty_ ? 4 : -1) << "\n";
}

}  // namespace util
