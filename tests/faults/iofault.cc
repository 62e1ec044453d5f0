// An LD_PRELOAD library for the fault tests: it wraps read(2), write(2),
// pread(2), pwrite(2), fsync(2), sync_file_range(2) and splice(2) and, on
// the descriptors whose path contains IOFAULT_PATH, fails or shortens
// transfers as the environment asks:
//
//   IOFAULT_OP     read | write | fsync | splice: which calls to count
//                  (default write; fsync counts sync_file_range too; splice
//                  names the descriptor spliced from)
//   IOFAULT_PATH   substring of /proc/self/fd/N's target (default: any file)
//   IOFAULT_NTH    fail the Nth matching call (1-based) and every later one
//   IOFAULT_AT     fail every matching pread or pwrite whose range holds
//                  this byte offset of the file (a block only one reader
//                  reads, whatever the order of the threads' calls); a
//                  comma-separated list names several (bad sectors); a
//                  read or write at the file position counts too, as on a
//                  disk (libext2fs retries a failed pread with read)
//   IOFAULT_ONCE   1: fail the Nth call only (a write error the kernel
//                  reports once, then forgets)
//   IOFAULT_ERRNO  EIO | ENOSPC | EFBIG | EINTR (EINTR fails only that call)
//   IOFAULT_SHORT  1: never fail; every matching read or write moves at most
//                  half the bytes asked (at least one), and every other
//                  call first fails with EINTR
//   IOFAULT_DELAY_MS  sleep this long before every matching call (to
//                  interrupt a run part way)
//   IOFAULT_LOG    a file that gets one line per injected failure
//   IOFAULT_COUNT  a file that gets the number of matching calls at exit
//                  (to aim IOFAULT_NTH at, say, the last read)
//   IOFAULT_BYTES  a file that gets the bytes the matching calls asked to
//                  move, at exit
//
// Built without sanitizers so that it can be preloaded into any build.
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

// The configuration read once from the environment.
struct Config {
  bool loaded = false;
  bool active = false;
  char op[16] = "write";
  const char* path = nullptr;
  long nth = 0;
  long long at[16] = {};
  int at_count = 0;
  int error = EIO;
  bool once = false;
  bool shortened = false;
  long delay_ms = 0;
  const char* log = nullptr;
  const char* count_file = nullptr;
  const char* bytes_file = nullptr;
};

Config g_config;
std::atomic<long> g_calls = 0;  // a background thread may flush while another writes
std::atomic<long long> g_bytes = 0;

void Load() {
  if (g_config.loaded)
    return;
  g_config.loaded = true;
  if (const char* op = std::getenv("IOFAULT_OP"))
    std::snprintf(g_config.op, sizeof g_config.op, "%s", op);
  g_config.path = std::getenv("IOFAULT_PATH");
  if (const char* nth = std::getenv("IOFAULT_NTH"))
    g_config.nth = std::atol(nth);
  if (const char* at = std::getenv("IOFAULT_AT")) {
    for (char* next = const_cast<char*>(at); *next && g_config.at_count < 16;) {
      g_config.at[g_config.at_count++] = std::strtoll(next, &next, 0);
      if (*next == ',')
        ++next;
      else
        break;
    }
  }
  if (const char* e = std::getenv("IOFAULT_ERRNO")) {
    if (!std::strcmp(e, "ENOSPC"))
      g_config.error = ENOSPC;
    if (!std::strcmp(e, "EFBIG"))
      g_config.error = EFBIG;
    if (!std::strcmp(e, "EINTR"))
      g_config.error = EINTR;
  }
  g_config.once = std::getenv("IOFAULT_ONCE") && std::atoi(std::getenv("IOFAULT_ONCE"));
  g_config.shortened = std::getenv("IOFAULT_SHORT") && std::atoi(std::getenv("IOFAULT_SHORT"));
  if (const char* delay = std::getenv("IOFAULT_DELAY_MS"))
    g_config.delay_ms = std::atol(delay);
  g_config.log = std::getenv("IOFAULT_LOG");
  g_config.count_file = std::getenv("IOFAULT_COUNT");
  g_config.bytes_file = std::getenv("IOFAULT_BYTES");
  g_config.active = g_config.nth > 0 || g_config.at_count > 0 || g_config.shortened ||
                    g_config.delay_ms > 0 || g_config.count_file || g_config.bytes_file;
}

bool PathMatches(int fd) {
  if (!g_config.path || !*g_config.path)
    return true;
  char link[64];
  char target[4096];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = ::readlink(link, target, sizeof target - 1);
  if (n < 0)
    return false;
  target[n] = '\0';
  return std::strstr(target, g_config.path) != nullptr;
}

void Log(const char* call, int fd, size_t count, long call_number) {
  if (!g_config.log)
    return;
  // The real write, so that logging never recurses into the shim.
  using WriteFn = ssize_t (*)(int, const void*, size_t);
  static auto real_write = reinterpret_cast<WriteFn>(dlsym(RTLD_NEXT, "write"));
  const int log_fd = ::open(g_config.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0)
    return;
  char line[256];
  const int len =
      std::snprintf(line, sizeof line, "%s fd=%d count=%zu call=%ld errno=%d short=%d\n", call, fd,
                    count, call_number, g_config.error, g_config.shortened);
  if (len > 0)
    real_write(log_fd, line, static_cast<size_t>(len));
  ::close(log_fd);
}

// What to do with one call: 0 = pass through, -1 = fail (errno set), or a
// reduced byte count to pass through with.
struct Decision {
  bool fail = false;
  size_t count = 0;
};

// offset: where a pread or pwrite transfers from, -1 for the other calls.
Decision Decide(const char* kind, const char* call, int fd, size_t count, long long offset = -1) {
  Decision d{false, count};
  Load();
  if (!g_config.active || std::strcmp(g_config.op, kind) != 0 || !PathMatches(fd))
    return d;
  const long call_number = ++g_calls;
  g_bytes += static_cast<long long>(count);
  if (g_config.delay_ms > 0)
    ::usleep(static_cast<useconds_t>(g_config.delay_ms) * 1000);
  if (g_config.shortened) {
    if (call_number % 2 == 1) {
      d.fail = true;
      errno = EINTR;
      return d;
    }
    if (count > 1)
      d.count = count / 2;
    return d;
  }
  if (g_config.at_count > 0) {
    for (int i = 0; i < g_config.at_count; ++i) {
      const long long at = g_config.at[i];
      if (offset >= 0 && offset <= at && at < offset + static_cast<long long>(count)) {
        Log(call, fd, count, call_number);
        d.fail = true;
        errno = g_config.error;
        break;
      }
    }
    return d;
  }
  if (g_config.nth <= 0)
    return d;
  const bool later_fails = !g_config.once && g_config.error != EINTR;
  if (call_number == g_config.nth || (call_number > g_config.nth && later_fails)) {
    Log(call, fd, count, call_number);
    d.fail = true;
    errno = g_config.error;
  }
  return d;
}

// Writes the call count to IOFAULT_COUNT and the bytes to IOFAULT_BYTES
// when the process exits normally.
__attribute__((destructor)) void WriteCount() {
  if (g_config.count_file) {
    if (FILE* f = std::fopen(g_config.count_file, "w")) {
      std::fprintf(f, "%ld\n", g_calls.load());
      std::fclose(f);
    }
  }
  if (g_config.bytes_file) {
    if (FILE* f = std::fopen(g_config.bytes_file, "w")) {
      std::fprintf(f, "%lld\n", g_bytes.load());
      std::fclose(f);
    }
  }
}

template <typename Fn>
Fn Next(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

// The file position of fd for IOFAULT_AT (-1 for the other settings, or
// where there is none).
long long Position(int fd) {
  Load();
  return g_config.at_count > 0 ? static_cast<long long>(::lseek(fd, 0, SEEK_CUR)) : -1;
}

}  // namespace

extern "C" {

ssize_t read(int fd, void* buf, size_t count) {
  static auto real = Next<ssize_t (*)(int, void*, size_t)>("read");
  const Decision d = Decide("read", "read", fd, count, Position(fd));
  return d.fail ? -1 : real(fd, buf, d.count);
}

ssize_t write(int fd, const void* buf, size_t count) {
  static auto real = Next<ssize_t (*)(int, const void*, size_t)>("write");
  const Decision d = Decide("write", "write", fd, count, Position(fd));
  return d.fail ? -1 : real(fd, buf, d.count);
}

ssize_t pread64(int fd, void* buf, size_t count, off_t offset) {
  static auto real = Next<ssize_t (*)(int, void*, size_t, off_t)>("pread64");
  const Decision d = Decide("read", "pread", fd, count, offset);
  return d.fail ? -1 : real(fd, buf, d.count, offset);
}

ssize_t pread(int fd, void* buf, size_t count, off_t offset) {
  return pread64(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off_t offset) {
  static auto real = Next<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite64");
  const Decision d = Decide("write", "pwrite", fd, count, offset);
  return d.fail ? -1 : real(fd, buf, d.count, offset);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  return pwrite64(fd, buf, count, offset);
}

int fsync(int fd) {
  static auto real = Next<int (*)(int)>("fsync");
  const Decision d = Decide("fsync", "fsync", fd, 0);
  return d.fail ? -1 : real(fd);
}

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags) {
  static auto real = Next<int (*)(int, off_t, off_t, unsigned int)>("sync_file_range");
  const Decision d = Decide("fsync", "sync_file_range", fd, 0);
  return d.fail ? -1 : real(fd, offset, nbytes, flags);
}

ssize_t splice(int fd_in, loff_t* off_in, int fd_out, loff_t* off_out, size_t len,
               unsigned int flags) {
  static auto real = Next<ssize_t (*)(int, loff_t*, int, loff_t*, size_t, unsigned int)>("splice");
  const Decision d = Decide("splice", "splice", fd_in, len, off_in ? *off_in : -1);
  return d.fail ? -1 : real(fd_in, off_in, fd_out, off_out, d.count, flags);
}

}  // extern "C"
