#include "util/output.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "util/error.h"

namespace util {
namespace {

// How much of an image file is written between two asks for a background
// flush (they merge while one runs); bench/RESULTS.md has the comparison
// that chose it.
constexpr uint64_t kBackgroundFlushBytes = 8ull << 20;

// The one temporary file to remove if a signal ends the process, and the
// dispositions the signals had before (restored to end the process as they
// would have).
char g_temp_path[4096];
std::atomic<bool> g_temp_armed{false};
struct sigaction g_saved_actions[_NSIG];
bool g_handlers_installed = false;

// Every signal whose default action ends the process, but SIGXFSZ (ignored:
// going over RLIMIT_FSIZE must be an EFBIG error, not a kill) and SIGKILL.
std::vector<int> TerminatingSignals() {
  std::vector<int> sigs = {SIGHUP,  SIGINT,    SIGQUIT, SIGILL,  SIGTRAP, SIGABRT, SIGBUS,
                           SIGFPE,  SIGUSR1,   SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM,
                           SIGXCPU, SIGVTALRM, SIGPROF, SIGIO,   SIGPWR,  SIGSYS};
#ifdef SIGSTKFLT
  sigs.push_back(SIGSTKFLT);
#endif
  for (int sig = SIGRTMIN; sig <= SIGRTMAX; ++sig)
    sigs.push_back(sig);
  return sigs;
}

void RemoveTempAndDie(int sig) {
  const int saved_errno = errno;
  if (g_temp_armed.exchange(false))
    ::unlink(g_temp_path);
  // The disposition from before (the default, or a sanitizer's handler)
  // then handles the signal: raised now, delivered when this returns (a
  // fault's instruction runs again and faults once more).
  ::sigaction(sig, &g_saved_actions[sig], nullptr);
  ::raise(sig);
  errno = saved_errno;
}

// Blocks the cleanup signals for its lifetime, so that no signal can land
// between creating the temporary file and arming its removal.
class CleanupSignalsBlocked {
 public:
  CleanupSignalsBlocked() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : TerminatingSignals())
      sigaddset(&set, sig);
    ::pthread_sigmask(SIG_BLOCK, &set, &saved_);
  }
  ~CleanupSignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  CleanupSignalsBlocked(const CleanupSignalsBlocked&) = delete;
  CleanupSignalsBlocked& operator=(const CleanupSignalsBlocked&) = delete;

 private:
  sigset_t saved_;
};

void InstallCleanupHandlers() {
  if (g_handlers_installed)
    return;
  g_handlers_installed = true;
  const std::vector<int> sigs = TerminatingSignals();
  struct sigaction sa {};
  sa.sa_handler = RemoveTempAndDie;
  sigemptyset(&sa.sa_mask);
  for (int sig : sigs)
    sigaddset(&sa.sa_mask, sig);
  for (int sig : sigs) {
    struct sigaction& old = g_saved_actions[sig];
    // A signal the caller ignores (nohup, a background job) stays ignored.
    if (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler == SIG_IGN)
      continue;
    ::sigaction(sig, &sa, nullptr);
  }
  ::signal(SIGXFSZ, SIG_IGN);
}

void ArmTempCleanup(const std::string& path) {
  if (path.size() >= sizeof(g_temp_path))
    return;
  std::memcpy(g_temp_path, path.c_str(), path.size() + 1);
  InstallCleanupHandlers();
  g_temp_armed = true;
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

bool SameInode(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// The value of /proc/sys/fs/NAME (0 when unreadable).
int ProtectionLevel(const char* name) {
  const std::string path = std::string("/proc/sys/fs/") + name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  char text[8] = {};
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  return n > 0 ? std::atoi(text) : 0;
}

// Why the kernel said EACCES, when one of its protected_* rules is in force
// and applies: the entry (as lstat saw it) sits in a sticky world-writable
// directory (or group-writable, at level 2 for FIFOs and files) and belongs
// to neither the caller nor the directory's owner.
std::string ProtectedRuleHint(const std::string& path, const struct stat& entry) {
  struct stat dir {};
  if (::stat(DirectoryOf(path).c_str(), &dir) != 0 || !(dir.st_mode & S_ISVTX))
    return "";
  if (entry.st_uid == ::geteuid() || entry.st_uid == dir.st_uid)
    return "";
  const char* setting = S_ISLNK(entry.st_mode)    ? "protected_symlinks"
                        : S_ISFIFO(entry.st_mode) ? "protected_fifos"
                        : S_ISREG(entry.st_mode)  ? "protected_regular"
                                                  : nullptr;
  if (!setting)
    return "";
  const int level = ProtectionLevel(setting);
  const bool world = dir.st_mode & S_IWOTH;
  const bool group = (dir.st_mode & S_IWGRP) && !S_ISLNK(entry.st_mode) && level >= 2;
  if (level < 1 || !(world || group))
    return "";
  const char* what = S_ISLNK(entry.st_mode)    ? "a symlink"
                     : S_ISFIFO(entry.st_mode) ? "a FIFO"
                                               : "a file";
  return std::string(" (fs.") + setting + ": " + what + " in a sticky " +
         (world ? "world" : "group") +
         "-writable directory, owned by neither you nor the directory's owner)";
}

// Opens an existing output path for writing as e2fsprogs' e2image does
// (O_CREAT, no O_EXCL, the kernel following a symlink), so that the kernel
// decides: permissions, and fs.protected_symlinks/fifos/regular. A FIFO is
// opened write-only (waiting for its reader), anything else read-write if
// the caller may read it.
File OpenExisting(const std::string& path, const struct stat& entry) {
  struct stat target {};
  const bool write_only =
      ::stat(path.c_str(), &target) == 0 && (S_ISFIFO(target.st_mode) || S_ISCHR(target.st_mode));
  constexpr int kFlags = O_CREAT | O_NOCTTY | O_CLOEXEC;
  int fd = -1;
  if (!write_only) {
    fd = ::open(path.c_str(), O_RDWR | kFlags, 0600);
    if (fd < 0 && errno == EACCES)
      fd = ::open(path.c_str(), O_WRONLY | kFlags, 0600);
  } else {
    fd = ::open(path.c_str(), O_WRONLY | kFlags, 0600);
  }
  if (fd < 0) {
    const int err = errno;
    throw Error(path + ": cannot open the output for writing: " + ErrnoText(err) +
                (err == EACCES ? ProtectedRuleHint(path, entry) : ""));
  }
  return File(fd, path);
}

// A 0600 temporary file beside `final_path` (the umask can only narrow it),
// its removal armed for any signal that ends the process. Returns 0, or the
// errno of mkostemp.
int CreateTemp(const std::string& path, const std::string& final_path, std::string& temp_path,
               File& file) {
  const std::string templ = DirectoryOf(final_path) + "/." + BaseOf(final_path) + ".e2image-XXXXXX";
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  CleanupSignalsBlocked blocked;
  const int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0)
    return errno;
  temp_path = name.data();
  ArmTempCleanup(temp_path);
  file = File(fd, path);
  return 0;
}

// Makes a rename durable: fsync of the directory.
void SyncDirectory(const File& dir) {
  const int fd = ::openat(dir.fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return;  // best effort: the image itself is complete and synced
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void CheckRegionFits(const File& file, uint64_t offset, uint64_t size) {
  constexpr uint64_t kMaxOffset = std::numeric_limits<off_t>::max();
  if (offset > kMaxOffset || size > kMaxOffset - offset)
    throw Error(file.path() + ": an image of " + std::to_string(size) + " bytes at offset " +
                std::to_string(offset) + " would end past the largest file offset (" +
                std::to_string(kMaxOffset) + ")");
  if (!file.is_open() || !S_ISBLK(file.Stat().st_mode))
    return;
  const uint64_t capacity = file.Size();
  if (offset + size > capacity)
    throw Error(file.path() + ": an image of " + std::to_string(size) + " bytes at offset " +
                std::to_string(offset) + " would end at byte " + std::to_string(offset + size) +
                ", past the end of the device (" + std::to_string(capacity) + " bytes)");
}

OutputFile OutputFile::Create(const std::string& path, Durability durability, Existing existing) {
  OutputFile out;
  out.path_ = path;
  out.durability_ = durability;
  if (path == "-") {
    out.file_ = File::Borrow(STDOUT_FILENO, "standard output");
    out.kind_ = Kind::kStream;
    return out;
  }
  struct stat entry {};
  File opened;
  if (::lstat(path.c_str(), &entry) == 0) {
    struct stat target {};
    // A symlink to nothing: the open creates its target, as e2fsprogs' does.
    const bool creates_target =
        S_ISLNK(entry.st_mode) && ::stat(path.c_str(), &target) != 0 && errno == ENOENT;
    opened = OpenExisting(path, entry);
    const struct stat st = opened.Stat();
    out.created_target_ = creates_target;
    if (!S_ISREG(st.st_mode)) {
      out.file_ = std::move(opened);
      out.kind_ = S_ISBLK(st.st_mode) ? Kind::kBlockDevice : Kind::kStream;
      return out;
    }
    if (existing == Existing::kWriteInPlace) {
      out.file_ = std::move(opened);
      out.kind_ = Kind::kInPlaceFile;
      return out;
    }
    out.replaces_ = true;
    out.replaced_ = st;
    out.final_path_ = ResolveDestination(path);
    struct stat final_st {};
    if (::lstat(out.final_path_.c_str(), &final_st) != 0 || !SameInode(final_st, st))
      throw Error(path + ": the output changed while it was opened; not replacing it");
  } else if (errno != ENOENT) {
    throw Error(path + ": cannot look at the output: " + ErrnoText(errno));
  } else {
    out.final_path_ = path;
  }
  out.kind_ = Kind::kRegular;
  if (!out.StartReplacement() && opened.is_open()) {
    // The caller may write the file but not replace it as it is (a directory
    // it cannot write to, an owner it cannot give): it is truncated and
    // written in place, as e2fsprogs' e2image does, not atomically.
    out.replaces_ = false;
    opened.Truncate(0);
    out.file_ = std::move(opened);
  }
  if (durability == Durability::kSynced)
    out.file_.FlushInBackgroundEvery(kBackgroundFlushBytes);
  return out;
}

bool OutputFile::StartReplacement() {
  const std::string dir = DirectoryOf(final_path_);
  const int dir_fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0)
    throw Error(path_ + ": cannot create output file: " + ErrnoText(errno));
  dir_ = File(dir_fd, dir);
  if (const int err = CreateTemp(path_, final_path_, temp_path_, file_)) {
    if (replaces_ && (err == EACCES || err == EPERM || err == EROFS))
      return false;
    throw Error(path_ + ": cannot create output file: " + ErrnoText(err));
  }
  if (!replaces_)
    return true;
  // The replacement belongs to the replaced file's owner and group from
  // now on, with no permission that file lacks (its final mode comes with
  // Commit, after the image is written).
  if (::fchmod(file_.fd(), replaced_.st_mode & 0600) == 0 &&
      ::fchown(file_.fd(), replaced_.st_uid, replaced_.st_gid) == 0)
    return true;
  const int err = errno;
  file_ = File();
  ::unlink(temp_path_.c_str());
  DisarmTempCleanup();
  temp_path_.clear();
  if (err == EPERM)
    return false;
  throw Error(path_ + ": cannot give the new image the owner and group of the file it " +
              "replaces: " + ErrnoText(err));
}

OutputFile::OutputFile(OutputFile&& o) noexcept
    : file_(std::move(o.file_)),
      kind_(o.kind_),
      durability_(o.durability_),
      path_(std::move(o.path_)),
      final_path_(std::move(o.final_path_)),
      temp_path_(std::move(o.temp_path_)),
      dir_(std::move(o.dir_)),
      replaces_(o.replaces_),
      replaced_(o.replaced_),
      created_target_(o.created_target_),
      committed_(o.committed_) {
  o.temp_path_.clear();
  o.created_target_ = false;
}

OutputFile::~OutputFile() {
  if (!temp_path_.empty() && !committed_) {
    ::unlink(temp_path_.c_str());
    DisarmTempCleanup();
  }
  // The empty file that opening a symlink to nothing created goes too, if
  // it is still the one created.
  struct stat now {};
  if (created_target_ && !committed_ && dir_.is_open() &&
      ::fstatat(dir_.fd(), BaseOf(final_path_).c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 &&
      SameInode(now, replaced_) && now.st_size == 0)
    ::unlinkat(dir_.fd(), BaseOf(final_path_).c_str(), 0);
}

void OutputFile::Reserve(uint64_t offset, uint64_t size) const {
  CheckRegionFits(file_, offset, size);
  if (kind_ != Kind::kRegular && kind_ != Kind::kInPlaceFile)
    return;
  if (file_.Size() < offset + size)
    file_.Truncate(offset + size);
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
    if (replaces_ && ::fchmod(file_.fd(), replaced_.st_mode & 07777) != 0)
      throw Error(path_ + ": cannot give the new image the mode of the file it replaces: " +
                  ErrnoText(errno));
    file_.Close();
    const std::string temp_base = BaseOf(temp_path_);
    const std::string final_base = BaseOf(final_path_);
    if (replaces_) {
      // Only the file that was opened (and so checked by the kernel) is replaced.
      struct stat now {};
      if (::fstatat(dir_.fd(), final_base.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 ||
          !SameInode(now, replaced_))
        throw Error(path_ + ": the output was replaced by another file while the image was " +
                    "written; not replacing it");
      if (::renameat(dir_.fd(), temp_base.c_str(), dir_.fd(), final_base.c_str()) != 0)
        throw Error(path_ + ": cannot rename the finished image into place: " + ErrnoText(errno));
    } else if (::renameat2(dir_.fd(), temp_base.c_str(), dir_.fd(), final_base.c_str(),
                           RENAME_NOREPLACE) != 0) {
      const int err = errno;
      if (err == EEXIST)
        throw Error(path_ + ": a file appeared at the output path while the image was " +
                    "written; not replacing it");
      throw Error(path_ + ": cannot rename the finished image into place: " + ErrnoText(err));
    }
    DisarmTempCleanup();
    temp_path_.clear();
    if (sync)
      SyncDirectory(dir_);
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
  // A file written in place gets a hole where it can (its file system
  // punches them), zeros where not.
  if (from < to && out_.kind() == OutputFile::Kind::kInPlaceFile &&
      ::fallocate(out_.file().fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(base_ + from), static_cast<off_t>(to - from)) == 0)
    return;
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
  if (zero_gaps_)
    FillZeros(position_, size);
  if (out_.kind() == OutputFile::Kind::kRegular || out_.kind() == OutputFile::Kind::kInPlaceFile) {
    const uint64_t current = out_.file().Size();
    if (current < base_ + size)
      out_.file().Truncate(base_ + size);
  }
  position_ = size;
}

}  // namespace util
