// A small streaming JSON writer: objects, arrays, strings, numbers and
// booleans, pretty-printed with four-space indents as qemu-img prints them.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace util {

// Writes one JSON document to a stream; keys and values are checked to
// alternate only as far as the caller's calls go (no validation).
class JsonWriter {
 public:
  explicit JsonWriter(std::ostream& out, bool pretty = true) : out_(out), pretty_(pretty) {}
  JsonWriter& BeginObject(std::string_view key = {});
  JsonWriter& EndObject();
  JsonWriter& BeginArray(std::string_view key = {});
  JsonWriter& EndArray();
  JsonWriter& String(std::string_view key, std::string_view value);
  JsonWriter& Number(std::string_view key, uint64_t value);
  JsonWriter& Bool(std::string_view key, bool value);
  // Ends the document with a newline.
  void Finish();

  // value as a JSON string literal, with escapes.
  static std::string Quote(std::string_view value);

 private:
  void Key(std::string_view key);
  void Open(std::string_view key, char bracket);
  void Close(char bracket);
  std::ostream& out_;
  bool pretty_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
};

}  // namespace util
