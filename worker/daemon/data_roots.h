// Data roots: the folders a worker lets its jobs read. A job spec names files and folders (the model's
// weights, the data set's root, file, stimuli, images, labels); a worker started with --data-root DIR
// (repeatable) runs only jobs whose every such path resolves, symbolic links and `..` followed
// (std::filesystem::weakly_canonical, relative paths taken from the worker's working directory), to DIR
// or below one of its roots. Without roots every path is allowed, as before.
//
// Why: anyone who can submit a sweep (any holder of the shared token) chooses these paths, and the worker
// opens them with its own rights; a data set reader's error may describe what it found there.
//
// Thread-safety: free functions without state.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/job_spec.h"
#include "common/status.h"

namespace dwarp::worker {

// The roots in canonical form. InvalidArgument naming the root when it is empty, does not exist or is not
// a directory.
StatusOr<std::vector<std::filesystem::path>> CanonicalDataRoots(const std::vector<std::string>& roots);

// The paths a job spec names, each with its field ("data.images"): model.weights, data.root, data.file,
// data.stimuli, data.images, data.labels, data.test_images, data.test_labels and
// data.synthetic.teacher.weights, those that are set.
std::vector<std::pair<std::string, std::string>> JobSpecPaths(const JobSpec& spec);

// OK when `roots` is empty or every path of JobSpecPaths(spec) lies under one of `roots` (canonical, from
// CanonicalDataRoots). InvalidArgument (a job that fails the same on every try) naming the field, the path
// as the spec gave it and the roots; the file itself is never opened.
Status CheckJobPathsUnderDataRoots(const JobSpec& spec, const std::vector<std::filesystem::path>& roots);

}  // namespace dwarp::worker
