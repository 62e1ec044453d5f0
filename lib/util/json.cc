#include "util/json.h"

#include <cstdio>

namespace util {

std::string JsonWriter::Quote(std::string_view value) {
  std::string out = "\"";
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

void JsonWriter::Key(std::string_view key) {
  if (!first_.empty()) {
    if (!first_.back())
      out_ << ",";
    first_.back() = false;
    if (pretty_)
      out_ << "\n" << std::string(4 * first_.size(), ' ');
  }
  if (!key.empty())
    out_ << Quote(key) << ": ";
}

void JsonWriter::Open(std::string_view key, char bracket) {
  Key(key);
  out_ << bracket;
  first_.push_back(true);
}

void JsonWriter::Close(char bracket) {
  const bool empty = first_.back();
  first_.pop_back();
  if (pretty_ && !empty)
    out_ << "\n" << std::string(4 * first_.size(), ' ');
  out_ << bracket;
}

JsonWriter& JsonWriter::BeginObject(std::string_view key) {
  Open(key, '{');
  return *this;
}
JsonWriter& JsonWriter::EndObject() {
  Close('}');
  return *this;
}
JsonWriter& JsonWriter::BeginArray(std::string_view key) {
  Open(key, '[');
  return *this;
}
JsonWriter& JsonWriter::EndArray() {
  Close(']');
  return *this;
}
JsonWriter& JsonWriter::String(std::string_view key, std::string_view value) {
  Key(key);
  out_ << Quote(value);
  return *this;
}
JsonWriter& JsonWriter::Number(std::string_view key, uint64_t value) {
  Key(key);
  out_ << value;
  return *this;
}
JsonWriter& JsonWriter::Bool(std::string_view key, bool value) {
  Key(key);
  out_ << (value ? "true" : "false");
  return *this;
}
void JsonWriter::Finish() {
  out_ << "\n";
}

}  // namespace util
