#include "util/json.h"

#include <gtest/gtest.h>

#include <sstream>

namespace util {
namespace {

TEST(JsonWriter, KeepsUtf8AndEscapesControlCharacters) {
  std::ostringstream out;
  JsonWriter w(out);
  w.BeginObject().String("name", "caf\xc3\xa9\x01\x7f").EndObject().Finish();
  EXPECT_EQ(out.str(), "{\n    \"name\": \"caf\xc3\xa9\\u0001\x7f\"\n}\n");
}

TEST(JsonWriter, ReplacesBytesThatAreNotUtf8) {
  std::ostringstream out;
  JsonWriter w(out, false);
  w.BeginArray()
      .String("",
              "a\xff"
              "b")
      .String("", "\xc3")
      .EndArray()
      .Finish();
  EXPECT_EQ(out.str(),
            "[\"a\xef\xbf\xbd"
            "b\",\"\xef\xbf\xbd\"]\n");
}

TEST(JsonWriter, KeepsKeysInTheOrderWritten) {
  std::ostringstream out;
  JsonWriter w(out, false);
  w.BeginObject().Number("z", 1).BeginObject("a").Bool("y", true).EndObject();
  w.BeginArray("m").BeginObject().EndObject().EndArray().EndObject().Finish();
  EXPECT_EQ(out.str(), "{\"z\":1,\"a\":{\"y\":true},\"m\":[{}]}\n");
}

TEST(JsonText, PrintsOneLineOrIndented) {
  const Json v = {{"start", 0}, {"data", false}};
  EXPECT_EQ(JsonText(v, -1), "{\"start\":0,\"data\":false}");
  EXPECT_EQ(JsonText(v), "{\n    \"start\": 0,\n    \"data\": false\n}");
}

}  // namespace
}  // namespace util
