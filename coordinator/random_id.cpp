// NewRandomId (random_id.h): getrandom(2), falling back to /dev/urandom.
#include "coordinator/random_id.h"

#include <spdlog/spdlog.h>

#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace dwarp::coordinator {

std::string NewRandomId(const char* prefix) {
  uint64_t words[2] = {0, 0};
  auto* bytes = reinterpret_cast<unsigned char*>(words);
  size_t filled = 0;
  while (filled < sizeof(words)) {
    const ssize_t got = ::getrandom(bytes + filled, sizeof(words) - filled, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      // getrandom(2) fails only on kernels before 3.17 or under a seccomp filter: fall back to the device.
      std::ifstream urandom("/dev/urandom", std::ios::binary);
      urandom.read(reinterpret_cast<char*>(bytes + filled), static_cast<std::streamsize>(sizeof(words) - filled));
      if (!urandom) {
        spdlog::critical("no cryptographic random source (getrandom, /dev/urandom): cannot issue ids");
        std::abort();
      }
      break;
    }
    filled += static_cast<size_t>(got);
  }
  char text[40];
  std::snprintf(text, sizeof(text), "%s%016llx%016llx", prefix, static_cast<unsigned long long>(words[0]),
                static_cast<unsigned long long>(words[1]));
  return text;
}

}  // namespace dwarp::coordinator
