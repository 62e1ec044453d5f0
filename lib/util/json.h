// JSON output as qemu-img prints it (four-space indents), built and encoded
// by nlohmann-json: strings are UTF-8, control characters escaped, and bytes
// that are not UTF-8 (names in an image are arbitrary bytes) become U+FFFD.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace util {

// A JSON value whose object keys keep the order they were added in.
using Json = nlohmann::ordered_json;

// value encoded as JSON text: `indent` spaces per level, or one line if < 0.
std::string JsonText(const Json& value, int indent = 4);

// Builds one JSON document through nested Begin/End calls, then prints it on
// Finish(). Keys are ignored inside arrays; calls must nest properly.
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
  // Prints the document, then a newline.
  void Finish();

 private:
  Json& Add(std::string_view key, Json value);
  std::ostream& out_;
  bool pretty_;
  Json root_;
  std::vector<Json*> open_;  // the containers not yet ended, outermost first
};

}  // namespace util
