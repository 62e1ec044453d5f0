// Test helper: makes an empty directory of a mounted ext4 filesystem
// encrypted (fscrypt policy v2, AES-256-XTS/CTS) with a fixed test key added
// to the filesystem's keyring, so that the shell can then fill it.
#include <fcntl.h>
#include <linux/fscrypt.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

int Fail(const char* what) {
  std::fprintf(stderr, "fscrypt_dir: %s: %s\n", what, std::strerror(errno));
  return 1;
}

// A descriptor closed on destruction.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0)
      ::close(fd);
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fscrypt_dir EMPTY-DIRECTORY\n");
    return 1;
  }
  const Fd dir{::open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir.fd < 0)
    return Fail(argv[1]);
  constexpr size_t kKeySize = FSCRYPT_MAX_KEY_SIZE;
  std::vector<unsigned char> arg_bytes(sizeof(fscrypt_add_key_arg) + kKeySize);
  auto* arg = reinterpret_cast<fscrypt_add_key_arg*>(arg_bytes.data());
  arg->key_spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER;
  arg->raw_size = kKeySize;
  for (size_t i = 0; i < kKeySize; ++i)
    arg->raw[i] = static_cast<unsigned char>(i * 7 + 1);
  if (::ioctl(dir.fd, FS_IOC_ADD_ENCRYPTION_KEY, arg) != 0)
    return Fail("FS_IOC_ADD_ENCRYPTION_KEY");
  fscrypt_policy_v2 policy{};
  policy.version = FSCRYPT_POLICY_V2;
  policy.contents_encryption_mode = FSCRYPT_MODE_AES_256_XTS;
  policy.filenames_encryption_mode = FSCRYPT_MODE_AES_256_CTS;
  policy.flags = FSCRYPT_POLICY_FLAGS_PAD_32;
  std::memcpy(policy.master_key_identifier, arg->key_spec.u.identifier,
              FSCRYPT_KEY_IDENTIFIER_SIZE);
  if (::ioctl(dir.fd, FS_IOC_SET_ENCRYPTION_POLICY, &policy) != 0)
    return Fail("FS_IOC_SET_ENCRYPTION_POLICY");
  return 0;
}
