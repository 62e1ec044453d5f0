#include "util/output.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "util/error.h"

namespace util {
namespace {

// How much of an image file is written between two asks for a background
// flush (they merge while one runs); bench/RESULTS.md has the comparison
// that chose it.
constexpr uint64_t kBackgroundFlushBytes = 8ull << 20;

// The one temporary file to remove if a signal ends the process.
char g_temp_path[4096];
std::atomic<bool> g_temp_armed{false};
constexpr int kCleanupSignals[] = {SIGINT, SIGTERM, SIGHUP};

void RemoveTempAndDie(int sig) {
  if (g_temp_armed.load())
    ::unlink(g_temp_path);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Blocks the cleanup signals for its lifetime, so that no signal can land
// between creating the temporary file and arming its removal.
class CleanupSignalsBlocked {
 public:
  CleanupSignalsBlocked() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : kCleanupSignals)
      sigaddset(&set, sig);
    ::sigprocmask(SIG_BLOCK, &set, &saved_);
  }
  ~CleanupSignalsBlocked() { ::sigprocmask(SIG_SETMASK, &saved_, nullptr); }
  CleanupSignalsBlocked(const CleanupSignalsBlocked&) = delete;
  CleanupSignalsBlocked& operator=(const CleanupSignalsBlocked&) = delete;

 private:
  sigset_t saved_;
};

void ArmTempCleanup(const std::string& path) {
  if (path.size() >= sizeof(g_temp_path))
    return;
  std::memcpy(g_temp_path, path.c_str(), path.size() + 1);
  g_temp_armed = true;
  struct sigaction sa {};
  sa.sa_handler = RemoveTempAndDie;
  sigemptyset(&sa.sa_mask);
  for (int sig : kCleanupSignals)
    sigaddset(&sa.sa_mask, sig);
  for (int sig : kCleanupSignals) {
    struct sigaction old {};
    // A signal the caller ignores (nohup, a background job) stays ignored.
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN)
      continue;
    ::sigaction(sig, &sa, nullptr);
  }
  // Going over RLIMIT_FSIZE must give EFBIG (a clear error, and the
  // temporary file removed), not kill the process with SIGXFSZ.
  ::signal(SIGXFSZ, SIG_IGN);
}

void DisarmTempCleanup() {
  g_temp_armed = false;
}

// The path to replace: an existing symlink is followed, so that the image
// lands where it points (as writing through it would) instead of replacing it.
std::string ResolveDestination(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode))
    return path;
  char* real = ::realpath(path.c_str(), nullptr);
  if (!real)
    return path;
  std::string resolved(real);
  std::free(real);
  return resolved;
}

std::string DirectoryOf(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string BaseOf(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Makes a rename durable: fsync of the directory that holds path.
void SyncDirectoryOf(const std::string& path) {
  const int fd = ::open(DirectoryOf(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return;  // best effort: the image itself is complete and synced
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

OutputFile OutputFile::Create(const std::string& path, Durability durability) {
  OutputFile out;
  out.path_ = path;
  out.durability_ = durability;
  if (path == "-") {
    out.file_ = File::Borrow(STDOUT_FILENO, "standard output");
    out.kind_ = Kind::kStream;
    return out;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    out.file_ = File::Open(path, O_RDWR);
    out.kind_ = S_ISBLK(st.st_mode) ? Kind::kBlockDevice : Kind::kStream;
    return out;
  }
  out.final_path_ = ResolveDestination(path);
  const std::string templ =
      DirectoryOf(out.final_path_) + "/." + BaseOf(out.final_path_) + ".e2image-XXXXXX";
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  CleanupSignalsBlocked blocked;
  const int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0)
    throw Error(path + ": cannot create output file: " + ErrnoText(errno));
  out.temp_path_ = name.data();
  out.file_ = File(fd, path);
  if (durability == Durability::kSynced)
    out.file_.FlushInBackgroundEvery(kBackgroundFlushBytes);
  out.kind_ = Kind::kRegular;
  ArmTempCleanup(out.temp_path_);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0)
    throw Error(path + ": cannot set the output file's mode: " + ErrnoText(errno));
  return out;
}

OutputFile::OutputFile(OutputFile&& o) noexcept
    : file_(std::move(o.file_)),
      kind_(o.kind_),
      durability_(o.durability_),
      path_(std::move(o.path_)),
      final_path_(std::move(o.final_path_)),
      temp_path_(std::move(o.temp_path_)),
      committed_(o.committed_) {
  o.temp_path_.clear();
}

OutputFile::~OutputFile() {
  if (!temp_path_.empty() && !committed_) {
    ::unlink(temp_path_.c_str());
    DisarmTempCleanup();
  }
}

void OutputFile::Commit() {
  if (kind_ == Kind::kStream)
    return;
  const bool sync = kind_ == Kind::kBlockDevice || durability_ == Durability::kSynced;
  // Synced before it gets its name, so that a name never points at an image
  // a power cut could still tear. It was flushed in the background all
  // along (every kBackgroundFlushBytes), so little is left to wait for here;
  // a flush that failed on the way fails this too.
  if (sync)
    file_.Sync();
  if (kind_ == Kind::kRegular) {
    file_.Close();
    if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
      throw Error(path_ + ": cannot rename the finished image into place: " + ErrnoText(errno));
    DisarmTempCleanup();
    temp_path_.clear();
    if (sync)
      SyncDirectoryOf(final_path_);
  }
  committed_ = true;
}

RawWriter::RawWriter(const OutputFile& out, uint64_t base, bool zero_gaps)
    : out_(out), base_(base), zero_gaps_(zero_gaps || out.kind() == OutputFile::Kind::kStream) {}

void RawWriter::StartStream() {
  // A stream cannot seek: the image's offset (-O) is written out as zeros.
  if (out_.kind() != OutputFile::Kind::kStream || stream_started_)
    return;
  stream_started_ = true;
  static const std::vector<uint8_t> zeros(1 << 20, 0);
  for (uint64_t left = base_; left;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
    out_.file().Write(std::span<const uint8_t>(zeros.data(), n));
    left -= n;
  }
}

void RawWriter::FillZeros(uint64_t from, uint64_t to) {
  static const std::vector<uint8_t> zeros(1 << 20, 0);
  StartStream();
  while (from < to) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(to - from, zeros.size()));
    std::span<const uint8_t> chunk(zeros.data(), n);
    if (out_.kind() == OutputFile::Kind::kStream)
      out_.file().Write(chunk);
    else
      out_.file().WriteAt(chunk, base_ + from);
    from += n;
  }
}

bool RawWriter::CanRewind() const {
  return !zero_gaps_ && out_.kind() == OutputFile::Kind::kRegular;
}

void RawWriter::Rewind() {
  if (!CanRewind())
    throw Error(out_.path() + ": internal error: a second pass over an output written in order");
  position_ = 0;
}

void RawWriter::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset < position_)
    throw Error(AtOffset(out_.path(), base_ + offset, "internal error: raw output went backwards"));
  if (zero_gaps_)
    FillZeros(position_, offset);
  StartStream();
  if (out_.kind() == OutputFile::Kind::kStream) {
    out_.file().Write(data);
  } else if (out_.kind() == OutputFile::Kind::kRegular && !zero_gaps_) {
    // Leave all-zero 4 KiB pages as holes; write the runs in between. (With
    // zero_gaps every zero is written: the last ones would otherwise be
    // neither written nor covered by Finish.)
    ForEachNonZeroRun(data, 4096, 4096, [&](size_t start, std::span<const uint8_t> run) {
      out_.file().WriteAt(run, base_ + offset + start);
    });
  } else {
    out_.file().WriteAt(data, base_ + offset);
  }
  position_ = offset + data.size();
  bytes_written_ += data.size();
}

void RawWriter::Overwrite(uint64_t offset, std::span<const uint8_t> data) {
  if (!CanRewind())
    throw Error(out_.path() + ": internal error: an overwrite of an output written in order");
  if (offset < position_)
    throw Error(AtOffset(out_.path(), base_ + offset, "internal error: raw output went backwards"));
  out_.file().WriteAt(data, base_ + offset);
  position_ = offset + data.size();
  bytes_written_ += data.size();
}

void RawWriter::Finish(uint64_t size) {
  if (size < position_)
    throw Error(AtOffset(out_.path(), base_ + size, "internal error: raw output past its end"));
  if (zero_gaps_) {
    FillZeros(position_, size);
  } else if (out_.kind() == OutputFile::Kind::kRegular) {
    const uint64_t current = out_.file().Size();
    if (current < base_ + size)
      out_.file().Truncate(base_ + size);
  }
  position_ = size;
}

}  // namespace util
