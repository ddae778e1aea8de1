#include "common/file_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "common/quote.h"

namespace dwarp {

StatusOr<std::string> ReadWholeFile(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFoundError(what + " " + Quote(path) + " does not exist");
  if (!fs::is_regular_file(path, ec)) return InvalidArgumentError(what + " " + Quote(path) + " is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return UnavailableError("cannot open " + what + " " + Quote(path) + ": " + std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return UnavailableError("cannot read " + what + " " + Quote(path));
  return bytes;
}

Status WriteFileAtomically(const std::string& path, const std::string& text, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path target(path);
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), ec);
    if (ec) return UnavailableError(what + ": cannot create folder '" + target.parent_path().string() + "': " + ec.message());
  }
  const fs::path temp = target.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream file(temp, std::ios::binary | std::ios::trunc);
    file << text;
    file.close();
    if (!file) {
      fs::remove(temp, ec);
      return UnavailableError(what + ": cannot write '" + temp.string() + "'");
    }
  }
  fs::rename(temp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    return UnavailableError(what + ": cannot rename '" + temp.string() + "' to '" + path + "': " + ec.message());
  }
  return OkStatus();
}

}  // namespace dwarp
