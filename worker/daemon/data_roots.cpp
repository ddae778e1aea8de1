#include "worker/daemon/data_roots.h"

#include <algorithm>
#include <system_error>

namespace dwarp::worker {

namespace fs = std::filesystem;

namespace {

// Whether `path` is `root` or lies below it, both canonical: compared element by element, so that
// /data/brains2 is not under /data/brains.
bool IsUnder(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

std::string RootList(const std::vector<fs::path>& roots) {
  std::string text;
  for (const fs::path& root : roots) text += (text.empty() ? "" : ", ") + root.string();
  return text;
}

}  // namespace

StatusOr<std::vector<fs::path>> CanonicalDataRoots(const std::vector<std::string>& roots) {
  std::vector<fs::path> out;
  for (const std::string& root : roots) {
    if (root.empty()) return InvalidArgumentError("--data-root is empty; expected a directory");
    std::error_code ec;
    fs::path canonical = fs::canonical(root, ec);
    if (ec || !fs::is_directory(canonical, ec))
      return InvalidArgumentError("--data-root '" + root + "' is not an existing directory");
    out.push_back(std::move(canonical));
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> JobSpecPaths(const JobSpec& spec) {
  std::vector<std::pair<std::string, std::string>> named = {
      {"model.weights", spec.model.weights}, {"data.root", spec.data.root},
      {"data.file", spec.data.file},         {"data.stimuli", spec.data.stimuli},
      {"data.images", spec.data.images},     {"data.labels", spec.data.labels},
      {"data.test_images", spec.data.test_images}, {"data.test_labels", spec.data.test_labels}};
  if (spec.data.synthetic && spec.data.synthetic->teacher)
    named.emplace_back("data.synthetic.teacher.weights", spec.data.synthetic->teacher->weights);
  named.erase(std::remove_if(named.begin(), named.end(), [](const auto& entry) { return entry.second.empty(); }),
              named.end());
  return named;
}

Status CheckJobPathsUnderDataRoots(const JobSpec& spec, const std::vector<fs::path>& roots) {
  if (roots.empty()) return OkStatus();
  for (const auto& [field, path] : JobSpecPaths(spec)) {
    std::error_code ec;
    const fs::path resolved = fs::weakly_canonical(fs::absolute(path, ec), ec);
    const bool allowed = !ec && std::any_of(roots.begin(), roots.end(),
                                            [&](const fs::path& root) { return IsUnder(resolved, root); });
    if (!allowed)
      return InvalidArgumentError(field + " '" + path + "' is outside this worker's data roots (" + RootList(roots) +
                                  "); a job may read only under a --data-root of the worker that runs it");
  }
  return OkStatus();
}

}  // namespace dwarp::worker
