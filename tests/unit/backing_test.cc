// Names of backing and external data files, as a qcow2 header gives them.
#include "qcow2/backing.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "test_util.h"
#include "util/error.h"

namespace qcow2 {
namespace {

TEST(Backing, RelativeNamesAreResolvedAgainstTheImageDirectory) {
  EXPECT_EQ(ResolveReferencedPath("/a/b/top.qcow2", "base.raw", "backing file"), "/a/b/base.raw");
  EXPECT_EQ(ResolveReferencedPath("b/top.qcow2", "../base.raw", "backing file"), "b/../base.raw");
  EXPECT_EQ(ResolveReferencedPath("top.qcow2", "sub/base.raw", "backing file"), "sub/base.raw");
}

TEST(Backing, AbsoluteNamesAndFilePrefix) {
  EXPECT_EQ(ResolveReferencedPath("/a/top.qcow2", "/x/base", "backing file"), "/x/base");
  EXPECT_EQ(ResolveReferencedPath("/a/top.qcow2", "file:base", "backing file"), "/a/base");
  EXPECT_EQ(ResolveReferencedPath("/a/top.qcow2", "dir/with:colon", "backing file"),
            "/a/dir/with:colon");
}

TEST(Backing, ProtocolsAndEmptyNamesAreRefused) {
  EXPECT_THROW(ResolveReferencedPath("/a/top", "nbd://host/x", "backing file"), util::Error);
  EXPECT_THROW(ResolveReferencedPath("/a/top", "json:{}", "backing file"), util::Error);
  EXPECT_THROW(ResolveReferencedPath("/a/top", "", "backing file"), util::Error);
  EXPECT_THROW(ResolveReferencedPath("/a/top", "file:", "backing file"), util::Error);
}

TEST(Backing, DataFileNameComesFromItsExtension) {
  Header h;
  EXPECT_EQ(DataFileName(h), "");
  h.extensions.push_back({kExtDataFile, {'d', '.', 'r', 'a', 'w'}});
  EXPECT_EQ(DataFileName(h), "d.raw");
}

// A directory with an image (any file: only its header is given), files
// inside and outside its directory, and a symlink pointing out.
class ReferencesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::mkdir(dir.File("img").c_str(), 0755), 0);
    testutil::WriteAll(image, testutil::Pattern(512, 1));
    testutil::WriteAll(dir.File("img/in.raw"), testutil::Pattern(512, 2));
    testutil::WriteAll(dir.File("outside.raw"), testutil::Pattern(512, 3));
    ASSERT_EQ(::symlink("../outside.raw", dir.File("img/link.raw").c_str()), 0);
    ASSERT_EQ(::symlink("in.raw", dir.File("img/inner_link.raw").c_str()), 0);
  }
  // The backing file `name` of the image under the scope.
  std::optional<BackingFile> Backing(const std::string& name, ReferencePolicy::Scope scope) {
    Header h;
    h.backing_file = name;
    ReferencePolicy policy;
    policy.backing = scope;
    util::File top = util::File::Open(image, O_RDONLY);
    BackingChain chain(top, policy);
    return chain.Next(image, h);
  }
  // The code of the ReferenceError that following `name` throws.
  ReferenceError::Code Refusal(const std::string& name, ReferencePolicy::Scope scope,
                               std::string* message = nullptr) {
    try {
      Backing(name, scope);
    } catch (const ReferenceError& e) {
      if (message)
        *message = e.what();
      return e.code();
    }
    ADD_FAILURE() << name << " was followed";
    return ReferenceError::Code::kBadName;
  }
  testutil::TempDir dir;
  std::string image = dir.File("img/top.qcow2");
};

using Scope = ReferencePolicy::Scope;
using Code = ReferenceError::Code;

TEST_F(ReferencesTest, ImageDirectoryScopeFollowsNamesInsideIt) {
  auto b = Backing("in.raw", Scope::kImageDirectory);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->format, BackingFormat::kRaw);
  EXPECT_EQ(b->depth, 1);
  EXPECT_TRUE(Backing("inner_link.raw", Scope::kImageDirectory));
  EXPECT_TRUE(Backing("file:in.raw", Scope::kImageDirectory));
}

TEST_F(ReferencesTest, ImageDirectoryScopeRefusesEscapes) {
  std::string message;
  EXPECT_EQ(Refusal("../outside.raw", Scope::kImageDirectory, &message), Code::kRefused);
  EXPECT_NE(message.find(image + ": backing file '../outside.raw'"), std::string::npos) << message;
  EXPECT_NE(message.find("outside the image's directory; --backing=any allows it"),
            std::string::npos)
      << message;
  EXPECT_EQ(Refusal(dir.File("outside.raw"), Scope::kImageDirectory), Code::kRefused);
  EXPECT_EQ(Refusal("link.raw", Scope::kImageDirectory), Code::kRefused);
  EXPECT_EQ(Refusal("/etc/passwd", Scope::kImageDirectory), Code::kRefused);
  // Today's default follows them all.
  EXPECT_TRUE(Backing("../outside.raw", Scope::kAny));
  EXPECT_TRUE(Backing("link.raw", Scope::kAny));
}

TEST_F(ReferencesTest, FifosSocketsAndCharacterDevicesAreNeverOpened) {
  // Opening a FIFO without a writer would block: the test would hang.
  ASSERT_EQ(::mkfifo(dir.File("img/fifo").c_str(), 0600), 0);
  for (Scope scope : {Scope::kAny, Scope::kImageDirectory}) {
    std::string message;
    EXPECT_EQ(Refusal("fifo", scope, &message), Code::kRefused);
    EXPECT_NE(message.find("is not a regular file or block device"), std::string::npos) << message;
    EXPECT_EQ(Refusal("/dev/null", scope), Code::kRefused);
    EXPECT_EQ(Refusal(".", scope), Code::kRefused);  // a directory
  }
  Header h;
  h.incompatible_features = kIncompatDataFile;
  h.extensions.push_back({kExtDataFile, {'f', 'i', 'f', 'o'}});
  EXPECT_THROW(OpenDataFile(image, h, ReferencePolicy{}), ReferenceError);
}

TEST_F(ReferencesTest, NoneScopeIgnoresBackingFilesAndRefusesDataFiles) {
  EXPECT_FALSE(Backing("in.raw", Scope::kNone));
  Header h;
  h.incompatible_features = kIncompatDataFile;
  h.extensions.push_back({kExtDataFile, {'i', 'n', '.', 'r', 'a', 'w'}});
  ReferencePolicy policy;
  EXPECT_TRUE(OpenDataFile(image, h, policy).is_open());
  policy.data_file = Scope::kNone;
  try {
    OpenDataFile(image, h, policy);
    ADD_FAILURE() << "data file opened";
  } catch (const ReferenceError& e) {
    EXPECT_EQ(e.code(), Code::kRefused);
  }
}

TEST_F(ReferencesTest, AnImageWithoutADirectoryReachesNothingButNoneStillIgnores) {
  ReferencePolicy policy;
  policy.unreachable = "is not looked for";
  Header h;
  h.backing_file = "in.raw";  // there, in the image's directory
  h.incompatible_features = kIncompatDataFile;
  h.extensions.push_back({kExtDataFile, {'i', 'n', '.', 'r', 'a', 'w'}});
  util::File top = util::File::Open(image, O_RDONLY);
  for (Scope scope : {Scope::kAny, Scope::kImageDirectory}) {
    policy.backing = policy.data_file = scope;
    BackingChain chain(top, policy);
    try {
      chain.Next(image, h);
      ADD_FAILURE() << "backing file opened";
    } catch (const ReferenceError& e) {
      EXPECT_EQ(e.code(), Code::kRefused);
      EXPECT_EQ(std::string(e.what()), image + ": backing file 'in.raw' is not looked for");
    }
    EXPECT_THROW(OpenDataFile(image, h, policy), ReferenceError);
  }
  policy.backing = Scope::kNone;
  BackingChain chain(top, policy);
  EXPECT_FALSE(chain.Next(image, h));
}

TEST_F(ReferencesTest, AMissingFileIsOneMessageNotAWrappedOne) {
  std::string message;
  EXPECT_EQ(Refusal("absent.raw", Scope::kAny, &message), Code::kCannotOpen);
  EXPECT_EQ(message, image + ": cannot open backing file 'absent.raw' (" +
                         dir.File("img/absent.raw") + "): No such file or directory");
}

TEST_F(ReferencesTest, ALoopIsToldApartByItsCode) {
  EXPECT_EQ(Refusal("top.qcow2", Scope::kAny), Code::kLoop);
}

TEST_F(ReferencesTest, TheDefaultPolicyKeepsToTheImageDirectory) {
  const ReferencePolicy policy;
  EXPECT_EQ(policy.backing, Scope::kImageDirectory);
  EXPECT_EQ(policy.data_file, Scope::kImageDirectory);
  Header h;
  h.backing_file = "../outside.raw";
  util::File top = util::File::Open(image, O_RDONLY);
  BackingChain chain(top, policy);
  EXPECT_THROW(chain.Next(image, h), ReferenceError);
}

TEST(Backing, PolicyForScopeNamesBothKinds) {
  EXPECT_EQ(PolicyForScope("any").backing, Scope::kAny);
  EXPECT_EQ(PolicyForScope("any").data_file, Scope::kAny);
  EXPECT_EQ(PolicyForScope("image-dir").data_file, Scope::kImageDirectory);
  EXPECT_EQ(PolicyForScope("none").backing, Scope::kNone);
  EXPECT_THROW(PolicyForScope("all"), util::Error);
}

TEST_F(ReferencesTest, EachFileOpenedIsNamedOnce) {
  std::vector<std::string> lines;
  ReferencePolicy policy;
  policy.on_open = [&lines](const std::string& line) { lines.push_back(line); };
  Header h;
  h.backing_file = "inner_link.raw";
  util::File top = util::File::Open(image, O_RDONLY);
  BackingChain chain(top, policy);
  ASSERT_TRUE(chain.Next(image, h));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], image + ": backing file 'inner_link.raw' (" +
                          std::filesystem::canonical(dir.File("img/in.raw")).string() + ")");
  h.backing_file = "../outside.raw";  // refused: not named as opened
  BackingChain refusing(top, policy);
  EXPECT_THROW(refusing.Next(image, h), ReferenceError);
  EXPECT_EQ(lines.size(), 1u);
}

// A deeper image's path is made of names from images: a refusal escapes it
// as it escapes the name, so that the message stays one line.
TEST_F(ReferencesTest, ARefusalEscapesTheImagePathToo) {
  const std::string deep = dir.File("img/mid\n\x1b[2J.qcow2");
  testutil::WriteAll(deep, testutil::Pattern(512, 4));
  Header h;
  h.backing_file = "../outside.raw";
  util::File top = util::File::Open(deep, O_RDONLY);
  BackingChain chain(top, ReferencePolicy{});
  try {
    chain.Next(deep, h);
    ADD_FAILURE() << "followed";
  } catch (const ReferenceError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find_first_of("\n\x1b"), std::string::npos) << message;
    EXPECT_NE(message.find("mid\\x0a\\x1b[2J.qcow2: backing file '../outside.raw'"),
              std::string::npos)
        << message;
  }
}

}  // namespace
}  // namespace qcow2
